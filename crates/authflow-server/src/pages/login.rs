//! The sign-in page.

use axum::http::{header, HeaderValue, StatusCode};

use super::{escape, initial, Page};
use crate::AppState;

/// Why the sign-in page is shown again, if it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginNotice {
    /// First visit.
    None,
    /// A field was left empty.
    Missing,
    /// Unknown user or wrong password (the two are never told apart).
    BadCredentials,
    /// The password was right but the account is disabled.
    Disabled,
    /// Too many attempts; try again after this many seconds.
    TooManyAttempts(u64),
}

/// What the sign-in page shows and carries.
#[derive(Debug)]
pub(crate) struct LoginPage<'a> {
    /// The client's name.
    pub client_name: &'a str,
    /// The authorization request, re-encoded, to post back.
    pub request: &'a str,
    /// The CSRF token to post back.
    pub csrf_token: &'a str,
    /// The username to fill in again after a failed attempt.
    pub username: &'a str,
    /// Why it is shown.
    pub notice: LoginNotice,
    /// Where the flow may end (for the page's `form-action`).
    pub redirect_uri: &'a str,
}

impl LoginPage<'_> {
    /// Render with the status the notice calls for.
    pub(crate) fn render(&self, state: &AppState) -> Page {
        let (status, alert) = match self.notice {
            LoginNotice::None => (StatusCode::OK, String::new()),
            LoginNotice::Missing => (StatusCode::BAD_REQUEST, "Enter your username and password.".to_owned()),
            LoginNotice::BadCredentials => (StatusCode::UNAUTHORIZED, "Incorrect username or password.".to_owned()),
            LoginNotice::Disabled => {
                (StatusCode::FORBIDDEN, "This account is disabled. Contact your administrator.".to_owned())
            }
            LoginNotice::TooManyAttempts(secs) => {
                (StatusCode::TOO_MANY_REQUESTS, format!("Too many sign-in attempts. Try again in {secs} s."))
            }
        };
        let alert = if alert.is_empty() {
            String::new()
        } else {
            format!("<p class=\"alert\" role=\"alert\">{}</p>\n", escape(&alert))
        };
        let body = format!(
            "<div class=\"head\">\n<div class=\"mark\" aria-hidden=\"true\">{initial}</div>\n\
             <h1>Sign in</h1>\n<p class=\"lead\">to continue to <strong>{client}</strong></p>\n</div>\n\
             {alert}\
             <form method=\"post\" action=\"{action}\">\n\
             <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\n\
             <input type=\"hidden\" name=\"request\" value=\"{request}\">\n\
             <label for=\"username\">Username</label>\n\
             <input id=\"username\" name=\"username\" type=\"text\" value=\"{username}\" autocomplete=\"username\" \
             autocapitalize=\"none\" spellcheck=\"false\" maxlength=\"256\" required{focus_user}>\n\
             <label for=\"password\">Password</label>\n\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" \
             maxlength=\"1024\" required{focus_password}>\n\
             <button type=\"submit\" class=\"primary wide\">Sign in</button>\n</form>\n",
            initial = escape(&initial(self.client_name)),
            client = escape(self.client_name),
            action = escape(&format!("{}/authorize/login", state.base_path())),
            csrf = escape(self.csrf_token),
            request = escape(self.request),
            username = escape(self.username),
            focus_user = if self.username.is_empty() { " autofocus" } else { "" },
            focus_password = if self.username.is_empty() { "" } else { " autofocus" },
        );
        let page = Page::new(state, status, "Sign in", &body, Some(self.redirect_uri));
        match self.notice {
            LoginNotice::TooManyAttempts(secs) => page.header(header::RETRY_AFTER, HeaderValue::from(secs)),
            _ => page,
        }
    }
}
