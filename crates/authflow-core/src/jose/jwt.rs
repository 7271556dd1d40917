//! JWT claim validation (RFC 7519 §4.1, RFC 8725 §3) and RFC 9068 access-token claims.
//!
//! A [`Validation`] says what a caller accepts: the time (`now`, passed in), a leeway for clock skew
//! (default [`DEFAULT_LEEWAY`]), the issuer, the audiences, the claims that must be present (`exp` always),
//! an optional maximum lifetime and an optional expected `typ`. It is *fail-closed* on audience: until
//! [`Validation::audience`] or [`Validation::any_audience`] is called, every token is
//! [`JoseError::WrongAudience`], so forgetting to configure it cannot accept tokens meant for someone else.
//!
//! NumericDate claims (`exp`, `nbf`, `iat`, `auth_time`) may be integers or fractional numbers of seconds
//! (RFC 7519 §2); negative values and values after year 9999 are [`JoseError::InvalidClaim`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::jwk::{JwkSet, PrivateKey};
use super::jws::{self, Header, Verified};
use super::{b64_encode, Algorithm, JoseError};
use crate::entropy::Entropy;
use crate::scope::Scope;
use crate::time::UnixTime;

/// Clock skew tolerated on `exp`, `nbf` and `iat` unless [`Validation::leeway`] says otherwise.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// Latest NumericDate accepted: 9999-12-31T23:59:59Z. Larger values are refused rather than saturated, so
/// "never expires" cannot be smuggled in as a huge number.
pub const MAX_NUMERIC_DATE: u64 = 253_402_300_799;

/// The `typ` of RFC 9068 access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Random bytes in a generated `jti`: 128 bits make collisions negligible.
const JTI_BYTES: usize = 16;

/// A NumericDate claim as an instant, `None` when absent.
pub(crate) fn numeric_date(claims: &serde_json::Value, name: &'static str) -> Result<Option<UnixTime>, JoseError> {
    let Some(value) = claims.get(name) else { return Ok(None) };
    let serde_json::Value::Number(n) = value else { return Err(JoseError::InvalidClaim(name)) };
    if let Some(secs) = n.as_u64() {
        return if secs <= MAX_NUMERIC_DATE {
            Ok(Some(UnixTime::from_secs(secs)))
        } else {
            Err(JoseError::InvalidClaim(name))
        };
    }
    // A negative integer is an f64 here too, and is refused with the other out-of-range values.
    match n.as_f64() {
        Some(f) if f.is_finite() && (0.0..=MAX_NUMERIC_DATE as f64).contains(&f) => {
            // Truncation floors a non-negative value: at most one millisecond earlier than the claim.
            Ok(Some(UnixTime::from_millis((f * 1000.0) as u64)))
        }
        _ => Err(JoseError::InvalidClaim(name)),
    }
}

/// A string claim, `None` when absent.
fn string_claim<'a>(claims: &'a serde_json::Value, name: &'static str) -> Result<Option<&'a str>, JoseError> {
    match claims.get(name) {
        None => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JoseError::InvalidClaim(name)),
    }
}

/// The `aud` values: one string or an array of strings (RFC 7519 §4.1.3).
fn audiences(claims: &serde_json::Value) -> Result<Option<Vec<&str>>, JoseError> {
    match claims.get("aud") {
        None => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(vec![s.as_str()])),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().ok_or(JoseError::InvalidClaim("aud")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(JoseError::InvalidClaim("aud")),
    }
}

/// A media type with the `application/` prefix RFC 7515 §4.1.9 says to assume when there is no `/`,
/// lower-cased (media types are case-insensitive).
fn full_media_type(typ: &str) -> String {
    let lower = typ.to_ascii_lowercase();
    if lower.contains('/') {
        lower
    } else {
        format!("application/{lower}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AudienceRule {
    Accept(Vec<String>),
    Any,
}

/// What a caller accepts in a JWT (see the module docs). Build with [`Validation::new`] and the setters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    now: UnixTime,
    algorithms: Vec<Algorithm>,
    issuer: Option<String>,
    audience: AudienceRule,
    required: Vec<&'static str>,
    leeway: Duration,
    max_lifetime: Option<Duration>,
    typ: Option<String>,
}

impl Validation {
    /// Accept tokens at `now` with any supported algorithm ([`Algorithm::ALL`]: each key still verifies only
    /// its own type's algorithms; narrow it with [`Validation::algorithms`]), [`DEFAULT_LEEWAY`], `exp` required, any issuer and
    /// *no* audience (configure one: the check is fail-closed), any `typ`, any lifetime.
    pub fn new(now: UnixTime) -> Validation {
        Validation {
            now,
            algorithms: Algorithm::ALL.to_vec(),
            issuer: None,
            audience: AudienceRule::Accept(Vec::new()),
            required: vec!["exp"],
            leeway: DEFAULT_LEEWAY,
            max_lifetime: None,
            typ: None,
        }
    }

    /// What a resource server checks on an RFC 9068 access token: `typ` `at+jwt`, this issuer, this audience
    /// (its own resource URI), and the claims RFC 9068 §2.2 requires (`iss`, `exp`, `aud`, `sub`,
    /// `client_id`, `iat`, `jti`).
    pub fn access_token(now: UnixTime, issuer: impl Into<String>, audience: impl Into<String>) -> Validation {
        let mut v = Validation::new(now).issuer(issuer).audience(audience).typ(ACCESS_TOKEN_TYP);
        v.required = vec!["exp", "iss", "aud", "sub", "client_id", "iat", "jti"];
        v
    }

    /// Accept only these algorithms (an empty list accepts nothing).
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Validation {
        self.algorithms = algorithms.to_vec();
        self
    }

    /// Require `iss` to be exactly `issuer`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Validation {
        self.issuer = Some(issuer.into());
        self
    }

    /// Also accept tokens whose `aud` contains `audience` (exact string comparison).
    pub fn audience(mut self, audience: impl Into<String>) -> Validation {
        match &mut self.audience {
            AudienceRule::Accept(list) => list.push(audience.into()),
            AudienceRule::Any => self.audience = AudienceRule::Accept(vec![audience.into()]),
        }
        self
    }

    /// [`Validation::audience`] for each of `audiences`.
    pub fn audiences<I, S>(self, audiences: I) -> Validation
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        audiences.into_iter().fold(self, Validation::audience)
    }

    /// Do not check `aud` (e.g. an issuer reading back its own tokens). Require `aud` with
    /// [`Validation::require`] if it must still be present.
    pub fn any_audience(mut self) -> Validation {
        self.audience = AudienceRule::Any;
        self
    }

    /// Require claim `name` to be present.
    pub fn require(mut self, name: &'static str) -> Validation {
        if !self.required.contains(&name) {
            self.required.push(name);
        }
        self
    }

    /// Tolerate this much clock skew on `exp`, `nbf` and `iat`.
    pub fn leeway(mut self, leeway: Duration) -> Validation {
        self.leeway = leeway;
        self
    }

    /// Refuse tokens that live longer than `max`: `exp` later than `now + max` (plus leeway), or, when `iat`
    /// is present, `exp - iat` above `max`.
    pub fn max_lifetime(mut self, max: Duration) -> Validation {
        self.max_lifetime = Some(max);
        self
    }

    /// Require the header `typ` to be this media type: case-insensitive, with `application/` implied when
    /// there is no `/` (RFC 7515 §4.1.9), so `at+jwt` and `application/at+jwt` are the same (RFC 9068 §4).
    pub fn typ(mut self, typ: impl Into<String>) -> Validation {
        self.typ = Some(typ.into());
        self
    }

    /// The instant the token is checked at.
    pub fn now(&self) -> UnixTime {
        self.now
    }

    /// The clock-skew tolerance.
    pub fn leeway_duration(&self) -> Duration {
        self.leeway
    }

    /// The accepted algorithms.
    pub fn accepted_algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// Check a verified token's header and claims. The order decides which error a token with several
    /// problems gets: `typ`, required claims, claim types, time, lifetime, issuer, audience.
    pub fn check(&self, header: &Header, claims: &serde_json::Value) -> Result<(), JoseError> {
        if !claims.is_object() {
            return Err(JoseError::Malformed("the claims are not a JSON object"));
        }
        if let Some(expected) = &self.typ {
            let actual = header.typ.as_deref().ok_or(JoseError::WrongType)?;
            if full_media_type(actual) != full_media_type(expected) {
                return Err(JoseError::WrongType);
            }
        }
        if let Some(missing) = self.required.iter().find(|name| claims.get(**name).is_none()) {
            return Err(JoseError::MissingClaim(missing));
        }
        let exp = numeric_date(claims, "exp")?;
        let nbf = numeric_date(claims, "nbf")?;
        let iat = numeric_date(claims, "iat")?;
        numeric_date(claims, "auth_time")?;
        let iss = string_claim(claims, "iss")?;
        for name in ["sub", "jti", "client_id", "scope"] {
            string_claim(claims, name)?;
        }
        let aud = audiences(claims)?;

        let (now, leeway) = (self.now, self.leeway);
        // RFC 7519 §4.1.4: the current time MUST be before exp.
        if exp.is_some_and(|exp| now >= exp + leeway) {
            return Err(JoseError::Expired);
        }
        // RFC 7519 §4.1.5; an iat in the future is as suspicious as an nbf there.
        if nbf.is_some_and(|nbf| nbf > now + leeway) || iat.is_some_and(|iat| iat > now + leeway) {
            return Err(JoseError::NotYetValid);
        }
        if let (Some(max), Some(exp)) = (self.max_lifetime, exp) {
            let too_far = exp > now + max + leeway;
            let too_long = iat.is_some_and(|iat| exp.saturating_since(iat) > max);
            if too_far || too_long {
                return Err(JoseError::LifetimeTooLong);
            }
        }
        if let Some(expected) = &self.issuer {
            if iss.ok_or(JoseError::MissingClaim("iss"))? != expected {
                return Err(JoseError::WrongIssuer);
            }
        }
        if let AudienceRule::Accept(accepted) = &self.audience {
            let aud = aud.ok_or(JoseError::MissingClaim("aud"))?;
            if !aud.iter().any(|a| accepted.iter().any(|ok| ok == a)) {
                return Err(JoseError::WrongAudience);
            }
        }
        Ok(())
    }
}

/// Verify a JWT's signature with `keys` ([`jws::verify`] with the validation's algorithms), then check its
/// claims with `validation`.
pub fn decode(token: &str, keys: &JwkSet, validation: &Validation) -> Result<Verified, JoseError> {
    let verified = jws::verify(token, keys, &validation.algorithms)?;
    validation.check(&verified.header, &verified.claims)?;
    Ok(verified)
}

/// The `aud` claim: one audience or several (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single string.
    One(String),
    /// An array of strings.
    Many(Vec<String>),
}

impl Audience {
    /// A single audience, serialised as a string.
    pub fn one(audience: impl Into<String>) -> Audience {
        Audience::One(audience.into())
    }

    /// Several audiences, serialised as an array (a single string when there is exactly one).
    pub fn many<I, S>(audiences: I) -> Audience
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut list: Vec<String> = audiences.into_iter().map(Into::into).collect();
        if list.len() == 1 {
            Audience::One(list.remove(0))
        } else {
            Audience::Many(list)
        }
    }

    /// The audiences.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let slice = match self {
            Audience::One(a) => std::slice::from_ref(a),
            Audience::Many(list) => list.as_slice(),
        };
        slice.iter().map(String::as_str)
    }

    /// Whether `audience` is one of them.
    pub fn contains(&self, audience: &str) -> bool {
        self.iter().any(|a| a == audience)
    }
}

/// The claims of an RFC 9068 JWT access token (§2.2). Times are whole seconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// The issuer identifier of the authorization server.
    pub iss: String,
    /// The resource owner (or the client, for client credentials).
    pub sub: String,
    /// The resource(s) the token is for (RFC 8707 `resource`).
    pub aud: Audience,
    /// Expiry.
    pub exp: u64,
    /// Issue time.
    pub iat: u64,
    /// A unique identifier.
    pub jti: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// The granted scope, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// When the user authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<u64>,
}

impl AccessTokenClaims {
    /// Claims issued at `now`, valid for `lifetime`, with a random 128-bit `jti` from `entropy`.
    pub fn new(
        issuer: impl Into<String>,
        subject: impl Into<String>,
        audience: Audience,
        client_id: impl Into<String>,
        now: UnixTime,
        lifetime: Duration,
        entropy: &mut impl Entropy,
    ) -> AccessTokenClaims {
        let mut jti = [0u8; JTI_BYTES];
        entropy.fill_bytes(&mut jti);
        AccessTokenClaims {
            iss: issuer.into(),
            sub: subject.into(),
            aud: audience,
            exp: (now + lifetime).as_secs(),
            iat: now.as_secs(),
            jti: b64_encode(&jti),
            client_id: client_id.into(),
            scope: None,
            auth_time: None,
        }
    }

    /// The same claims with a `scope`.
    pub fn with_scope(mut self, scope: &Scope) -> AccessTokenClaims {
        self.scope = Some(scope.to_string());
        self
    }

    /// The same claims with an `auth_time`.
    pub fn with_auth_time(mut self, auth_time: UnixTime) -> AccessTokenClaims {
        self.auth_time = Some(auth_time.as_secs());
        self
    }

    /// The expiry as an instant.
    pub fn expires_at(&self) -> UnixTime {
        UnixTime::from_secs(self.exp)
    }

    /// The scope parsed; `None` when absent or not a valid scope string.
    pub fn parsed_scope(&self) -> Option<Scope> {
        self.scope.as_deref().and_then(|s| Scope::parse(s).ok())
    }

    /// Sign as a JWT with header `typ: at+jwt` (RFC 9068 §2.1).
    pub fn sign(&self, key: &PrivateKey) -> Result<String, JoseError> {
        jws::sign(Some(ACCESS_TOKEN_TYP), self, key)
    }

    /// Read the claims of a token checked with [`decode`] (e.g. under [`Validation::access_token`]).
    /// Integer times only: a token with fractional `exp` is [`JoseError::Malformed`] here.
    pub fn from_verified(verified: &Verified) -> Result<AccessTokenClaims, JoseError> {
        verified.claims_as()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;
    use proptest::prelude::*;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;
    const ISS: &str = "https://as.example";
    const AUD: &str = "https://mcp.example/mcp";

    fn now() -> UnixTime {
        UnixTime::from_secs(NOW)
    }

    fn key() -> (PrivateKey, JwkSet) {
        let key = PrivateKey::generate(Algorithm::ES256, &mut SeededEntropy::new(1), None);
        let set = JwkSet::new(vec![key.public_jwk()]);
        (key, set)
    }

    fn base() -> Validation {
        Validation::new(now()).issuer(ISS).audience(AUD)
    }

    fn check(v: &Validation, claims: serde_json::Value) -> Result<(), JoseError> {
        v.check(&Header::new(Algorithm::ES256), &claims)
    }

    fn good() -> serde_json::Value {
        json!({"iss": ISS, "aud": AUD, "sub": "alice", "exp": NOW + 300, "iat": NOW, "nbf": NOW})
    }

    fn with(mut claims: serde_json::Value, name: &str, value: serde_json::Value) -> serde_json::Value {
        claims[name] = value;
        claims
    }

    fn without(mut claims: serde_json::Value, name: &str) -> serde_json::Value {
        claims.as_object_mut().unwrap().remove(name);
        claims
    }

    #[test]
    fn accepts_a_good_token_end_to_end() {
        let (key, set) = key();
        let token = jws::sign(Some("JWT"), &good(), &key).unwrap();
        assert_eq!(decode(&token, &set, &base()).unwrap().claims, good());
        // The algorithm allow-list of the validation applies.
        let only_ed = base().algorithms(&[Algorithm::EdDSA]);
        assert_eq!(decode(&token, &set, &only_ed), Err(JoseError::UnsupportedAlgorithm));
    }

    #[test]
    fn expiry_with_leeway() {
        let v = base();
        assert_eq!(check(&v, with(good(), "exp", json!(NOW - 59))), Ok(()), "within the leeway");
        assert_eq!(check(&v, with(good(), "exp", json!(NOW - 60))), Err(JoseError::Expired));
        assert_eq!(check(&v, with(good(), "exp", json!(NOW - 3600))), Err(JoseError::Expired));
        let strict = base().leeway(Duration::ZERO);
        assert_eq!(check(&strict, with(good(), "exp", json!(NOW))), Err(JoseError::Expired), "now must be before exp");
        assert_eq!(check(&strict, with(good(), "exp", json!(NOW + 1))), Ok(()));
        assert_eq!(check(&strict, with(good(), "exp", json!(NOW as f64 + 0.5))), Ok(()), "fractional seconds");
        assert_eq!(check(&strict, with(good(), "exp", json!(NOW as f64 - 0.5))), Err(JoseError::Expired));
        assert_eq!(check(&v, without(good(), "exp")), Err(JoseError::MissingClaim("exp")));
    }

    #[test]
    fn not_before_and_issued_at() {
        let v = base();
        assert_eq!(check(&v, with(good(), "nbf", json!(NOW + 60))), Ok(()), "within the leeway");
        assert_eq!(check(&v, with(good(), "nbf", json!(NOW + 61))), Err(JoseError::NotYetValid));
        assert_eq!(check(&v, with(good(), "iat", json!(NOW + 120))), Err(JoseError::NotYetValid));
        assert_eq!(check(&v, without(without(good(), "nbf"), "iat")), Ok(()), "both optional");
    }

    #[test]
    fn numeric_dates_are_strict() {
        let v = base();
        for bad in [json!(-1), json!(-0.5), json!("1700000300"), json!(null), json!(true), json!([1]), json!({})] {
            assert_eq!(check(&v, with(good(), "exp", bad.clone())), Err(JoseError::InvalidClaim("exp")), "{bad}");
            assert_eq!(check(&v, with(good(), "nbf", bad.clone())), Err(JoseError::InvalidClaim("nbf")), "{bad}");
            assert_eq!(check(&v, with(good(), "iat", bad.clone())), Err(JoseError::InvalidClaim("iat")), "{bad}");
        }
        for huge in [json!(MAX_NUMERIC_DATE + 1), json!(u64::MAX), json!(1e300), json!(MAX_NUMERIC_DATE as f64 * 2.0)] {
            assert_eq!(check(&v, with(good(), "exp", huge.clone())), Err(JoseError::InvalidClaim("exp")), "{huge}");
        }
        assert_eq!(check(&v, with(good(), "auth_time", json!(-5))), Err(JoseError::InvalidClaim("auth_time")));
        assert_eq!(numeric_date(&json!({"t": MAX_NUMERIC_DATE}), "t"), Ok(Some(UnixTime::from_secs(MAX_NUMERIC_DATE))));
        assert_eq!(numeric_date(&json!({"t": 1.25}), "t"), Ok(Some(UnixTime::from_millis(1250))));
        assert_eq!(numeric_date(&json!({"t": 0}), "t"), Ok(Some(UnixTime::EPOCH)));
        assert_eq!(numeric_date(&json!({}), "t"), Ok(None));
        // A JSON number beyond f64 does not even parse.
        assert!(serde_json::from_str::<serde_json::Value>(r#"{"exp":1e400}"#).is_err());
    }

    #[test]
    fn issuer() {
        let v = base();
        assert_eq!(check(&v, with(good(), "iss", json!("https://evil.example"))), Err(JoseError::WrongIssuer));
        assert_eq!(check(&v, with(good(), "iss", json!("https://as.example/"))), Err(JoseError::WrongIssuer));
        assert_eq!(check(&v, with(good(), "iss", json!(["https://as.example"]))), Err(JoseError::InvalidClaim("iss")));
        assert_eq!(check(&v, without(good(), "iss")), Err(JoseError::MissingClaim("iss")));
        // Without an expected issuer any (string) issuer passes.
        let any = Validation::new(now()).audience(AUD);
        assert_eq!(check(&any, with(good(), "iss", json!("whoever"))), Ok(()));
    }

    #[test]
    fn audience_string_or_array() {
        let v = base();
        assert_eq!(check(&v, with(good(), "aud", json!([AUD]))), Ok(()));
        assert_eq!(check(&v, with(good(), "aud", json!(["https://other.example", AUD]))), Ok(()));
        assert_eq!(check(&v, with(good(), "aud", json!("https://other.example"))), Err(JoseError::WrongAudience));
        assert_eq!(check(&v, with(good(), "aud", json!(["https://other.example"]))), Err(JoseError::WrongAudience));
        assert_eq!(check(&v, with(good(), "aud", json!([]))), Err(JoseError::WrongAudience));
        assert_eq!(check(&v, with(good(), "aud", json!(format!("{AUD}/")))), Err(JoseError::WrongAudience));
        assert_eq!(check(&v, with(good(), "aud", json!([AUD, 1]))), Err(JoseError::InvalidClaim("aud")));
        assert_eq!(check(&v, with(good(), "aud", json!({"a": AUD}))), Err(JoseError::InvalidClaim("aud")));
        assert_eq!(check(&v, without(good(), "aud")), Err(JoseError::MissingClaim("aud")));
        // Several accepted audiences.
        let two = base().audiences(["https://other.example"]);
        assert_eq!(check(&two, with(good(), "aud", json!("https://other.example"))), Ok(()));
        // Fail-closed: no audience configured accepts nothing…
        let unset = Validation::new(now());
        assert_eq!(check(&unset, good()), Err(JoseError::WrongAudience));
        // …unless the caller opts out explicitly.
        assert_eq!(check(&Validation::new(now()).any_audience(), without(good(), "aud")), Ok(()));
        assert_eq!(
            check(&Validation::new(now()).any_audience().audience(AUD), with(good(), "aud", json!("x"))),
            Err(JoseError::WrongAudience)
        );
    }

    #[test]
    fn required_and_typed_claims() {
        let v = base().require("jti").require("jti");
        assert_eq!(check(&v, good()), Err(JoseError::MissingClaim("jti")));
        assert_eq!(check(&v, with(good(), "jti", json!("x"))), Ok(()));
        assert_eq!(check(&v, with(good(), "jti", json!(1))), Err(JoseError::InvalidClaim("jti")));
        assert_eq!(check(&base(), with(good(), "sub", json!(42))), Err(JoseError::InvalidClaim("sub")));
        assert_eq!(check(&base(), with(good(), "scope", json!(["a"]))), Err(JoseError::InvalidClaim("scope")));
        assert!(matches!(base().check(&Header::new(Algorithm::ES256), &json!([1])), Err(JoseError::Malformed(_))));
    }

    #[test]
    fn lifetime_bounds() {
        let v = base().max_lifetime(Duration::from_secs(600));
        assert_eq!(check(&v, good()), Ok(()));
        // exp too far from now (iat absent, so only that bound applies).
        let far = without(with(good(), "exp", json!(NOW + 600 + 61)), "iat");
        assert_eq!(check(&v, far), Err(JoseError::LifetimeTooLong));
        assert_eq!(check(&v, without(with(good(), "exp", json!(NOW + 660)), "iat")), Ok(()), "leeway");
        // exp - iat too long even though exp is close to now (an old token minted with a long life).
        let old = with(with(good(), "iat", json!(NOW - 3000)), "exp", json!(NOW + 100));
        assert_eq!(check(&v, old), Err(JoseError::LifetimeTooLong));
    }

    #[test]
    fn typ_comparison() {
        let v = base().typ("at+jwt");
        let typed = |typ: Option<&str>| {
            let mut h = Header::new(Algorithm::EdDSA);
            h.typ = typ.map(str::to_owned);
            v.check(&h, &good())
        };
        for ok in ["at+jwt", "AT+JWT", "application/at+jwt", "Application/At+JWT"] {
            assert_eq!(typed(Some(ok)), Ok(()), "{ok}");
        }
        for bad in ["JWT", "jwt", "at+jw", "text/at+jwt", "application/jwt", "", "at+jwt "] {
            assert_eq!(typed(Some(bad)), Err(JoseError::WrongType), "{bad}");
        }
        assert_eq!(typed(None), Err(JoseError::WrongType));
        let full = base().typ("application/at+jwt");
        let mut h = Header::new(Algorithm::EdDSA);
        h.typ = Some("at+jwt".into());
        assert_eq!(full.check(&h, &good()), Ok(()));
    }

    #[test]
    fn access_token_round_trip() {
        let (key, set) = key();
        let mut e = SeededEntropy::new(3);
        let scope = Scope::parse("notes:read notes:write").unwrap();
        let claims = AccessTokenClaims::new(
            ISS,
            "alice",
            Audience::one(AUD),
            "client-1",
            now(),
            Duration::from_secs(300),
            &mut e,
        )
        .with_scope(&scope)
        .with_auth_time(now() - Duration::from_secs(10));
        assert_eq!((claims.exp, claims.iat, claims.jti.len()), (NOW + 300, NOW, 22));
        assert_eq!(claims.expires_at(), UnixTime::from_secs(NOW + 300));
        let token = claims.sign(&key).unwrap();

        let v = Validation::access_token(now(), ISS, AUD);
        let verified = decode(&token, &set, &v).unwrap();
        assert_eq!(verified.header.typ.as_deref(), Some("at+jwt"));
        let back = AccessTokenClaims::from_verified(&verified).unwrap();
        assert_eq!(back, claims);
        assert_eq!(back.parsed_scope(), Some(scope));
        assert_eq!(verified.claims["scope"], "notes:read notes:write");
        assert_eq!(verified.claims["aud"], AUD);

        // Another resource does not accept it; nor does it after expiry; nor as another token type.
        assert_eq!(
            decode(&token, &set, &Validation::access_token(now(), ISS, "https://x.example")),
            Err(JoseError::WrongAudience)
        );
        let later = now() + Duration::from_secs(361);
        assert_eq!(decode(&token, &set, &Validation::access_token(later, ISS, AUD)), Err(JoseError::Expired));
        assert_eq!(decode(&token, &set, &base().typ("JWT")), Err(JoseError::WrongType));
        // A plain JWT is not an access token, even with the right claims.
        let plain = jws::sign(Some("JWT"), &claims, &key).unwrap();
        assert_eq!(decode(&plain, &set, &v), Err(JoseError::WrongType));
        // RFC 9068 requires client_id, jti, iat.
        let mut partial = serde_json::to_value(&claims).unwrap();
        partial.as_object_mut().unwrap().remove("client_id");
        let token = jws::sign(Some("at+jwt"), &partial, &key).unwrap();
        assert_eq!(decode(&token, &set, &v), Err(JoseError::MissingClaim("client_id")));

        // Several audiences serialise as an array, one as a string.
        let many = Audience::many([AUD, "https://other.example"]);
        assert_eq!(serde_json::to_value(&many).unwrap(), json!([AUD, "https://other.example"]));
        assert!(many.contains(AUD) && !many.contains("x"));
        assert_eq!(Audience::many([AUD]), Audience::one(AUD));
        assert_eq!(serde_json::from_value::<Audience>(json!(AUD)).unwrap().iter().collect::<Vec<_>>(), vec![AUD]);
        let multi = AccessTokenClaims::new(ISS, "bob", many, "c", now(), Duration::from_secs(60), &mut e);
        let t = multi.sign(&key).unwrap();
        assert!(decode(&t, &set, &Validation::access_token(now(), ISS, "https://other.example")).is_ok());
        let without_scope = serde_json::to_value(&multi).unwrap();
        assert!(without_scope.get("scope").is_none() && without_scope.get("auth_time").is_none());
    }

    proptest! {
        #[test]
        fn check_never_panics(
            claims in proptest::collection::btree_map(
                "(exp|nbf|iat|iss|aud|sub|jti|auth_time|x)",
                prop_oneof![
                    any::<i64>().prop_map(serde_json::Value::from),
                    any::<u64>().prop_map(serde_json::Value::from),
                    any::<f64>().prop_map(serde_json::Value::from),
                    "\\PC{0,10}".prop_map(serde_json::Value::from),
                    proptest::collection::vec("\\PC{0,5}", 0..3).prop_map(serde_json::Value::from),
                ],
                0..9,
            ),
            now in any::<u64>(),
            leeway in any::<u64>(),
            max in proptest::option::of(any::<u64>()),
        ) {
            let claims = serde_json::Value::Object(claims.into_iter().collect());
            let mut v = Validation::new(UnixTime::from_millis(now)).audience("a").issuer("i")
                .leeway(Duration::from_millis(leeway)).typ("at+jwt");
            if let Some(max) = max { v = v.max_lifetime(Duration::from_millis(max)); }
            let _ = v.check(&Header::new(Algorithm::EdDSA).with_typ("at+jwt"), &claims);
        }

        #[test]
        fn fresh_access_tokens_validate(seed in any::<u64>(), lifetime in 1u64..86_400, ed in any::<bool>()) {
            let alg = if ed { Algorithm::EdDSA } else { Algorithm::ES256 };
            let mut e = SeededEntropy::new(seed);
            let key = PrivateKey::generate(alg, &mut e, None);
            let set = JwkSet::new(vec![key.public_jwk()]);
            let claims = AccessTokenClaims::new(ISS, "s", Audience::one(AUD), "c", now(), Duration::from_secs(lifetime), &mut e);
            let token = claims.sign(&key).unwrap();
            let v = Validation::access_token(now(), ISS, AUD).max_lifetime(Duration::from_secs(lifetime));
            prop_assert_eq!(AccessTokenClaims::from_verified(&decode(&token, &set, &v).unwrap()).unwrap(), claims);
        }
    }
}
