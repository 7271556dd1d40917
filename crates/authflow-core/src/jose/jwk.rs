//! JSON Web Keys (RFC 7517): public keys for ES256 (`{"kty":"EC","crv":"P-256","x","y"}`, RFC 7518 §6.2),
//! EdDSA (`{"kty":"OKP","crv":"Ed25519","x"}`, RFC 8037 §2) and RS256/PS256 (`{"kty":"RSA","n","e"}`,
//! RFC 7518 §6.3; verification only), key sets, signing keys, and RFC 7638 thumbprints.
//!
//! A key of another type (`oct`, `P-384`, `X25519`, …) parses as an *unsupported* [`Jwk`] that never
//! verifies anything, so a JWKS that mixes key types still works for the keys authflow understands. Inside
//! a [`JwkSet`] a key that is invalid (a point off the curve, a wrong length, an RSA modulus below
//! [`RSA_MIN_BITS`]) is dropped rather than failing the whole set; [`Jwk::parse`] on its own reports it.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{b64_decode, b64_encode, Algorithm, JoseError};
use crate::entropy::Entropy;

/// Most keys a [`JwkSet`] holds. Bounds parsing work on a fetched document; real sets hold two or three.
pub const MAX_JWKS_KEYS: usize = 64;

/// Smallest RSA modulus accepted, in bits (RFC 7518 §3.3 requires 2048; NIST deprecated smaller keys).
pub const RSA_MIN_BITS: usize = 2048;

/// Largest RSA modulus accepted, in bits: ring's limit, and a bound on the work one hostile key can cost.
pub const RSA_MAX_BITS: usize = 8192;

/// Largest RSA public exponent accepted (ring's limit; real keys use 65537).
const RSA_MAX_EXPONENT: u64 = (1 << 33) - 1;

/// Attempts at drawing a valid P-256 scalar before concluding the entropy source is broken. A uniformly
/// random 32-byte string is invalid with probability about 2^-32, so 64 failures in a row never happen.
const MAX_KEYGEN_ATTEMPTS: usize = 64;

/// The key itself, already decoded and checked, so verification never re-parses it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Material {
    Es256(p256::ecdsa::VerifyingKey),
    EdDsa(ed25519_dalek::VerifyingKey),
    Rsa(RsaPublicKey),
    /// A key type authflow does not use; kept so a mixed JWKS parses.
    Unsupported {
        kty: String,
        crv: Option<String>,
    },
}

/// An RSA public key, checked: modulus of [`RSA_MIN_BITS`] to [`RSA_MAX_BITS`] bits and odd, exponent odd
/// and from 3 to 2^33 - 1, both big-endian without leading zeros (as ring takes them).
#[derive(Clone, PartialEq, Eq)]
struct RsaPublicKey {
    n: Vec<u8>,
    e: Vec<u8>,
}

impl fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaPublicKey").field("bits", &bit_length(&self.n)).field("e", &self.e).finish()
    }
}

/// The number of significant bits of a big-endian unsigned integer without leading zero bytes.
fn bit_length(bytes: &[u8]) -> usize {
    match bytes.first() {
        None => 0,
        Some(first) => bytes.len() * 8 - first.leading_zeros() as usize,
    }
}

/// Decode a Base64urlUInt member (RFC 7518 §2). Leading zero bytes, which the RFC forbids but some
/// producers emit, are dropped rather than refused: the integer is the same.
fn base64url_uint(value: Option<&str>, missing: &'static str, bad: &'static str) -> Result<Vec<u8>, JoseError> {
    let s = value.ok_or(JoseError::InvalidKey(missing))?;
    // An 8192-bit modulus is 1366 characters; refuse anything much longer before decoding it.
    if s.len() > 2 * (RSA_MAX_BITS / 6) {
        return Err(JoseError::InvalidKey("the RSA key is far too large"));
    }
    let bytes = b64_decode(s).ok_or(JoseError::InvalidKey(bad))?;
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    Ok(bytes[start..].to_vec())
}

impl RsaPublicKey {
    fn from_members(n: Option<&str>, e: Option<&str>) -> Result<RsaPublicKey, JoseError> {
        let n = base64url_uint(n, "n is missing", "n is not base64url")?;
        let e = base64url_uint(e, "e is missing", "e is not base64url")?;
        let bits = bit_length(&n);
        if bits < RSA_MIN_BITS {
            return Err(JoseError::InvalidKey("the RSA modulus is shorter than 2048 bits"));
        }
        if bits > RSA_MAX_BITS {
            return Err(JoseError::InvalidKey("the RSA modulus is longer than 8192 bits"));
        }
        if n.last().is_none_or(|b| b & 1 == 0) {
            return Err(JoseError::InvalidKey("the RSA modulus is even"));
        }
        let exponent = (e.len() <= 5).then(|| e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)));
        if !exponent.is_some_and(|v| (3..=RSA_MAX_EXPONENT).contains(&v) && v & 1 == 1) {
            return Err(JoseError::InvalidKey("the RSA exponent is not an odd number from 3 to 2^33 - 1"));
        }
        Ok(RsaPublicKey { n, e })
    }

    /// Check an RS256 or PS256 signature with ring (the parameters' 2048–8192-bit range matches ours).
    fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        use ring::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256};
        let params = match alg {
            Algorithm::RS256 => &RSA_PKCS1_2048_8192_SHA256,
            Algorithm::PS256 => &RSA_PSS_2048_8192_SHA256,
            Algorithm::ES256 | Algorithm::EdDSA => return false,
        };
        // RFC 8017 §8.2.2 step 1 / §8.1.2 step 1: the signature is exactly as long as the modulus. Checked
        // here first so a wrong-length signature costs no modular arithmetic.
        signature.len() == self.n.len()
            && RsaPublicKeyComponents { n: &self.n, e: &self.e }.verify(params, message, signature).is_ok()
    }
}

/// A public JSON Web Key. Equality compares the key and its `kid`, `alg` and `use`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawJwk", into = "RawJwk")]
pub struct Jwk {
    material: Material,
    kid: Option<String>,
    alg: Option<String>,
    key_use: Option<String>,
}

/// The wire form. Only the members authflow reads; others (`key_ops`, `x5c`, …) are ignored.
#[derive(Serialize, Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<String>,
    // Read only to refuse it: a private key has no business in a public key document.
    #[serde(default, skip_serializing)]
    d: Option<serde::de::IgnoredAny>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alg: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    key_use: Option<String>,
}

fn coordinate(value: Option<&str>, missing: &'static str, bad: &'static str) -> Result<[u8; 32], JoseError> {
    let s = value.ok_or(JoseError::InvalidKey(missing))?;
    // RFC 7518 §6.2.1.2 / RFC 8037 §2: the full 32 bytes, leading zeros included.
    b64_decode(s).and_then(|b| <[u8; 32]>::try_from(b).ok()).ok_or(JoseError::InvalidKey(bad))
}

impl TryFrom<RawJwk> for Jwk {
    type Error = JoseError;
    fn try_from(raw: RawJwk) -> Result<Self, Self::Error> {
        let material = match (raw.kty.as_str(), raw.crv.as_deref()) {
            ("EC", Some("P-256")) | ("OKP", Some("Ed25519")) | ("RSA", _) if raw.d.is_some() => {
                return Err(JoseError::InvalidKey("a public JWK must not contain the private key member d"));
            }
            ("EC", Some("P-256")) => {
                let x = coordinate(raw.x.as_deref(), "x is missing", "x is not 32 bytes of base64url")?;
                let y = coordinate(raw.y.as_deref(), "y is missing", "y is not 32 bytes of base64url")?;
                let point = p256::EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
                let key = p256::ecdsa::VerifyingKey::from_encoded_point(&point)
                    .map_err(|_| JoseError::InvalidKey("the point is not on P-256"))?;
                Material::Es256(key)
            }
            ("OKP", Some("Ed25519")) => {
                let x = coordinate(raw.x.as_deref(), "x is missing", "x is not 32 bytes of base64url")?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&x)
                    .map_err(|_| JoseError::InvalidKey("x is not an Ed25519 public key"))?;
                // A small-order key lets one signature verify for many messages.
                if key.is_weak() {
                    return Err(JoseError::InvalidKey("x is a weak Ed25519 public key"));
                }
                Material::EdDsa(key)
            }
            ("RSA", _) => Material::Rsa(RsaPublicKey::from_members(raw.n.as_deref(), raw.e.as_deref())?),
            _ => Material::Unsupported { kty: raw.kty, crv: raw.crv },
        };
        Ok(Jwk { material, kid: raw.kid, alg: raw.alg, key_use: raw.key_use })
    }
}

impl From<Jwk> for RawJwk {
    fn from(jwk: Jwk) -> RawJwk {
        let (mut n, mut e) = (None, None);
        let (kty, crv, x, y) = match &jwk.material {
            Material::Es256(k) => {
                let (x, y) = ec_coordinates(k);
                ("EC".to_owned(), Some("P-256".to_owned()), Some(x), Some(y))
            }
            Material::EdDsa(k) => ("OKP".to_owned(), Some("Ed25519".to_owned()), Some(b64_encode(k.as_bytes())), None),
            Material::Rsa(k) => {
                (n, e) = (Some(b64_encode(&k.n)), Some(b64_encode(&k.e)));
                ("RSA".to_owned(), None, None, None)
            }
            Material::Unsupported { kty, crv } => (kty.clone(), crv.clone(), None, None),
        };
        RawJwk { kty, crv, x, y, n, e, d: None, kid: jwk.kid, alg: jwk.alg, key_use: jwk.key_use }
    }
}

/// The base64url `x` and `y` of a P-256 key.
fn ec_coordinates(key: &p256::ecdsa::VerifyingKey) -> (String, String) {
    let point = key.to_encoded_point(false);
    // An uncompressed encoding of a valid (non-identity) key always has both coordinates.
    let x = point.x().map(|x| b64_encode(x)).unwrap_or_default();
    let y = point.y().map(|y| b64_encode(y)).unwrap_or_default();
    (x, y)
}

impl Jwk {
    /// Parse one JWK strictly: malformed JSON is [`JoseError::Malformed`], an invalid P-256, Ed25519 or RSA
    /// key (an RSA modulus outside [`RSA_MIN_BITS`]..=[`RSA_MAX_BITS`], a bad exponent, or any key carrying
    /// its private part `d`) is [`JoseError::InvalidKey`]. Other key types parse as unsupported keys.
    pub fn parse(json: &str) -> Result<Jwk, JoseError> {
        let raw: RawJwk = serde_json::from_str(json).map_err(|_| JoseError::Malformed("not a JWK"))?;
        Jwk::try_from(raw)
    }

    /// Parse one JWK from a JSON value (as found inside a larger document), with [`Jwk::parse`]'s rules.
    pub fn from_value(value: serde_json::Value) -> Result<Jwk, JoseError> {
        let raw: RawJwk = serde_json::from_value(value).map_err(|_| JoseError::Malformed("not a JWK"))?;
        Jwk::try_from(raw)
    }

    /// The key id.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The `alg` member, if present (any string; only one of the key's [`Jwk::algorithms`] can match a token).
    pub fn alg(&self) -> Option<&str> {
        self.alg.as_deref()
    }

    /// The `use` member, if present (`sig` for signing keys).
    pub fn key_use(&self) -> Option<&str> {
        self.key_use.as_deref()
    }

    /// The key type, e.g. `EC`, `OKP`, `RSA`.
    pub fn kty(&self) -> &str {
        match &self.material {
            Material::Es256(_) => "EC",
            Material::EdDsa(_) => "OKP",
            Material::Rsa(_) => "RSA",
            Material::Unsupported { kty, .. } => kty,
        }
    }

    /// The curve, e.g. `P-256`, `Ed25519`; `None` for RSA.
    pub fn crv(&self) -> Option<&str> {
        match &self.material {
            Material::Es256(_) => Some("P-256"),
            Material::EdDsa(_) => Some("Ed25519"),
            Material::Rsa(_) => None,
            Material::Unsupported { crv, .. } => crv.as_deref(),
        }
    }

    /// The size of an RSA key's modulus in bits; `None` for other keys.
    pub fn rsa_modulus_bits(&self) -> Option<usize> {
        match &self.material {
            Material::Rsa(k) => Some(bit_length(&k.n)),
            _ => None,
        }
    }

    /// Every algorithm this key's type and curve can verify: ES256 for EC P-256, EdDSA for OKP Ed25519,
    /// RS256 and PS256 for RSA, none for an unsupported key. The `alg` member may narrow it to one.
    pub fn algorithms(&self) -> &'static [Algorithm] {
        match self.material {
            Material::Es256(_) => &[Algorithm::ES256],
            Material::EdDsa(_) => &[Algorithm::EdDSA],
            Material::Rsa(_) => &[Algorithm::RS256, Algorithm::PS256],
            Material::Unsupported { .. } => &[],
        }
    }

    /// The one algorithm this key is for: the only one of [`Jwk::algorithms`] (EC, OKP), or for an RSA key
    /// the one its `alg` member names. `None` for an unsupported key, or an RSA key without a usable `alg`.
    pub fn algorithm(&self) -> Option<Algorithm> {
        match self.algorithms() {
            [only] => Some(*only),
            several => several.iter().copied().find(|a| self.alg.as_deref() == Some(a.as_str())),
        }
    }

    /// Whether authflow can verify with this key.
    pub fn is_supported(&self) -> bool {
        !self.algorithms().is_empty()
    }

    /// The same key with this `kid`.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Jwk {
        self.kid = Some(kid.into());
        self
    }

    /// The same key pinned to its algorithm (`alg`, when [`Jwk::algorithm`] names one) and to signatures
    /// (`use: "sig"`); a no-op on an unsupported key.
    pub fn pinned(mut self) -> Jwk {
        if let Some(alg) = self.algorithm() {
            self.alg = Some(alg.as_str().to_owned());
        }
        if self.is_supported() {
            self.key_use = Some("sig".to_owned());
        }
        self
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url: the hash of the required members only, in lexicographic
    /// order and without whitespace (`{"crv","kty","x","y"}` for EC, `{"crv","kty","x"}` for OKP,
    /// `{"e","kty","n"}` for RSA), so it ignores `kid`, `alg` and `use`. `None` for an unsupported key.
    pub fn thumbprint_sha256(&self) -> Option<String> {
        // The members are fixed names and base64url values: nothing needs JSON escaping.
        let canonical = match &self.material {
            Material::Es256(k) => {
                let (x, y) = ec_coordinates(k);
                format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#)
            }
            Material::EdDsa(k) => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64_encode(k.as_bytes())),
            Material::Rsa(k) => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64_encode(&k.e), b64_encode(&k.n)),
            Material::Unsupported { .. } => return None,
        };
        Some(b64_encode(&Sha256::digest(canonical.as_bytes())))
    }

    /// Whether this key may verify a token signed with `alg`: one of the key type's [`Jwk::algorithms`], a
    /// matching `alg` if the key names one, and `use` absent or `sig` (RFC 7517 §4.2, RFC 8725 §3.1).
    pub fn usable_for(&self, alg: Algorithm) -> bool {
        self.algorithms().contains(&alg)
            && self.alg.as_deref().is_none_or(|a| a == alg.as_str())
            && self.key_use.as_deref().is_none_or(|u| u == "sig")
    }

    /// Check `signature` over `message`. `false` for a key of another algorithm or a signature of the wrong
    /// length: exactly 64 bytes for ES256 (`r || s`, never DER) and EdDSA, the modulus length for RSA.
    pub(crate) fn verify_signature(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier;
        match (&self.material, alg) {
            (Material::Es256(key), Algorithm::ES256) => {
                // from_slice takes exactly 64 bytes and refuses r or s of zero or not below the group order.
                p256::ecdsa::Signature::from_slice(signature).is_ok_and(|sig| key.verify(message, &sig).is_ok())
            }
            (Material::EdDsa(key), Algorithm::EdDSA) => match <[u8; 64]>::try_from(signature) {
                // verify_strict also refuses non-canonical R and small-order components (malleability).
                Ok(bytes) => key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&bytes)).is_ok(),
                Err(_) => false,
            },
            (Material::Rsa(key), Algorithm::RS256 | Algorithm::PS256) => key.verify(alg, message, signature),
            _ => false,
        }
    }
}

/// A JWK Set (RFC 7517 §5): the keys a token may be verified with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwkSet {
    keys: Vec<Jwk>,
}

impl JwkSet {
    /// A set of these keys.
    pub fn new(keys: Vec<Jwk>) -> JwkSet {
        JwkSet { keys }
    }

    /// Parse `{"keys":[…]}`. The document must be an object with a `keys` array of at most
    /// [`MAX_JWKS_KEYS`] entries; an entry that is not a valid JWK is dropped (see the module docs).
    pub fn parse(json: &str) -> Result<JwkSet, JoseError> {
        let value: serde_json::Value = serde_json::from_str(json).map_err(|_| JoseError::Malformed("not a JWK set"))?;
        JwkSet::from_value(value)
    }

    /// [`JwkSet::parse`] from an already-parsed JSON value.
    pub fn from_value(value: serde_json::Value) -> Result<JwkSet, JoseError> {
        let serde_json::Value::Object(mut doc) = value else {
            return Err(JoseError::Malformed("a JWK set must be a JSON object"));
        };
        let Some(serde_json::Value::Array(entries)) = doc.remove("keys") else {
            return Err(JoseError::Malformed("a JWK set needs a keys array"));
        };
        if entries.len() > MAX_JWKS_KEYS {
            return Err(JoseError::InvalidKey("the JWK set has too many keys"));
        }
        Ok(JwkSet { keys: entries.into_iter().filter_map(|v| Jwk::from_value(v).ok()).collect() })
    }

    /// The keys, including unsupported ones.
    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    /// Add a key.
    pub fn push(&mut self, key: Jwk) {
        self.keys.push(key);
    }

    /// The first key with this `kid`.
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid() == Some(kid))
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl Serialize for JwkSet {
    /// `{"keys":[…]}` with the supported keys only: an unsupported key could not be written out faithfully.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Doc<'a> {
            keys: Vec<&'a Jwk>,
        }
        Doc { keys: self.keys.iter().filter(|k| k.is_supported()).collect() }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for JwkSet {
    /// Lenient per key, like [`JwkSet::parse`].
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        JwkSet::from_value(value).map_err(serde::de::Error::custom)
    }
}

impl FromIterator<Jwk> for JwkSet {
    fn from_iter<I: IntoIterator<Item = Jwk>>(iter: I) -> Self {
        JwkSet::new(iter.into_iter().collect())
    }
}

#[derive(Clone)]
enum Secret {
    Es256(p256::ecdsa::SigningKey),
    EdDsa(ed25519_dalek::SigningKey),
}

/// A signing key with its `kid`. Its `Debug` shows the algorithm and `kid`, never the secret.
#[derive(Clone)]
pub struct PrivateKey {
    secret: Secret,
    kid: String,
}

impl PrivateKey {
    /// A fresh key for `alg` from 32 bytes of `entropy` (a P-256 scalar is redrawn in the rare case the
    /// bytes are zero or not below the group order). Without a `kid` the key's RFC 7638 thumbprint is used.
    ///
    /// # Panics
    /// If `alg` is not one of [`Algorithm::SIGNING`] (authflow never signs with RSA), or if the entropy
    /// source returns 64 invalid P-256 scalars in a row, which only a broken source does.
    pub fn generate(alg: Algorithm, entropy: &mut impl Entropy, kid: Option<String>) -> PrivateKey {
        let mut bytes = [0u8; 32];
        let secret = match alg {
            Algorithm::EdDSA => {
                entropy.fill_bytes(&mut bytes);
                Secret::EdDsa(ed25519_dalek::SigningKey::from_bytes(&bytes))
            }
            Algorithm::ES256 => {
                let key = (0..MAX_KEYGEN_ATTEMPTS).find_map(|_| {
                    entropy.fill_bytes(&mut bytes);
                    p256::ecdsa::SigningKey::from_bytes(&bytes.into()).ok()
                });
                match key {
                    Some(key) => Secret::Es256(key),
                    None => panic!("the entropy source returned {MAX_KEYGEN_ATTEMPTS} invalid P-256 scalars"),
                }
            }
            Algorithm::RS256 | Algorithm::PS256 => panic!("authflow signs with ES256 or EdDSA only, not {alg}"),
        };
        bytes.fill(0);
        PrivateKey::with_default_kid(secret, kid)
    }

    /// A key from its stored form ([`PrivateKey::to_bytes`]): the 32-byte P-256 scalar (big-endian) or the
    /// 32-byte Ed25519 seed. The `kid` is the thumbprint; change it with [`PrivateKey::with_kid`]. An
    /// algorithm outside [`Algorithm::SIGNING`] is [`JoseError::InvalidKey`].
    pub fn from_bytes(alg: Algorithm, bytes: &[u8]) -> Result<PrivateKey, JoseError> {
        let bytes: &[u8; 32] = bytes.try_into().map_err(|_| JoseError::InvalidKey("a private key is 32 bytes"))?;
        let secret = match alg {
            Algorithm::EdDSA => Secret::EdDsa(ed25519_dalek::SigningKey::from_bytes(bytes)),
            Algorithm::ES256 => Secret::Es256(
                p256::ecdsa::SigningKey::from_bytes(&(*bytes).into())
                    .map_err(|_| JoseError::InvalidKey("not a valid P-256 private scalar"))?,
            ),
            Algorithm::RS256 | Algorithm::PS256 => {
                return Err(JoseError::InvalidKey("authflow signs with ES256 or EdDSA only"))
            }
        };
        Ok(PrivateKey::with_default_kid(secret, None))
    }

    fn with_default_kid(secret: Secret, kid: Option<String>) -> PrivateKey {
        let mut key = PrivateKey { secret, kid: String::new() };
        key.kid = kid.unwrap_or_else(|| key.public_jwk_bare().thumbprint_sha256().unwrap_or_default());
        key
    }

    /// The stored form: the P-256 scalar or the Ed25519 seed. Secret: encrypt it at rest.
    pub fn to_bytes(&self) -> [u8; 32] {
        match &self.secret {
            Secret::Es256(k) => k.to_bytes().into(),
            Secret::EdDsa(k) => k.to_bytes(),
        }
    }

    /// The same key under another `kid`.
    pub fn with_kid(mut self, kid: impl Into<String>) -> PrivateKey {
        self.kid = kid.into();
        self
    }

    /// The key id put in the header of every token this key signs.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        match self.secret {
            Secret::Es256(_) => Algorithm::ES256,
            Secret::EdDsa(_) => Algorithm::EdDSA,
        }
    }

    fn public_jwk_bare(&self) -> Jwk {
        let material = match &self.secret {
            Secret::Es256(k) => Material::Es256(*k.verifying_key()),
            Secret::EdDsa(k) => Material::EdDsa(k.verifying_key()),
        };
        Jwk { material, kid: None, alg: None, key_use: None }
    }

    /// The public JWK to publish: the key with its `kid`, `alg` and `use: "sig"`.
    pub fn public_jwk(&self) -> Jwk {
        self.public_jwk_bare().with_kid(self.kid.clone()).pinned()
    }

    /// Sign `message`: 64 bytes, `r || s` for ES256 (RFC 6979 deterministic nonce), `R || S` for Ed25519.
    pub(crate) fn sign_bytes(&self, message: &[u8]) -> Result<[u8; 64], JoseError> {
        use p256::ecdsa::signature::Signer;
        match &self.secret {
            Secret::Es256(k) => {
                let sig: p256::ecdsa::Signature =
                    k.try_sign(message).map_err(|_| JoseError::Signing("ECDSA signing failed"))?;
                Ok(sig.to_bytes().into())
            }
            Secret::EdDsa(k) => Ok(k.sign(message).to_bytes()),
        }
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey").field("alg", &self.algorithm()).field("kid", &self.kid).finish_non_exhaustive()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;
    use proptest::prelude::*;

    // RFC 8037 Appendix A.1 / A.2 / A.3.
    pub(crate) const RFC8037_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    pub(crate) const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    const RFC8037_THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";

    // RFC 7515 Appendix A.3.1.
    pub(crate) const RFC7515_EC_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    pub(crate) const RFC7515_EC_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
    pub(crate) const RFC7515_EC_D: &str = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";

    #[test]
    fn rfc8037_key_and_thumbprint() {
        // A.1: the private key's public half is A.2's x.
        let key = PrivateKey::from_bytes(Algorithm::EdDSA, &b64_decode(RFC8037_D).unwrap()).unwrap();
        let jwk = key.public_jwk();
        assert_eq!(serde_json::to_value(&jwk).unwrap()["x"], RFC8037_X);
        // A.3: the thumbprint, which is also the default kid.
        assert_eq!(jwk.thumbprint_sha256().unwrap(), RFC8037_THUMBPRINT);
        assert_eq!(key.kid(), RFC8037_THUMBPRINT);
        let parsed = Jwk::parse(&format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{RFC8037_X}"}}"#)).unwrap();
        assert_eq!(parsed.thumbprint_sha256().unwrap(), RFC8037_THUMBPRINT);
        assert_eq!(parsed.algorithm(), Some(Algorithm::EdDSA));
    }

    #[test]
    fn ec_thumbprint_uses_the_required_members_in_order() {
        let json = format!(
            r#"{{"y":"{RFC7515_EC_Y}","x":"{RFC7515_EC_X}","kty":"EC","kid":"k1","use":"sig","crv":"P-256","alg":"ES256"}}"#
        );
        let jwk = Jwk::parse(&json).unwrap();
        // Recomputed by hand from RFC 7638 §3.2: lexicographic order, no whitespace, required members only.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{RFC7515_EC_X}","y":"{RFC7515_EC_Y}"}}"#);
        assert_eq!(jwk.thumbprint_sha256().unwrap(), b64_encode(&Sha256::digest(canonical.as_bytes())));
        // Metadata does not change the identity of the key.
        let bare = Jwk::parse(&format!(r#"{{"kty":"EC","crv":"P-256","x":"{RFC7515_EC_X}","y":"{RFC7515_EC_Y}"}}"#));
        assert_eq!(bare.unwrap().thumbprint_sha256(), jwk.thumbprint_sha256());
        assert_eq!((jwk.kid(), jwk.alg(), jwk.key_use()), (Some("k1"), Some("ES256"), Some("sig")));
        // The RFC 7515 A.3 private key matches this public key.
        let key = PrivateKey::from_bytes(Algorithm::ES256, &b64_decode(RFC7515_EC_D).unwrap()).unwrap();
        assert_eq!(key.public_jwk().thumbprint_sha256(), jwk.thumbprint_sha256());
    }

    #[test]
    fn unsupported_keys_parse_and_are_skipped_on_output() {
        let oct = Jwk::parse(r#"{"kty":"oct","k":"c2VjcmV0","alg":"HS256","kid":"2011-04-29"}"#).unwrap();
        assert!(!oct.is_supported());
        assert_eq!((oct.kty(), oct.crv(), oct.thumbprint_sha256()), ("oct", None, None));
        assert!(Algorithm::ALL.into_iter().all(|a| !oct.usable_for(a)));
        assert_eq!((oct.algorithm(), oct.algorithms()), (None, &[][..]));
        let p384 = Jwk::parse(r#"{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}"#).unwrap();
        assert_eq!((p384.algorithm(), p384.crv()), (None, Some("P-384")));
        let x25519 = Jwk::parse(r#"{"kty":"OKP","crv":"X25519","x":"AA"}"#).unwrap();
        assert!(!x25519.is_supported());

        let ed = PrivateKey::generate(Algorithm::EdDSA, &mut SeededEntropy::new(1), Some("ed".into())).public_jwk();
        let set = JwkSet::new(vec![oct, ed.clone()]);
        let out = serde_json::to_value(&set).unwrap();
        assert_eq!(out["keys"].as_array().unwrap().len(), 1);
        assert_eq!(out["keys"][0]["kid"], "ed");
        assert_eq!(out["keys"][0]["alg"], "EdDSA");
        assert_eq!(out["keys"][0]["use"], "sig");
        assert!(out["keys"][0].get("d").is_none());
        assert_eq!(serde_json::from_value::<JwkSet>(out).unwrap(), JwkSet::new(vec![ed]));
    }

    #[test]
    fn invalid_keys_are_refused_alone_and_dropped_from_sets() {
        let off_curve = format!(r#"{{"kty":"EC","crv":"P-256","x":"{RFC7515_EC_X}","y":"{RFC7515_EC_X}"}}"#);
        assert_eq!(Jwk::parse(&off_curve), Err(JoseError::InvalidKey("the point is not on P-256")));
        let short = r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA"}"#;
        assert!(matches!(Jwk::parse(short), Err(JoseError::InvalidKey(_))));
        let padded = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{RFC8037_X}="}}"#);
        assert!(matches!(Jwk::parse(&padded), Err(JoseError::InvalidKey(_))));
        let no_y = format!(r#"{{"kty":"EC","crv":"P-256","x":"{RFC7515_EC_X}"}}"#);
        assert_eq!(Jwk::parse(&no_y), Err(JoseError::InvalidKey("y is missing")));
        let with_d = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{RFC8037_X}","d":"{RFC8037_D}"}}"#);
        assert!(matches!(Jwk::parse(&with_d), Err(JoseError::InvalidKey(_))));
        // The identity (all zeros is a small-order Ed25519 point).
        let weak = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#, b64_encode(&[0u8; 32]));
        assert!(matches!(Jwk::parse(&weak), Err(JoseError::InvalidKey(_))));
        assert_eq!(Jwk::parse("[]"), Err(JoseError::Malformed("not a JWK")));
        assert_eq!(Jwk::parse(r#"{"kty":1}"#), Err(JoseError::Malformed("not a JWK")));

        let good = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{RFC8037_X}","kid":"good"}}"#);
        let set = JwkSet::parse(&format!(r#"{{"keys":[{off_curve},{short},{good},{with_d},7,{{}}]}}"#)).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.find("good").is_some());
        assert!(set.find("bad").is_none());
    }

    #[test]
    fn jwk_set_shape() {
        assert_eq!(JwkSet::parse(r#"{"keys":[]}"#).unwrap(), JwkSet::default());
        assert!(JwkSet::parse(r#"{"keys":[]}"#).unwrap().is_empty());
        for bad in [r#"[]"#, r#"{}"#, r#"{"keys":{}}"#, r#"{"keys":null}"#, "", "{"] {
            assert!(matches!(JwkSet::parse(bad), Err(JoseError::Malformed(_))), "{bad:?}");
        }
        let many = format!(r#"{{"keys":[{}]}}"#, vec!["{}"; MAX_JWKS_KEYS + 1].join(","));
        assert!(matches!(JwkSet::parse(&many), Err(JoseError::InvalidKey(_))));
        let mut set: JwkSet = std::iter::empty().collect();
        set.push(PrivateKey::generate(Algorithm::ES256, &mut SeededEntropy::new(2), None).public_jwk());
        assert_eq!(set.keys().len(), 1);
    }

    #[test]
    fn private_key_storage_round_trip_and_debug() {
        let mut e = SeededEntropy::new(5);
        for alg in Algorithm::SIGNING {
            let key = PrivateKey::generate(alg, &mut e, None);
            assert_eq!(key.algorithm(), alg);
            assert_eq!(key.kid(), key.public_jwk().thumbprint_sha256().unwrap());
            let again = PrivateKey::from_bytes(alg, &key.to_bytes()).unwrap();
            assert_eq!(again.public_jwk(), key.public_jwk());
            assert_eq!(again.with_kid("k").kid(), "k");
            let shown = format!("{key:?}");
            assert!(shown.starts_with("PrivateKey { alg: "), "{shown}");
            assert!(!shown.contains(&b64_encode(&key.to_bytes())));
            let jwk = key.public_jwk();
            assert_eq!((jwk.alg(), jwk.key_use(), jwk.kty()), (Some(alg.as_str()), Some("sig"), alg.kty()));
            assert_eq!(Jwk::parse(&serde_json::to_string(&jwk).unwrap()).unwrap(), jwk);
        }
        assert!(PrivateKey::from_bytes(Algorithm::ES256, &[0u8; 32]).is_err(), "zero scalar");
        assert!(PrivateKey::from_bytes(Algorithm::ES256, &[0xffu8; 32]).is_err(), "scalar above the order");
        assert!(PrivateKey::from_bytes(Algorithm::EdDSA, &[1u8; 31]).is_err());
        let fixed = PrivateKey::generate(Algorithm::EdDSA, &mut SeededEntropy::new(5), Some("mine".into()));
        assert_eq!(fixed.kid(), "mine");
    }

    /// Hands out all-ones bytes (an invalid P-256 scalar) a few times before behaving.
    struct Stubborn(usize, SeededEntropy);
    impl Entropy for Stubborn {
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            if self.0 > 0 {
                self.0 -= 1;
                dest.fill(0xff);
            } else {
                self.1.fill_bytes(dest);
            }
        }
    }

    #[test]
    fn p256_generation_redraws_invalid_scalars() {
        let key = PrivateKey::generate(Algorithm::ES256, &mut Stubborn(3, SeededEntropy::new(1)), None);
        let expected = PrivateKey::generate(Algorithm::ES256, &mut SeededEntropy::new(1), None);
        assert_eq!(key.to_bytes(), expected.to_bytes());
    }

    #[test]
    #[should_panic(expected = "invalid P-256 scalars")]
    fn p256_generation_gives_up_on_a_broken_source() {
        PrivateKey::generate(Algorithm::ES256, &mut Stubborn(usize::MAX, SeededEntropy::new(1)), None);
    }

    #[test]
    fn usable_for_respects_alg_and_use() {
        let base = format!(r#""kty":"OKP","crv":"Ed25519","x":"{RFC8037_X}""#);
        let jwk = |extra: &str| Jwk::parse(&format!("{{{base}{extra}}}")).unwrap();
        assert!(jwk("").usable_for(Algorithm::EdDSA));
        assert!(!jwk("").usable_for(Algorithm::ES256));
        assert!(!jwk("").usable_for(Algorithm::RS256) && !jwk(r#","alg":"RS256""#).usable_for(Algorithm::RS256));
        assert!(jwk(r#","alg":"EdDSA","use":"sig""#).usable_for(Algorithm::EdDSA));
        assert!(!jwk(r#","alg":"HS256""#).usable_for(Algorithm::EdDSA));
        assert!(!jwk(r#","use":"enc""#).usable_for(Algorithm::EdDSA));
    }

    proptest! {
        #[test]
        fn jwk_parsing_never_panics(s in "\\PC{0,200}") {
            let _ = Jwk::parse(&s);
            let _ = JwkSet::parse(&s);
        }

        #[test]
        fn jwk_members_never_panic(
            kty in "(EC|OKP|RSA|oct)",
            crv in proptest::option::of("(P-256|Ed25519|P-384)"),
            x in proptest::option::of("[A-Za-z0-9_=+/-]{0,50}"),
            y in proptest::option::of("[A-Za-z0-9_=+/-]{0,50}"),
        ) {
            let v = serde_json::json!({"kty": kty, "crv": crv, "x": x, "y": y});
            if let Ok(jwk) = Jwk::from_value(v) {
                let _ = jwk.thumbprint_sha256();
                let _ = serde_json::to_string(&jwk).unwrap();
            }
        }

        #[test]
        fn generated_keys_round_trip(seed in any::<u64>(), ed in any::<bool>()) {
            let alg = if ed { Algorithm::EdDSA } else { Algorithm::ES256 };
            let key = PrivateKey::generate(alg, &mut SeededEntropy::new(seed), None);
            let jwk = key.public_jwk();
            let json = serde_json::to_string(&jwk).unwrap();
            prop_assert_eq!(Jwk::parse(&json).unwrap(), jwk);
            let again = PrivateKey::from_bytes(alg, &key.to_bytes()).unwrap();
            prop_assert_eq!(again.kid(), key.kid());
        }
    }
}
