//! The MCP server: five tools over a [`NoteStore`], each reading the caller from its [`VerifiedToken`].

use authflow_resource::VerifiedToken;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::{schemars, tool, tool_handler, tool_router, ErrorData, ServerHandler};
use serde::Deserialize;

use crate::store::{NoteStore, StoreError};
use crate::{READ_SCOPE, WRITE_SCOPE};

/// The arguments of `get_note` and `delete_note`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct NoteId {
    /// The note's id, as `list_notes` shows it.
    pub id: i64,
}

/// The arguments of `create_note`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CreateNote {
    /// A short title.
    pub title: String,
    /// The note's text.
    #[serde(default)]
    pub body: String,
}

/// The arguments of `update_note`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct UpdateNote {
    /// The note's id.
    pub id: i64,
    /// A new title, if it changes.
    pub title: Option<String>,
    /// A new text, if it changes.
    pub body: Option<String>,
}

/// The notes MCP server (one per MCP session; all share the store).
#[derive(Debug, Clone)]
pub struct Notes {
    store: NoteStore,
    tool_router: ToolRouter<Self>,
}

/// The party a token acts for. The bearer layer only lets tokens with a principal through to tools that
/// need one, but a token without `sub` or `client_id` is still refused rather than pooled with others.
fn owner(token: &VerifiedToken) -> Result<&str, ErrorData> {
    token.principal().ok_or_else(|| ErrorData::invalid_request("the access token names no subject or client", None))
}

/// A tool error naming the scope the token lacks: the model (and the user) see what to ask for.
fn require(token: &VerifiedToken, scope: &str, tool: &str) -> Option<CallToolResult> {
    if token.has_scope(scope) {
        return None;
    }
    let granted = token.scope.as_ref().map(ToString::to_string).unwrap_or_default();
    Some(CallToolResult::error(vec![ContentBlock::text(format!(
        "insufficient_scope: {tool} needs the {scope} scope; this token has \"{granted}\". \
         Authorize again asking for {scope}."
    ))]))
}

fn storage_error(e: StoreError) -> ErrorData {
    tracing::error!(error = %e, "notes storage failed");
    ErrorData::internal_error("the notes database is unavailable", None)
}

fn json_result(value: &impl serde::Serialize) -> Result<CallToolResult, ErrorData> {
    let text = serde_json::to_string(value).map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
    Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
}

fn not_found(id: i64) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!("no note {id}"))])
}

#[tool_router]
impl Notes {
    /// A server over `store`.
    pub fn new(store: NoteStore) -> Self {
        Notes { store, tool_router: Self::tool_router() }
    }

    #[tool(description = "List your notes (id, title, body) as JSON, oldest first (needs the notes:read scope)")]
    async fn list_notes(&self, token: VerifiedToken) -> Result<CallToolResult, ErrorData> {
        if let Some(refusal) = require(&token, READ_SCOPE, "list_notes") {
            return Ok(refusal);
        }
        let notes = self.store.list(owner(&token)?).await.map_err(storage_error)?;
        json_result(&notes)
    }

    #[tool(description = "Read one note by id (needs the notes:read scope)")]
    async fn get_note(
        &self,
        token: VerifiedToken,
        Parameters(NoteId { id }): Parameters<NoteId>,
    ) -> Result<CallToolResult, ErrorData> {
        if let Some(refusal) = require(&token, READ_SCOPE, "get_note") {
            return Ok(refusal);
        }
        match self.store.get(owner(&token)?, id).await.map_err(storage_error)? {
            Some(note) => json_result(&note),
            None => Ok(not_found(id)),
        }
    }

    #[tool(description = "Create a note (needs the notes:write scope); returns it as JSON")]
    async fn create_note(
        &self,
        token: VerifiedToken,
        Parameters(CreateNote { title, body }): Parameters<CreateNote>,
    ) -> Result<CallToolResult, ErrorData> {
        if let Some(refusal) = require(&token, WRITE_SCOPE, "create_note") {
            return Ok(refusal);
        }
        let note = self.store.create(owner(&token)?, &title, &body).await.map_err(storage_error)?;
        json_result(&note)
    }

    #[tool(description = "Change a note's title and/or body (needs the notes:write scope)")]
    async fn update_note(
        &self,
        token: VerifiedToken,
        Parameters(UpdateNote { id, title, body }): Parameters<UpdateNote>,
    ) -> Result<CallToolResult, ErrorData> {
        if let Some(refusal) = require(&token, WRITE_SCOPE, "update_note") {
            return Ok(refusal);
        }
        let updated =
            self.store.update(owner(&token)?, id, title.as_deref(), body.as_deref()).await.map_err(storage_error)?;
        match updated {
            Some(note) => json_result(&note),
            None => Ok(not_found(id)),
        }
    }

    #[tool(description = "Delete a note (needs the notes:write scope)")]
    async fn delete_note(
        &self,
        token: VerifiedToken,
        Parameters(NoteId { id }): Parameters<NoteId>,
    ) -> Result<CallToolResult, ErrorData> {
        if let Some(refusal) = require(&token, WRITE_SCOPE, "delete_note") {
            return Ok(refusal);
        }
        if self.store.delete(owner(&token)?, id).await.map_err(storage_error)? {
            Ok(CallToolResult::success(vec![ContentBlock::text(format!("deleted note {id}"))]))
        } else {
            Ok(not_found(id))
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Notes {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions("Your notes: list, read, create, update and delete them.")
    }
}
