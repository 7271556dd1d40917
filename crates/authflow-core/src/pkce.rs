//! PKCE, Proof Key for Code Exchange (RFC 7636), as OAuth 2.1 requires it for every authorization code.
//!
//! ```text
//! code-verifier  = 43*128unreserved                      (RFC 7636 §4.1)
//! code-challenge = 43*128unreserved                      (RFC 7636 §4.2)
//! unreserved     = ALPHA / DIGIT / "-" / "." / "_" / "~"
//! S256           = BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))   -> always 43 characters
//! ```
//!
//! Parsing is strict: no whitespace, no trailing newline, no percent-encoding (form decoding has already
//! happened by the time a value reaches this module). An S256 challenge must additionally be exactly the
//! 43-character unpadded base64url encoding of 32 bytes.
//!
//! The authorization endpoint calls [`PkcePolicy::accept_challenge`], which applies the RFC 7636 §4.3 rule
//! that an absent `code_challenge_method` means `plain` (refused unless the deployment allows it), and
//! stores the resulting [`PkceChallenge`] with the code. The token endpoint calls
//! [`PkceChallenge::verify_param`] with the raw `code_verifier` parameter.
//!
//! ```
//! use authflow_core::entropy::SeededEntropy;
//! use authflow_core::pkce::{CodeVerifier, PkceChallenge, PkcePolicy};
//!
//! // Client: a fresh verifier and its S256 challenge.
//! let verifier = CodeVerifier::generate(&mut SeededEntropy::new(1));
//! let sent = PkceChallenge::s256(&verifier);
//! // Authorization endpoint (an absent parameter is `None`).
//! let stored = PkcePolicy::default().accept_challenge(Some(sent.challenge().as_str()), Some("S256"))?;
//! assert!(PkcePolicy::default().accept_challenge(Some(sent.challenge().as_str()), None).is_err());
//! // Token endpoint.
//! stored.verify_param(Some(verifier.expose()))?;
//! # Ok::<(), authflow_core::pkce::PkceError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::entropy::Entropy;
use crate::error::{ErrorCode, OAuthError};
use crate::token::constant_time_eq;

/// Shortest verifier or challenge allowed (RFC 7636 §4.1).
pub const MIN_LEN: usize = 43;
/// Longest verifier or challenge allowed (RFC 7636 §4.1).
pub const MAX_LEN: usize = 128;
/// Length of every S256 challenge: 32 bytes of SHA-256, unpadded base64url.
pub const S256_CHALLENGE_LEN: usize = 43;
/// Random bytes in a generated verifier (RFC 7636 §4.1 recommends 32, giving 43 characters).
pub const VERIFIER_BYTES: usize = 32;

/// The `code_challenge_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CodeChallengeMethod {
    /// `S256`: `BASE64URL(SHA256(ASCII(code_verifier)))`.
    S256,
    /// `plain`: the challenge is the verifier. Refused unless a deployment allows it.
    #[serde(rename = "plain")]
    Plain,
}

impl CodeChallengeMethod {
    /// The wire name: `S256` or `plain`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CodeChallengeMethod::S256 => "S256",
            CodeChallengeMethod::Plain => "plain",
        }
    }
}

impl FromStr for CodeChallengeMethod {
    type Err = PkceError;
    /// Exact, case-sensitive match of the registered names (`s256` or `PLAIN` are errors, as is `""`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "S256" => Ok(CodeChallengeMethod::S256),
            "plain" => Ok(CodeChallengeMethod::Plain),
            _ => Err(PkceError::UnknownMethod),
        }
    }
}

impl fmt::Display for CodeChallengeMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which PKCE parameter an error is about (its wire name is used in error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PkceParam {
    /// `code_verifier`
    CodeVerifier,
    /// `code_challenge`
    CodeChallenge,
}

impl fmt::Display for PkceParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PkceParam::CodeVerifier => "code_verifier",
            PkceParam::CodeChallenge => "code_challenge",
        })
    }
}

/// Why a PKCE parameter was refused. Messages never echo the caller's input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    /// The length is outside what the parameter allows.
    #[error("{param} must be {expected} characters long")]
    BadLength {
        /// The offending parameter.
        param: PkceParam,
        /// Its actual length in bytes.
        len: usize,
        /// The allowed lengths, for the message ("43 to 128" or "exactly 43").
        expected: &'static str,
    },
    /// A character outside `[A-Za-z0-9._~-]`.
    #[error("{0} contains a character outside A-Z a-z 0-9 - . _ ~")]
    BadCharacter(PkceParam),
    /// An S256 challenge that is not the unpadded base64url encoding of 32 bytes.
    #[error("an S256 code_challenge must be the unpadded base64url encoding of a SHA-256 hash")]
    NotBase64Url,
    /// No `code_challenge` in the authorization request (OAuth 2.1 requires PKCE).
    #[error("code_challenge is required")]
    MissingChallenge,
    /// No `code_verifier` in the token request although the code was issued with a challenge.
    #[error("code_verifier is required")]
    MissingVerifier,
    /// A `code_challenge_method` other than exactly `S256` or `plain`.
    #[error("code_challenge_method must be S256")]
    UnknownMethod,
    /// `plain` was asked for, explicitly or by omitting the method (RFC 7636 §4.3), and is not allowed.
    #[error("code_challenge_method plain (the default when the method is absent) is not allowed; use S256")]
    PlainNotAllowed,
    /// The verifier does not match the challenge (RFC 7636 §4.6).
    #[error("code_verifier does not match the code_challenge")]
    Mismatch,
}

impl From<PkceError> for OAuthError {
    /// Syntax and method problems are `invalid_request`; a verifier that does not match is `invalid_grant`
    /// (RFC 7636 §4.4.1 and §4.6).
    fn from(e: PkceError) -> Self {
        let code = match e {
            PkceError::Mismatch => ErrorCode::InvalidGrant,
            _ => ErrorCode::InvalidRequest,
        };
        OAuthError::with_description(code, e.to_string())
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')
}

/// The shared `43*128unreserved` syntax of verifiers and challenges.
fn check_syntax(param: PkceParam, s: &str) -> Result<(), PkceError> {
    // Check length first: it bounds the work and is the clearer message for a truncated value.
    if !(MIN_LEN..=MAX_LEN).contains(&s.len()) {
        return Err(PkceError::BadLength { param, len: s.len(), expected: "43 to 128" });
    }
    if !s.bytes().all(is_unreserved) {
        return Err(PkceError::BadCharacter(param));
    }
    Ok(())
}

/// A `code_verifier`: 43 to 128 unreserved characters. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeVerifier(String);

impl CodeVerifier {
    /// Parse a `code_verifier` strictly.
    pub fn parse(s: &str) -> Result<CodeVerifier, PkceError> {
        check_syntax(PkceParam::CodeVerifier, s)?;
        Ok(CodeVerifier(s.to_owned()))
    }

    /// A fresh verifier from [`VERIFIER_BYTES`] random bytes (43 characters), as a client creates one.
    pub fn generate(entropy: &mut impl Entropy) -> CodeVerifier {
        let mut bytes = [0u8; VERIFIER_BYTES];
        entropy.fill_bytes(&mut bytes);
        CodeVerifier(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The clear-text value (what a client sends to the token endpoint).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for CodeVerifier {
    type Err = PkceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CodeVerifier::parse(s)
    }
}

impl fmt::Debug for CodeVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeVerifier(…)")
    }
}

/// A `code_challenge`: 43 to 128 unreserved characters; for S256, exactly 43 base64url characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// Parse a `code_challenge` by the generic RFC 7636 §4.2 syntax, whatever the method.
    ///
    /// Prefer [`CodeChallenge::parse_for`] when the method is known: it also checks the S256 shape.
    pub fn parse(s: &str) -> Result<CodeChallenge, PkceError> {
        check_syntax(PkceParam::CodeChallenge, s)?;
        Ok(CodeChallenge(s.to_owned()))
    }

    /// Parse a `code_challenge` for `method`. An S256 challenge must be exactly 43 characters of the
    /// base64url alphabet that decode to 32 bytes (so `.` and `~`, or stray trailing bits, are refused).
    pub fn parse_for(method: CodeChallengeMethod, s: &str) -> Result<CodeChallenge, PkceError> {
        match method {
            CodeChallengeMethod::Plain => CodeChallenge::parse(s),
            CodeChallengeMethod::S256 => {
                if s.len() != S256_CHALLENGE_LEN {
                    return Err(PkceError::BadLength {
                        param: PkceParam::CodeChallenge,
                        len: s.len(),
                        expected: "exactly 43",
                    });
                }
                if !s.bytes().all(is_base64url) {
                    return Err(PkceError::NotBase64Url);
                }
                // 43 characters carry 258 bits; the decoder refuses non-zero trailing bits, so only the
                // one canonical spelling of each hash is accepted.
                match URL_SAFE_NO_PAD.decode(s) {
                    Ok(bytes) if bytes.len() == 32 => Ok(CodeChallenge(s.to_owned())),
                    _ => Err(PkceError::NotBase64Url),
                }
            }
        }
    }

    /// The S256 challenge of `verifier`.
    pub fn s256(verifier: &CodeVerifier) -> CodeChallenge {
        CodeChallenge(s256_of(verifier.expose()))
    }

    /// The challenge of `verifier` under `method`.
    pub fn derive(method: CodeChallengeMethod, verifier: &CodeVerifier) -> CodeChallenge {
        match method {
            CodeChallengeMethod::S256 => CodeChallenge::s256(verifier),
            CodeChallengeMethod::Plain => CodeChallenge(verifier.expose().to_owned()),
        }
    }

    /// The value as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn s256_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl FromStr for CodeChallenge {
    type Err = PkceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CodeChallenge::parse(s)
    }
}

impl TryFrom<String> for CodeChallenge {
    type Error = PkceError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        CodeChallenge::parse(&s)
    }
}

impl From<CodeChallenge> for String {
    fn from(c: CodeChallenge) -> String {
        c.0
    }
}

impl fmt::Display for CodeChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Check `verifier` against `challenge` (RFC 7636 §4.6), comparing in constant time.
///
/// S256 compares `BASE64URL(SHA256(verifier))` with the challenge; plain compares the verifier itself.
pub fn verify(
    challenge: &CodeChallenge,
    method: CodeChallengeMethod,
    verifier: &CodeVerifier,
) -> Result<(), PkceError> {
    let expected = CodeChallenge::derive(method, verifier);
    if constant_time_eq(expected.as_str().as_bytes(), challenge.as_str().as_bytes()) {
        Ok(())
    } else {
        Err(PkceError::Mismatch)
    }
}

/// A challenge together with its method: what the authorization endpoint stores with a code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "PkceChallengeRepr")]
pub struct PkceChallenge {
    #[serde(rename = "code_challenge")]
    challenge: CodeChallenge,
    #[serde(rename = "code_challenge_method")]
    method: CodeChallengeMethod,
}

/// The unchecked serde shape of [`PkceChallenge`]; deserialising re-checks the S256 form.
#[derive(Deserialize)]
struct PkceChallengeRepr {
    code_challenge: String,
    code_challenge_method: CodeChallengeMethod,
}

impl TryFrom<PkceChallengeRepr> for PkceChallenge {
    type Error = PkceError;
    fn try_from(r: PkceChallengeRepr) -> Result<Self, Self::Error> {
        PkceChallenge::new(r.code_challenge_method, &r.code_challenge)
    }
}

impl PkceChallenge {
    /// Parse `challenge` for `method` (see [`CodeChallenge::parse_for`]). No policy is applied: use
    /// [`PkcePolicy::accept_challenge`] for request parameters.
    pub fn new(method: CodeChallengeMethod, challenge: &str) -> Result<PkceChallenge, PkceError> {
        Ok(PkceChallenge { challenge: CodeChallenge::parse_for(method, challenge)?, method })
    }

    /// The S256 challenge of `verifier` (what a client sends).
    pub fn s256(verifier: &CodeVerifier) -> PkceChallenge {
        PkceChallenge { challenge: CodeChallenge::s256(verifier), method: CodeChallengeMethod::S256 }
    }

    /// The challenge.
    pub fn challenge(&self) -> &CodeChallenge {
        &self.challenge
    }

    /// The method.
    pub fn method(&self) -> CodeChallengeMethod {
        self.method
    }

    /// Check a parsed verifier (see [`verify`]).
    pub fn verify(&self, verifier: &CodeVerifier) -> Result<(), PkceError> {
        verify(&self.challenge, self.method, verifier)
    }

    /// Check the raw `code_verifier` parameter of a token request: absent is [`PkceError::MissingVerifier`],
    /// malformed is a syntax error, otherwise it must match.
    pub fn verify_param(&self, code_verifier: Option<&str>) -> Result<(), PkceError> {
        let verifier = CodeVerifier::parse(code_verifier.ok_or(PkceError::MissingVerifier)?)?;
        self.verify(&verifier)
    }
}

/// Which challenge methods a deployment accepts. S256 is always accepted; `plain` only when allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PkcePolicy {
    /// Accept `code_challenge_method=plain` (and an absent method, which means plain). Default: `false`,
    /// as OAuth 2.1 and the MCP authorization spec require S256 of clients that can do it.
    pub allow_plain: bool,
}

impl PkcePolicy {
    /// Decide the method from the raw `code_challenge_method` parameter (`None` when absent).
    ///
    /// An absent method means `plain` (RFC 7636 §4.3), so it is refused unless plain is allowed. An empty or
    /// differently-cased value is [`PkceError::UnknownMethod`], never a default.
    pub fn accept_method(&self, method: Option<&str>) -> Result<CodeChallengeMethod, PkceError> {
        let method = match method {
            None => CodeChallengeMethod::Plain,
            Some(s) => s.parse()?,
        };
        if method == CodeChallengeMethod::Plain && !self.allow_plain {
            return Err(PkceError::PlainNotAllowed);
        }
        Ok(method)
    }

    /// Validate the PKCE parameters of an authorization request (`None` for an absent parameter): the
    /// challenge is required, the method is decided by [`PkcePolicy::accept_method`], and the challenge must
    /// have the syntax of its method.
    pub fn accept_challenge(
        &self,
        code_challenge: Option<&str>,
        code_challenge_method: Option<&str>,
    ) -> Result<PkceChallenge, PkceError> {
        let challenge = code_challenge.ok_or(PkceError::MissingChallenge)?;
        let method = self.accept_method(code_challenge_method)?;
        PkceChallenge::new(method, challenge)
    }

    /// The methods to advertise as `code_challenge_methods_supported` (RFC 8414).
    pub fn supported_methods(&self) -> &'static [CodeChallengeMethod] {
        if self.allow_plain {
            &[CodeChallengeMethod::S256, CodeChallengeMethod::Plain]
        } else {
            &[CodeChallengeMethod::S256]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;
    use proptest::prelude::*;

    // RFC 7636 Appendix B.
    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b_vector() {
        let v = CodeVerifier::parse(RFC_VERIFIER).unwrap();
        assert_eq!(CodeChallenge::s256(&v).as_str(), RFC_CHALLENGE);
        let c = CodeChallenge::parse_for(CodeChallengeMethod::S256, RFC_CHALLENGE).unwrap();
        assert_eq!(verify(&c, CodeChallengeMethod::S256, &v), Ok(()));
        let stored = PkcePolicy::default().accept_challenge(Some(RFC_CHALLENGE), Some("S256")).unwrap();
        assert_eq!(stored.verify_param(Some(RFC_VERIFIER)), Ok(()));
    }

    #[test]
    fn method_names_are_exact() {
        assert_eq!("S256".parse(), Ok(CodeChallengeMethod::S256));
        assert_eq!("plain".parse(), Ok(CodeChallengeMethod::Plain));
        for bad in ["s256", "S256 ", "PLAIN", "Plain", "", "SHA256", "S512"] {
            assert_eq!(bad.parse::<CodeChallengeMethod>(), Err(PkceError::UnknownMethod), "{bad:?}");
        }
        assert_eq!(CodeChallengeMethod::Plain.to_string(), "plain");
        assert_eq!(serde_json::to_string(&CodeChallengeMethod::S256).unwrap(), "\"S256\"");
        assert_eq!(serde_json::from_str::<CodeChallengeMethod>("\"plain\"").unwrap(), CodeChallengeMethod::Plain);
    }

    #[test]
    fn boundary_lengths() {
        for (len, ok) in [(42, false), (43, true), (128, true), (129, false)] {
            let s = "a".repeat(len);
            assert_eq!(CodeVerifier::parse(&s).is_ok(), ok, "verifier of {len}");
            assert_eq!(CodeChallenge::parse(&s).is_ok(), ok, "challenge of {len}");
        }
        assert_eq!(
            CodeVerifier::parse(&"a".repeat(42)),
            Err(PkceError::BadLength { param: PkceParam::CodeVerifier, len: 42, expected: "43 to 128" })
        );
        assert!(CodeVerifier::parse("").is_err());
        // An S256 challenge is exactly 43.
        let long = format!("{RFC_CHALLENGE}A");
        assert!(matches!(
            CodeChallenge::parse_for(CodeChallengeMethod::S256, &long),
            Err(PkceError::BadLength { len: 44, .. })
        ));
        assert!(CodeChallenge::parse_for(CodeChallengeMethod::Plain, &long).is_ok());
    }

    #[test]
    fn refuses_whitespace_and_encodings() {
        let with_newline = format!("{RFC_VERIFIER}\n");
        assert_eq!(CodeVerifier::parse(&with_newline), Err(PkceError::BadCharacter(PkceParam::CodeVerifier)));
        for bad in [
            format!(" {}", &RFC_VERIFIER[1..]),
            format!("{}%41", &RFC_VERIFIER[3..]),
            format!("{}+", &RFC_VERIFIER[1..]),
            format!("{}=", &RFC_VERIFIER[1..]),
            format!("{}é", &RFC_VERIFIER[2..]),
        ] {
            assert!(CodeVerifier::parse(&bad).is_err(), "{bad:?}");
            assert!(CodeChallenge::parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn s256_challenge_shape() {
        // `.` and `~` are unreserved but not base64url.
        let dotted = format!("{}.", &RFC_CHALLENGE[..42]);
        assert!(CodeChallenge::parse(&dotted).is_ok());
        assert_eq!(CodeChallenge::parse_for(CodeChallengeMethod::S256, &dotted), Err(PkceError::NotBase64Url));
        // Last character with non-zero trailing bits: 'M' → 'N' keeps the alphabet but is not canonical.
        let noncanonical = format!("{}N", &RFC_CHALLENGE[..42]);
        assert_eq!(CodeChallenge::parse_for(CodeChallengeMethod::S256, &noncanonical), Err(PkceError::NotBase64Url));
    }

    #[test]
    fn plain_is_refused_by_default_even_when_implicit() {
        let strict = PkcePolicy::default();
        assert_eq!(strict.accept_method(Some("S256")), Ok(CodeChallengeMethod::S256));
        assert_eq!(strict.accept_method(Some("plain")), Err(PkceError::PlainNotAllowed));
        assert_eq!(strict.accept_method(None), Err(PkceError::PlainNotAllowed));
        assert_eq!(strict.accept_method(Some("")), Err(PkceError::UnknownMethod));
        assert_eq!(strict.accept_challenge(Some(RFC_CHALLENGE), None), Err(PkceError::PlainNotAllowed));
        assert_eq!(strict.accept_challenge(None, Some("S256")), Err(PkceError::MissingChallenge));
        assert_eq!(strict.supported_methods(), &[CodeChallengeMethod::S256]);

        let lax = PkcePolicy { allow_plain: true };
        assert_eq!(lax.accept_method(None), Ok(CodeChallengeMethod::Plain));
        assert_eq!(lax.accept_method(Some("S256")), Ok(CodeChallengeMethod::S256));
        assert_eq!(lax.accept_method(Some("S384")), Err(PkceError::UnknownMethod));
        let stored = lax.accept_challenge(Some(RFC_VERIFIER), None).unwrap();
        assert_eq!(stored.method(), CodeChallengeMethod::Plain);
        assert_eq!(stored.verify_param(Some(RFC_VERIFIER)), Ok(()));
        assert_eq!(lax.supported_methods().len(), 2);
    }

    #[test]
    fn mismatch_and_missing_verifier() {
        let stored = PkceChallenge::new(CodeChallengeMethod::S256, RFC_CHALLENGE).unwrap();
        let other = CodeVerifier::generate(&mut SeededEntropy::new(9));
        assert_eq!(stored.verify(&other), Err(PkceError::Mismatch));
        assert_eq!(stored.verify_param(None), Err(PkceError::MissingVerifier));
        assert!(matches!(stored.verify_param(Some("short")), Err(PkceError::BadLength { .. })));
        // The verifier itself is not an S256 challenge for itself (no method confusion).
        let v = CodeVerifier::parse(RFC_VERIFIER).unwrap();
        let plain = CodeChallenge::parse(RFC_VERIFIER).unwrap();
        assert_eq!(verify(&plain, CodeChallengeMethod::S256, &v), Err(PkceError::Mismatch));
        assert_eq!(verify(&plain, CodeChallengeMethod::Plain, &v), Ok(()));
    }

    #[test]
    fn oauth_error_codes() {
        assert_eq!(OAuthError::from(PkceError::Mismatch).code(), ErrorCode::InvalidGrant);
        for e in [
            PkceError::PlainNotAllowed,
            PkceError::UnknownMethod,
            PkceError::MissingChallenge,
            PkceError::MissingVerifier,
            PkceError::NotBase64Url,
            PkceError::BadCharacter(PkceParam::CodeChallenge),
        ] {
            let o = OAuthError::from(e.clone());
            assert_eq!(o.code(), ErrorCode::InvalidRequest, "{e:?}");
            // RFC 6749 §5.2: descriptions avoid `"` and `\`.
            assert!(o.description().bytes().all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'));
        }
    }

    #[test]
    fn generated_verifier_and_debug() {
        let mut e = SeededEntropy::new(1);
        let v = CodeVerifier::generate(&mut e);
        assert_eq!(v.expose().len(), 43);
        assert_eq!(CodeVerifier::parse(v.expose()), Ok(v.clone()));
        assert_ne!(v, CodeVerifier::generate(&mut e));
        assert_eq!(format!("{v:?}"), "CodeVerifier(…)");
    }

    #[test]
    fn stored_challenge_serde_revalidates() {
        let c = PkceChallenge::new(CodeChallengeMethod::S256, RFC_CHALLENGE).unwrap();
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json, serde_json::json!({"code_challenge": RFC_CHALLENGE, "code_challenge_method": "S256"}));
        assert_eq!(serde_json::from_value::<PkceChallenge>(json).unwrap(), c);
        let bad = serde_json::json!({"code_challenge": "a".repeat(50), "code_challenge_method": "S256"});
        assert!(serde_json::from_value::<PkceChallenge>(bad).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>(), m in proptest::option::of(any::<String>())) {
            let _ = CodeVerifier::parse(&s);
            let _ = CodeChallenge::parse(&s);
            let _ = CodeChallenge::parse_for(CodeChallengeMethod::S256, &s);
            let policy = PkcePolicy { allow_plain: true };
            if let Ok(c) = policy.accept_challenge(Some(&s), m.as_deref()) {
                let _ = c.verify_param(Some(&s));
            }
        }

        #[test]
        fn unreserved_strings_of_valid_length_parse(s in "[A-Za-z0-9._~-]{43,128}") {
            let (v, c) = (CodeVerifier::parse(&s).unwrap(), CodeChallenge::parse(&s).unwrap());
            prop_assert_eq!(v.expose(), s.as_str());
            prop_assert_eq!(c.as_str(), s.as_str());
        }

        #[test]
        fn generated_verifier_always_verifies(seed in any::<u64>()) {
            let v = CodeVerifier::generate(&mut SeededEntropy::new(seed));
            let wire = PkceChallenge::s256(&v);
            // Round-trip through the request parameters as a server sees them.
            let stored = PkcePolicy::default()
                .accept_challenge(Some(wire.challenge().as_str()), Some("S256"))
                .unwrap();
            prop_assert_eq!(stored.verify_param(Some(v.expose())), Ok(()));
        }

        #[test]
        fn any_single_char_change_fails(seed in any::<u64>(), idx in 0usize..43, repl in "[A-Za-z0-9._~-]") {
            let v = CodeVerifier::generate(&mut SeededEntropy::new(seed));
            let stored = PkceChallenge::s256(&v);
            let mut changed = v.expose().to_owned();
            prop_assume!(changed[idx..idx + 1] != *repl);
            changed.replace_range(idx..idx + 1, &repl);
            prop_assert_eq!(stored.verify_param(Some(&changed)), Err(PkceError::Mismatch));

            let mut challenge = stored.challenge().as_str().to_owned();
            if challenge[idx..idx + 1] != *repl {
                challenge.replace_range(idx..idx + 1, &repl);
                let altered = CodeChallenge::parse(&challenge).unwrap();
                prop_assert_eq!(verify(&altered, CodeChallengeMethod::S256, &v), Err(PkceError::Mismatch));
            }
        }
    }
}
