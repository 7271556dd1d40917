//! [`JwtVerifier`]: verify RFC 9068 JWT access tokens locally, against the issuer's published keys.
//!
//! ```no_run
//! use authflow_resource::JwtVerifier;
//!
//! # fn build() -> Result<(), Box<dyn std::error::Error>> {
//! // The JWKS location comes from the issuer's RFC 8414 metadata unless `jwks_uri` names it.
//! let verifier = JwtVerifier::builder("https://auth.example.com", "https://mcp.example.com/mcp").build()?;
//! # Ok(()) }
//! ```
//!
//! ## What it checks
//! With [`authflow_core::jose`]: the signature, with an allow-listed algorithm only (by default ES256, EdDSA,
//! and RS256 and PS256 for an authorization server that signs with RSA, with keys of 2048 bits or more; never
//! `none` or HMAC; each key only for its own type's algorithms); `typ` `at+jwt` (RFC 9068 §4); `iss` exactly the configured issuer; `aud`
//! naming this resource (exactly or canonically, RFC 8707); `exp`, `nbf` and `iat` with
//! [`JwtVerifierBuilder::leeway`]; the claims RFC 9068 §2.2 requires; and a well-formed `scope`.
//!
//! ## Keys
//! The JWK set is fetched through the [`SafeHttpClient`] on first use and kept. It is fetched again when
//! it is older than [`JwtVerifierBuilder::jwks_refresh_interval`] (keeping the old keys if that fails), and
//! when a token names a key id the set does not have — at most once per
//! [`JwtVerifierBuilder::min_refetch_interval`], so tokens with made-up key ids cannot make this server
//! hammer the authorization server. Concurrent refreshes are one fetch.

use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use authflow_core::jose::{self, Algorithm, JoseError, JwkSet, Validation};
use authflow_core::metadata::{authorization_server_metadata_urls, AuthorizationServerMetadata};
use authflow_core::{Scope, UnixTime};
use serde_json::Value;
use tokio::sync::Mutex as AsyncMutex;
use url::Url;

use crate::audience::Audiences;
use crate::clock::{Clock, SystemClock};
use crate::http::SafeHttpClient;
use crate::verifier::{TokenVerifier, VerifiedToken, VerifyError};
use crate::BuildError;

/// Default clock-skew tolerance.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default age after which the key set is fetched again.
pub const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(300);
/// Default least time between two fetches of the key set (unknown key ids, failed fetches).
pub const DEFAULT_MIN_REFETCH: Duration = Duration::from_secs(30);
/// Least time between two attempts while no key set could be fetched yet.
const RETRY_WITHOUT_KEYS: Duration = Duration::from_secs(1);

/// Where the key set comes from.
#[derive(Debug, Clone)]
enum JwksSource {
    Uri(Url),
    Discover(Url),
}

#[derive(Debug)]
struct Keys {
    set: Arc<JwkSet>,
    fetched_at: UnixTime,
    generation: u64,
}

#[derive(Debug, Default)]
struct FetchState {
    last_attempt: Option<UnixTime>,
    jwks_uri: Option<Url>,
}

/// Verifies RFC 9068 JWT access tokens locally (see the module docs). Cheap to clone; clones share the
/// keys and the connection pool.
#[derive(Debug, Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    max_lifetime: Option<Duration>,
    source: JwksSource,
    refresh: Duration,
    min_refetch: Duration,
    http: SafeHttpClient,
    clock: Arc<dyn Clock>,
    keys: RwLock<Option<Keys>>,
    fetch: AsyncMutex<FetchState>,
    fetches: Mutex<u64>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("algorithms", &self.algorithms)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Builds a [`JwtVerifier`].
#[derive(Debug)]
pub struct JwtVerifierBuilder {
    issuer: String,
    audiences: Vec<String>,
    jwks_uri: Option<Url>,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    max_lifetime: Option<Duration>,
    refresh: Duration,
    min_refetch: Duration,
    http: Option<SafeHttpClient>,
    clock: Arc<dyn Clock>,
}

impl JwtVerifier {
    /// Start building a verifier for tokens from `issuer` (compared exactly with `iss`) for `resource`
    /// (this server's resource identifier, which `aud` must name).
    pub fn builder(issuer: impl Into<String>, resource: impl Into<String>) -> JwtVerifierBuilder {
        JwtVerifierBuilder {
            issuer: issuer.into(),
            audiences: vec![resource.into()],
            jwks_uri: None,
            algorithms: Algorithm::ALL.to_vec(),
            leeway: DEFAULT_LEEWAY,
            max_lifetime: None,
            refresh: DEFAULT_JWKS_REFRESH,
            min_refetch: DEFAULT_MIN_REFETCH,
            http: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// How many times the key set has been fetched (successfully or not): for metrics and tests.
    pub fn jwks_fetches(&self) -> u64 {
        *self.inner.fetches.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn snapshot(&self) -> Option<(Arc<JwkSet>, UnixTime, u64)> {
        let keys = self.inner.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.as_ref().map(|k| (k.set.clone(), k.fetched_at, k.generation))
    }

    /// The key set to verify with now: fetched if there is none, refreshed (best effort) if old.
    async fn current_keys(&self, now: UnixTime) -> Result<Arc<JwkSet>, VerifyError> {
        match self.snapshot() {
            Some((set, fetched_at, generation)) => {
                if now.saturating_since(fetched_at) >= self.inner.refresh {
                    if let Some(fresh) = self.refetch(now, generation, self.inner.min_refetch).await {
                        return Ok(fresh);
                    }
                }
                Ok(set)
            }
            None => match self.refetch(now, 0, RETRY_WITHOUT_KEYS).await {
                Some(set) => Ok(set),
                None => Err(VerifyError::unavailable("the issuer's signing keys could not be fetched")),
            },
        }
    }

    /// Fetch the key set unless someone else already replaced generation `seen`, or the last attempt was
    /// less than `spacing` ago. Returns the newer set, if there is one.
    async fn refetch(&self, now: UnixTime, seen: u64, spacing: Duration) -> Option<Arc<JwkSet>> {
        let mut state = self.inner.fetch.lock().await;
        if let Some((set, _, generation)) = self.snapshot() {
            if generation != seen {
                return Some(set);
            }
        }
        if state.last_attempt.is_some_and(|last| now.saturating_since(last) < spacing) {
            return None;
        }
        state.last_attempt = Some(now);
        *self.inner.fetches.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        match self.fetch(&mut state).await {
            Ok(set) => {
                let set = Arc::new(set);
                let mut keys = self.inner.keys.write().unwrap_or_else(|p| p.into_inner());
                let generation = keys.as_ref().map_or(0, |k| k.generation) + 1;
                *keys = Some(Keys { set: set.clone(), fetched_at: now, generation });
                Some(set)
            }
            Err(reason) => {
                tracing::warn!(issuer = %self.inner.issuer, %reason, "fetching the issuer's JWK set failed");
                None
            }
        }
    }

    async fn fetch(&self, state: &mut FetchState) -> Result<JwkSet, String> {
        let uri = match (&self.inner.source, &state.jwks_uri) {
            (JwksSource::Uri(uri), _) | (JwksSource::Discover(_), Some(uri)) => uri.clone(),
            (JwksSource::Discover(issuer), None) => {
                let uri = self.discover(issuer).await?;
                state.jwks_uri = Some(uri.clone());
                uri
            }
        };
        let doc: Value = self.inner.http.get_json(&uri).await.map_err(|e| format!("{uri}: {e}"))?;
        JwkSet::from_value(doc).map_err(|e| format!("{uri}: {e}"))
    }

    /// The `jwks_uri` of the issuer's RFC 8414 (or OpenID) metadata, tried in the order MCP prescribes.
    async fn discover(&self, issuer: &Url) -> Result<Url, String> {
        let mut last = String::from("no metadata URL");
        for url in authorization_server_metadata_urls(issuer) {
            let metadata: AuthorizationServerMetadata = match self.inner.http.get_json(&url).await {
                Ok(m) => m,
                Err(e) => {
                    last = format!("{url}: {e}");
                    continue;
                }
            };
            metadata.validate(&self.inner.issuer).map_err(|e| format!("{url}: {e}"))?;
            let jwks = metadata.jwks_uri.ok_or_else(|| format!("{url}: the metadata has no jwks_uri"))?;
            return Url::parse(&jwks).map_err(|_| format!("{url}: jwks_uri is not a URL"));
        }
        Err(last)
    }

    fn validation(&self, now: UnixTime) -> Validation {
        let inner = &self.inner;
        let mut v = Validation::access_token(now, inner.issuer.clone(), inner.audiences[0].clone())
            .audiences(inner.audiences[1..].iter().cloned())
            .algorithms(&inner.algorithms)
            .leeway(inner.leeway);
        if let Some(max) = inner.max_lifetime {
            v = v.max_lifetime(max);
        }
        v
    }

    fn verified(&self, verified: jose::Verified) -> Result<VerifiedToken, VerifyError> {
        let Value::Object(claims) = verified.claims else {
            return Err(VerifyError::invalid("the claims are not an object"));
        };
        let string = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let time = |name: &str| {
            claims.get(name).and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f as u64))).map(UnixTime::from_secs)
        };
        let scope = match claims.get("scope").and_then(Value::as_str) {
            None | Some("") => None,
            Some(s) => Some(Scope::parse(s).map_err(|_| VerifyError::invalid("the token has a malformed scope"))?),
        };
        let audience = match claims.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        Ok(VerifiedToken {
            subject: string("sub"),
            client_id: string("client_id"),
            scope,
            audience,
            expires_at: time("exp"),
            issued_at: time("iat"),
            issuer: string("iss"),
            claims,
        })
    }
}

fn invalid(e: JoseError) -> VerifyError {
    VerifyError::invalid(e.to_string())
}

#[async_trait::async_trait]
impl TokenVerifier for JwtVerifier {
    async fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        if token.len() > jose::MAX_TOKEN_LEN {
            return Err(invalid(JoseError::TooLong));
        }
        // Refuse what no key could help with before touching the key set: malformed tokens and
        // algorithms outside the allow-list never cause a fetch.
        match jose::verify(token, &JwkSet::default(), &self.inner.algorithms) {
            Err(JoseError::UnknownKey) | Ok(_) => {}
            Err(e) => return Err(invalid(e)),
        }
        let now = self.inner.clock.now();
        let keys = self.current_keys(now).await?;
        let validation = self.validation(now);
        match jose::decode(token, &keys, &validation) {
            Ok(v) => self.verified(v),
            Err(JoseError::UnknownKey) => {
                let generation = self.snapshot().map_or(0, |(_, _, g)| g);
                let Some(fresh) = self.refetch(now, generation, self.inner.min_refetch).await else {
                    return Err(invalid(JoseError::UnknownKey));
                };
                jose::decode(token, &fresh, &validation).map_err(invalid).and_then(|v| self.verified(v))
            }
            Err(e) => Err(invalid(e)),
        }
    }
}

impl JwtVerifierBuilder {
    /// Fetch keys from this JWK set URL instead of discovering it from the issuer's metadata.
    pub fn jwks_uri(mut self, uri: Url) -> Self {
        self.jwks_uri = Some(uri);
        self
    }

    /// Also accept tokens whose audience names `audience`.
    pub fn accept_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accept only these algorithms (default: all that authflow verifies, [`Algorithm::ALL`]: ES256, EdDSA,
    /// RS256 and PS256). Narrow it to what the authorization server signs with, e.g. `&[Algorithm::ES256]`.
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.algorithms = algorithms.to_vec();
        self
    }

    /// Clock-skew tolerance on `exp`, `nbf` and `iat` (default [`DEFAULT_LEEWAY`]).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Refuse tokens that live longer than `max`.
    pub fn max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = Some(max);
        self
    }

    /// Fetch the key set again when it is older than this (default [`DEFAULT_JWKS_REFRESH`]).
    pub fn jwks_refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh = interval;
        self
    }

    /// Least time between two fetches of the key set (default [`DEFAULT_MIN_REFETCH`]).
    pub fn min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch = interval;
        self
    }

    /// The HTTP client (share one between verifiers). Default: a [`SafeHttpClient`] with the strict policy.
    pub fn http_client(mut self, http: SafeHttpClient) -> Self {
        self.http = Some(http);
        self
    }

    /// The clock for `exp`/`nbf` and the refresh intervals.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Check the configuration and build. Nothing is fetched yet.
    pub fn build(self) -> Result<JwtVerifier, BuildError> {
        let http = match self.http {
            Some(http) => http,
            None => SafeHttpClient::new(authflow_core::ssrf::SsrfPolicy::strict())?,
        };
        if self.algorithms.is_empty() {
            return Err(BuildError::Config("no algorithm is accepted"));
        }
        if self.audiences.iter().all(|a| a.is_empty()) {
            return Err(BuildError::Config("the resource identifier (audience) is empty"));
        }
        let source = match self.jwks_uri {
            Some(uri) => {
                http.policy().check_url(&uri)?;
                JwksSource::Uri(uri)
            }
            None => {
                let issuer = Url::parse(&self.issuer).map_err(|_| BuildError::Config("the issuer is not a URL"))?;
                http.policy().check_url(&issuer)?;
                JwksSource::Discover(issuer)
            }
        };
        let audiences = Audiences::new(self.audiences).spellings();
        Ok(JwtVerifier {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                audiences,
                algorithms: self.algorithms,
                leeway: self.leeway,
                max_lifetime: self.max_lifetime,
                source,
                refresh: self.refresh,
                min_refetch: self.min_refetch,
                http,
                clock: self.clock,
                keys: RwLock::new(None),
                fetch: AsyncMutex::new(FetchState::default()),
                fetches: Mutex::new(0),
            }),
        })
    }
}
