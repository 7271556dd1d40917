//! The HTML the authorization endpoint shows: sign-in, consent, and errors.
//!
//! No template engine and no script: each page is a format string, and every value that is not a constant
//! goes through [`escape`]. Every page carries the same protective headers (see [`Page`]); its stylesheet is
//! inline and allowed by its hash, so the Content-Security-Policy permits nothing else.

mod consent;
mod device;
mod login;
mod problem;
mod upstream;

use std::fmt::Write as _;
use std::sync::LazyLock;

use authflow_core::TokenHash;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use url::Url;

pub(crate) use consent::ConsentPage;
pub(crate) use device::{DeviceDonePage, DeviceEntryPage, DeviceNotice};
pub(crate) use login::{LoginNotice, LoginPage, SignInOptions};
pub(crate) use problem::Problem;
pub(crate) use upstream::{UpstreamButton, UpstreamProblem};

use crate::error::no_store;
use crate::AppState;

/// The stylesheet, inlined in every page.
const STYLE: &str = include_str!("style.css");

/// `'sha256-…'` of [`STYLE`], the only style the Content-Security-Policy allows.
static STYLE_HASH: LazyLock<String> =
    LazyLock::new(|| format!("'sha256-{}'", STANDARD.encode(TokenHash::of(STYLE).as_bytes())));

/// Escape text for HTML element content and double-quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A rendered page with its status and headers:
/// - `Content-Security-Policy`: nothing loads but the inline stylesheet (by hash) and `data:` images; no
///   script; forms may post only to this origin and, when the page has forms, be redirected on to the
///   client's redirect URI (Chromium applies `form-action` to the redirects that follow a submission);
///   no framing, no `<base>`;
/// - `X-Frame-Options: DENY` (clickjacking, for browsers without `frame-ancestors`);
/// - `Cache-Control: no-store`; `Referrer-Policy: no-referrer` (the URL carries the request);
/// - `X-Content-Type-Options: nosniff`.
#[derive(Debug)]
pub(crate) struct Page {
    status: StatusCode,
    html: String,
    form_action: String,
    extra: Vec<(HeaderName, HeaderValue)>,
}

impl Page {
    /// A page titled `title` whose card holds `body` (already escaped HTML). `redirect_uri` is where its
    /// forms may end up besides this server; `None` when they stay here.
    pub(crate) fn new(
        state: &AppState,
        status: StatusCode,
        title: &str,
        body: &str,
        redirect_uri: Option<&str>,
    ) -> Page {
        let mut html = String::with_capacity(STYLE.len() + body.len() + 1024);
        let _ = write!(
            html,
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"referrer\" content=\"no-referrer\">\n\
             <title>{title} · {issuer}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <main class=\"card\">\n{body}</main>\n<footer>Secured by authflow · {issuer}</footer>\n</body>\n</html>\n",
            title = escape(title),
            issuer = escape(&issuer_label(state)),
        );
        let form_action = match redirect_uri {
            Some(uri) => format!("'self' {}", form_target(uri)),
            None => "'self'".to_owned(),
        };
        Page { status, html, form_action, extra: Vec::new() }
    }

    /// Also let the page's forms end up at these URLs' origins: a form that posts here and is redirected on
    /// to an upstream identity provider (Chromium checks `form-action` on the redirect too).
    pub(crate) fn allow_form_targets<'a>(mut self, urls: impl IntoIterator<Item = &'a str>) -> Page {
        for url in urls {
            let target = form_target(url);
            // `'none'` beside other sources would be ignored anyway; an unparsable URL adds nothing.
            if target != "'none'" && !self.form_action.split(' ').any(|t| t == target) {
                self.form_action.push(' ');
                self.form_action.push_str(&target);
            }
        }
        self
    }

    /// Add a response header (`Set-Cookie`, `Retry-After`).
    pub(crate) fn header(mut self, name: HeaderName, value: HeaderValue) -> Page {
        self.extra.push((name, value));
        self
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let csp = format!(
            "default-src 'none'; style-src {}; img-src data:; form-action {}; frame-ancestors 'none'; \
             base-uri 'none'",
            *STYLE_HASH, self.form_action
        );
        let mut response = (self.status, self.html).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        // Built only from a hash and `form_target`'s restricted characters; the fallback is the strictest.
        let csp = HeaderValue::from_str(&csp).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        no_store(headers);
        for (name, value) in self.extra {
            headers.append(name, value);
        }
        response
    }
}

/// The issuer as shown to people: host and port, plus the path if any.
fn issuer_label(state: &AppState) -> String {
    let issuer = &state.issuer;
    let host = issuer.host_str().unwrap_or_default();
    let port = issuer.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{host}{port}{}", issuer.path().trim_end_matches('/'))
}

/// The CSP source matching a redirect URI: its origin, or its scheme alone when the host is not a plain
/// name or IPv4 address (IPv6 literals, exotic characters). Never contains a space, `;` or `,`.
fn form_target(redirect_uri: &str) -> String {
    let Ok(url) = Url::parse(redirect_uri) else { return "'none'".to_owned() };
    let scheme = url.scheme();
    let plain_host = |h: &&str| h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    match (scheme, url.host_str().filter(plain_host)) {
        ("http" | "https", Some(host)) => match url.port() {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        },
        _ => format!("{scheme}:"),
    }
}

/// Where a redirect URI sends the browser, for people: `host[:port]`, or the scheme of a native app.
pub(crate) fn destination_label(redirect_uri: &str) -> String {
    match Url::parse(redirect_uri) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => {
            let host = url.host_str().unwrap_or_default();
            url.port().map_or_else(|| host.to_owned(), |p| format!("{host}:{p}"))
        }
        Ok(url) => format!("the app that handles {}: links", url.scheme()),
        Err(_) => String::from("the application"),
    }
}

/// The letter in the badge at the top of a page.
fn initial(name: &str) -> String {
    name.chars().find(|c| c.is_alphanumeric()).map_or_else(|| "?".to_owned(), |c| c.to_uppercase().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_matters() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn form_targets_are_origins_or_schemes() {
        assert_eq!(form_target("http://127.0.0.1:33418/callback?x=1"), "http://127.0.0.1:33418");
        assert_eq!(form_target("https://app.example/cb"), "https://app.example");
        assert_eq!(form_target("https://app.example:8443/cb"), "https://app.example:8443");
        assert_eq!(form_target("http://[::1]:8080/cb"), "http:");
        assert_eq!(form_target("cursor://anysphere.cursor-retrieval/oauth/callback"), "cursor:");
        assert_eq!(form_target("com.example.app:/cb"), "com.example.app:");
        // A host with characters that would break out of the policy falls back to the scheme.
        assert_eq!(form_target("https://a;b,c.example/cb"), "https:");
        assert_eq!(form_target("not a url"), "'none'");
    }

    #[test]
    fn upstream_targets_extend_form_action() {
        let page = Page { status: StatusCode::OK, html: String::new(), form_action: "'self'".into(), extra: vec![] };
        let page = page.allow_form_targets(["https://login.example/auth?x=1", "https://login.example/other", "x"]);
        assert_eq!(page.form_action, "'self' https://login.example");
    }

    #[test]
    fn destinations_and_initials() {
        assert_eq!(destination_label("http://127.0.0.1:33418/callback"), "127.0.0.1:33418");
        assert_eq!(destination_label("cursor://x/cb"), "the app that handles cursor: links");
        assert_eq!(initial("  ünï app"), "Ü");
        assert_eq!(initial("<>"), "?");
    }
}
