//! What the sign-in page adds for upstream identity providers (a button each), and the page that says why a
//! round trip to a provider stopped.

use axum::http::StatusCode;

use super::{escape, Page};
use crate::AppState;

/// A provider's button on the sign-in page.
#[derive(Debug)]
pub(crate) struct UpstreamButton<'a> {
    /// The provider id (in the form's action).
    pub id: &'a str,
    /// The name on the button.
    pub name: &'a str,
}

/// One small form per provider, posting the carried authorization request and the CSRF token to
/// `{base}/authorize/upstream/{id}`.
pub(crate) fn buttons(state: &AppState, buttons: &[UpstreamButton<'_>], csrf_token: &str, request: &str) -> String {
    buttons
        .iter()
        .map(|b| {
            format!(
                "<form method=\"post\" action=\"{action}\" class=\"upstream\">\n\
                 <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\n\
                 <input type=\"hidden\" name=\"request\" value=\"{request}\">\n\
                 <button type=\"submit\" class=\"secondary wide\">Continue with {name}</button>\n</form>\n",
                action = escape(&format!("{}/authorize/upstream/{}", state.base_path(), b.id)),
                csrf = escape(csrf_token),
                request = escape(request),
                name = escape(b.name),
            )
        })
        .collect()
}

/// Why a round trip to a provider stopped.
#[derive(Debug)]
pub(crate) struct UpstreamProblem<'a> {
    /// The status.
    pub status: StatusCode,
    /// The headline.
    pub title: &'a str,
    /// The explanation.
    pub message: &'a str,
    /// The authorization request to start again with (a link to this server's `/authorize`).
    pub restart: Option<&'a str>,
}

impl UpstreamProblem<'_> {
    /// Render.
    pub(crate) fn render(&self, state: &AppState) -> Page {
        let restart = self.restart.map_or_else(String::new, |query| {
            let href = format!("{}/authorize?{query}", state.base_path());
            format!("<p class=\"fine center\"><a href=\"{}\">Start again</a></p>\n", escape(&href))
        });
        let body = format!(
            "<div class=\"head\">\n<div class=\"mark problem\" aria-hidden=\"true\">!</div>\n<h1>{title}</h1>\n\
             <p class=\"lead\">{message}</p>\n</div>\n{restart}",
            title = escape(self.title),
            message = escape(self.message),
        );
        Page::new(state, self.status, self.title, &body, None)
    }
}
