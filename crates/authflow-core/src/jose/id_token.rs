//! OpenID Connect ID tokens (OpenID Connect Core 1.0 §2, §3.1.3.6).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

use super::{b64_encode, jws, Algorithm, JoseError, PrivateKey};
use crate::time::UnixTime;

/// The claims of an ID token issued from the authorization code flow. Times are whole seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    /// The issuer identifier.
    pub iss: String,
    /// The user, as a stable identifier that is never reassigned.
    pub sub: String,
    /// The client the token is for.
    pub aud: String,
    /// Expiry.
    pub exp: u64,
    /// Issue time.
    pub iat: u64,
    /// When the user authenticated.
    pub auth_time: u64,
    /// The `nonce` of the authorization request, echoed so the client can tie the token to its request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The authorized party: the client (§2; harmless with one audience and expected by some libraries).
    pub azp: String,
    /// Half of the access token's hash (§3.1.3.6), binding the two tokens of one response together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    /// The user's login name, with the `profile` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
}

impl IdTokenClaims {
    /// Claims for `subject` at `client_id`, issued at `now` and valid for `lifetime`.
    pub fn new(
        issuer: impl Into<String>,
        subject: impl Into<String>,
        client_id: impl Into<String>,
        now: UnixTime,
        lifetime: Duration,
        auth_time: UnixTime,
    ) -> IdTokenClaims {
        let client_id = client_id.into();
        IdTokenClaims {
            iss: issuer.into(),
            sub: subject.into(),
            aud: client_id.clone(),
            exp: (now + lifetime).as_secs(),
            iat: now.as_secs(),
            auth_time: auth_time.as_secs(),
            nonce: None,
            azp: client_id,
            at_hash: None,
            preferred_username: None,
        }
    }

    /// Sign with header `typ: JWT`, setting `at_hash` for `access_token` with the key's hash function.
    pub fn sign(mut self, access_token: Option<&str>, key: &PrivateKey) -> Result<String, JoseError> {
        self.at_hash = access_token.map(|t| token_hash_half(key.algorithm(), t));
        jws::sign(Some("JWT"), &self, key)
    }
}

/// `at_hash` / `c_hash`: the left half of the token's hash under the hash function of `alg`, base64url.
/// SHA-256 for ES256, RS256 and PS256; for EdDSA (Ed25519) SHA-512, as OpenID Connect settled for Ed25519
/// signatures.
pub fn token_hash_half(alg: Algorithm, token: &str) -> String {
    match alg {
        Algorithm::ES256 | Algorithm::RS256 | Algorithm::PS256 => {
            let digest = Sha256::digest(token.as_bytes());
            b64_encode(&digest[..16])
        }
        Algorithm::EdDSA => {
            let digest = Sha512::digest(token.as_bytes());
            b64_encode(&digest[..32])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;
    use crate::jose::{decode, JwkSet, Validation};

    #[test]
    fn at_hash_matches_the_openid_connect_example() {
        // OpenID Connect Core 1.0 Appendix A.3's access token, hashed with SHA-256 (the spec's example is
        // RS256; the hash function is the same for ES256).
        assert_eq!(
            token_hash_half(Algorithm::ES256, "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(
            token_hash_half(Algorithm::RS256, "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(token_hash_half(Algorithm::PS256, "abc"), token_hash_half(Algorithm::ES256, "abc"));
        assert_eq!(token_hash_half(Algorithm::EdDSA, "abc").len(), 43);
    }

    #[test]
    fn a_signed_id_token_verifies_and_carries_its_claims() {
        let now = UnixTime::from_secs(1_700_000_000);
        for alg in Algorithm::SIGNING {
            let key = PrivateKey::generate(alg, &mut SeededEntropy::new(7), None);
            let mut claims =
                IdTokenClaims::new("https://as.example", "user-1", "client-1", now, Duration::from_secs(600), now);
            claims.nonce = Some("n-0S6_WzA2Mj".into());
            let token = claims.clone().sign(Some("access"), &key).expect("signs");
            let keys: JwkSet = [key.public_jwk()].into_iter().collect();
            let validation = Validation::new(now).issuer("https://as.example").audience("client-1").typ("JWT");
            let verified = decode(&token, &keys, &validation).expect("verifies");
            let back: IdTokenClaims = verified.claims_as().expect("claims");
            assert_eq!(back.nonce.as_deref(), Some("n-0S6_WzA2Mj"));
            assert_eq!(back.at_hash, Some(token_hash_half(alg, "access")));
            assert_eq!(back.exp, now.as_secs() + 600);
            assert_eq!(back.azp, "client-1");
        }
    }
}
