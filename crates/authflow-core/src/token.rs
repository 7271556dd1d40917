//! Opaque credentials: generation, hashing and comparison.
//!
//! Every credential authflow hands out (access and refresh tokens, codes, client secrets, registration
//! tokens, device codes) is 256 random bits, base64url-encoded, behind a short prefix naming its kind so a
//! leaked one is recognisable (and greppable by secret scanners). Only the SHA-256 hash is ever stored.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::entropy::Entropy;
use crate::time::UnixTime;

/// Random bytes in every credential: 256 bits.
pub const SECRET_BYTES: usize = 32;

/// What a credential is for; decides its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// An opaque access token.
    AccessToken,
    /// A refresh token.
    RefreshToken,
    /// An authorization code.
    AuthorizationCode,
    /// A confidential client's secret.
    ClientSecret,
    /// An RFC 7592 registration access token.
    RegistrationToken,
    /// An RFC 8628 device code.
    DeviceCode,
    /// A grant identifier (links the tokens of one authorization; not a bearer credential).
    Grant,
}

impl TokenKind {
    /// The prefix, e.g. `af_at_`.
    pub const fn prefix(self) -> &'static str {
        match self {
            TokenKind::AccessToken => "af_at_",
            TokenKind::RefreshToken => "af_rt_",
            TokenKind::AuthorizationCode => "af_ac_",
            TokenKind::ClientSecret => "af_cs_",
            TokenKind::RegistrationToken => "af_rat_",
            TokenKind::DeviceCode => "af_dc_",
            TokenKind::Grant => "af_g_",
        }
    }

    /// The kind named by a credential's prefix, if any.
    pub fn of(token: &str) -> Option<TokenKind> {
        use TokenKind::*;
        [AccessToken, RefreshToken, AuthorizationCode, ClientSecret, RegistrationToken, DeviceCode, Grant]
            .into_iter()
            .find(|k| token.starts_with(k.prefix()))
    }
}

/// A new grant identifier: [`TokenKind::Grant`]'s prefix, the creation time (milliseconds, 12 hex digits),
/// then 128 random bits.
///
/// Starting with the time makes ids sort in creation order, so storage appends each new grant (and each new
/// token's grant reference) at the end of its indexes instead of on a random page of each. A grant id is not a
/// credential: its 128 random bits keep ids from different servers apart, not secret.
///
/// ```
/// # use authflow_core::{token::grant_id, UnixTime};
/// # let mut entropy = authflow_core::entropy::SeededEntropy::new(7);
/// let earlier = grant_id(UnixTime::from_secs(1_700_000_000), &mut entropy);
/// let later = grant_id(UnixTime::from_secs(1_700_000_001), &mut entropy);
/// assert!(earlier < later);
/// assert!(earlier.starts_with("af_g_018bcfe56800"));
/// ```
pub fn grant_id(created_at: UnixTime, entropy: &mut impl Entropy) -> String {
    use std::fmt::Write;
    let mut random = [0u8; 16];
    entropy.fill_bytes(&mut random);
    let prefix = TokenKind::Grant.prefix();
    let mut id = String::with_capacity(prefix.len() + 12 + 22);
    id.push_str(prefix);
    // 48 bits of milliseconds last until the year 10889.
    let _ = write!(id, "{:012x}", created_at.as_millis() & 0xffff_ffff_ffff);
    URL_SAFE_NO_PAD.encode_string(random, &mut id);
    id
}

/// A credential in clear text. Its `Debug` and `Display` never show the value, so it cannot leak into logs
/// by accident; call [`SecretToken::expose`] where the value must really go out (a response body).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(String);

impl SecretToken {
    /// A fresh credential of `kind` with [`SECRET_BYTES`] of entropy.
    pub fn generate(kind: TokenKind, entropy: &mut impl Entropy) -> Self {
        let mut bytes = [0u8; SECRET_BYTES];
        entropy.fill_bytes(&mut bytes);
        let mut s = String::with_capacity(kind.prefix().len() + 43);
        s.push_str(kind.prefix());
        URL_SAFE_NO_PAD.encode_string(bytes, &mut s);
        SecretToken(s)
    }

    /// Wrap a credential received from a caller.
    pub fn from_presented(value: impl Into<String>) -> Self {
        SecretToken(value.into())
    }

    /// The clear-text value.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its storage hash.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = TokenKind::of(&self.0).map(TokenKind::prefix).unwrap_or("");
        write!(f, "SecretToken({kind}…)")
    }
}

/// SHA-256 of a credential: what storage keeps and looks up. Equality is constant-time.
#[derive(Clone, Copy, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Hash a clear-text credential.
    pub fn of(value: &str) -> Self {
        TokenHash(Sha256::digest(value.as_bytes()).into())
    }

    /// From the 32 stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        TokenHash(bytes)
    }

    /// From a stored byte slice; `None` unless it is exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(TokenHash)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, e.g. for a key-value store's key.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `presented` hashes to this value, in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        *self == TokenHash::of(presented)
    }
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

// Hash must agree with the constant-time `PartialEq`: equal values have equal bytes, so hashing the bytes does.
impl std::hash::Hash for TokenHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", &self.to_hex()[..8])
    }
}

/// Constant-time equality of two byte strings (length is not hidden).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    #[test]
    fn generated_tokens_have_prefix_and_256_bits() {
        let mut e = SeededEntropy::new(3);
        let t = SecretToken::generate(TokenKind::AccessToken, &mut e);
        assert!(t.expose().starts_with("af_at_"));
        assert_eq!(t.expose().len(), "af_at_".len() + 43);
        assert_eq!(TokenKind::of(t.expose()), Some(TokenKind::AccessToken));
        let u = SecretToken::generate(TokenKind::AccessToken, &mut e);
        assert_ne!(t, u);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let t = SecretToken::generate(TokenKind::RefreshToken, &mut SeededEntropy::new(1));
        let shown = format!("{t:?}");
        assert!(!shown.contains(&t.expose()["af_rt_".len()..]));
        assert_eq!(shown, "SecretToken(af_rt_…)");
    }

    #[test]
    fn hash_matches_only_the_same_value() {
        let t = SecretToken::from_presented("af_at_abc");
        assert!(t.hash().matches("af_at_abc"));
        assert!(!t.hash().matches("af_at_abd"));
        assert_eq!(TokenHash::from_slice(t.hash().as_bytes()), Some(t.hash()));
        assert_eq!(TokenHash::from_slice(&[0u8; 31]), None);
        // Known SHA-256 vector.
        assert_eq!(TokenHash::of("abc").to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn grant_ids_sort_by_creation_time_and_differ_within_a_millisecond() {
        let mut e = SeededEntropy::new(5);
        let at = |ms| UnixTime::from_millis(ms);
        let ids = [grant_id(at(999), &mut e), grant_id(at(1_000), &mut e), grant_id(at(1_000), &mut e)];
        assert!(ids[0] < ids[1] && ids[0] < ids[2], "{ids:?}");
        assert_ne!(ids[1], ids[2]);
        assert!(ids[1].starts_with("af_g_0000000003e8"));
        assert_eq!(ids[1].len(), "af_g_".len() + 12 + 22);
        assert_eq!(TokenKind::of(&ids[1]), Some(TokenKind::Grant));
    }

    #[test]
    fn kinds_are_unambiguous() {
        assert_eq!(TokenKind::of("af_rat_x"), Some(TokenKind::RegistrationToken));
        assert_eq!(TokenKind::of("af_rt_x"), Some(TokenKind::RefreshToken));
        assert_eq!(TokenKind::of("nope"), None);
    }
}
