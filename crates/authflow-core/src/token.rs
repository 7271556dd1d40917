//! Opaque credentials: generation, hashing and comparison.
//!
//! Every credential authflow hands out (access and refresh tokens, codes, client secrets, registration
//! tokens, device codes) is 256 random bits, base64url-encoded, behind a short prefix naming its kind so a
//! leaked one is recognisable (and greppable by secret scanners). Only a hash is ever stored.
//!
//! The credentials stored once per issuance (access and refresh tokens, authorization and device codes)
//! also carry their issue time, and their stored hash starts with it: storage then appends each new one at
//! the end of its index, where a purely random key put every insert on a page of its own. See
//! [`TokenHash::of`].

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::entropy::Entropy;
use crate::time::UnixTime;

/// Random bytes in every credential: 256 bits.
pub const SECRET_BYTES: usize = 32;

/// [`SECRET_BYTES`] in base64url, unpadded.
const SECRET_CHARS: usize = 43;

/// Hex digits of the issue time (48 bits of milliseconds, which last until the year 10889).
const TIME_DIGITS: usize = 12;

/// The bytes of a time-keyed credential's hash that hold its issue time.
const TIME_BYTES: usize = 6;

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

    /// Whether credentials of this kind carry their issue time and are stored under it (see the module
    /// docs): those stored once per issuance.
    pub const fn time_keyed(self) -> bool {
        matches!(
            self,
            TokenKind::AccessToken | TokenKind::RefreshToken | TokenKind::AuthorizationCode | TokenKind::DeviceCode
        )
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
    let mut random = [0u8; 16];
    entropy.fill_bytes(&mut random);
    let prefix = TokenKind::Grant.prefix();
    let mut id = String::with_capacity(prefix.len() + TIME_DIGITS + 22);
    id.push_str(prefix);
    push_time(&mut id, created_at);
    URL_SAFE_NO_PAD.encode_string(random, &mut id);
    id
}

/// `at` as [`TIME_DIGITS`] lower-case hex digits of milliseconds, which sort as the times do.
fn push_time(s: &mut String, at: UnixTime) {
    use std::fmt::Write;
    let _ = write!(s, "{:0width$x}", at.as_millis() & 0xffff_ffff_ffff, width = TIME_DIGITS);
}

/// The issue time a time-keyed credential carries: its [`TIME_DIGITS`] after the prefix, in milliseconds.
/// `None` for any other value, including credentials issued before they carried it (no digits: their body
/// is [`SECRET_CHARS`] long).
fn issue_time(value: &str) -> Option<u64> {
    let kind = TokenKind::of(value).filter(|kind| kind.time_keyed())?;
    let body = &value[kind.prefix().len()..];
    let digits = body.get(..TIME_DIGITS)?;
    let hex = digits.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if body.len() != TIME_DIGITS + SECRET_CHARS || !hex {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// A credential in clear text. Its `Debug` and `Display` never show the value, so it cannot leak into logs
/// by accident; call [`SecretToken::expose`] where the value must really go out (a response body).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(String);

impl SecretToken {
    /// A fresh credential of `kind` with [`SECRET_BYTES`] of entropy, issued at `issued_at` (which a
    /// [time-keyed](TokenKind::time_keyed) kind carries after its prefix, and the others ignore).
    ///
    /// ```
    /// # use authflow_core::{SecretToken, TokenKind, UnixTime};
    /// # let mut entropy = authflow_core::entropy::SeededEntropy::new(7);
    /// let at = UnixTime::from_secs(1_700_000_000);
    /// let token = SecretToken::generate(TokenKind::AccessToken, at, &mut entropy);
    /// assert!(token.expose().starts_with("af_at_018bcfe56800"));
    /// let secret = SecretToken::generate(TokenKind::ClientSecret, at, &mut entropy);
    /// assert_eq!(secret.expose().len(), "af_cs_".len() + 43);
    /// ```
    pub fn generate(kind: TokenKind, issued_at: UnixTime, entropy: &mut impl Entropy) -> Self {
        let mut bytes = [0u8; SECRET_BYTES];
        entropy.fill_bytes(&mut bytes);
        let mut s = String::with_capacity(kind.prefix().len() + TIME_DIGITS + SECRET_CHARS);
        s.push_str(kind.prefix());
        if kind.time_keyed() {
            push_time(&mut s, issued_at);
        }
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

/// The hash of a credential: what storage keeps and looks up. Equality is constant-time.
#[derive(Clone, Copy, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Hash a clear-text credential: its SHA-256, whose first 6 bytes a time-keyed credential replaces
    /// with its issue time (milliseconds, big-endian).
    ///
    /// Those hashes sort by issue time, so an index of them grows at its end. What remains of the SHA-256,
    /// 208 bits, still cannot be turned back into the credential, and the time it gives away is the
    /// `issued_at` stored beside it. A credential without the time (any other kind, or one issued before
    /// credentials carried it) keeps its plain SHA-256.
    ///
    /// ```
    /// # use authflow_core::{SecretToken, TokenHash, TokenKind, UnixTime};
    /// # let mut entropy = authflow_core::entropy::SeededEntropy::new(7);
    /// let at = |secs| UnixTime::from_secs(secs);
    /// let first = SecretToken::generate(TokenKind::RefreshToken, at(1_700_000_001), &mut entropy);
    /// let second = SecretToken::generate(TokenKind::RefreshToken, at(1_700_000_002), &mut entropy);
    /// assert!(first.hash().as_bytes() < second.hash().as_bytes());
    /// assert_eq!(first.hash().as_bytes()[..6], [0x01, 0x8b, 0xcf, 0xe5, 0x6b, 0xe8]);
    /// ```
    pub fn of(value: &str) -> Self {
        let mut hash: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        if let Some(ms) = issue_time(value) {
            hash[..TIME_BYTES].copy_from_slice(&ms.to_be_bytes()[8 - TIME_BYTES..]);
        }
        TokenHash(hash)
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
        let at = UnixTime::from_millis(1_000);
        let t = SecretToken::generate(TokenKind::AccessToken, at, &mut e);
        assert!(t.expose().starts_with("af_at_0000000003e8"));
        assert_eq!(t.expose().len(), "af_at_".len() + 12 + 43);
        assert_eq!(TokenKind::of(t.expose()), Some(TokenKind::AccessToken));
        let u = SecretToken::generate(TokenKind::AccessToken, at, &mut e);
        assert_ne!(t, u, "the same millisecond, other random bits");
        let secret = SecretToken::generate(TokenKind::ClientSecret, at, &mut e);
        assert_eq!(secret.expose().len(), "af_cs_".len() + 43, "no time in a kind that is not time-keyed");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let t = SecretToken::generate(TokenKind::RefreshToken, UnixTime::EPOCH, &mut SeededEntropy::new(1));
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
    fn time_keyed_hashes_sort_by_issue_time_and_keep_the_rest_of_the_sha256() {
        let mut e = SeededEntropy::new(9);
        let at = |ms| UnixTime::from_millis(ms);
        for kind in
            [TokenKind::AccessToken, TokenKind::RefreshToken, TokenKind::AuthorizationCode, TokenKind::DeviceCode]
        {
            let tokens = [999, 1_000, 1_000, 0xffff_ffff_ffff].map(|ms| SecretToken::generate(kind, at(ms), &mut e));
            let hashes = tokens.each_ref().map(SecretToken::hash);
            assert_eq!(hashes[1].as_bytes()[..6], [0, 0, 0, 0, 3, 0xe8], "{kind:?}");
            assert!(hashes[0].as_bytes() < hashes[1].as_bytes() && hashes[2].as_bytes() < hashes[3].as_bytes());
            assert_ne!(hashes[1], hashes[2], "{kind:?}: the same millisecond");
            for (token, hash) in tokens.iter().zip(&hashes) {
                let sha256: [u8; 32] = Sha256::digest(token.expose().as_bytes()).into();
                assert_eq!(hash.as_bytes()[6..], sha256[6..]);
                assert!(hash.matches(token.expose()));
            }
        }
    }

    #[test]
    fn anything_else_keeps_its_plain_sha256() {
        let sha256 = |v: &str| -> [u8; 32] { Sha256::digest(v.as_bytes()).into() };
        let body = "A".repeat(43);
        let digits = "0000000003e8";
        let cases = [
            // Issued before credentials carried their time: the body is the 43 random characters alone.
            format!("af_at_{body}"),
            format!("af_at_{}", &format!("{digits}{body}")[..43]),
            // Kinds that are not time-keyed.
            format!("af_cs_{digits}{body}"),
            format!("af_rat_{digits}{body}"),
            // Not the shape: upper-case or non-hex digits, a character short or over, no prefix, not ASCII.
            format!("af_at_0000000003E8{body}"),
            format!("af_at_00000000003g{body}"),
            format!("af_at_{digits}{}", &body[1..]),
            format!("af_at_{digits}{body}A"),
            format!("{digits}{body}"),
            format!("af_at_00000000é{body}"),
        ];
        for value in &cases {
            assert_eq!(TokenHash::of(value).as_bytes(), &sha256(value), "{value}");
        }
        let keyed = format!("af_rt_{digits}{body}");
        assert_ne!(TokenHash::of(&keyed).as_bytes(), &sha256(&keyed));
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
