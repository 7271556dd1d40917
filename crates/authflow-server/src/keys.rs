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

#[derive(Debug)]
struct Snapshot {
    read_at: UnixTime,
    signing: Option<PrivateKey>,
    published: JwkSet,
}

/// The deployment's signing keys.
#[derive(Debug)]
pub struct KeyRing {
    store: Arc<dyn Store>,
    algorithm: Algorithm,
    encryption: Option<KeyEncryptionKey>,
    snapshot: RwLock<Option<Arc<Snapshot>>>,
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
    /// Keys of `algorithm` kept in `store`.
    pub fn new(store: Arc<dyn Store>, algorithm: Algorithm) -> Self {
        KeyRing { store, algorithm, encryption: None, snapshot: RwLock::new(None) }
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
        }
        Ok(Snapshot { read_at: now, signing, published: published.into_iter().collect() })
    }

    async fn snapshot(&self, now: UnixTime) -> Result<Arc<Snapshot>, StoreError> {
        let cached = self.snapshot.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(s) = cached.filter(|s| now.saturating_since(s.read_at) < REFRESH_EVERY && s.signing.is_some()) {
            return Ok(s);
        }
        let mut fresh = self.read(now).await?;
        if fresh.signing.is_none() {
            self.create(now).await?;
            fresh = self.read(now).await?;
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
