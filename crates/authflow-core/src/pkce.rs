//! PKCE (RFC 7636). (being written)

use serde::{Deserialize, Serialize};

/// The `code_challenge_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CodeChallengeMethod {
    /// `S256`: `BASE64URL(SHA256(ASCII(code_verifier)))`.
    S256,
    /// `plain`: the challenge is the verifier. Refused unless a deployment allows it.
    #[serde(rename = "plain")]
    Plain,
}
