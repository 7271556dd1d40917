//! The sign-in page.

use axum::http::{header, HeaderValue, StatusCode};

use super::upstream::{buttons as upstream_buttons, UpstreamButton};
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
    /// Where the form posts, below the issuer's path (`/authorize/login`, `/device/login`).
    pub action: &'a str,
    /// Where the flow may end (for the page's `form-action`); `None` when it ends on this server.
    pub redirect_uri: Option<&'a str>,
}

/// What the sign-in page offers besides, or instead of, the password form.
#[derive(Debug, Default)]
pub(crate) struct SignInOptions<'a> {
    /// A button per upstream identity provider.
    pub upstream: Vec<UpstreamButton<'a>>,
    /// Where those buttons lead (the providers' authorization endpoints), for the page's `form-action`.
    pub upstream_targets: Vec<String>,
    /// Hide the username and password form.
    pub no_passwords: bool,
}

impl LoginPage<'_> {
    /// Render with the status the notice calls for.
    pub(crate) fn render(&self, state: &AppState) -> Page {
        self.render_with(state, &SignInOptions::default())
    }

    /// Render with upstream providers' buttons, and without the password form if `options` say so.
    pub(crate) fn render_with(&self, state: &AppState, options: &SignInOptions<'_>) -> Page {
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
        let upstream = upstream_buttons(state, &options.upstream, self.csrf_token, self.request);
        let passwords = if options.no_passwords { String::new() } else { self.password_form(state) };
        let separator =
            if upstream.is_empty() || passwords.is_empty() { "" } else { "<p class=\"or\"><span>or</span></p>\n" };
        let body = format!(
            "<div class=\"head\">\n<div class=\"mark\" aria-hidden=\"true\">{initial}</div>\n\
             <h1>Sign in</h1>\n<p class=\"lead\">to continue to <strong>{client}</strong></p>\n</div>\n\
             {alert}{upstream}{separator}{passwords}",
            initial = escape(&initial(self.client_name)),
            client = escape(self.client_name),
        );
        let page = Page::new(state, status, "Sign in", &body, self.redirect_uri)
            .allow_form_targets(options.upstream_targets.iter().map(String::as_str));
        match self.notice {
            LoginNotice::TooManyAttempts(secs) => page.header(header::RETRY_AFTER, HeaderValue::from(secs)),
            _ => page,
        }
    }

    fn password_form(&self, state: &AppState) -> String {
        format!(
            "<form method=\"post\" action=\"{action}\">\n\
             <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\n\
             <input type=\"hidden\" name=\"request\" value=\"{request}\">\n\
             <label for=\"username\">Username</label>\n\
             <input id=\"username\" name=\"username\" type=\"text\" value=\"{username}\" autocomplete=\"username\" \
             autocapitalize=\"none\" spellcheck=\"false\" maxlength=\"256\" required{focus_user}>\n\
             <label for=\"password\">Password</label>\n\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" \
             maxlength=\"1024\" required{focus_password}>\n\
             <button type=\"submit\" class=\"primary wide\">Sign in</button>\n</form>\n",
            action = escape(&format!("{}{}", state.base_path(), self.action)),
            csrf = escape(self.csrf_token),
            request = escape(self.request),
            username = escape(self.username),
            focus_user = if self.username.is_empty() { " autofocus" } else { "" },
            focus_password = if self.username.is_empty() { "" } else { " autofocus" },
        )
    }
}
