//! The device verification pages (RFC 8628 §3.3): enter the code a device shows, and the final word.

use axum::http::{header, HeaderValue, StatusCode};

use super::{escape, initial, Page};
use crate::AppState;

/// Why the code entry page is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceNotice {
    /// First visit.
    None,
    /// The code is malformed, unknown, expired or already used (never told apart).
    InvalidCode,
    /// Too many codes tried from this address; try again after this many seconds.
    TooManyAttempts(u64),
}

/// "Enter the code shown on your device." A `GET` form: looking a code up changes nothing.
#[derive(Debug)]
pub(crate) struct DeviceEntryPage<'a> {
    /// What was typed, to show again.
    pub user_code: &'a str,
    /// Why it is shown.
    pub notice: DeviceNotice,
}

impl DeviceEntryPage<'_> {
    pub(crate) fn render(&self, state: &AppState) -> Page {
        let (status, alert) = match self.notice {
            DeviceNotice::None => (StatusCode::OK, String::new()),
            DeviceNotice::InvalidCode => (
                StatusCode::BAD_REQUEST,
                "That code is not valid. Check it on your device; codes expire after a few minutes.".to_owned(),
            ),
            DeviceNotice::TooManyAttempts(secs) => {
                (StatusCode::TOO_MANY_REQUESTS, format!("Too many codes tried. Try again in {secs} s."))
            }
        };
        let alert = if alert.is_empty() {
            String::new()
        } else {
            format!("<p class=\"alert\" role=\"alert\">{}</p>\n", escape(&alert))
        };
        let body = format!(
            "<div class=\"head\">\n<div class=\"mark\" aria-hidden=\"true\">#</div>\n\
             <h1>Connect a device</h1>\n<p class=\"lead\">Enter the code your device shows</p>\n</div>\n\
             {alert}\
             <form method=\"get\" action=\"{action}\">\n\
             <label for=\"user_code\">Code</label>\n\
             <input id=\"user_code\" name=\"user_code\" type=\"text\" value=\"{code}\" placeholder=\"XXXX-XXXX\" \
             autocomplete=\"one-time-code\" autocapitalize=\"characters\" spellcheck=\"false\" maxlength=\"64\" \
             required autofocus>\n\
             <button type=\"submit\" class=\"primary wide\">Continue</button>\n</form>\n",
            action = escape(&format!("{}/device", state.base_path())),
            code = escape(self.user_code),
        );
        let page = Page::new(state, status, "Connect a device", &body, None);
        match self.notice {
            DeviceNotice::TooManyAttempts(secs) => page.header(header::RETRY_AFTER, HeaderValue::from(secs)),
            _ => page,
        }
    }
}

/// The end of the verification: approved or denied.
#[derive(Debug)]
pub(crate) struct DeviceDonePage<'a> {
    /// The client's name.
    pub client_name: &'a str,
    /// What the person decided.
    pub approved: bool,
}

impl DeviceDonePage<'_> {
    pub(crate) fn render(&self, state: &AppState) -> Page {
        let (title, lead) = if self.approved {
            ("Device connected", format!("<strong>{}</strong> can now use your account.", escape(self.client_name)))
        } else {
            ("Request denied", format!("<strong>{}</strong> was not given access.", escape(self.client_name)))
        };
        let body = format!(
            "<div class=\"head\">\n<div class=\"mark\" aria-hidden=\"true\">{initial}</div>\n<h1>{title}</h1>\n\
             <p class=\"lead\">{lead}</p>\n</div>\n\
             <p class=\"fine center\">You can close this window and go back to your device.</p>\n",
            initial = escape(&initial(self.client_name)),
        );
        Page::new(state, StatusCode::OK, title, &body, None)
    }
}
