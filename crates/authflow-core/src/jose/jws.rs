//! JWS compact serialisation (RFC 7515 §7.1): `BASE64URL(header) . BASE64URL(payload) . BASE64URL(signature)`.
//!
//! [`verify_raw`] checks, in this order, so that the cheap and unauthenticated checks come first and no key
//! is looked up for an algorithm that is not allowed:
//! 1. the length (at most [`MAX_TOKEN_LEN`]) and the shape: exactly three segments of unpadded base64url;
//! 2. the header: a JSON object with unique members, a string `alg` that is supported *and* in the caller's
//!    allow-list, no `crit`, and `kid`/`typ`/`cty` strings when present;
//! 3. the signature length: exactly 64 bytes for ES256 and EdDSA, 256 to 1024 bytes for RS256 and PS256
//!    (2048- to 8192-bit keys; the key's exact modulus length is required at step 5);
//! 4. the key: by `kid` when present (unknown `kid` → [`JoseError::UnknownKey`], a key of another algorithm
//!    → [`JoseError::KeyMismatch`]); without `kid`, every key usable for the algorithm, at most
//!    [`MAX_CANDIDATE_KEYS`] of them;
//! 5. the signature over the ASCII `header.payload` exactly as received, with a key of the header's
//!    algorithm only: an RSA key never checks an ES256 signature, and no key is ever an HMAC secret.
//!
//! [`verify`] then requires the payload to be a JSON object (a JWT claims set). Claim *values* are checked by
//! [`super::jwt`].

use serde::ser::SerializeMap;
use serde::Serialize;

use super::jwk::{Jwk, JwkSet, PrivateKey};
use super::{b64_decode, b64_encode, parse_object, Algorithm, JoseError, MAX_TOKEN_LEN};

/// Most keys tried for one token. Without a `kid` every key of the right type is a candidate, and each try
/// costs a signature verification: the bound keeps a hostile token from costing more than a few.
pub const MAX_CANDIDATE_KEYS: usize = 8;

/// Header parameters whose meaning [`Header`] models; the rest go to [`Header::extra`].
const KNOWN: [&str; 4] = ["alg", "kid", "typ", "cty"];

/// A JOSE header (RFC 7515 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The signing algorithm.
    pub alg: Algorithm,
    /// The key id.
    pub kid: Option<String>,
    /// The media type of the whole token, e.g. `at+jwt` (RFC 9068) or `JWT`.
    pub typ: Option<String>,
    /// The media type of the payload.
    pub cty: Option<String>,
    /// Every other parameter, e.g. `jku` or `x5c` (never used to find keys).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Header {
    /// A header with only `alg`.
    pub fn new(alg: Algorithm) -> Header {
        Header { alg, kid: None, typ: None, cty: None, extra: serde_json::Map::new() }
    }

    /// The same header with a `kid`.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Header {
        self.kid = Some(kid.into());
        self
    }

    /// The same header with a `typ`.
    pub fn with_typ(mut self, typ: impl Into<String>) -> Header {
        self.typ = Some(typ.into());
        self
    }

    /// Read a decoded header object (step 2 of the module docs).
    fn from_object(mut map: serde_json::Map<String, serde_json::Value>) -> Result<Header, JoseError> {
        let alg = match map.remove("alg") {
            Some(serde_json::Value::String(s)) => Algorithm::parse(&s)?,
            Some(_) => return Err(JoseError::Malformed("alg must be a string")),
            None => return Err(JoseError::Malformed("the header has no alg")),
        };
        // We implement no extension, so any `crit` (even an empty or invalid one) means "do not accept".
        if map.contains_key("crit") {
            return Err(JoseError::UnsupportedCritical);
        }
        let mut string = |name: &str, err: &'static str| match map.remove(name) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(JoseError::Malformed(err)),
        };
        let kid = string("kid", "kid must be a string")?;
        let typ = string("typ", "typ must be a string")?;
        let cty = string("cty", "cty must be a string")?;
        Ok(Header { alg, kid, typ, cty, extra: map })
    }
}

impl Serialize for Header {
    /// `alg` first, then `kid`, `typ`, `cty`, then the extras (an extra named like one of those is skipped,
    /// so no member is ever written twice).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("alg", &self.alg)?;
        for (name, value) in [("kid", &self.kid), ("typ", &self.typ), ("cty", &self.cty)] {
            if let Some(v) = value {
                m.serialize_entry(name, v)?;
            }
        }
        for (k, v) in self.extra.iter().filter(|(k, _)| !KNOWN.contains(&k.as_str())) {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// A verified token whose payload is arbitrary bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRaw {
    /// The protected header.
    pub header: Header,
    /// The payload, decoded.
    pub payload: Vec<u8>,
}

/// A verified JWT: its header and its claims, always a JSON object with unique member names. Claim values
/// are not checked yet: see [`super::jwt::Validation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The protected header.
    pub header: Header,
    /// The claims set (a `serde_json::Value::Object`).
    pub claims: serde_json::Value,
}

impl Verified {
    /// One claim.
    pub fn claim(&self, name: &str) -> Option<&serde_json::Value> {
        self.claims.get(name)
    }

    /// The claims deserialised into `T`; [`JoseError::Malformed`] when they do not fit.
    pub fn claims_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, JoseError> {
        T::deserialize(&self.claims).map_err(|_| JoseError::Malformed("the claims do not have the expected shape"))
    }
}

/// Sign `payload` under exactly `header` (nothing is added: set `kid` yourself). Refused when `header.alg`
/// is not the key's algorithm, when the header has `crit` (which [`verify`] would refuse), or when the
/// token would exceed [`MAX_TOKEN_LEN`].
pub fn sign_raw(header: &Header, payload: &[u8], key: &PrivateKey) -> Result<String, JoseError> {
    if header.alg != key.algorithm() {
        return Err(JoseError::Signing("the header's alg is not the key's algorithm"));
    }
    if header.extra.contains_key("crit") {
        return Err(JoseError::Signing("crit is not supported"));
    }
    let header_json = serde_json::to_vec(header).map_err(|_| JoseError::Signing("the header does not serialise"))?;
    let mut token = b64_encode(&header_json);
    token.push('.');
    token.push_str(&b64_encode(payload));
    // The signature adds 1 + 86 characters (64 bytes in base64url).
    if token.len() + 87 > MAX_TOKEN_LEN {
        return Err(JoseError::Signing("the token would be too long"));
    }
    let signature = key.sign_bytes(token.as_bytes())?;
    token.push('.');
    token.push_str(&b64_encode(&signature));
    Ok(token)
}

/// Sign a JWT: header `{"alg": <key's>, "kid": <key's>, "typ": typ}`, payload `claims`, which must serialise
/// to a JSON object.
pub fn sign<C: Serialize + ?Sized>(typ: Option<&str>, claims: &C, key: &PrivateKey) -> Result<String, JoseError> {
    let value = serde_json::to_value(claims).map_err(|_| JoseError::Signing("the claims do not serialise"))?;
    if !value.is_object() {
        return Err(JoseError::Signing("the claims must serialise to a JSON object"));
    }
    let payload = serde_json::to_vec(&value).map_err(|_| JoseError::Signing("the claims do not serialise"))?;
    let mut header = Header::new(key.algorithm());
    if !key.kid().is_empty() {
        header.kid = Some(key.kid().to_owned());
    }
    header.typ = typ.map(str::to_owned);
    sign_raw(&header, &payload, key)
}

/// The keys to try for a token signed with `alg` and naming `kid` (step 4 of the module docs).
fn candidates<'a>(keys: &'a JwkSet, alg: Algorithm, kid: Option<&str>) -> Result<Vec<&'a Jwk>, JoseError> {
    let usable = |k: &&Jwk| k.usable_for(alg);
    let found: Vec<&Jwk> = match kid {
        Some(kid) => {
            let mut named = keys.keys().iter().filter(|k| k.kid() == Some(kid)).peekable();
            if named.peek().is_none() {
                return Err(JoseError::UnknownKey);
            }
            let found: Vec<&Jwk> = named.filter(usable).take(MAX_CANDIDATE_KEYS).collect();
            if found.is_empty() {
                return Err(JoseError::KeyMismatch);
            }
            found
        }
        None => keys.keys().iter().filter(usable).take(MAX_CANDIDATE_KEYS).collect(),
    };
    if found.is_empty() {
        return Err(JoseError::UnknownKey);
    }
    Ok(found)
}

/// Verify a compact JWS with any payload (see the module docs for every check).
pub fn verify_raw(token: &str, keys: &JwkSet, allowed: &[Algorithm]) -> Result<VerifiedRaw, JoseError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JoseError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JoseError::Malformed("a compact JWS has exactly three dot-separated parts"));
    };
    let header_bytes = b64_decode(h).ok_or(JoseError::Malformed("the header is not unpadded base64url"))?;
    let header = Header::from_object(parse_object(&header_bytes, "the header is not a JSON object")?)?;
    if !allowed.contains(&header.alg) {
        return Err(JoseError::UnsupportedAlgorithm);
    }
    let signature = b64_decode(s).ok_or(JoseError::Malformed("the signature is not unpadded base64url"))?;
    if !header.alg.signature_len_possible(signature.len()) {
        return Err(JoseError::BadSignature);
    }
    let payload = b64_decode(p).ok_or(JoseError::Malformed("the payload is not unpadded base64url"))?;
    let keys = candidates(keys, header.alg, header.kid.as_deref())?;
    // The signing input is the received text itself, never a re-encoding of what we decoded.
    let signing_input = &token.as_bytes()[..h.len() + 1 + p.len()];
    if keys.iter().any(|k| k.verify_signature(header.alg, signing_input, &signature)) {
        Ok(VerifiedRaw { header, payload })
    } else {
        Err(JoseError::BadSignature)
    }
}

/// Verify a signed JWT: [`verify_raw`], then the payload must be a JSON object with unique members.
/// Claim values (`exp`, `aud`, …) are not checked here: use [`super::jwt::decode`].
pub fn verify(token: &str, keys: &JwkSet, allowed: &[Algorithm]) -> Result<Verified, JoseError> {
    let raw = verify_raw(token, keys, allowed)?;
    let claims = parse_object(&raw.payload, "the payload is not a JSON object")?;
    Ok(Verified { header: raw.header, claims: serde_json::Value::Object(claims) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;
    use crate::jose::jwk::tests::{RFC7515_EC_D, RFC7515_EC_X, RFC7515_EC_Y, RFC8037_D, RFC8037_X};
    use proptest::prelude::*;
    use serde_json::json;

    /// Every algorithm: the tests here sign with ES256 and EdDSA; RSA has its own tests (`rsa_tests.rs`).
    const BOTH: &[Algorithm] = &Algorithm::ALL;

    // RFC 8037 Appendix A.4 / A.5.
    const RFC8037_JWS: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-\
                               09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
    // RFC 7515 Appendix A.3 (ES256; the payload has CR LF inside the JSON).
    const RFC7515_JWS: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leG\
                               FtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTj\
                               Dxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

    fn rfc8037_key() -> PrivateKey {
        PrivateKey::from_bytes(Algorithm::EdDSA, &b64_decode(RFC8037_D).unwrap()).unwrap()
    }

    fn set(jwk: &str) -> JwkSet {
        JwkSet::new(vec![Jwk::parse(jwk).unwrap()])
    }

    fn ed_public() -> String {
        format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{RFC8037_X}"}}"#)
    }

    fn keys(seed: u64) -> (PrivateKey, PrivateKey, JwkSet) {
        let mut e = SeededEntropy::new(seed);
        let ec = PrivateKey::generate(Algorithm::ES256, &mut e, Some("ec".into()));
        let ed = PrivateKey::generate(Algorithm::EdDSA, &mut e, Some("ed".into()));
        let set = JwkSet::new(vec![ec.public_jwk(), ed.public_jwk()]);
        (ec, ed, set)
    }

    /// A token with `header` (any JSON text) and `payload`, signed correctly by `key`.
    fn forge(header: &str, payload: &str, key: &PrivateKey) -> String {
        let input = format!("{}.{}", b64_encode(header.as_bytes()), b64_encode(payload.as_bytes()));
        let sig = key.sign_bytes(input.as_bytes()).unwrap();
        format!("{input}.{}", b64_encode(&sig))
    }

    #[test]
    fn rfc8037_a4_signature_is_reproduced_and_verifies() {
        let header = Header::new(Algorithm::EdDSA);
        let token = sign_raw(&header, b"Example of Ed25519 signing", &rfc8037_key()).unwrap();
        assert_eq!(token, RFC8037_JWS);
        // A.5: verification with the public key only.
        let v = verify_raw(RFC8037_JWS, &set(&ed_public()), &[Algorithm::EdDSA]).unwrap();
        assert_eq!(v.payload, b"Example of Ed25519 signing");
        assert_eq!(v.header, header);
        // The payload is not JSON, so it is not a JWT.
        assert_eq!(
            verify(RFC8037_JWS, &set(&ed_public()), BOTH),
            Err(JoseError::Malformed("the payload is not a JSON object"))
        );
    }

    #[test]
    fn rfc7515_a3_es256_verifies() {
        let public = format!(r#"{{"kty":"EC","crv":"P-256","x":"{RFC7515_EC_X}","y":"{RFC7515_EC_Y}"}}"#);
        let v = verify(RFC7515_JWS, &set(&public), &[Algorithm::ES256]).unwrap();
        assert_eq!(v.claims, json!({"iss": "joe", "exp": 1300819380, "http://example.com/is_root": true}));
        assert_eq!(v.header.alg, Algorithm::ES256);
        // The RFC's private key signs (deterministically) something the public key accepts, too.
        let key = PrivateKey::from_bytes(Algorithm::ES256, &b64_decode(RFC7515_EC_D).unwrap()).unwrap();
        let token = sign(None, &json!({"iss": "joe"}), &key).unwrap();
        assert_eq!(token, sign(None, &json!({"iss": "joe"}), &key).unwrap(), "RFC 6979 is deterministic");
        // The token names the key by its thumbprint, which the bare RFC key does not carry as kid…
        assert_eq!(verify(&token, &set(&public), BOTH), Err(JoseError::UnknownKey));
        // …and verifies once the published key has it.
        let published = JwkSet::new(vec![Jwk::parse(&public).unwrap().with_kid(key.kid())]);
        assert_eq!(verify(&token, &published, BOTH).unwrap().claim("iss"), Some(&json!("joe")));
        // ES256 is not allowed by this caller.
        assert_eq!(verify(RFC7515_JWS, &set(&public), &[Algorithm::EdDSA]), Err(JoseError::UnsupportedAlgorithm));
    }

    #[test]
    fn round_trip_both_algorithms() {
        let (ec, ed, set) = keys(1);
        for key in [&ec, &ed] {
            let claims = json!({"sub": "alice", "n": 1, "nested": {"a": [1, 2]}});
            let token = sign(Some("at+jwt"), &claims, key).unwrap();
            let v = verify(&token, &set, BOTH).unwrap();
            assert_eq!(v.claims, claims);
            assert_eq!(v.header.alg, key.algorithm());
            assert_eq!(v.header.kid.as_deref(), Some(key.kid()));
            assert_eq!(v.header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(v.claims_as::<serde_json::Map<String, serde_json::Value>>().unwrap().len(), 3);
            assert!(v.claims_as::<Vec<u8>>().is_err());
        }
    }

    #[test]
    fn refuses_alg_none_hs256_and_unknown_before_key_lookup() {
        let (ec, _, set) = keys(2);
        let payload = r#"{"sub":"mallory"}"#;
        let body = format!("{}.{}", b64_encode(payload.as_bytes()), b64_encode(&[0u8; 64]));
        for alg in ["none", "None", "NONE", "HS256", "HS384", "HS512", "RS384", "PS512", "ES384", "ES256K", "foo"] {
            // Even with the kid of a real key: the alg is refused first.
            let header = format!(r#"{{"alg":"{alg}","kid":"ec"}}"#);
            let token = format!("{}.{body}", b64_encode(header.as_bytes()));
            assert_eq!(verify(&token, &set, BOTH), Err(JoseError::UnsupportedAlgorithm), "{alg}");
        }
        // `alg: none` with an empty signature.
        let none = format!("{}.{}.", b64_encode(br#"{"alg":"none"}"#), b64_encode(payload.as_bytes()));
        assert_eq!(verify(&none, &set, BOTH), Err(JoseError::UnsupportedAlgorithm));
        // HS256 "signed" with the public key's JSON as the HMAC secret (the classic confusion): refused.
        let public = serde_json::to_vec(&ec.public_jwk()).unwrap();
        let input = format!("{}.{}", b64_encode(br#"{"alg":"HS256","typ":"JWT"}"#), b64_encode(payload.as_bytes()));
        let fake_mac = <sha2::Sha256 as sha2::Digest>::new_with_prefix(&public);
        let fake_mac = sha2::Digest::chain_update(fake_mac, input.as_bytes());
        let token = format!("{input}.{}", b64_encode(&sha2::Digest::finalize(fake_mac)));
        assert_eq!(verify(&token, &set, BOTH), Err(JoseError::UnsupportedAlgorithm));
        // A missing or non-string alg is malformed.
        let token = forge(r#"{"kid":"ec"}"#, payload, &ec);
        assert_eq!(verify(&token, &set, BOTH), Err(JoseError::Malformed("the header has no alg")));
        let token = forge(r#"{"alg":["ES256"]}"#, payload, &ec);
        assert_eq!(verify(&token, &set, BOTH), Err(JoseError::Malformed("alg must be a string")));
        // RS256 and PS256 exist, but a caller that does not allow them gets the same answer, before key lookup.
        for alg in ["RS256", "PS256"] {
            let header = format!(r#"{{"alg":"{alg}","kid":"ec"}}"#);
            let token = format!("{}.{body}", b64_encode(header.as_bytes()));
            assert_eq!(verify(&token, &set, &Algorithm::SIGNING), Err(JoseError::UnsupportedAlgorithm), "{alg}");
        }
        // An empty allow-list allows nothing.
        assert_eq!(verify(&sign(None, &json!({}), &ec).unwrap(), &set, &[]), Err(JoseError::UnsupportedAlgorithm));
    }

    #[test]
    fn key_must_fit_the_algorithm() {
        let (ec, ed, _) = keys(3);
        // An EdDSA token whose kid names the EC key (algorithm confusion across key types).
        let confused = JwkSet::new(vec![ec.public_jwk().with_kid("shared")]);
        let token = sign_raw(&Header::new(Algorithm::EdDSA).with_kid("shared"), b"{}", &ed).unwrap();
        assert_eq!(verify(&token, &confused, BOTH), Err(JoseError::KeyMismatch));
        // A JWK whose alg names another algorithm is not used, even of the right type.
        let ed_jwk = serde_json::to_value(ed.public_jwk()).unwrap();
        let mut other_alg = ed_jwk.clone();
        other_alg["alg"] = json!("HS256");
        let token = sign(None, &json!({}), &ed).unwrap();
        let set = JwkSet::new(vec![Jwk::from_value(other_alg).unwrap()]);
        assert_eq!(verify(&token, &set, BOTH), Err(JoseError::KeyMismatch));
        // An encryption key is not used for signatures.
        let mut enc = ed_jwk;
        enc["use"] = json!("enc");
        assert_eq!(
            verify(&token, &JwkSet::new(vec![Jwk::from_value(enc).unwrap()]), BOTH),
            Err(JoseError::KeyMismatch)
        );
        // Unsupported keys, and keys of another type, are never candidates.
        let oct = JwkSet::new(vec![Jwk::parse(r#"{"kty":"oct","k":"AQAB","kid":"ed"}"#).unwrap()]);
        assert_eq!(verify(&token, &oct, BOTH), Err(JoseError::KeyMismatch));
        let n = format!("wQ{}AQ", "A".repeat(338));
        let rsa =
            JwkSet::new(vec![Jwk::parse(&format!(r#"{{"kty":"RSA","n":"{n}","e":"AQAB","kid":"ed"}}"#)).unwrap()]);
        assert_eq!(verify(&token, &rsa, BOTH), Err(JoseError::KeyMismatch));
    }

    #[test]
    fn key_selection_by_kid_and_without() {
        let (ec, ed, set) = keys(4);
        let token = sign(None, &json!({"a": 1}), &ec).unwrap();
        // Wrong kid.
        let other = JwkSet::new(vec![ec.public_jwk().with_kid("rotated")]);
        assert_eq!(verify(&token, &other, BOTH), Err(JoseError::UnknownKey));
        assert_eq!(verify(&token, &JwkSet::default(), BOTH), Err(JoseError::UnknownKey));
        // The right kid but another key's material: the signature fails.
        let (ec2, _, _) = keys(5);
        let impostor = JwkSet::new(vec![ec2.public_jwk().with_kid("ec")]);
        assert_eq!(verify(&token, &impostor, BOTH), Err(JoseError::BadSignature));
        // No kid: every key of the right type is tried.
        let anon = sign_raw(&Header::new(Algorithm::EdDSA), b"{}", &ed).unwrap();
        let mut many = JwkSet::new(vec![ec2.public_jwk(), ec.public_jwk()]);
        for seed in 10..14 {
            many.push(PrivateKey::generate(Algorithm::EdDSA, &mut SeededEntropy::new(seed), None).public_jwk());
        }
        many.push(ed.public_jwk());
        assert!(verify(&anon, &many, BOTH).is_ok());
        assert!(verify(&anon, &set, BOTH).is_ok());
        assert_eq!(verify(&anon, &JwkSet::new(vec![ec.public_jwk()]), BOTH), Err(JoseError::UnknownKey));
        // …but at most MAX_CANDIDATE_KEYS of them.
        let mut crowded = JwkSet::default();
        for seed in 0..MAX_CANDIDATE_KEYS as u64 {
            crowded
                .push(PrivateKey::generate(Algorithm::EdDSA, &mut SeededEntropy::new(100 + seed), None).public_jwk());
        }
        crowded.push(ed.public_jwk());
        assert_eq!(verify(&anon, &crowded, BOTH), Err(JoseError::BadSignature));
    }

    #[test]
    fn tampering_is_detected() {
        let (ec, ed, set) = keys(6);
        for key in [&ec, &ed] {
            let token = sign(None, &json!({"sub": "alice", "admin": false}), key).unwrap();
            let parts: Vec<&str> = token.split('.').collect();
            let evil_payload = b64_encode(br#"{"sub":"alice","admin":true}"#);
            let swapped = format!("{}.{evil_payload}.{}", parts[0], parts[2]);
            assert_eq!(verify(&swapped, &set, BOTH), Err(JoseError::BadSignature));
            // Flip one bit of the signature.
            let mut sig = b64_decode(parts[2]).unwrap();
            sig[10] ^= 1;
            let flipped = format!("{}.{}.{}", parts[0], parts[1], b64_encode(&sig));
            assert_eq!(verify(&flipped, &set, BOTH), Err(JoseError::BadSignature));
            // Change the header (e.g. add a typ) and keep the signature.
            let header = format!(r#"{{"alg":"{}","kid":"{}","typ":"at+jwt"}}"#, key.algorithm(), key.kid());
            let retyped = format!("{}.{}.{}", b64_encode(header.as_bytes()), parts[1], parts[2]);
            assert_eq!(verify(&retyped, &set, BOTH), Err(JoseError::BadSignature));
            // A signature of the wrong size (e.g. DER for ES256, or truncated) is refused without trying.
            for len in [0, 63, 65, 70, 72] {
                let t = format!("{}.{}.{}", parts[0], parts[1], b64_encode(&vec![7u8; len]));
                assert_eq!(verify(&t, &set, BOTH), Err(JoseError::BadSignature), "{len}");
            }
        }
        // ES256 r or s of zero or above the order cannot even be parsed.
        let token = sign(None, &json!({}), &ec).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        for sig in [[0u8; 64], [0xffu8; 64]] {
            let t = format!("{}.{}.{}", parts[0], parts[1], b64_encode(&sig));
            assert_eq!(verify(&t, &set, BOTH), Err(JoseError::BadSignature));
        }
    }

    #[test]
    fn segment_shape_and_encoding() {
        let (_, ed, set) = keys(7);
        let token = sign(None, &json!({"a": 1}), &ed).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let bad_shapes = [
            String::new(),
            ".".into(),
            "..".into(),
            "...".into(),
            format!("{}.{}", parts[0], parts[1]),
            format!("{token}."),
            format!("{token}.{}", parts[2]),
            format!(".{}.{}", parts[1], parts[2]),
        ];
        for t in &bad_shapes {
            assert!(matches!(verify(t, &set, BOTH), Err(JoseError::Malformed(_))), "{t:?}");
        }
        // Padding, the standard alphabet, whitespace and junk in each segment.
        for i in 0..3 {
            for (mutation, what) in [("=", "pad"), ("==", "pad2"), ("+", "plus"), ("/", "slash"), (" ", "space")] {
                let mut p: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
                p[i].push_str(mutation);
                let t = p.join(".");
                let r = verify(&t, &set, BOTH);
                assert!(matches!(r, Err(JoseError::Malformed(_))), "segment {i} {what}: {r:?}");
            }
        }
        let mut p: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
        p[1] = format!("{}\n", p[1]);
        assert!(matches!(verify(&p.join("."), &set, BOTH), Err(JoseError::Malformed(_))));
        // Non-ASCII.
        assert!(matches!(verify("é.é.é", &set, BOTH), Err(JoseError::Malformed(_))));
    }

    #[test]
    fn header_rules() {
        let (ec, _, set) = keys(8);
        let ok = |h: &str| verify(&forge(h, "{}", &ec), &set, BOTH);
        assert!(ok(r#"{"alg":"ES256","kid":"ec","jku":"https://evil.example/jwks","x5u":"x"}"#).is_ok());
        assert_eq!(ok(r#"{"alg":"ES256","kid":"ec","crit":["exp"],"exp":1}"#), Err(JoseError::UnsupportedCritical));
        assert_eq!(ok(r#"{"alg":"ES256","kid":"ec","crit":[]}"#), Err(JoseError::UnsupportedCritical));
        assert_eq!(ok(r#"{"alg":"ES256","kid":"ec","b64":false,"crit":["b64"]}"#), Err(JoseError::UnsupportedCritical));
        assert_eq!(ok(r#"{"alg":"ES256","kid":7}"#), Err(JoseError::Malformed("kid must be a string")));
        assert_eq!(ok(r#"{"alg":"ES256","kid":"ec","typ":null}"#), Err(JoseError::Malformed("typ must be a string")));
        assert_eq!(ok(r#"{"alg":"ES256","kid":"ec","cty":1}"#), Err(JoseError::Malformed("cty must be a string")));
        // Duplicate members: `alg` twice could be read differently by another parser.
        assert!(matches!(ok(r#"{"alg":"ES256","alg":"none","kid":"ec"}"#), Err(JoseError::Malformed(_))));
        for not_object in [r#"["ES256"]"#, r#""ES256""#, "null", "", "{"] {
            assert!(matches!(ok(not_object), Err(JoseError::Malformed(_))), "{not_object:?}");
        }
        // Duplicate claims and non-object payloads are malformed too.
        let dup = forge(r#"{"alg":"ES256","kid":"ec"}"#, r#"{"sub":"a","sub":"b"}"#, &ec);
        assert!(matches!(verify(&dup, &set, BOTH), Err(JoseError::Malformed(_))));
        let array = forge(r#"{"alg":"ES256","kid":"ec"}"#, "[1]", &ec);
        assert!(matches!(verify(&array, &set, BOTH), Err(JoseError::Malformed(_))));
        // verify_raw does not care about the payload format.
        assert_eq!(verify_raw(&array, &set, BOTH).unwrap().payload, b"[1]");
        // Extras survive the round trip.
        let h = ok(r#"{"alg":"ES256","kid":"ec","x-custom":{"a":1}}"#).unwrap().header;
        assert_eq!(h.extra.get("x-custom"), Some(&json!({"a": 1})));
    }

    #[test]
    fn size_limits() {
        let (ec, _, set) = keys(9);
        let huge = format!("{}.{}.{}", "a".repeat(MAX_TOKEN_LEN), "b", "c");
        assert_eq!(verify(&huge, &set, BOTH), Err(JoseError::TooLong));
        // The largest payload that fits signs and verifies; one byte more is refused at signing.
        let header_len = b64_encode(&serde_json::to_vec(&Header::new(Algorithm::ES256)).unwrap()).len();
        let room = MAX_TOKEN_LEN - header_len - 1 - 87;
        let payload = vec![b'x'; room / 4 * 3];
        let token = sign_raw(&Header::new(Algorithm::ES256), &payload, &ec).unwrap();
        assert!(token.len() <= MAX_TOKEN_LEN);
        assert!(verify_raw(&token, &JwkSet::new(vec![ec.public_jwk()]), BOTH).is_ok());
        let too_big = vec![b'x'; room / 4 * 3 + 3];
        assert!(matches!(sign_raw(&Header::new(Algorithm::ES256), &too_big, &ec), Err(JoseError::Signing(_))));
        let _ = set;
    }

    #[test]
    fn signing_preconditions() {
        let (ec, ed, _) = keys(10);
        assert!(matches!(sign_raw(&Header::new(Algorithm::EdDSA), b"{}", &ec), Err(JoseError::Signing(_))));
        assert!(matches!(sign(None, &json!([1, 2]), &ed), Err(JoseError::Signing(_))));
        assert!(matches!(sign(None, &"text", &ed), Err(JoseError::Signing(_))));
        let mut crit = Header::new(Algorithm::EdDSA);
        crit.extra.insert("crit".into(), json!(["x"]));
        assert!(matches!(sign_raw(&crit, b"{}", &ed), Err(JoseError::Signing(_))));
        // Extras never duplicate a modelled member.
        let mut h = Header::new(Algorithm::EdDSA).with_kid("k").with_typ("JWT");
        h.extra.insert("alg".into(), json!("none"));
        h.extra.insert("kid".into(), json!("other"));
        h.extra.insert("zzz".into(), json!(1));
        assert_eq!(serde_json::to_string(&h).unwrap(), r#"{"alg":"EdDSA","kid":"k","typ":"JWT","zzz":1}"#);
        let token = sign_raw(&h, b"{}", &ed).unwrap();
        let set = JwkSet::new(vec![ed.public_jwk().with_kid("k")]);
        assert_eq!(verify(&token, &set, BOTH).unwrap().header.kid.as_deref(), Some("k"));
    }

    fn claims_strategy() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "\\PC{0,20}".prop_map(serde_json::Value::from),
        ];
        let value = leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("\\PC{0,8}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        });
        proptest::collection::btree_map("\\PC{0,12}", value, 0..8)
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_input(s in "\\PC{0,300}") {
            let (_, _, set) = keys(11);
            let _ = verify(&s, &set, BOTH);
        }

        #[test]
        fn never_panics_on_token_shaped_input(
            h in "[A-Za-z0-9_-]{0,60}", p in "[A-Za-z0-9_-]{0,60}", s in "[A-Za-z0-9_-]{0,90}",
            header in "\\PC{0,60}",
        ) {
            let (_, _, set) = keys(12);
            let _ = verify(&format!("{h}.{p}.{s}"), &set, BOTH);
            // A decodable header with arbitrary JSON-ish content.
            let _ = verify(&format!("{}.{p}.{s}", b64_encode(header.as_bytes())), &set, BOTH);
        }

        #[test]
        fn sign_verify_round_trip(claims in claims_strategy(), seed in any::<u64>(), ed in any::<bool>()) {
            let alg = if ed { Algorithm::EdDSA } else { Algorithm::ES256 };
            let key = PrivateKey::generate(alg, &mut SeededEntropy::new(seed), None);
            let set = JwkSet::new(vec![key.public_jwk()]);
            let token = sign(Some("JWT"), &claims, &key).unwrap();
            let v = verify(&token, &set, BOTH).unwrap();
            prop_assert_eq!(v.claims, claims);
        }

        #[test]
        fn any_single_character_change_fails(seed in any::<u64>(), idx in any::<prop::sample::Index>(), c in "[A-Za-z0-9_.=-]") {
            let key = PrivateKey::generate(Algorithm::EdDSA, &mut SeededEntropy::new(seed), None);
            let set = JwkSet::new(vec![key.public_jwk()]);
            let token = sign(None, &json!({"sub": "alice"}), &key).unwrap();
            let i = idx.index(token.len());
            prop_assume!(token[i..i + 1] != *c);
            let mut changed = token.clone();
            changed.replace_range(i..i + 1, &c);
            prop_assert!(verify(&changed, &set, BOTH).is_err());
        }
    }
}
