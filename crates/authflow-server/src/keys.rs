//! Signing keys: created on first use, kept in storage (so every replica signs with and publishes the same
//! keys), cached in memory and re-read periodically so a rotation reaches every replica without a restart.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use authflow_core::jose::{Algorithm, Jwk, JwkSet, PrivateKey};
use authflow_core::UnixTime;
use authflow_store::{SigningKey, Store, StoreError};

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
    snapshot: RwLock<Option<Arc<Snapshot>>>,
}

fn corrupt(kid: &str) -> StoreError {
    StoreError::Corrupt(format!("signing key {kid} cannot be decoded"))
}

impl KeyRing {
    /// Keys of `algorithm` kept in `store`.
    pub fn new(store: Arc<dyn Store>, algorithm: Algorithm) -> Self {
        KeyRing { store, algorithm, snapshot: RwLock::new(None) }
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
                let key = PrivateKey::from_bytes(alg, &k.private_key).map_err(|_| corrupt(&k.kid))?;
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
        let key = PrivateKey::generate(self.algorithm, &mut OsEntropy, None);
        let record = SigningKey {
            kid: key.kid().to_owned(),
            alg: self.algorithm.as_str().to_owned(),
            private_key: key.to_bytes().to_vec(),
            public_jwk: serde_json::to_value(key.public_jwk()).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            created_at: now,
            not_before: now,
            retire_at: None,
            expires_at: None,
        };
        self.store.insert_signing_key(&record).await?;
        tracing::info!(kid = %record.kid, alg = %record.alg, "signing key created");
        Ok(record.kid)
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
