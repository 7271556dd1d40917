//! The error page: for what must be told to the person at the browser and never redirected to the client.

use std::borrow::Cow;

use authflow_core::{ErrorCode, OAuthError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{escape, Page};
use crate::AppState;

/// A problem shown as a page (status, headline, explanation).
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    status: StatusCode,
    title: &'static str,
    message: Cow<'static, str>,
    code: Option<ErrorCode>,
    restart: Option<String>,
}

impl Problem {
    /// The authorization request itself is unusable (no or unknown client, unregistered redirect URI…).
    pub(crate) fn bad_request(message: impl Into<Cow<'static, str>>) -> Problem {
        Problem::from(OAuthError::with_description(ErrorCode::InvalidRequest, message))
    }

    /// A form post that failed the CSRF check. `restart` is the authorization request to start again with.
    pub(crate) fn forged_form(restart: Option<String>) -> Problem {
        Problem {
            status: StatusCode::FORBIDDEN,
            title: "This form has expired",
            message: "The form could not be verified, so nothing was done. Start again from the beginning.".into(),
            code: None,
            restart,
        }
    }

    /// Render as a page.
    pub(crate) fn render(&self, state: &AppState) -> Page {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), reason = %self.message, "authorization endpoint failed");
        }
        let restart = self.restart.as_ref().map_or_else(String::new, |query| {
            let href = format!("{}/authorize?{query}", state.base_path());
            format!("<p class=\"fine center\"><a href=\"{}\">Start again</a></p>\n", escape(&href))
        });
        let code = self.code.map_or_else(String::new, |c| {
            format!("<p class=\"error-code muted\">Error: <code>{}</code></p>\n", escape(c.as_str()))
        });
        let advice = if self.status.is_server_error() {
            "Please try again in a moment."
        } else if self.restart.is_some() {
            ""
        } else {
            "Close this window and try again from the application. If this keeps happening, tell its \
             developer what this page says."
        };
        let advice = if advice.is_empty() {
            String::new()
        } else {
            format!("<p class=\"fine center\">{}</p>\n", escape(advice))
        };
        let body = format!(
            "<div class=\"head\">\n<div class=\"mark problem\" aria-hidden=\"true\">!</div>\n<h1>{title}</h1>\n\
             <p class=\"lead\">{message}</p>\n</div>\n{advice}{restart}{code}",
            title = escape(self.title),
            message = escape(&self.message),
        );
        Page::new(state, self.status, self.title, &body, None)
    }

    /// Render into a response.
    pub(crate) fn respond(&self, state: &AppState) -> Response {
        self.render(state).into_response()
    }
}

impl From<OAuthError> for Problem {
    fn from(e: OAuthError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let title = match e.code() {
            ErrorCode::ServerError => "Something went wrong",
            ErrorCode::TemporarilyUnavailable => "Temporarily unavailable",
            _ => "Invalid sign-in request",
        };
        Problem { status, title, message: e.description().to_owned().into(), code: Some(e.code()), restart: None }
    }
}
