//! rmcp integration (feature `rmcp`): tool handlers take the caller's [`VerifiedToken`] as an argument.
//!
//! rmcp's streamable-HTTP server keeps the HTTP request's [`Parts`] in the request context; the
//! [`BearerAuthLayer`](crate::BearerAuthLayer) in front of it put the [`VerifiedToken`] into their
//! extensions. This module reads it back out, so a tool reads the identity like any other argument:
//!
//! ```no_run
//! use authflow_resource::VerifiedToken;
//! use rmcp::{handler::server::router::tool::ToolRouter, tool, tool_router};
//!
//! #[derive(Clone)]
//! struct Notes {
//!     tool_router: ToolRouter<Self>,
//! }
//!
//! #[tool_router]
//! impl Notes {
//!     #[tool(description = "Who am I?")]
//!     async fn whoami(&self, token: VerifiedToken) -> String {
//!         token.principal().unwrap_or("nobody").to_owned()
//!     }
//! }
//! ```
//!
//! `examples/notes-mcp` in the repository is a complete server (`authflow demo` runs it). A handler that is reached without the layer in front
//! (a configuration mistake) fails with an internal error instead of running anonymously.

use axum::http::request::Parts;
use rmcp::handler::server::common::{AsRequestContext, FromContextPart};
use rmcp::model::Extensions;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use crate::verifier::VerifiedToken;

/// The verified token of the HTTP request behind an rmcp request, if a
/// [`BearerAuthLayer`](crate::BearerAuthLayer) verified one.
pub fn verified_token(extensions: &Extensions) -> Option<&VerifiedToken> {
    VerifiedToken::of(&extensions.get::<Parts>()?.extensions)
}

/// [`verified_token`] from a request context.
pub fn verified_token_of(context: &RequestContext<RoleServer>) -> Option<&VerifiedToken> {
    verified_token(&context.extensions)
}

impl<C: AsRequestContext> FromContextPart<C> for VerifiedToken {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        verified_token(&context.as_request_context().extensions).cloned().ok_or_else(|| {
            tracing::error!("an rmcp tool asked for the VerifiedToken, but no BearerAuthLayer verified one");
            ErrorData::internal_error("the request was not authenticated", None)
        })
    }
}
