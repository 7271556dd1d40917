//! JWT client assertions (RFC 7523 §2.2 and §3, `private_key_jwt` in OpenID Connect Core §9): a client
//! authenticates at the token endpoint with a short-lived JWT signed by one of its registered keys.
//!
//! [`validate_client_assertion`] is the whole rule as a pure function. The caller then does the one stateful
//! part: remembering the `jti` until [`ClientAssertion::replay_until`] and refusing it if seen before
//! (RFC 7523 §3 item 7 allows, and RFC 9700 recommends, single use). A failed assertion is answered with
//! `invalid_client` (RFC 7523 §3.2, RFC 6749 §5.2), which the token endpoint decides, not this module.

use std::time::Duration;

use super::jwk::JwkSet;
use super::jws::Header;
use super::jwt::{decode, numeric_date, Validation, DEFAULT_LEEWAY};
use super::{Algorithm, JoseError};
use crate::time::UnixTime;

/// Longest `jti` accepted: it becomes a key in the replay store.
pub const MAX_JTI_LEN: usize = 256;

/// Clock skew tolerated on assertion times, and added to `exp` for how long a `jti` must be remembered.
pub const ASSERTION_LEEWAY: Duration = DEFAULT_LEEWAY;

/// The algorithms a client may sign its assertions with: RS256 and PS256 (what most client libraries
/// produce by default), ES256 and EdDSA. The authorization server advertises exactly this list as
/// `token_endpoint_auth_signing_alg_values_supported` (RFC 8414 §2).
pub const CLIENT_ASSERTION_ALGORITHMS: [Algorithm; 4] = Algorithm::ALL;

/// A client assertion that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAssertion {
    /// The authenticated client (`iss` = `sub`).
    pub client_id: String,
    /// The assertion's unique id, to record in the replay store.
    pub jti: String,
    /// Its expiry.
    pub exp: UnixTime,
    /// When it was issued, if it says.
    pub iat: Option<UnixTime>,
    /// Keep the `jti` in the replay store until this instant (`exp` plus the leeway): after it, the
    /// assertion is refused as expired anyway.
    pub replay_until: UnixTime,
    /// The header it was signed with (algorithm and `kid`, for logs).
    pub header: Header,
}

impl ClientAssertion {
    /// The algorithm the client signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.header.alg
    }
}

/// Check a `client_assertion` (RFC 7523 §3):
/// - signed with one of [`CLIENT_ASSERTION_ALGORITHMS`] by a key of `client_jwks` (RSA keys of at least
///   2048 bits only);
/// - `iss` and `sub` both exactly `expected_client_id`;
/// - `aud` (string or array) containing one of `accepted_audiences` (the token endpoint URL and the issuer
///   identifier; an empty list accepts nothing);
/// - `exp` present, not past, and at most `max_lifetime` (plus [`ASSERTION_LEEWAY`]) ahead of `now`, and at
///   most `max_lifetime` after `iat` when `iat` is present;
/// - `nbf` and `iat`, when present, not in the future (beyond the leeway);
/// - `jti` present, non-empty and at most [`MAX_JTI_LEN`] bytes.
pub fn validate_client_assertion(
    token: &str,
    client_jwks: &JwkSet,
    expected_client_id: &str,
    accepted_audiences: &[&str],
    now: UnixTime,
    max_lifetime: Duration,
) -> Result<ClientAssertion, JoseError> {
    let validation = Validation::new(now)
        .algorithms(&CLIENT_ASSERTION_ALGORITHMS)
        .issuer(expected_client_id)
        .audiences(accepted_audiences.iter().copied())
        .require("iss")
        .require("sub")
        .require("aud")
        .require("jti")
        .leeway(ASSERTION_LEEWAY)
        .max_lifetime(max_lifetime);
    let verified = decode(token, client_jwks, &validation)?;
    let claims = &verified.claims;
    // `decode` has checked that these are present and strings.
    let sub = claims.get("sub").and_then(|v| v.as_str()).ok_or(JoseError::MissingClaim("sub"))?;
    if sub != expected_client_id {
        return Err(JoseError::WrongSubject);
    }
    let jti = claims.get("jti").and_then(|v| v.as_str()).ok_or(JoseError::MissingClaim("jti"))?;
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(JoseError::InvalidClaim("jti"));
    }
    let exp = numeric_date(claims, "exp")?.ok_or(JoseError::MissingClaim("exp"))?;
    let iat = numeric_date(claims, "iat")?;
    Ok(ClientAssertion {
        client_id: expected_client_id.to_owned(),
        jti: jti.to_owned(),
        exp,
        iat,
        replay_until: exp + ASSERTION_LEEWAY,
        header: verified.header,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;
    use crate::jose::jwk::PrivateKey;
    use crate::jose::jws::sign;
    use proptest::prelude::*;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;
    const CLIENT: &str = "https://client.example/metadata.json";
    const TOKEN_ENDPOINT: &str = "https://as.example/token";
    const ISSUER: &str = "https://as.example";
    const AUDS: &[&str] = &[TOKEN_ENDPOINT, ISSUER];
    const FIVE_MIN: Duration = Duration::from_secs(300);

    fn client() -> (PrivateKey, JwkSet) {
        let key = PrivateKey::generate(Algorithm::EdDSA, &mut SeededEntropy::new(42), None);
        let set = JwkSet::new(vec![key.public_jwk()]);
        (key, set)
    }

    fn claims() -> serde_json::Value {
        json!({"iss": CLIENT, "sub": CLIENT, "aud": TOKEN_ENDPOINT, "exp": NOW + 120, "iat": NOW, "jti": "a1"})
    }

    fn run(claims: serde_json::Value) -> Result<ClientAssertion, JoseError> {
        let (key, set) = client();
        let token = sign(None, &claims, &key).unwrap();
        validate_client_assertion(&token, &set, CLIENT, AUDS, UnixTime::from_secs(NOW), FIVE_MIN)
    }

    fn with(mut c: serde_json::Value, name: &str, v: serde_json::Value) -> serde_json::Value {
        c[name] = v;
        c
    }

    fn without(mut c: serde_json::Value, name: &str) -> serde_json::Value {
        c.as_object_mut().unwrap().remove(name);
        c
    }

    #[test]
    fn accepts_a_good_assertion() {
        let a = run(claims()).unwrap();
        assert_eq!(a.client_id, CLIENT);
        assert_eq!(a.jti, "a1");
        assert_eq!(a.exp, UnixTime::from_secs(NOW + 120));
        assert_eq!(a.iat, Some(UnixTime::from_secs(NOW)));
        assert_eq!(a.replay_until, UnixTime::from_secs(NOW + 180));
        assert_eq!(a.algorithm(), Algorithm::EdDSA);
        // The issuer as audience, alone or in an array, is accepted too.
        assert!(run(with(claims(), "aud", json!(ISSUER))).is_ok());
        assert!(run(with(claims(), "aud", json!(["https://rs.example", ISSUER]))).is_ok());
        // Optional iat, nbf in the past.
        assert!(run(with(without(claims(), "iat"), "nbf", json!(NOW - 5))).is_ok());
    }

    #[test]
    fn identity_claims() {
        assert_eq!(run(with(claims(), "iss", json!("other"))), Err(JoseError::WrongIssuer));
        assert_eq!(run(with(claims(), "sub", json!("other"))), Err(JoseError::WrongSubject));
        assert_eq!(run(without(claims(), "sub")), Err(JoseError::MissingClaim("sub")));
        assert_eq!(run(without(claims(), "iss")), Err(JoseError::MissingClaim("iss")));
        // Signed by a key that is not the client's.
        let stranger = PrivateKey::generate(Algorithm::EdDSA, &mut SeededEntropy::new(7), None);
        let token = sign(None, &claims(), &stranger).unwrap();
        let (_, set) = client();
        let now = UnixTime::from_secs(NOW);
        assert_eq!(validate_client_assertion(&token, &set, CLIENT, AUDS, now, FIVE_MIN), Err(JoseError::UnknownKey));
        let anonymous = crate::jose::jws::sign_raw(
            &Header::new(Algorithm::EdDSA),
            &serde_json::to_vec(&claims()).unwrap(),
            &stranger,
        )
        .unwrap();
        assert_eq!(
            validate_client_assertion(&anonymous, &set, CLIENT, AUDS, now, FIVE_MIN),
            Err(JoseError::BadSignature)
        );
    }

    #[test]
    fn audience() {
        assert_eq!(run(with(claims(), "aud", json!("https://evil.example/token"))), Err(JoseError::WrongAudience));
        assert_eq!(run(with(claims(), "aud", json!(["https://evil.example"]))), Err(JoseError::WrongAudience));
        assert_eq!(run(without(claims(), "aud")), Err(JoseError::MissingClaim("aud")));
        let (key, set) = client();
        let token = sign(None, &claims(), &key).unwrap();
        let now = UnixTime::from_secs(NOW);
        assert_eq!(validate_client_assertion(&token, &set, CLIENT, &[], now, FIVE_MIN), Err(JoseError::WrongAudience));
    }

    #[test]
    fn times() {
        assert_eq!(run(without(claims(), "exp")), Err(JoseError::MissingClaim("exp")));
        assert_eq!(run(with(claims(), "exp", json!(NOW - 61))), Err(JoseError::Expired));
        assert_eq!(run(with(claims(), "nbf", json!(NOW + 300))), Err(JoseError::NotYetValid));
        assert_eq!(run(with(claims(), "iat", json!(NOW + 300))), Err(JoseError::NotYetValid));
        // Too far in the future: an assertion valid for a day could be replayed for a day.
        assert_eq!(run(with(without(claims(), "iat"), "exp", json!(NOW + 86_400))), Err(JoseError::LifetimeTooLong));
        assert_eq!(run(with(claims(), "exp", json!(NOW + 361))), Err(JoseError::LifetimeTooLong));
        let old = with(with(claims(), "iat", json!(NOW - 1000)), "exp", json!(NOW + 10));
        assert_eq!(run(old), Err(JoseError::LifetimeTooLong));
        assert_eq!(run(with(claims(), "exp", json!(-1))), Err(JoseError::InvalidClaim("exp")));
    }

    #[test]
    fn jti_rules() {
        assert_eq!(run(without(claims(), "jti")), Err(JoseError::MissingClaim("jti")));
        assert_eq!(run(with(claims(), "jti", json!(""))), Err(JoseError::InvalidClaim("jti")));
        assert_eq!(run(with(claims(), "jti", json!(7))), Err(JoseError::InvalidClaim("jti")));
        assert_eq!(run(with(claims(), "jti", json!("j".repeat(MAX_JTI_LEN + 1)))), Err(JoseError::InvalidClaim("jti")));
        assert!(run(with(claims(), "jti", json!("j".repeat(MAX_JTI_LEN)))).is_ok());
    }

    proptest! {
        #[test]
        fn never_panics(token in "\\PC{0,200}", id in "\\PC{0,20}") {
            let (_, set) = client();
            let _ = validate_client_assertion(&token, &set, &id, AUDS, UnixTime::from_secs(NOW), FIVE_MIN);
        }

        #[test]
        fn valid_assertions_pass(jti in "[A-Za-z0-9_-]{1,64}", life in 1u64..240, skew in 0u64..60) {
            let c = with(with(claims(), "jti", json!(jti.clone())), "exp", json!(NOW + life));
            let c = with(c, "iat", json!(NOW - skew));
            let (key, set) = client();
            let token = sign(None, &c, &key).unwrap();
            let a = validate_client_assertion(&token, &set, CLIENT, AUDS, UnixTime::from_secs(NOW), FIVE_MIN).unwrap();
            prop_assert_eq!(a.jti, jti);
            prop_assert!(a.replay_until > UnixTime::from_secs(NOW));
        }
    }
}
