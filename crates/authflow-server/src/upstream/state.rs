//! The round trip's state, kept in the browser: a cookie sealed with AES-256-GCM under a key derived from
//! the provider's client secret (every replica has it; the browser does not), the provider id bound as
//! associated data so a cookie sealed for one provider cannot be opened as another's.

use std::time::Duration;

use authflow_core::{Entropy, UnixTime};
use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use serde::{Deserialize, Serialize};

use super::UpstreamProvider;
use crate::{AppState, OsEntropy};

/// How long a round trip to the provider may take.
pub(crate) const STATE_TTL: Duration = Duration::from_secs(600);
/// Browsers keep cookies up to about 4 KiB; a longer one would be dropped silently.
const MAX_COOKIE_VALUE: usize = 3800;

/// What the callback needs to finish the round trip.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Pending {
    /// The `state` sent to the provider.
    pub state: String,
    /// The OpenID Connect `nonce` sent to the provider.
    pub nonce: String,
    /// The PKCE verifier.
    pub verifier: String,
    /// The original authorization request (query string), validated again on return.
    pub request: String,
    /// When the round trip started (seconds).
    pub started: u64,
}

impl Pending {
    pub fn expired(&self, now: UnixTime) -> bool {
        now >= UnixTime::from_secs(self.started) + STATE_TTL
    }
}

/// A fresh 256-bit random value, base64url.
pub(crate) fn random_value() -> String {
    let mut bytes = [0u8; 32];
    OsEntropy.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn cookie_name(state: &AppState) -> &'static str {
    if state.issuer.scheme() == "https" {
        "__Host-authflow-upstream"
    } else {
        "authflow-upstream"
    }
}

fn cipher(provider: &UpstreamProvider) -> LessSafeKey {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in
        [b"authflow upstream state v1".as_slice(), provider.id().as_bytes(), provider.secret().expose().as_bytes()]
    {
        // Length-prefixed, so no two (id, secret) pairs give the same input.
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let key = ctx.finish();
    // SHA-256 output is AES-256's key length, so this cannot fail.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key.as_ref()).unwrap_or_else(|_| unreachable!("a 32-byte key")))
}

/// The `Set-Cookie` header carrying `pending` for `provider`, or `None` if it would be too long.
pub(crate) fn seal(state: &AppState, provider: &UpstreamProvider, pending: &Pending) -> Option<HeaderValue> {
    let mut body = serde_json::to_vec(pending).ok()?;
    let mut nonce = [0u8; NONCE_LEN];
    OsEntropy.fill_bytes(&mut nonce);
    cipher(provider)
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(provider.id().as_bytes()), &mut body)
        .ok()?;
    let value = format!("{}.{}", provider.id(), URL_SAFE_NO_PAD.encode([&nonce[..], &body].concat()));
    if value.len() > MAX_COOKIE_VALUE {
        return None;
    }
    cookie(state, &value, STATE_TTL.as_secs())
}

/// The `Set-Cookie` header that removes the state cookie.
pub(crate) fn clear(state: &AppState) -> Option<HeaderValue> {
    cookie(state, "", 0)
}

fn cookie(state: &AppState, value: &str, max_age: u64) -> Option<HeaderValue> {
    let secure = if state.issuer.scheme() == "https" { "; Secure" } else { "" };
    // Lax: the provider sends the browser back with a top-level GET, which carries Lax cookies.
    let cookie = format!("{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}", cookie_name(state));
    HeaderValue::from_str(&cookie).ok()
}

/// Which provider the browser's state cookie is for, and the sealed rest (`None`: no usable cookie).
pub(crate) fn read<'a>(state: &AppState, headers: &'a HeaderMap) -> Option<(&'a str, &'a str)> {
    let value = crate::session::read_cookie_value(headers, cookie_name(state), |v| {
        v.len() <= MAX_COOKIE_VALUE && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    })?;
    value.split_once('.')
}

/// Open a sealed state for `provider` (`None`: forged, corrupted, or sealed under another secret).
pub(crate) fn open(provider: &UpstreamProvider, sealed: &str) -> Option<Pending> {
    let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    let (nonce, body) = (bytes.get(..NONCE_LEN)?, bytes.get(NONCE_LEN..)?);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut body = body.to_vec();
    let plain = cipher(provider).open_in_place(nonce, Aad::from(provider.id().as_bytes()), &mut body).ok()?;
    serde_json::from_slice(plain).ok()
}

/// Append `Set-Cookie` headers to a response's headers.
pub(crate) fn set(headers: &mut HeaderMap, cookie: Option<HeaderValue>) {
    if let Some(cookie) = cookie {
        headers.append(header::SET_COOKIE, cookie);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::{GithubUpstream, OidcUpstream};

    #[test]
    fn sealed_state_opens_only_for_its_provider() {
        let a = UpstreamProvider::Oidc(OidcUpstream::new("a", "https://a.example", "c", "secret-a"));
        let b = UpstreamProvider::Oidc(OidcUpstream::new("b", "https://a.example", "c", "secret-a"));
        let a2 = UpstreamProvider::Oidc(OidcUpstream::new("a", "https://a.example", "c", "secret-2"));
        let g = UpstreamProvider::Github(GithubUpstream::new("c", "secret-a"));
        let pending = Pending {
            state: random_value(),
            nonce: random_value(),
            verifier: random_value(),
            request: "client_id=x".into(),
            started: 5,
        };
        let mut body = serde_json::to_vec(&pending).unwrap();
        let nonce = [7u8; NONCE_LEN];
        cipher(&a)
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&b"a"[..]), &mut body)
            .unwrap();
        let sealed = URL_SAFE_NO_PAD.encode([&nonce[..], &body].concat());
        let opened = open(&a, &sealed).expect("opens");
        assert_eq!((opened.state, opened.started), (pending.state, 5));
        for other in [&b, &a2, &g] {
            assert!(open(other, &sealed).is_none(), "{}", other.id());
        }
        let mut tampered = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        tampered[20] ^= 1;
        assert!(open(&a, &URL_SAFE_NO_PAD.encode(tampered)).is_none());
        assert!(open(&a, "").is_none() && open(&a, "!!").is_none());
    }
}
