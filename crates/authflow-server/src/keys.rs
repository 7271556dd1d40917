//! Signing keys: created on first use, kept in storage (so every replica signs with and publishes the same
//! keys), cached in memory and re-read periodically so a rotation reaches every replica without a restart.
//!
//! With a [`KeyEncryptionKey`] the private keys are stored sealed with AES-256-GCM (the key id bound as
//! associated data, so a sealed key cannot be passed off under another id); a database dump alone then
//! cannot sign tokens.
//!
//! [`KeyRing::rotate`] publishes the new key at once but signs with it only after an overlap, long enough
//! for every replica (re-reading every 60 s) and every resource server (caching the JWKS for at most
//! 5 minutes) to know it; the old key then stops signing and stays published until the tokens it signed
//! have expired.
//!
//! New keys are of the ring's algorithm, ES256 or EdDSA (authflow never signs with RSA). When the key
//! signing today is of another algorithm (the deployment's `signing_algorithm` changed), the ring rotates
//! by itself, the same way: a key of the configured algorithm is published at once and signs after
//! [`ROTATION_OVERLAP`]; the old key signs until then and stays published for the ring's keep-published time
//! (see [`KeyRing::with_rotation`]), so every token it signed keeps verifying until it expires.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use authflow_core::jose::{Algorithm, Jwk, JwkSet, PrivateKey};
use authflow_core::Entropy;
use authflow_core::UnixTime;
use authflow_store::{SigningKey, Store, StoreError};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use crate::OsEntropy;

/// How long a replica trusts its cached view of the keys.
const REFRESH_EVERY: Duration = Duration::from_secs(60);

/// Between publishing a new key and signing with it, by default: resource servers cache the JWKS for up to
/// 5 minutes and replicas re-read the keys every minute (`authflow key rotate --overlap-secs`' default).
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(600);

/// How long a key that stopped signing stays published, by default: the default access-token (and ID
/// token) lifetime, 1 hour, plus the default clock skew.
pub const KEEP_PUBLISHED: Duration = Duration::from_secs(3600 + 60);

#[derive(Debug)]
struct Snapshot {
    read_at: UnixTime,
    signing: Option<PrivateKey>,
    published: JwkSet,
    /// Whether a key of the ring's algorithm signs now or will (published, not retired yet).
    has_own_algorithm: bool,
}

/// The deployment's signing keys.
#[derive(Debug)]
pub struct KeyRing {
    store: Arc<dyn Store>,
    algorithm: Algorithm,
    encryption: Option<KeyEncryptionKey>,
    overlap: Duration,
    keep_published: Duration,
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    /// One refresh at a time in this process, so concurrent requests never create or rotate twice.
    refreshing: tokio::sync::Mutex<()>,
}

/// An algorithm authflow does not sign with (only ES256 and EdDSA are signing algorithms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("authflow signs with ES256 or EdDSA only, not {0}")]
pub struct UnsupportedSigningAlgorithm(pub Algorithm);

/// `algorithm` if authflow signs with it ([`Algorithm::SIGNING`]: ES256, EdDSA), else the error.
pub fn signing_algorithm(algorithm: Algorithm) -> Result<Algorithm, UnsupportedSigningAlgorithm> {
    if algorithm.can_sign() {
        Ok(algorithm)
    } else {
        Err(UnsupportedSigningAlgorithm(algorithm))
    }
}

/// Marks a sealed private key: `afk1 || nonce (12) || ciphertext || tag (16)`.
const SEALED: &[u8] = b"afk1";

/// The 256-bit key that seals signing keys at rest.
#[derive(Clone)]
pub struct KeyEncryptionKey([u8; 32]);

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey(<redacted>)")
    }
}

/// A key encryption key that is not 32 bytes of base64.
#[derive(Debug, thiserror::Error)]
#[error("the key encryption key must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`)")]
pub struct InvalidKeyEncryptionKey;

impl KeyEncryptionKey {
    /// From 32 bytes in standard or URL-safe base64, padded or not.
    pub fn from_base64(encoded: &str) -> Result<Self, InvalidKeyEncryptionKey> {
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
        use base64::Engine;
        let encoded = encoded.trim();
        let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(encoded).ok())
            .ok_or(InvalidKeyEncryptionKey)?;
        Ok(KeyEncryptionKey(bytes.try_into().map_err(|_| InvalidKeyEncryptionKey)?))
    }

    fn cipher(&self) -> LessSafeKey {
        // 32 bytes is AES-256's key length, so this cannot fail.
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).unwrap_or_else(|_| unreachable!("a 32-byte key")))
    }

    fn seal(&self, kid: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        OsEntropy.fill_bytes(&mut nonce);
        let mut body = plaintext.to_vec();
        // Sealing only fails for inputs beyond AES-GCM's length limit, which a private key is far below.
        self.cipher()
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(kid.as_bytes()), &mut body)
            .unwrap_or_else(|_| unreachable!("a private key is far below AES-GCM's length limit"));
        [SEALED, &nonce, &body].concat()
    }

    fn open(&self, kid: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        let rest = sealed.strip_prefix(SEALED)?;
        let (nonce, body) = (rest.get(..NONCE_LEN)?, rest.get(NONCE_LEN..)?);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plain = self.cipher().open_in_place(nonce, Aad::from(kid.as_bytes()), &mut body).ok()?;
        Some(plain.to_vec())
    }
}

fn corrupt(kid: &str) -> StoreError {
    StoreError::Corrupt(format!("signing key {kid} cannot be decoded"))
}

impl KeyRing {
    /// Keys of `algorithm` kept in `store`, rotating with the default [`ROTATION_OVERLAP`] and
    /// [`KEEP_PUBLISHED`] when the signing key is of another algorithm.
    ///
    /// # Panics
    ///
    /// If authflow cannot sign with `algorithm` (RS256, PS256): check it first with [`signing_algorithm`].
    pub fn new(store: Arc<dyn Store>, algorithm: Algorithm) -> Self {
        assert!(algorithm.can_sign(), "{}", UnsupportedSigningAlgorithm(algorithm));
        KeyRing {
            store,
            algorithm,
            encryption: None,
            overlap: ROTATION_OVERLAP,
            keep_published: KEEP_PUBLISHED,
            snapshot: RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// How the ring rotates by itself when the key signing today is of another algorithm than its own:
    /// the new key signs `overlap` after it is published, and the old one stays published `keep_published`
    /// after it stops signing (at least the longest lifetime of a token it signed plus the clock skew).
    pub fn with_rotation(mut self, overlap: Duration, keep_published: Duration) -> Self {
        self.overlap = overlap;
        self.keep_published = keep_published;
        self
    }

    /// Seal new keys with `key`, and open sealed ones with it (keys stored in the clear still load).
    pub fn with_encryption(mut self, key: Option<KeyEncryptionKey>) -> Self {
        self.encryption = key;
        self
    }

    /// The private key bytes of a stored key, opened if sealed.
    fn private_bytes(&self, k: &SigningKey) -> Result<Vec<u8>, StoreError> {
        if !k.private_key.starts_with(SEALED) {
            return Ok(k.private_key.clone());
        }
        let Some(encryption) = &self.encryption else {
            return Err(StoreError::Corrupt(format!(
                "signing key {} is encrypted: configure the key encryption key to use it",
                k.kid
            )));
        };
        encryption.open(&k.kid, &k.private_key).ok_or_else(|| {
            StoreError::Corrupt(format!("signing key {} does not open with the configured key encryption key", k.kid))
        })
    }

    async fn read(&self, now: UnixTime) -> Result<Snapshot, StoreError> {
        let keys = self.store.list_signing_keys().await?;
        let mut published = Vec::new();
        let mut signing = None;
        let mut has_own_algorithm = false;
        // Newest first: the first key that may sign now is the one to sign with.
        for k in &keys {
            if k.expires_at.is_some_and(|e| e <= now) {
                continue;
            }
            published.push(Jwk::from_value(k.public_jwk.clone()).map_err(|_| corrupt(&k.kid))?);
            let usable = k.not_before <= now && k.retire_at.is_none_or(|r| r > now);
            if signing.is_none() && usable {
                let alg = Algorithm::parse(&k.alg).map_err(|_| corrupt(&k.kid))?;
                let key = PrivateKey::from_bytes(alg, &self.private_bytes(k)?).map_err(|_| corrupt(&k.kid))?;
                signing = Some(key.with_kid(k.kid.clone()));
            }
            // Signing now or later. One that is retiring counts until it retires: a replica configured with
            // another algorithm than this one's then rotates at most once per overlap, never on every refresh.
            has_own_algorithm |= k.alg == self.algorithm.as_str() && k.retire_at.is_none_or(|r| r > now);
        }
        Ok(Snapshot { read_at: now, signing, published: published.into_iter().collect(), has_own_algorithm })
    }

    /// The cached snapshot, if it is recent and has a key to sign with.
    fn cached(&self, now: UnixTime) -> Option<Arc<Snapshot>> {
        let cached = self.snapshot.read().unwrap_or_else(|p| p.into_inner()).clone();
        cached.filter(|s| now.saturating_since(s.read_at) < REFRESH_EVERY && s.signing.is_some())
    }

    async fn snapshot(&self, now: UnixTime) -> Result<Arc<Snapshot>, StoreError> {
        if let Some(s) = self.cached(now) {
            return Ok(s);
        }
        let _one_at_a_time = self.refreshing.lock().await;
        // Another request may have refreshed while this one waited.
        if let Some(s) = self.cached(now) {
            return Ok(s);
        }
        let mut fresh = self.read(now).await?;
        if fresh.signing.is_none() {
            self.create(now).await?;
            fresh = self.read(now).await?;
        } else if let Some(other) = fresh.signing.as_ref().filter(|k| k.algorithm() != self.algorithm) {
            if !fresh.has_own_algorithm {
                // The configured algorithm changed: rotate to it, keeping what the old key signed verifiable.
                tracing::warn!(
                    target: crate::observe::AUDIT,
                    kid = %other.kid(),
                    from = %other.algorithm(),
                    to = %self.algorithm,
                    "the signing key's algorithm is not the configured one: rotating (if this repeats, replicas \
                     are configured with different signing algorithms)"
                );
                self.rotate(now, self.overlap, self.keep_published).await?;
                fresh = self.read(now).await?;
            }
        }
        let fresh = Arc::new(fresh);
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Some(fresh.clone());
        Ok(fresh)
    }

    /// Create and store a new key, usable at once.
    pub async fn create(&self, now: UnixTime) -> Result<String, StoreError> {
        self.insert_new(now, now).await
    }

    async fn insert_new(&self, now: UnixTime, not_before: UnixTime) -> Result<String, StoreError> {
        let key = PrivateKey::generate(self.algorithm, &mut OsEntropy, None);
        let kid = key.kid().to_owned();
        let private_key = match &self.encryption {
            Some(encryption) => encryption.seal(&kid, &key.to_bytes()),
            None => key.to_bytes().to_vec(),
        };
        let record = SigningKey {
            kid,
            alg: self.algorithm.as_str().to_owned(),
            private_key,
            public_jwk: serde_json::to_value(key.public_jwk()).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            created_at: now,
            not_before,
            retire_at: None,
            expires_at: None,
        };
        self.store.insert_signing_key(&record).await?;
        tracing::info!(target: crate::observe::AUDIT, kid = %record.kid, alg = %record.alg, sealed = self.encryption.is_some(), "signing key created");
        Ok(record.kid)
    }

    /// Rotate: a new key, published now and signing from `now + overlap`; every key signing today stops then
    /// and stays published for `keep_published` more (the longest a token it signed can live). Returns the
    /// new key id.
    pub async fn rotate(
        &self,
        now: UnixTime,
        overlap: Duration,
        keep_published: Duration,
    ) -> Result<String, StoreError> {
        let switch = now + overlap;
        let current: Vec<SigningKey> = self
            .store
            .list_signing_keys()
            .await?
            .into_iter()
            .filter(|k| k.expires_at.is_none_or(|e| e > now) && k.retire_at.is_none_or(|r| r > switch))
            .collect();
        let kid = self.insert_new(now, switch).await?;
        for old in current {
            self.store.retire_signing_key(&old.kid, switch, switch + keep_published).await?;
            tracing::info!(target: crate::observe::AUDIT, kid = %old.kid, "signing key retiring");
        }
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(kid)
    }

    /// The algorithm new keys are made for.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The algorithms tokens are signed with: the configured one, and, while a rotation away from another
    /// algorithm is under way, the one of the key still signing (e.g. for `id_token_signing_alg_values_supported`).
    pub async fn signing_algorithms(&self, now: UnixTime) -> Result<Vec<Algorithm>, StoreError> {
        let mut algorithms = vec![self.algorithm];
        if let Some(key) = &self.snapshot(now).await?.signing {
            if key.algorithm() != self.algorithm {
                algorithms.push(key.algorithm());
            }
        }
        Ok(algorithms)
    }

    /// The key to sign with now (created if there is none).
    pub async fn signing_key(&self, now: UnixTime) -> Result<PrivateKey, StoreError> {
        let snapshot = self.snapshot(now).await?;
        snapshot.signing.clone().ok_or_else(|| StoreError::Corrupt("no usable signing key".into()))
    }

    /// The public keys to publish.
    pub async fn jwks(&self, now: UnixTime) -> Result<JwkSet, StoreError> {
        Ok(self.snapshot(now).await?.published.clone())
    }
}
