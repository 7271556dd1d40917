//! The browser's side of signing in: the session cookie, the CSRF cookie, and login sessions in storage.
//!
//! Both cookies are `HttpOnly; SameSite=Lax; Path=/`. When the issuer is `https` they are also `Secure` and
//! named with the `__Host-` prefix, so no sibling subdomain can set or shadow them. A session id or CSRF token
//! is 256 random bits; storage keeps only the SHA-256 of a session id, so a database leak cannot be replayed
//! as a browser.
//!
//! CSRF protection is a double-submit token: the page's form carries the value of the CSRF cookie, and a
//! post is accepted only when the two agree (compared in constant time) and the browser does not label the
//! request cross-site (`Sec-Fetch-Site`). A cross-site page can neither read the cookie nor, with the
//! `__Host-` prefix, plant one; the consent post additionally needs the `SameSite=Lax` session cookie,
//! which cross-site posts do not carry.

use std::time::Duration;

use authflow_core::token::constant_time_eq;
use authflow_core::Entropy;
use authflow_core::TokenHash;
use authflow_store::{LoginSession, StoreError, User};
use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::{AppState, OsEntropy};

/// Characters in a session id or CSRF token: 32 bytes, unpadded base64url.
const TOKEN_LEN: usize = 43;

/// A fresh 256-bit random value, base64url.
fn random_value() -> String {
    let mut bytes = [0u8; 32];
    OsEntropy.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether a cookie value has the shape of one of ours (so junk is never reflected or looked up).
fn well_formed(value: &str) -> bool {
    value.len() == TOKEN_LEN && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn secure(state: &AppState) -> bool {
    state.issuer.scheme() == "https"
}

fn session_cookie(state: &AppState) -> &'static str {
    if secure(state) {
        "__Host-authflow-session"
    } else {
        "authflow-session"
    }
}

fn csrf_cookie(state: &AppState) -> &'static str {
    if secure(state) {
        "__Host-authflow-csrf"
    } else {
        "authflow-csrf"
    }
}

/// The value of cookie `name` in the request, if it appears exactly once and is well formed.
fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    read_cookie_value(headers, name, well_formed)
}

/// The value of cookie `name` in the request, if it appears exactly once and `accept` accepts it.
pub(crate) fn read_cookie_value<'a>(
    headers: &'a HeaderMap,
    name: &str,
    accept: impl Fn(&str) -> bool,
) -> Option<&'a str> {
    let mut found = None;
    for line in headers.get_all(header::COOKIE) {
        let Ok(line) = line.to_str() else { continue };
        for pair in line.split(';') {
            let Some((k, v)) = pair.split_once('=') else { continue };
            if k.trim() == name {
                if found.is_some() {
                    // Two cookies of one name (e.g. one planted for a parent path): trust neither.
                    return None;
                }
                found = Some(v.trim());
            }
        }
    }
    found.filter(|v| accept(v))
}

fn set_cookie(state: &AppState, name: &str, value: &str, max_age: Option<Duration>) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={}", age.as_secs()));
    }
    if secure(state) {
        cookie.push_str("; Secure");
    }
    // Names are constants and values base64url: always a valid header value.
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("authflow-invalid=; Max-Age=0"))
}

/// A signed-in browser: its live session and the user, who may still sign in.
#[derive(Debug, Clone)]
pub(crate) struct SignedIn {
    /// The session.
    pub session: LoginSession,
    /// Its user.
    pub user: User,
}

/// The browser's live session, if its cookie names one whose user exists and is not disabled.
pub(crate) async fn current(state: &AppState, headers: &HeaderMap) -> Result<Option<SignedIn>, StoreError> {
    let Some(id) = read_cookie(headers, session_cookie(state)) else { return Ok(None) };
    let Some(session) = state.store.find_session(&TokenHash::of(id), state.clock.now()).await? else {
        return Ok(None);
    };
    let user = state.store.find_user(&session.user_id).await?.filter(|u| !u.disabled);
    Ok(user.map(|user| SignedIn { session, user }))
}

/// Start a session for `user`, who just authenticated; returns the `Set-Cookie` header carrying it.
pub(crate) async fn start(state: &AppState, user: &User) -> Result<HeaderValue, StoreError> {
    let id = random_value();
    let now = state.clock.now();
    let ttl = state.policy.session_ttl;
    let session = LoginSession {
        id_hash: TokenHash::of(&id),
        user_id: user.id.clone(),
        auth_time: now,
        created_at: now,
        expires_at: now + ttl,
    };
    state.store.insert_session(&session).await?;
    Ok(set_cookie(state, session_cookie(state), &id, Some(ttl)))
}

/// The CSRF token a page's form carries, and the `Set-Cookie` header to send when the browser has none yet
/// (an existing one is reused, so several open tabs keep working).
#[derive(Debug)]
pub(crate) struct CsrfToken {
    /// The value to put in the form.
    pub value: String,
    /// The cookie to set, if new.
    pub set_cookie: Option<HeaderValue>,
}

/// The CSRF token for a page about to be shown.
pub(crate) fn csrf_token(state: &AppState, headers: &HeaderMap) -> CsrfToken {
    match read_cookie(headers, csrf_cookie(state)) {
        Some(value) => CsrfToken { value: value.to_owned(), set_cookie: None },
        None => {
            let value = random_value();
            let set_cookie = Some(set_cookie(state, csrf_cookie(state), &value, None));
            CsrfToken { value, set_cookie }
        }
    }
}

/// Whether a form post passes the CSRF check: its `csrf_token` equals the CSRF cookie, and the browser does
/// not say the request comes from another site.
pub(crate) fn csrf_ok(state: &AppState, headers: &HeaderMap, presented: Option<&str>) -> bool {
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site"));
    match (read_cookie(headers, csrf_cookie(state)), presented) {
        (Some(cookie), Some(presented)) => !cross_site && constant_time_eq(cookie.as_bytes(), presented.as_bytes()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(header::COOKIE, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    #[test]
    fn cookies_are_read_strictly() {
        let v = random_value();
        assert!(well_formed(&v));
        assert_eq!(read_cookie(&headers(&[&format!("a=1; authflow-csrf={v}; b=2")]), "authflow-csrf"), Some(&*v));
        assert_eq!(read_cookie(&headers(&["a=1", &format!("authflow-csrf={v}")]), "authflow-csrf"), Some(&*v));
        assert_eq!(read_cookie(&headers(&["authflow-csrf=short"]), "authflow-csrf"), None, "not ours");
        let twice = format!("authflow-csrf={v}; authflow-csrf={}", random_value());
        assert_eq!(read_cookie(&headers(&[&twice]), "authflow-csrf"), None, "ambiguous");
        assert_eq!(read_cookie(&headers(&[&format!("xauthflow-csrf={v}")]), "authflow-csrf"), None);
        assert_eq!(read_cookie(&HeaderMap::new(), "authflow-csrf"), None);
    }
}
