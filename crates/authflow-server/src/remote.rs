//! JSON documents the server fetches from URLs clients name — client ID metadata documents and `jwks_uri`
//! key sets — through the SSRF-safe client, cached as the answer's HTTP caching headers allow, within bounds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authflow_core::UnixTime;
use authflow_http::{FetchError, SafeHttpClient};
use axum::http::{header, HeaderMap};
use url::Url;

/// Freshness when the answer says nothing about caching.
const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// The longest any answer is trusted, whatever it says.
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// A forced re-fetch (an unknown `kid`) happens at most this often per URL, so a stream of bad assertions
/// cannot turn the server into a request amplifier.
const MIN_REFETCH: Duration = Duration::from_secs(30);
/// Cached documents at most; beyond, expired and then the oldest entries go.
const MAX_ENTRIES: usize = 1024;

/// Why a document could not be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RemoteError {
    /// The fetch failed (policy, network, time or size).
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The answer is not a success.
    #[error("the server answered HTTP {0}")]
    Status(u16),
    /// Larger than this kind of document may be.
    #[error("the document is larger than {0} bytes")]
    TooLarge(usize),
    /// Not a JSON object.
    #[error("the document is not a JSON object")]
    NotJson,
}

#[derive(Debug)]
struct Entry {
    document: Arc<serde_json::Map<String, serde_json::Value>>,
    fetched_at: UnixTime,
    fresh_until: UnixTime,
}

/// The fetcher and its cache. Per process: every replica fetches for itself, which is what HTTP caching
/// expects of independent clients.
#[derive(Debug)]
pub(crate) struct RemoteDocuments {
    http: SafeHttpClient,
    cache: Mutex<HashMap<String, Entry>>,
}

impl RemoteDocuments {
    pub fn new(http: SafeHttpClient) -> Self {
        RemoteDocuments { http, cache: Mutex::new(HashMap::new()) }
    }

    /// The HTTP client (its policy decides, e.g., whether plain-http test documents are allowed).
    pub fn http(&self) -> &SafeHttpClient {
        &self.http
    }

    /// The document at `url`: from the cache while fresh, else fetched. `refresh` asks for a new copy even
    /// if the cached one is fresh, unless it was fetched less than [`MIN_REFETCH`] ago.
    pub async fn get(
        &self,
        url: &Url,
        now: UnixTime,
        max_bytes: usize,
        refresh: bool,
    ) -> Result<Arc<serde_json::Map<String, serde_json::Value>>, RemoteError> {
        if let Some(cached) = self.cached(url, now, refresh) {
            return Ok(cached);
        }
        let fetched = self.http.get(url).await?;
        if !fetched.status.is_success() {
            return Err(RemoteError::Status(fetched.status.as_u16()));
        }
        if fetched.body.len() > max_bytes {
            return Err(RemoteError::TooLarge(max_bytes));
        }
        let document = match serde_json::from_slice(&fetched.body) {
            Ok(serde_json::Value::Object(map)) => Arc::new(map),
            _ => return Err(RemoteError::NotJson),
        };
        if let Some(ttl) = freshness(&fetched.headers) {
            self.store(url, Entry { document: document.clone(), fetched_at: now, fresh_until: now + ttl });
        }
        Ok(document)
    }

    fn cached(
        &self,
        url: &Url,
        now: UnixTime,
        refresh: bool,
    ) -> Option<Arc<serde_json::Map<String, serde_json::Value>>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let entry = cache.get(url.as_str())?;
        let fresh = entry.fresh_until > now;
        let too_soon = now.saturating_since(entry.fetched_at) < MIN_REFETCH;
        (fresh && (!refresh || too_soon)).then(|| entry.document.clone())
    }

    fn store(&self, url: &Url, entry: Entry) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_ENTRIES && !cache.contains_key(url.as_str()) {
            let now = entry.fetched_at;
            cache.retain(|_, e| e.fresh_until > now);
            if cache.len() >= MAX_ENTRIES {
                if let Some(oldest) = cache.iter().min_by_key(|(_, e)| e.fetched_at).map(|(k, _)| k.clone()) {
                    cache.remove(&oldest);
                }
            }
        }
        cache.insert(url.as_str().to_owned(), entry);
    }
}

/// How long an answer may be reused (RFC 9111 §5.2.2): `no-store`/`no-cache` not at all, else `max-age`
/// (capped), else the default. `None`: do not cache.
fn freshness(headers: &HeaderMap) -> Option<Duration> {
    let mut max_age = None;
    for value in headers.get_all(header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { return None };
        for directive in value.split(',').map(|d| d.trim().to_ascii_lowercase()) {
            if directive == "no-store" || directive == "no-cache" {
                return None;
            }
            if let Some(secs) = directive.strip_prefix("max-age=") {
                // A malformed max-age makes the answer stale (RFC 9111 §4.2.1).
                max_age = Some(secs.trim_matches('"').parse::<u64>().unwrap_or(0));
            }
        }
    }
    match max_age {
        Some(0) => None,
        Some(secs) => Some(Duration::from_secs(secs).min(MAX_TTL)),
        None => Some(DEFAULT_TTL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(cc: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_str(cc).unwrap());
        h
    }

    #[test]
    fn caching_headers_are_honoured_within_bounds() {
        assert_eq!(freshness(&HeaderMap::new()), Some(DEFAULT_TTL));
        assert_eq!(freshness(&with("public, max-age=60")), Some(Duration::from_secs(60)));
        assert_eq!(freshness(&with("max-age=99999999")), Some(MAX_TTL));
        assert_eq!(freshness(&with("max-age=0")), None);
        assert_eq!(freshness(&with("max-age=soon")), None);
        assert_eq!(freshness(&with("no-store")), None);
        assert_eq!(freshness(&with("max-age=600, No-Cache")), None);
    }
}
