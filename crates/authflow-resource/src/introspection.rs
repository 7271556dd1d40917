//! [`IntrospectionVerifier`]: verify any access token by asking the authorization server (RFC 7662).
//!
//! ```no_run
//! use std::time::Duration;
//! use authflow_resource::IntrospectionVerifier;
//!
//! # fn build() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = IntrospectionVerifier::builder(
//!     "https://auth.example.com/introspect".parse()?,
//!     "https://mcp.example.com/mcp", // this resource: tokens must name it in `aud`
//! )
//! .client_secret_basic("notes-rs", std::env::var("NOTES_RS_SECRET")?)
//! .issuer("https://auth.example.com")
//! .cache_max_ttl(Duration::from_secs(60))
//! .build()?;
//! # Ok(()) }
//! ```
//!
//! ## What it checks
//! - The answer is a JSON object whose `active` is the JSON boolean `true`; anything else (`"true"`, `1`,
//!   absent) is an inactive token.
//! - `token_type`, when present, is `Bearer` or `access_token` (a refresh token is not an access token).
//! - `exp` has not passed and `nbf` has (with [`IntrospectionVerifierBuilder::leeway`]).
//! - `aud` (a string or an array) names this resource (RFC 8707), on by default.
//! - `iss` equals the configured issuer, when one is configured and the answer has one.
//!
//! ## Caching
//! Accepted tokens are cached, keyed by the SHA-256 of the token (never the token itself), in a bounded LRU
//! map; an entry lives until the token's `exp` or [`IntrospectionVerifierBuilder::cache_max_ttl`], whichever
//! comes first, so a revoked token is refused at most that long after revocation. Refused tokens are
//! remembered for [`IntrospectionVerifierBuilder::negative_cache_ttl`] in a separate map, so a flood of
//! garbage tokens cannot evict good entries. Concurrent requests with the same uncached token share one
//! introspection call (single-flight).
//!
//! Replicas of one MCP server can share verdicts through a [`SharedMap`] (Redis, with
//! [`IntrospectionVerifierBuilder::shared_cache`]): a local miss looks there before asking the authorization
//! server, and every answer is written there with the same lifetime as locally. A shared verdict is checked
//! again on the way in (expiry, audience, issuer), and the shared keys are the token's SHA-256 within a
//! namespace of the introspection endpoint, the caller and the audiences, so verifiers for different
//! resources never read each other's verdicts. A shared cache that fails is skipped (with a warning), never
//! a reason to refuse a token. [`IntrospectionVerifier::stats`] counts where verdicts came from.
//!
//! ## Failures
//! A network error, a timeout, a non-200 answer or a body that is not a JSON object is
//! [`VerifyError::Unavailable`] (answered 503 by [`BearerAuthLayer`](crate::BearerAuthLayer)), never cached,
//! so clients keep their tokens and retry.

use std::fmt;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use authflow_core::{Scope, TokenHash, UnixTime};
use authflow_store::SharedMap;
use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{Map, Value};
use url::Url;

use crate::audience::Audiences;
use crate::cache::{self, ExpiringLru, SingleFlight};
use crate::clock::{Clock, SystemClock};
use crate::http::{FetchError, SafeHttpClient};
use crate::verifier::{TokenVerifier, VerifiedToken, VerifyError};
use crate::BuildError;

/// Default bound on the positive cache.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;
/// Default longest time an accepted token is trusted without asking again.
pub const DEFAULT_CACHE_MAX_TTL: Duration = Duration::from_secs(60);
/// Default time a refused token is remembered.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// Default clock-skew tolerance on `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);
/// Longest token sent to the authorization server; longer ones are refused unasked.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// How the resource server authenticates to the introspection endpoint (RFC 7662 §2.1 requires some
/// form of authorization).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IntrospectionAuth {
    /// HTTP Basic with the client id and secret, each form-urlencoded first (RFC 6749 §2.3.1).
    ClientSecretBasic {
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: String,
    },
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost {
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: String,
    },
    /// A bearer token of the resource server's own (`Authorization: Bearer …`).
    Bearer(String),
    /// No credentials (an endpoint that trusts the network).
    None,
}

impl fmt::Debug for IntrospectionAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntrospectionAuth::ClientSecretBasic { client_id, .. } => {
                write!(f, "ClientSecretBasic {{ client_id: {client_id:?}, client_secret: <redacted> }}")
            }
            IntrospectionAuth::ClientSecretPost { client_id, .. } => {
                write!(f, "ClientSecretPost {{ client_id: {client_id:?}, client_secret: <redacted> }}")
            }
            IntrospectionAuth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            IntrospectionAuth::None => f.write_str("None"),
        }
    }
}

/// The `Authorization` value of `client_secret_basic`: both parts form-urlencoded, then joined and
/// Base64-encoded (RFC 6749 §2.3.1), so a `:` in the id or non-ASCII in the secret survives.
pub fn basic_credentials(client_id: &str, client_secret: &str) -> String {
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!("Basic {}", STANDARD.encode(format!("{}:{}", encode(client_id), encode(client_secret))))
}

/// Verifies tokens by RFC 7662 introspection (see the module docs). Cheap to clone; clones share the
/// cache and the connection pool.
#[derive(Debug, Clone)]
pub struct IntrospectionVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Url,
    auth: IntrospectionAuth,
    audiences: Option<Audiences>,
    issuer: Option<String>,
    leeway: Duration,
    max_ttl: Duration,
    negative_ttl: Duration,
    http: SafeHttpClient,
    clock: Arc<dyn Clock>,
    positive: ExpiringLru<Arc<VerifiedToken>>,
    negative: ExpiringLru<()>,
    flights: SingleFlight<Result<Arc<VerifiedToken>, VerifyError>>,
    shared: Option<SharedVerdicts>,
    stats: Counters,
}

/// Where verdicts came from, since the verifier was built (see [`IntrospectionVerifier::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifierStats {
    /// Verdicts found in this process's cache (accepted and refused tokens).
    pub local_hits: u64,
    /// Verdicts found in the shared cache.
    pub shared_hits: u64,
    /// Calls to the introspection endpoint (each a cache miss; concurrent misses share one).
    pub introspections: u64,
    /// Introspection calls that failed (network, status, body): answered 503.
    pub failures: u64,
    /// Shared-cache operations that failed and were skipped.
    pub shared_errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    local_hits: AtomicU64,
    shared_hits: AtomicU64,
    introspections: AtomicU64,
    failures: AtomicU64,
    shared_errors: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Verdicts shared with other replicas, under a namespace of this verifier's own.
#[derive(Debug)]
struct SharedVerdicts {
    map: Arc<dyn SharedMap>,
    namespace: String,
}

/// A verdict as shared: the introspection answer of an accepted token and until when to trust it, or the
/// fact that the token was refused.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum SharedVerdict {
    Accepted { claims: Map<String, Value>, until_ms: u64 },
    Refused { refused: bool },
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionVerifier")
            .field("endpoint", &self.endpoint.as_str())
            .field("auth", &self.auth)
            .field("audiences", &self.audiences)
            .field("issuer", &self.issuer)
            .field("cached", &self.positive.len())
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

/// Builds an [`IntrospectionVerifier`].
#[derive(Debug)]
pub struct IntrospectionVerifierBuilder {
    endpoint: Url,
    audiences: Vec<String>,
    check_audience: bool,
    auth: IntrospectionAuth,
    issuer: Option<String>,
    leeway: Duration,
    capacity: usize,
    max_ttl: Duration,
    negative_ttl: Duration,
    http: Option<SafeHttpClient>,
    clock: Arc<dyn Clock>,
    shared: Option<Arc<dyn SharedMap>>,
}

impl IntrospectionVerifier {
    /// Start building a verifier that asks `endpoint` and accepts tokens whose audience names `resource`
    /// (this server's resource identifier, e.g. `https://mcp.example.com/mcp`).
    pub fn builder(endpoint: Url, resource: impl Into<String>) -> IntrospectionVerifierBuilder {
        IntrospectionVerifierBuilder {
            endpoint,
            audiences: vec![resource.into()],
            check_audience: true,
            auth: IntrospectionAuth::None,
            issuer: None,
            leeway: DEFAULT_LEEWAY,
            capacity: DEFAULT_CACHE_CAPACITY,
            max_ttl: DEFAULT_CACHE_MAX_TTL,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            http: None,
            clock: Arc::new(SystemClock),
            shared: None,
        }
    }

    /// Forget a cached verdict on `token`, e.g. after learning it was revoked: here and in the shared
    /// cache, if any.
    pub async fn evict(&self, token: &str) {
        let key = cache::key(token);
        self.inner.positive.remove(&key);
        self.inner.negative.remove(&key);
        if let Some(shared) = &self.inner.shared {
            if let Err(e) = shared.map.remove(&shared.key(&key)).await {
                self.shared_failed("remove", &e);
            }
        }
    }

    /// Where verdicts came from so far.
    pub fn stats(&self) -> VerifierStats {
        let c = &self.inner.stats;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        VerifierStats {
            local_hits: load(&c.local_hits),
            shared_hits: load(&c.shared_hits),
            introspections: load(&c.introspections),
            failures: load(&c.failures),
            shared_errors: load(&c.shared_errors),
        }
    }

    fn shared_failed(&self, op: &'static str, error: &authflow_store::StoreError) {
        bump(&self.inner.stats.shared_errors);
        tracing::warn!(op, %error, "the shared introspection cache failed; going on without it");
    }

    /// The verdict in the shared cache, checked as if it had just come from the authorization server, and
    /// remembered locally.
    async fn shared_verdict(&self, key: cache::Key) -> Option<Result<Arc<VerifiedToken>, VerifyError>> {
        let inner = &self.inner;
        let shared = inner.shared.as_ref()?;
        let stored = match shared.map.get(&shared.key(&key)).await {
            Ok(stored) => stored?,
            Err(e) => {
                self.shared_failed("get", &e);
                return None;
            }
        };
        // Junk is a miss: introspecting again overwrites it.
        let verdict: SharedVerdict = serde_json::from_slice(&stored).ok()?;
        let now = inner.clock.now();
        match verdict {
            SharedVerdict::Accepted { claims, until_ms } => {
                // What no longer passes (expired since, or tampered with) is asked about again.
                let verified = Arc::new(parse_response(claims, now, &self.expected()).ok()?);
                bump(&inner.stats.shared_hits);
                let until = UnixTime::from_millis(until_ms).min(self.trust_until(&verified, now));
                if until > now {
                    inner.positive.insert(key, verified.clone(), until);
                }
                Some(Ok(verified))
            }
            SharedVerdict::Refused { .. } => {
                bump(&inner.stats.shared_hits);
                if !inner.negative_ttl.is_zero() {
                    inner.negative.insert(key, (), now + inner.negative_ttl);
                }
                Some(Err(VerifyError::invalid("the token is not active")))
            }
        }
    }

    async fn share(&self, key: cache::Key, verdict: &SharedVerdict, ttl: Duration) {
        let Some(shared) = &self.inner.shared else { return };
        let Ok(bytes) = serde_json::to_vec(verdict) else { return };
        if let Err(e) = shared.map.put(&shared.key(&key), &bytes, ttl).await {
            self.shared_failed("put", &e);
        }
    }

    fn expected(&self) -> Expected<'_> {
        let inner = &self.inner;
        Expected { audiences: inner.audiences.as_ref(), issuer: inner.issuer.as_deref(), leeway: inner.leeway }
    }

    /// Until when an accepted token is trusted without asking again.
    fn trust_until(&self, verified: &VerifiedToken, now: UnixTime) -> UnixTime {
        let cap = now + self.inner.max_ttl;
        verified.expires_at.map_or(cap, |exp| exp.min(cap))
    }

    async fn introspect(&self, token: &str) -> Result<Arc<VerifiedToken>, VerifyError> {
        let inner = &self.inner;
        let mut headers = HeaderMap::new();
        let mut form: Vec<(&str, &str)> = vec![("token", token), ("token_type_hint", "access_token")];
        match &inner.auth {
            IntrospectionAuth::ClientSecretBasic { client_id, client_secret } => {
                let value = HeaderValue::from_str(&basic_credentials(client_id, client_secret))
                    .map_err(|_| VerifyError::unavailable("the introspection credentials are not a valid header"))?;
                headers.insert(header::AUTHORIZATION, sensitive(value));
            }
            IntrospectionAuth::ClientSecretPost { client_id, client_secret } => {
                form.push(("client_id", client_id));
                form.push(("client_secret", client_secret));
            }
            IntrospectionAuth::Bearer(t) => {
                let value = HeaderValue::from_str(&format!("Bearer {t}"))
                    .map_err(|_| VerifyError::unavailable("the introspection credentials are not a valid header"))?;
                headers.insert(header::AUTHORIZATION, sensitive(value));
            }
            IntrospectionAuth::None => {}
        }
        bump(&inner.stats.introspections);
        let fetched = inner.http.post_form(&inner.endpoint, &form, headers).await.map_err(|e| {
            bump(&inner.stats.failures);
            let reason = match e {
                FetchError::Timeout => "the introspection endpoint timed out".to_owned(),
                other => format!("introspection failed: {other}"),
            };
            tracing::warn!(endpoint = %inner.endpoint, %reason, "token introspection unavailable");
            VerifyError::unavailable(reason)
        })?;
        if fetched.status != 200 {
            bump(&inner.stats.failures);
            tracing::warn!(endpoint = %inner.endpoint, status = %fetched.status, "token introspection refused");
            return Err(VerifyError::unavailable(format!("the introspection endpoint answered {}", fetched.status)));
        }
        let Ok(Value::Object(response)) = serde_json::from_slice::<Value>(&fetched.body) else {
            bump(&inner.stats.failures);
            tracing::warn!(endpoint = %inner.endpoint, "token introspection answered something other than a JSON object");
            return Err(VerifyError::unavailable("the introspection response is not a JSON object"));
        };
        parse_response(response, inner.clock.now(), &self.expected()).map(Arc::new)
    }

    async fn verify_uncached(&self, token: &str, key: cache::Key) -> Result<Arc<VerifiedToken>, VerifyError> {
        let inner = &self.inner;
        // Another flight may have finished between our cache miss and joining this one.
        let now = inner.clock.now();
        if let Some(hit) = inner.positive.get(&key, now) {
            return Ok(hit);
        }
        if inner.negative.get(&key, now).is_some() {
            return Err(VerifyError::invalid("the token is not active"));
        }
        if let Some(verdict) = self.shared_verdict(key).await {
            return verdict;
        }
        let result = self.introspect(token).await;
        let now = inner.clock.now();
        match &result {
            Ok(verified) => {
                let until = self.trust_until(verified, now);
                if until > now {
                    inner.positive.insert(key, verified.clone(), until);
                    let until_ms = until.as_millis();
                    let verdict = SharedVerdict::Accepted { claims: verified.claims.clone(), until_ms };
                    self.share(key, &verdict, now.saturating_until(until)).await;
                }
            }
            Err(VerifyError::Invalid(_)) if !inner.negative_ttl.is_zero() => {
                inner.negative.insert(key, (), now + inner.negative_ttl);
                self.share(key, &SharedVerdict::Refused { refused: true }, inner.negative_ttl).await;
            }
            Err(_) => {}
        }
        result
    }
}

impl SharedVerdicts {
    fn new(map: Arc<dyn SharedMap>, endpoint: &Url, auth: &IntrospectionAuth, audiences: &[String]) -> Self {
        // Two verifiers share verdicts only if they ask the same endpoint, as the same caller, for the same
        // audiences: an authorization server may answer differently for each.
        let caller = match auth {
            IntrospectionAuth::ClientSecretBasic { client_id, .. }
            | IntrospectionAuth::ClientSecretPost { client_id, .. } => client_id.clone(),
            IntrospectionAuth::Bearer(token) => format!("bearer:{}", TokenHash::of(token).to_hex()),
            IntrospectionAuth::None => String::new(),
        };
        let identity = serde_json::json!([endpoint.as_str(), caller, audiences]).to_string();
        let namespace = TokenHash::of(&identity).to_hex()[..32].to_owned();
        SharedVerdicts { map, namespace }
    }

    fn key(&self, key: &cache::Key) -> String {
        use std::fmt::Write as _;
        let mut hex = String::with_capacity(64);
        for b in key {
            let _ = write!(hex, "{b:02x}");
        }
        format!("introspection:{}:{hex}", self.namespace)
    }
}

fn sensitive(mut value: HeaderValue) -> HeaderValue {
    value.set_sensitive(true);
    value
}

#[async_trait::async_trait]
impl TokenVerifier for IntrospectionVerifier {
    async fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        self.verify_shared(token).await.map(|verified| (*verified).clone())
    }

    async fn verify_shared(&self, token: &str) -> Result<Arc<VerifiedToken>, VerifyError> {
        let key = match self.local_verdict(token) {
            ControlFlow::Continue(key) => key,
            ControlFlow::Break(verdict) => return verdict,
        };
        self.inner.flights.run(key, || self.verify_uncached(token, key)).await
    }

    fn cached(&self, token: &str) -> Option<Result<Arc<VerifiedToken>, VerifyError>> {
        self.local_verdict(token).break_value()
    }
}

impl IntrospectionVerifier {
    /// The verdict this process already holds on `token` (`Break`), else its cache key (`Continue`).
    fn local_verdict(&self, token: &str) -> ControlFlow<Result<Arc<VerifiedToken>, VerifyError>, cache::Key> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return ControlFlow::Break(Err(VerifyError::invalid("the token is empty or too long")));
        }
        let inner = &self.inner;
        let key = cache::key(token);
        let now = inner.clock.now();
        if let Some(hit) = inner.positive.get(&key, now) {
            bump(&inner.stats.local_hits);
            return ControlFlow::Break(Ok(hit));
        }
        if inner.negative.get(&key, now).is_some() {
            bump(&inner.stats.local_hits);
            return ControlFlow::Break(Err(VerifyError::invalid("the token is not active")));
        }
        ControlFlow::Continue(key)
    }
}

impl IntrospectionVerifierBuilder {
    /// Authenticate with HTTP Basic (`client_secret_basic`).
    pub fn client_secret_basic(mut self, client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        self.auth =
            IntrospectionAuth::ClientSecretBasic { client_id: client_id.into(), client_secret: client_secret.into() };
        self
    }

    /// Authenticate with the credentials in the form body (`client_secret_post`).
    pub fn client_secret_post(mut self, client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        self.auth =
            IntrospectionAuth::ClientSecretPost { client_id: client_id.into(), client_secret: client_secret.into() };
        self
    }

    /// Authenticate with a bearer token of the resource server's own.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.auth = IntrospectionAuth::Bearer(token.into());
        self
    }

    /// Any authentication method.
    pub fn auth(mut self, auth: IntrospectionAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Also accept tokens whose audience names `audience`.
    pub fn accept_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Turn the RFC 8707 audience check off (it is on by default). Only for an authorization server that
    /// issues no audience and serves this resource alone: otherwise a token for another resource works here.
    pub fn audience_check(mut self, on: bool) -> Self {
        self.check_audience = on;
        self
    }

    /// Require `iss`, when the answer carries one, to be exactly `issuer`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Clock-skew tolerance on `exp` and `nbf` (default [`DEFAULT_LEEWAY`]).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// How many accepted tokens are cached (default [`DEFAULT_CACHE_CAPACITY`]; 0 disables caching). The
    /// cache of refused tokens has the same bound.
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// The longest an accepted token is trusted without asking again (default [`DEFAULT_CACHE_MAX_TTL`]):
    /// the delay before a revocation takes effect here. Entries never outlive the token's `exp`.
    pub fn cache_max_ttl(mut self, ttl: Duration) -> Self {
        self.max_ttl = ttl;
        self
    }

    /// How long a refused token is remembered (default [`DEFAULT_NEGATIVE_TTL`]; zero disables).
    pub fn negative_cache_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// The HTTP client (share one between verifiers). Default: a [`SafeHttpClient`] with the strict policy.
    pub fn http_client(mut self, http: SafeHttpClient) -> Self {
        self.http = Some(http);
        self
    }

    /// The clock for expiry and cache lifetimes (tests use [`ManualClock`](crate::clock::ManualClock)).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Share verdicts with the other replicas of this MCP server through `map`, e.g.
    /// `authflow_store::redis::RedisShared` (see the [module docs](self#caching)).
    pub fn shared_cache(mut self, map: Arc<dyn SharedMap>) -> Self {
        self.shared = Some(map);
        self
    }

    /// Check the configuration and build.
    pub fn build(self) -> Result<IntrospectionVerifier, BuildError> {
        let http = match self.http {
            Some(http) => http,
            None => SafeHttpClient::new(authflow_core::ssrf::SsrfPolicy::strict())?,
        };
        http.policy().check_url(&self.endpoint)?;
        if self.check_audience && self.audiences.iter().all(|a| a.is_empty()) {
            return Err(BuildError::Config("the resource identifier (audience) is empty"));
        }
        let shared = self.shared.map(|map| SharedVerdicts::new(map, &self.endpoint, &self.auth, &self.audiences));
        Ok(IntrospectionVerifier {
            inner: Arc::new(Inner {
                shared,
                stats: Counters::default(),
                endpoint: self.endpoint,
                auth: self.auth,
                audiences: self.check_audience.then(|| Audiences::new(self.audiences)),
                issuer: self.issuer,
                leeway: self.leeway,
                max_ttl: self.max_ttl,
                negative_ttl: self.negative_ttl,
                http,
                clock: self.clock,
                positive: ExpiringLru::new(self.capacity),
                negative: ExpiringLru::new(self.capacity),
                flights: SingleFlight::new(),
            }),
        })
    }
}

/// What an introspection answer must satisfy.
#[derive(Debug)]
pub(crate) struct Expected<'a> {
    pub audiences: Option<&'a Audiences>,
    pub issuer: Option<&'a str>,
    pub leeway: Duration,
}

fn string_member(response: &Map<String, Value>, name: &'static str) -> Result<Option<String>, VerifyError> {
    match response.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(VerifyError::invalid(format!("the introspection response has a malformed {name}"))),
    }
}

fn time_member(response: &Map<String, Value>, name: &'static str) -> Result<Option<UnixTime>, VerifyError> {
    match response.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(secs), _) => Ok(Some(UnixTime::from_secs(secs))),
            (None, Some(f)) if f.is_finite() && f >= 0.0 => Ok(Some(UnixTime::from_millis((f * 1000.0) as u64))),
            _ => Err(VerifyError::invalid(format!("the introspection response has a malformed {name}"))),
        },
        Some(_) => Err(VerifyError::invalid(format!("the introspection response has a malformed {name}"))),
    }
}

/// Check an RFC 7662 §2.2 answer (see the module docs) and turn it into a [`VerifiedToken`].
pub(crate) fn parse_response(
    response: Map<String, Value>,
    now: UnixTime,
    expected: &Expected<'_>,
) -> Result<VerifiedToken, VerifyError> {
    if response.get("active") != Some(&Value::Bool(true)) {
        return Err(VerifyError::invalid("the token is not active"));
    }
    if let Some(kind) = string_member(&response, "token_type")? {
        if !kind.eq_ignore_ascii_case("bearer") && !kind.eq_ignore_ascii_case("access_token") {
            return Err(VerifyError::invalid("the token is not a bearer access token"));
        }
    }
    let expires_at = time_member(&response, "exp")?;
    let issued_at = time_member(&response, "iat")?;
    if expires_at.is_some_and(|exp| now >= exp + expected.leeway) {
        return Err(VerifyError::invalid("the token has expired"));
    }
    if time_member(&response, "nbf")?.is_some_and(|nbf| nbf > now + expected.leeway) {
        return Err(VerifyError::invalid("the token is not yet valid"));
    }
    let issuer = string_member(&response, "iss")?;
    if let (Some(want), Some(got)) = (expected.issuer, issuer.as_deref()) {
        if want != got {
            return Err(VerifyError::invalid("the token is from another issuer"));
        }
    }
    let audience: Vec<String> = match response.get("aud") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| VerifyError::invalid("the introspection response has a malformed aud"))?,
        Some(_) => return Err(VerifyError::invalid("the introspection response has a malformed aud")),
    };
    if let Some(accepted) = expected.audiences {
        if !accepted.accepts_any(audience.iter().map(String::as_str)) {
            return Err(VerifyError::invalid("the token is not for this resource"));
        }
    }
    let scope = match string_member(&response, "scope")? {
        None => None,
        Some(s) if s.is_empty() => None,
        Some(s) => Some(
            Scope::parse(&s).map_err(|_| VerifyError::invalid("the introspection response has a malformed scope"))?,
        ),
    };
    Ok(VerifiedToken {
        subject: string_member(&response, "sub")?,
        client_id: string_member(&response, "client_id")?,
        scope,
        audience,
        expires_at,
        issued_at,
        issuer,
        claims: response,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: UnixTime = UnixTime::from_secs(1_800_000_000);

    fn parse(v: Value, audiences: Option<&Audiences>) -> Result<VerifiedToken, VerifyError> {
        let Value::Object(m) = v else { panic!("an object") };
        parse_response(m, NOW, &Expected { audiences, issuer: Some("https://as.example"), leeway: DEFAULT_LEEWAY })
    }

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        // RFC 6749 §2.3.1: "my:client" / "p@ss word" → "my%3Aclient:p%40ss+word".
        assert_eq!(
            basic_credentials("my:client", "p@ss word"),
            format!("Basic {}", STANDARD.encode("my%3Aclient:p%40ss+word"))
        );
        assert_eq!(basic_credentials("a", "b"), "Basic YTpi");
    }

    #[test]
    fn only_the_boolean_true_is_active() {
        let aud = Audiences::new(["https://mcp.example/mcp".to_owned()]);
        let ok = json!({"active": true, "aud": "https://mcp.example/mcp", "sub": "alice", "scope": "a b",
                        "exp": 1_800_000_060u64, "iss": "https://as.example", "client_id": "c"});
        let t = parse(ok.clone(), Some(&aud)).unwrap();
        assert_eq!((t.subject.as_deref(), t.client_id.as_deref()), (Some("alice"), Some("c")));
        assert_eq!(t.expires_at, Some(UnixTime::from_secs(1_800_000_060)));
        assert!(t.has_scope("a") && t.has_scope("b"));
        for active in [json!("true"), json!(1), json!(null), json!("yes"), json!([true]), json!({})] {
            let mut v = ok.clone();
            v["active"] = active.clone();
            assert_eq!(parse(v, Some(&aud)), Err(VerifyError::invalid("the token is not active")), "{active}");
        }
        let mut missing = ok.clone();
        missing.as_object_mut().unwrap().remove("active");
        assert!(parse(missing, Some(&aud)).is_err());
    }

    #[test]
    fn every_member_is_checked() {
        let aud = Audiences::new(["https://mcp.example/mcp".to_owned()]);
        let base = json!({"active": true, "aud": ["https://other.example", "https://mcp.example/mcp"]});
        parse(base.clone(), Some(&aud)).unwrap();
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            b
        };
        assert!(parse(with("aud", json!("https://other.example")), Some(&aud)).is_err());
        assert!(parse(with("aud", json!([])), Some(&aud)).is_err());
        assert!(parse(with("aud", json!([1])), Some(&aud)).is_err());
        assert!(parse(with("aud", json!(5)), Some(&aud)).is_err());
        let no_aud = json!({"active": true});
        assert!(parse(no_aud.clone(), Some(&aud)).is_err(), "fail closed without aud");
        parse(no_aud, None).unwrap();
        assert!(parse(with("token_type", json!("refresh_token")), Some(&aud)).is_err());
        parse(with("token_type", json!("bearer")), Some(&aud)).unwrap();
        parse(with("token_type", json!("access_token")), Some(&aud)).unwrap();
        assert!(parse(with("exp", json!(1_800_000_000u64 - 5)), Some(&aud)).is_err(), "expired beyond the leeway");
        parse(with("exp", json!(1_800_000_000u64 - 4)), Some(&aud)).unwrap();
        assert!(parse(with("exp", json!("soon")), Some(&aud)).is_err());
        assert!(parse(with("exp", json!(-1)), Some(&aud)).is_err());
        assert!(parse(with("nbf", json!(1_800_000_100u64)), Some(&aud)).is_err());
        assert!(parse(with("iss", json!("https://evil.example")), Some(&aud)).is_err());
        assert!(parse(with("scope", json!("a  b")), Some(&aud)).is_err());
        assert!(parse(with("scope", json!(["a"])), Some(&aud)).is_err());
        assert_eq!(parse(with("scope", json!("")), Some(&aud)).unwrap().scope, None);
        assert!(parse(with("sub", json!(1)), Some(&aud)).is_err());
        let t = parse(with("ext", json!({"tenant": "t1"})), Some(&aud)).unwrap();
        assert_eq!(t.claim("ext").unwrap()["tenant"], "t1");
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let a = IntrospectionAuth::ClientSecretBasic { client_id: "rs".into(), client_secret: "af_cs_secret".into() };
        let b = IntrospectionAuth::Bearer("af_at_secret".into());
        assert!(!format!("{a:?}{b:?}").contains("secret\""));
        assert!(!format!("{a:?}{b:?}").contains("af_"));
    }
}
