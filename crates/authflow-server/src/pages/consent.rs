//! The consent page.

use authflow_store::ClientOrigin;
use axum::http::StatusCode;

use super::{destination_label, escape, initial, Page};
use crate::AppState;

/// What the consent page shows and carries.
#[derive(Debug)]
pub(crate) struct ConsentPage<'a> {
    /// The client's name.
    pub client_name: &'a str,
    /// The client's id (shown small, under the name).
    pub client_id: &'a str,
    /// How the client came to exist: a self-registered one gets a caution.
    pub origin: ClientOrigin,
    /// The signed-in user's name.
    pub username: &'a str,
    /// The scope tokens asked for.
    pub scopes: Vec<&'a str>,
    /// The resources the tokens will be limited to.
    pub resources: &'a [String],
    /// Where the answer goes.
    pub redirect_uri: &'a str,
    /// The authorization request, re-encoded, to post back.
    pub request: &'a str,
    /// The CSRF token to post back.
    pub csrf_token: &'a str,
}

impl ConsentPage<'_> {
    /// Render.
    pub(crate) fn render(&self, state: &AppState) -> Page {
        let scopes = if self.scopes.is_empty() {
            "<p class=\"muted\">Use your account. No specific permissions are requested.</p>\n".to_owned()
        } else {
            let items: String = self.scopes.iter().map(|s| format!("<li><code>{}</code></li>\n", escape(s))).collect();
            format!("<ul class=\"scopes\">\n{items}</ul>\n")
        };
        let resources = if self.resources.is_empty() {
            "<p class=\"muted\">Any service that accepts this server's tokens.</p>\n".to_owned()
        } else {
            let items: String =
                self.resources.iter().map(|r| format!("<li><code>{}</code></li>\n", escape(r))).collect();
            format!("<ul class=\"scopes\">\n{items}</ul>\n")
        };
        let caution = if self.origin == ClientOrigin::Dynamic {
            "<p class=\"notice\">This application registered itself with this server; its name is not verified. \
             Approve only if you started this sign-in.</p>\n"
        } else {
            ""
        };
        let body = format!(
            "<div class=\"head\">\n<div class=\"mark\" aria-hidden=\"true\">{initial}</div>\n\
             <h1><strong>{client}</strong> wants to access your account</h1>\n\
             <p class=\"lead\">Signed in as <strong>{user}</strong></p>\n</div>\n\
             {caution}\
             <div class=\"section\">\n<h2>This will allow it to use</h2>\n{scopes}</div>\n\
             <div class=\"section\">\n<h2>Limited to</h2>\n{resources}</div>\n\
             <form method=\"post\" action=\"{action}\" class=\"actions\">\n\
             <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\n\
             <input type=\"hidden\" name=\"request\" value=\"{request}\">\n\
             <button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\">Deny</button>\n\
             <button type=\"submit\" name=\"decision\" value=\"approve\" class=\"primary\">Approve</button>\n\
             </form>\n\
             <p class=\"fine\">Either way you will be sent back to <strong>{destination}</strong>.</p>\n\
             <p class=\"fine\">Client ID <code>{client_id}</code></p>\n",
            initial = escape(&initial(self.client_name)),
            client = escape(self.client_name),
            user = escape(self.username),
            action = escape(&format!("{}/authorize/consent", state.base_path())),
            csrf = escape(self.csrf_token),
            request = escape(self.request),
            destination = escape(&destination_label(self.redirect_uri)),
            client_id = escape(self.client_id),
        );
        Page::new(state, StatusCode::OK, "Authorize access", &body, Some(self.redirect_uri))
    }
}
