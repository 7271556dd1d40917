//! The JOSE subset authflow needs: JWK (RFC 7517), JWS compact serialisation (RFC 7515), JWT (RFC 7519),
//! JWT access tokens (RFC 9068) and JWT client assertions (RFC 7523). authflow *signs* with two algorithms
//! (ES256, EdDSA) and *verifies* four: those two, plus RS256 and PS256 for what others sign (upstream OpenID
//! Connect ID tokens, clients' `private_key_jwt` assertions, a third-party authorization server's access
//! tokens).
//!
//! | module | what it holds |
//! |---|---|
//! | [`jwk`] | public keys ([`Jwk`], [`JwkSet`]), signing keys ([`PrivateKey`]), RFC 7638 thumbprints |
//! | [`jws`] | compact signing ([`sign`], [`sign_raw`]) and verification ([`verify`], [`verify_raw`]) |
//! | [`jwt`] | claim validation ([`Validation`], [`decode`]) and RFC 9068 [`AccessTokenClaims`] |
//! | [`assertion`] | RFC 7523 `private_key_jwt` client assertions ([`validate_client_assertion`]) |
//!
//! ## Security choices (RFC 8725)
//! - **Allow-list of algorithms**: only [`Algorithm::ES256`], [`Algorithm::EdDSA`], [`Algorithm::RS256`]
//!   and [`Algorithm::PS256`] exist, and each caller passes the subset it accepts. `none`, the `HS*` family
//!   (whose "secret" an attacker could set to a published public key), `RS384`/`PS512` and the like, and every
//!   unknown name are refused from the header alone, before any key is looked up (RFC 8725 §3.1).
//! - **Keys pin their algorithm**: a JWK is used only for the algorithms its `kty`/`crv` implies (EC P-256:
//!   ES256; OKP Ed25519: EdDSA; RSA: RS256 and PS256), and only if its optional `alg` equals the header's and
//!   its optional `use` is `sig` (RFC 8725 §3.1, §3.12). No key is ever used as an HMAC secret.
//! - **No weak RSA**: an RSA key's modulus must be 2048 to 8192 bits ([`RSA_MIN_BITS`], [`RSA_MAX_BITS`]) and
//!   its exponent an odd number from 3 to 2^33 - 1; other RSA keys are invalid (RFC 7518 §3.3, §3.5). RSA
//!   verification is ring's, which also checks the padding in full.
//! - **Strict parsing**: exactly three segments of unpadded base64url, a header and claims that are JSON
//!   objects without duplicate members, no `crit` (RFC 7515 §4.1.11: we understand no extension), raw
//!   64-byte ES256/EdDSA signatures (never DER), RSA signatures exactly as long as the modulus, and at most
//!   [`MAX_TOKEN_LEN`] bytes in all. Nothing here panics on hostile input.
//! - **Explicit typing**: RFC 9068 access tokens carry `typ: at+jwt`, and [`Validation::typ`] checks it, so
//!   a token of one kind cannot be replayed as another (RFC 8725 §3.11).
//!
//! Like the rest of the crate this is sans-IO: time is a [`crate::UnixTime`] argument and key generation
//! draws from a [`crate::Entropy`]. Signing is deterministic for both signing algorithms (RFC 6979 for ES256,
//! RFC 8032 for EdDSA), so it needs no randomness at all.
//!
//! ```
//! use std::time::Duration;
//! use authflow_core::entropy::SeededEntropy;
//! use authflow_core::jose::{AccessTokenClaims, Algorithm, Audience, JwkSet, PrivateKey, Validation};
//! use authflow_core::UnixTime;
//!
//! let mut entropy = SeededEntropy::new(7);
//! let key = PrivateKey::generate(Algorithm::ES256, &mut entropy, None);
//! let now = UnixTime::from_secs(1_700_000_000);
//! let claims = AccessTokenClaims::new(
//!     "https://as.example", "alice", Audience::one("https://mcp.example/mcp"), "client-1",
//!     now, Duration::from_secs(300), &mut entropy,
//! );
//! let token = claims.sign(&key)?;
//!
//! // The resource server: its JWKS, its own URI as audience, the issuer it trusts, `typ` at+jwt.
//! let jwks = JwkSet::new(vec![key.public_jwk()]);
//! let validation = Validation::access_token(now, "https://as.example", "https://mcp.example/mcp");
//! let verified = authflow_core::jose::decode(&token, &jwks, &validation)?;
//! assert_eq!(AccessTokenClaims::from_verified(&verified)?.sub, "alice");
//! # Ok::<(), authflow_core::jose::JoseError>(())
//! ```

pub mod assertion;
pub mod id_token;
pub mod jwk;
pub mod jws;
pub mod jwt;
#[cfg(test)]
mod rsa_tests;

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, OAuthError};

pub use assertion::{validate_client_assertion, ClientAssertion, CLIENT_ASSERTION_ALGORITHMS};
pub use id_token::{token_hash_half, IdTokenClaims};
pub use jwk::{Jwk, JwkSet, PrivateKey, RSA_MAX_BITS, RSA_MIN_BITS};
pub use jws::{sign, sign_raw, verify, verify_raw, Header, Verified, VerifiedRaw};
pub use jwt::{decode, AccessTokenClaims, Audience, Validation, ACCESS_TOKEN_TYP};

/// Longest compact JWS accepted, in bytes. Access tokens and assertions are well under 2 KiB; the cap
/// bounds decoding and JSON work on hostile input.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// A JWS algorithm authflow supports: all four verify, only [`Algorithm::SIGNING`] sign. Anything else is
/// refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// ECDSA on P-256 with SHA-256, signature `r || s` (RFC 7518 §3.4).
    ES256,
    /// Ed25519 (RFC 8037 §3.1).
    EdDSA,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3). Verification only.
    RS256,
    /// RSASSA-PSS with SHA-256, MGF1 with SHA-256 and a 32-byte salt (RFC 7518 §3.5). Verification only.
    PS256,
}

impl Algorithm {
    /// Every algorithm authflow verifies.
    pub const ALL: [Algorithm; 4] = [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256, Algorithm::PS256];

    /// The algorithms authflow signs with (its own tokens and JWKS): never RSA.
    pub const SIGNING: [Algorithm; 2] = [Algorithm::ES256, Algorithm::EdDSA];

    /// The registered name (`ES256`, `EdDSA`, `RS256` or `PS256`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::RS256 => "RS256",
            Algorithm::PS256 => "PS256",
        }
    }

    /// Whether authflow can sign with this algorithm ([`PrivateKey`] exists only for these).
    pub const fn can_sign(self) -> bool {
        matches!(self, Algorithm::ES256 | Algorithm::EdDSA)
    }

    /// The JWK `kty` of keys for this algorithm.
    pub const fn kty(self) -> &'static str {
        match self {
            Algorithm::ES256 => "EC",
            Algorithm::EdDSA => "OKP",
            Algorithm::RS256 | Algorithm::PS256 => "RSA",
        }
    }

    /// The JWK `crv` of keys for this algorithm; `None` for RSA, whose keys have no curve.
    pub const fn crv(self) -> Option<&'static str> {
        match self {
            Algorithm::ES256 => Some("P-256"),
            Algorithm::EdDSA => Some("Ed25519"),
            Algorithm::RS256 | Algorithm::PS256 => None,
        }
    }

    /// Whether a signature of `len` bytes can be one of this algorithm's: 64 bytes for ES256 and EdDSA; for
    /// RSA the modulus length, so 256 to 1024 bytes (the key itself then requires its exact length).
    pub(crate) const fn signature_len_possible(self, len: usize) -> bool {
        match self {
            Algorithm::ES256 | Algorithm::EdDSA => len == 64,
            Algorithm::RS256 | Algorithm::PS256 => len >= RSA_MIN_BITS / 8 && len <= RSA_MAX_BITS / 8,
        }
    }

    /// Exact, case-sensitive match of a supported name; everything else is
    /// [`JoseError::UnsupportedAlgorithm`] (including `none`, `HS256`, `RS384`, `es256`).
    pub fn parse(s: &str) -> Result<Algorithm, JoseError> {
        Algorithm::ALL.into_iter().find(|a| a.as_str() == s).ok_or(JoseError::UnsupportedAlgorithm)
    }
}

impl FromStr for Algorithm {
    type Err = JoseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::parse(s)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a key, token or claim set was refused. Messages never echo the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoseError {
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("the token is longer than {MAX_TOKEN_LEN} bytes")]
    TooLong,
    /// Not a well-formed compact JWS or JWT; the text says which part.
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    /// The `alg` is not one authflow supports, or not one the caller allows.
    #[error("the token's signing algorithm is not accepted")]
    UnsupportedAlgorithm,
    /// The header has a `crit` parameter; we understand no extension, so RFC 7515 §4.1.11 says reject.
    #[error("the token has a critical header parameter this server does not understand")]
    UnsupportedCritical,
    /// The header `typ` is absent or not the expected one.
    #[error("the token's type is not accepted")]
    WrongType,
    /// No key in the set matches the token's `kid` (or, without `kid`, its algorithm).
    #[error("no known key matches the token")]
    UnknownKey,
    /// The key named by `kid` is for another algorithm, another `alg`, or not for signatures.
    #[error("the key does not match the token's algorithm")]
    KeyMismatch,
    /// A key (JWK or stored private key) is not valid; the text says why.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// The signature does not verify (or does not have the algorithm's length).
    #[error("the token's signature is invalid")]
    BadSignature,
    /// `exp` is past, beyond the leeway.
    #[error("the token has expired")]
    Expired,
    /// `nbf` (or `iat`) is in the future, beyond the leeway.
    #[error("the token is not yet valid")]
    NotYetValid,
    /// `iss` is not the expected issuer.
    #[error("the token's issuer is not accepted")]
    WrongIssuer,
    /// `sub` is not the expected subject.
    #[error("the token's subject is not accepted")]
    WrongSubject,
    /// No value of `aud` is an accepted audience.
    #[error("the token's audience is not accepted")]
    WrongAudience,
    /// A required claim is absent.
    #[error("the token lacks the {0} claim")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or an out-of-range value.
    #[error("the token's {0} claim is invalid")]
    InvalidClaim(&'static str),
    /// `exp` is further in the future (or from `iat`) than the allowed lifetime.
    #[error("the token's lifetime is longer than allowed")]
    LifetimeTooLong,
    /// Signing failed: the claims do not serialise to a JSON object, or the header does not fit the key.
    #[error("cannot sign: {0}")]
    Signing(&'static str),
}

impl From<JoseError> for OAuthError {
    /// A token problem is `invalid_token` (RFC 6750 §3.1), the right answer for a bearer token at a resource
    /// server; a bad key is `invalid_request` (e.g. a JWKS in registration metadata); a signing failure is
    /// `server_error`. The token endpoint answers a failed client assertion with `invalid_client`
    /// (RFC 7523 §3.2) and must map it itself.
    fn from(e: JoseError) -> Self {
        let code = match e {
            JoseError::Signing(_) => ErrorCode::ServerError,
            JoseError::InvalidKey(_) => ErrorCode::InvalidRequest,
            _ => ErrorCode::InvalidToken,
        };
        OAuthError::with_description(code, e.to_string())
    }
}

/// Strict unpadded base64url: the engine refuses `=`, characters outside `[A-Za-z0-9_-]`, whitespace and
/// non-canonical trailing bits, so every byte string has exactly one accepted encoding.
pub(crate) fn b64_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A JSON object whose members are unique: `{"alg":"ES256","alg":"none"}` is refused instead of letting
/// the last member win, so no two parsers can read one header or claim set differently (RFC 8725 §2.1).
pub(crate) struct UniqueObject(pub(crate) serde_json::Map<String, serde_json::Value>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<UniqueObject, A::Error> {
                let mut out = serde_json::Map::new();
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    if out.contains_key(&k) {
                        return Err(serde::de::Error::custom("duplicate member"));
                    }
                    out.insert(k, v);
                }
                Ok(UniqueObject(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Parse bytes as a JSON object with unique top-level members.
pub(crate) fn parse_object(
    bytes: &[u8],
    what: &'static str,
) -> Result<serde_json::Map<String, serde_json::Value>, JoseError> {
    serde_json::from_slice::<UniqueObject>(bytes).map(|o| o.0).map_err(|_| JoseError::Malformed(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_are_exact() {
        assert_eq!(Algorithm::parse("ES256"), Ok(Algorithm::ES256));
        assert_eq!("EdDSA".parse(), Ok(Algorithm::EdDSA));
        assert_eq!(Algorithm::parse("RS256"), Ok(Algorithm::RS256));
        assert_eq!("PS256".parse(), Ok(Algorithm::PS256));
        for bad in [
            "none", "None", "HS256", "HS512", "RS384", "RS512", "PS384", "PS512", "rs256", "RSA", "RSA-OAEP", "ES384",
            "es256", "EDDSA", "Ed25519", "",
        ] {
            assert_eq!(Algorithm::parse(bad), Err(JoseError::UnsupportedAlgorithm), "{bad:?}");
        }
        assert_eq!(serde_json::to_string(&Algorithm::EdDSA).unwrap(), "\"EdDSA\"");
        assert_eq!(serde_json::from_str::<Algorithm>("\"ES256\"").unwrap(), Algorithm::ES256);
        assert!(serde_json::from_str::<Algorithm>("\"HS256\"").is_err());
        assert_eq!((Algorithm::ES256.kty(), Algorithm::ES256.crv()), ("EC", Some("P-256")));
        assert_eq!((Algorithm::EdDSA.kty(), Algorithm::EdDSA.crv()), ("OKP", Some("Ed25519")));
        assert_eq!((Algorithm::RS256.kty(), Algorithm::PS256.crv()), ("RSA", None));
        assert_eq!(Algorithm::EdDSA.to_string(), "EdDSA");
        assert_eq!(serde_json::to_string(&Algorithm::PS256).unwrap(), "\"PS256\"");
        // authflow signs with ES256 and EdDSA only.
        assert_eq!(Algorithm::ALL.into_iter().filter(|a| a.can_sign()).collect::<Vec<_>>(), Algorithm::SIGNING);
        assert!(Algorithm::SIGNING.iter().all(|a| Algorithm::ALL.contains(a)));
        for (alg, ok, bad) in [
            (Algorithm::ES256, &[64][..], &[0, 63, 65, 72, 256][..]),
            (Algorithm::EdDSA, &[64], &[0, 32, 128]),
            (Algorithm::RS256, &[256, 384, 512, 1024], &[0, 64, 128, 255, 1025]),
            (Algorithm::PS256, &[256, 1024], &[64, 1025]),
        ] {
            assert!(ok.iter().all(|&n| alg.signature_len_possible(n)), "{alg}");
            assert!(!bad.iter().any(|&n| alg.signature_len_possible(n)), "{alg}");
        }
    }

    #[test]
    fn base64url_is_strict() {
        assert_eq!(b64_decode("eyJhbGciOiJFZERTQSJ9").unwrap(), br#"{"alg":"EdDSA"}"#);
        for bad in ["eyJhbGciOiJFZERTQSJ9=", "eyJhbGciOiJFZERTQSJ9==", "eyJh+GciOiJFZERTQSJ9", "eyJh/GciOiJFZERTQSJ9"] {
            assert_eq!(b64_decode(bad), None, "{bad:?}");
        }
        assert_eq!(b64_decode("ey JhbGciOiJFZERTQSJ9"), None);
        assert_eq!(b64_decode("QR"), None, "non-canonical trailing bits");
        assert_eq!(b64_decode("QQ").unwrap(), b"A");
        assert_eq!(b64_decode("Q"), None, "impossible length");
    }

    #[test]
    fn objects_must_be_unique_objects() {
        assert!(parse_object(br#"{"a":1,"b":{"a":1,"a":2}}"#, "x").is_ok(), "only the top level is checked");
        assert_eq!(parse_object(br#"{"a":1,"a":2}"#, "x"), Err(JoseError::Malformed("x")));
        for bad in [&b"[]"[..], b"\"s\"", b"1", b"null", b"", b"{", b"{}x"] {
            assert!(parse_object(bad, "x").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn oauth_error_mapping() {
        assert_eq!(OAuthError::from(JoseError::Expired).code(), ErrorCode::InvalidToken);
        assert_eq!(OAuthError::from(JoseError::Malformed("header")).code(), ErrorCode::InvalidToken);
        assert_eq!(OAuthError::from(JoseError::InvalidKey("x")).code(), ErrorCode::InvalidRequest);
        assert_eq!(OAuthError::from(JoseError::Signing("x")).code(), ErrorCode::ServerError);
        let e = OAuthError::from(JoseError::MissingClaim("exp"));
        assert_eq!(e.description(), "the token lacks the exp claim");
        assert!(e.description().bytes().all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'));
    }
}
