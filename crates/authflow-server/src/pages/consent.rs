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
    /// Where the answer goes; `None` when the flow ends on this server (the device flow).
    pub redirect_uri: Option<&'a str>,
    /// The device's user code, shown so the person can check it against the device's screen.
    pub user_code: Option<&'a str>,
    /// Where the form posts, below the issuer's path.
    pub action: &'a str,
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
        let caution = match self.origin {
            ClientOrigin::Dynamic => {
                "<p class=\"notice\">This application registered itself with this server; its name is not verified. \
                 Approve only if you started this sign-in.</p>\n"
                    .to_owned()
            }
            // The id is the URL of the document the client published: its host is what the user can check.
            ClientOrigin::MetadataDocument => format!(
                "<p class=\"notice\">This application describes itself from <strong>{}</strong>; its name is \
                 not verified. Approve only if you trust that site and started this sign-in.</p>\n",
                escape(
                    url::Url::parse(self.client_id)
                        .ok()
                        .and_then(|u| u.host_str().map(str::to_owned))
                        .as_deref()
                        .unwrap_or(self.client_id)
                )
            ),
            ClientOrigin::Static | ClientOrigin::Admin => String::new(),
        };
        let body = format!(
            "<div class=\"head\">\n<div class=\"mark\" aria-hidden=\"true\">{initial}</div>\n\
             <h1><strong>{client}</strong> wants to access your account</h1>\n\
             <p class=\"lead\">Signed in as <strong>{user}</strong></p>\n</div>\n\
             {caution}{device}\
             <div class=\"section\">\n<h2>This will allow it to use</h2>\n{scopes}</div>\n\
             <div class=\"section\">\n<h2>Limited to</h2>\n{resources}</div>\n\
             <form method=\"post\" action=\"{action}\" class=\"actions\">\n\
             <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\n\
             <input type=\"hidden\" name=\"request\" value=\"{request}\">\n\
             <button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\">Deny</button>\n\
             <button type=\"submit\" name=\"decision\" value=\"approve\" class=\"primary\">Approve</button>\n\
             </form>\n\
             <p class=\"fine\">{destination}</p>\n\
             <p class=\"fine\">Client ID <code>{client_id}</code></p>\n",
            initial = escape(&initial(self.client_name)),
            client = escape(self.client_name),
            user = escape(self.username),
            action = escape(&format!("{}{}", state.base_path(), self.action)),
            csrf = escape(self.csrf_token),
            request = escape(self.request),
            destination = match self.redirect_uri {
                Some(uri) =>
                    format!("Either way you will be sent back to <strong>{}</strong>.", escape(&destination_label(uri))),
                None => "Either way, you can then go back to your device.".to_owned(),
            },
            device = self.user_code.map_or_else(String::new, |code| format!(
                "<p class=\"notice\">Check that your device shows the code <strong>{}</strong>. If it does not, \
                 deny: someone else may be trying to use your account.</p>\n",
                escape(code)
            )),
            client_id = escape(self.client_id),
        );
        Page::new(state, StatusCode::OK, "Authorize access", &body, self.redirect_uri)
    }
}
