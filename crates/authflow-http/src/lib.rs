//! # authflow-http
//!
//! [`SafeHttpClient`]: the one HTTP client every outbound call of authflow goes through, hardened against
//! server-side request forgery (SSRF).
//!
//! It enforces an [`SsrfPolicy`] at three points:
//! - **before sending**: the URL's scheme (`https` unless the policy allows `http`), user information, and
//!   an address-literal host in any spelling (`https://2130706433/`, `https://[::ffff:127.0.0.1]/`);
//! - **at connection time**: a custom DNS resolver looks the name up and refuses the connection if *any*
//!   resolved address is forbidden, so a name that resolves to `127.0.0.1` or `169.254.169.254` (or
//!   rebinds to it between two lookups) is never connected to — the addresses checked are the ones used;
//! - **at every redirect**: redirects are followed by the client itself, only for `GET`, at most
//!   [`SafeHttpClientBuilder::max_redirects`] times, and each hop is checked like the first request.
//!
//! Responses are cut off at [`SafeHttpClientBuilder::max_response_bytes`] while streaming, and the whole
//! exchange (redirects included) is bounded by [`SafeHttpClientBuilder::timeout`]. System proxy variables
//! are ignored: a proxy would resolve names where the policy cannot see them. One pooled, keep-alive
//! connection pool serves every call; clones share it.
//!
//! ```no_run
//! use authflow_core::ssrf::SsrfPolicy;
//! use authflow_http::SafeHttpClient;
//!
//! # async fn run() -> Result<(), authflow_http::FetchError> {
//! let client = SafeHttpClient::new(SsrfPolicy::strict())?;
//! let jwks: serde_json::Value = client.get_json(&"https://as.example.com/jwks.json".parse().unwrap()).await?;
//! // Refused before any packet is sent:
//! assert!(client.get(&"https://169.254.169.254/latest/meta-data/".parse().unwrap()).await.is_err());
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use authflow_core::ssrf::{parse_host, Host, SsrfError, SsrfPolicy};
use bytes::Bytes;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

/// Default bound on one whole exchange, redirects and body included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on establishing a connection (TCP and TLS).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default largest response body accepted.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// Default number of redirects followed.
pub const DEFAULT_MAX_REDIRECTS: usize = 3;

/// Looks host names up. The default, [`SystemResolver`], asks the operating system; tests and deployments
/// that pin names use [`StaticResolver`]. Whatever it answers is checked against the policy.
#[async_trait::async_trait]
pub trait DnsResolver: Send + Sync + fmt::Debug + 'static {
    /// The addresses `host` resolves to.
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver (`getaddrinfo`, on a blocking thread).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait::async_trait]
impl DnsResolver for SystemResolver {
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, 0)).await?.map(|a| a.ip()).collect())
    }
}

/// Fixed answers: names not listed do not resolve.
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    names: HashMap<String, Vec<IpAddr>>,
}

impl StaticResolver {
    /// No names.
    pub fn new() -> Self {
        StaticResolver::default()
    }

    /// Answer `addresses` for `host` (case-insensitive, trailing dot ignored).
    pub fn with(mut self, host: &str, addresses: &[IpAddr]) -> Self {
        self.names.insert(normalise_name(host), addresses.to_vec());
        self
    }
}

fn normalise_name(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

#[async_trait::async_trait]
impl DnsResolver for StaticResolver {
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        self.names
            .get(&normalise_name(host))
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such host"))
    }
}

/// The refusal the resolver hands to reqwest, found again in the error's source chain.
#[derive(Debug)]
struct Refused(SsrfError);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused by the SSRF policy: {}", self.0)
    }
}

impl std::error::Error for Refused {}

/// The resolver reqwest connects through: looks up, then checks every address.
#[derive(Debug)]
struct PolicyResolver {
    policy: Arc<SsrfPolicy>,
    dns: Arc<dyn DnsResolver>,
}

impl PolicyResolver {
    async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, Box<dyn std::error::Error + Send + Sync>> {
        // Only addresses are judged here; names were judged with the URL (`SsrfPolicy::check_url`).
        let host = parse_host(name).map_err(Refused)?;
        let addresses = match &host {
            Host::Ip(ip) => vec![*ip],
            Host::Name(n) => self.dns.lookup(n).await?,
        };
        self.policy.check_resolved(name, &addresses).map_err(Refused)?;
        Ok(addresses)
    }
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = PolicyResolver { policy: self.policy.clone(), dns: self.dns.clone() };
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = this.addresses(&name).await?;
            let addrs: Addrs = Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// Why an outbound call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The SSRF policy refused the URL, a redirect target, or an address the host resolved to.
    #[error("refused by the SSRF policy: {0}")]
    Blocked(#[from] SsrfError),
    /// More redirects than allowed.
    #[error("too many redirects")]
    TooManyRedirects,
    /// A redirect without a usable `Location`.
    #[error("redirect without a valid Location")]
    BadRedirect,
    /// The response body is larger than allowed.
    #[error("the response is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The exchange took longer than allowed.
    #[error("the request timed out")]
    Timeout,
    /// Connecting, TLS, or reading the response failed.
    #[error("network error: {0}")]
    Network(String),
    /// The answer is not a success status (from the JSON helpers).
    #[error("unexpected HTTP status {0}")]
    Status(StatusCode),
    /// The body is not the JSON expected (from the JSON helpers).
    #[error("invalid JSON: {0}")]
    Json(String),
    /// The client could not be built (TLS setup, an invalid certificate).
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

impl FetchError {
    fn from_reqwest(e: reqwest::Error) -> FetchError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(err) = source {
            if let Some(Refused(policy)) = err.downcast_ref::<Refused>() {
                return FetchError::Blocked(policy.clone());
            }
            source = err.source();
        }
        if e.is_timeout() {
            return FetchError::Timeout;
        }
        // Without the URL: it may carry a query the caller considers private.
        FetchError::Network(e.without_url().to_string())
    }
}

/// A response read whole.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body (at most the configured limit).
    pub body: Bytes,
    /// The URL that answered (after redirects).
    pub url: Url,
}

impl Fetched {
    /// The body as JSON, whatever the status.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, FetchError> {
        serde_json::from_slice(&self.body).map_err(|e| FetchError::Json(e.to_string()))
    }
}

/// An HTTP client that enforces an [`SsrfPolicy`] (see the module docs). Cheap to clone; clones share
/// one connection pool.
#[derive(Clone)]
pub struct SafeHttpClient {
    inner: reqwest::Client,
    policy: Arc<SsrfPolicy>,
    timeout: Duration,
    max_response_bytes: usize,
    max_redirects: usize,
}

impl fmt::Debug for SafeHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SafeHttpClient")
            .field("policy", &self.policy)
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_redirects", &self.max_redirects)
            .finish_non_exhaustive()
    }
}

/// Builds a [`SafeHttpClient`].
#[derive(Debug)]
pub struct SafeHttpClientBuilder {
    policy: SsrfPolicy,
    dns: Arc<dyn DnsResolver>,
    timeout: Duration,
    connect_timeout: Duration,
    max_response_bytes: usize,
    max_redirects: usize,
    user_agent: String,
    root_certificates: Vec<Vec<u8>>,
}

impl SafeHttpClientBuilder {
    /// Bound on one whole exchange, redirects and body included (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Bound on establishing a connection (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Largest response body accepted (default [`DEFAULT_MAX_RESPONSE_BYTES`]).
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// Redirects followed for `GET` (default [`DEFAULT_MAX_REDIRECTS`]; 0 follows none).
    pub fn max_redirects(mut self, max: usize) -> Self {
        self.max_redirects = max;
        self
    }

    /// Another resolver (answers are still checked against the policy).
    pub fn dns_resolver(mut self, dns: impl DnsResolver) -> Self {
        self.dns = Arc::new(dns);
        self
    }

    /// The `User-Agent` header.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Also trust this PEM-encoded root certificate (e.g. a private CA), besides the bundled web roots.
    pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// Build the client.
    pub fn build(self) -> Result<SafeHttpClient, FetchError> {
        let policy = Arc::new(self.policy);
        let resolver = Arc::new(PolicyResolver { policy: policy.clone(), dns: self.dns });
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(resolver)
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(32)
            .tcp_keepalive(Duration::from_secs(60))
            .referer(false)
            .user_agent(self.user_agent);
        for pem in &self.root_certificates {
            let cert = reqwest::Certificate::from_pem(pem).map_err(|e| FetchError::Build(e.to_string()))?;
            builder = builder.add_root_certificate(cert);
        }
        let inner = builder.build().map_err(|e| FetchError::Build(e.to_string()))?;
        Ok(SafeHttpClient {
            inner,
            policy,
            timeout: self.timeout,
            max_response_bytes: self.max_response_bytes,
            max_redirects: self.max_redirects,
        })
    }
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

impl SafeHttpClient {
    /// A client with `policy` and the default limits.
    pub fn new(policy: SsrfPolicy) -> Result<SafeHttpClient, FetchError> {
        SafeHttpClient::builder(policy).build()
    }

    /// Start building a client with `policy`.
    pub fn builder(policy: SsrfPolicy) -> SafeHttpClientBuilder {
        SafeHttpClientBuilder {
            policy,
            dns: Arc::new(SystemResolver),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            user_agent: concat!("authflow/", env!("CARGO_PKG_VERSION")).to_owned(),
            root_certificates: Vec::new(),
        }
    }

    /// The policy enforced.
    pub fn policy(&self) -> &SsrfPolicy {
        &self.policy
    }

    /// `GET url`, following redirects (each one checked). Any status is returned; see
    /// [`SafeHttpClient::get_json`] for the common case.
    pub async fn get(&self, url: &Url) -> Result<Fetched, FetchError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        self.send(Method::GET, url, headers, None).await
    }

    /// `GET url` and parse a 2xx answer as JSON; any other status is [`FetchError::Status`].
    pub async fn get_json<T: DeserializeOwned>(&self, url: &Url) -> Result<T, FetchError> {
        let fetched = self.get(url).await?;
        if !fetched.status.is_success() {
            return Err(FetchError::Status(fetched.status));
        }
        fetched.json()
    }

    /// `POST url` with a form body (`application/x-www-form-urlencoded`) and extra headers. Redirects are
    /// not followed: a 3xx is returned as it came, so credentials in the body never go elsewhere.
    pub async fn post_form(&self, url: &Url, form: &[(&str, &str)], headers: HeaderMap) -> Result<Fetched, FetchError> {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let mut headers = headers;
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        if !headers.contains_key(header::ACCEPT) {
            headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        }
        self.send(Method::POST, url, headers, Some(Bytes::from(body))).await
    }

    /// Send a request under the policy and the limits. Redirects are followed for `GET` and `HEAD` only.
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<Fetched, FetchError> {
        match tokio::time::timeout(self.timeout, self.exchange(method, url.clone(), headers, body)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout),
        }
    }

    async fn exchange(
        &self,
        method: Method,
        mut url: Url,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<Fetched, FetchError> {
        let follow = method == Method::GET || method == Method::HEAD;
        let mut redirects = 0;
        loop {
            self.policy.check_url(&url)?;
            let mut request = self.inner.request(method.clone(), url.clone()).headers(headers.clone());
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            let response = request.send().await.map_err(FetchError::from_reqwest)?;
            let status = response.status();
            if follow && is_redirect(status) {
                if redirects >= self.max_redirects {
                    return Err(FetchError::TooManyRedirects);
                }
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or(FetchError::BadRedirect)?;
                url = url.join(location).map_err(|_| FetchError::BadRedirect)?;
                redirects += 1;
                continue;
            }
            return self.read(url, response).await;
        }
    }

    async fn read(&self, url: Url, mut response: reqwest::Response) -> Result<Fetched, FetchError> {
        let limit = self.max_response_bytes;
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(FetchError::TooLarge { limit });
        }
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(FetchError::from_reqwest)? {
            if body.len() + chunk.len() > limit {
                return Err(FetchError::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { status, headers, body: Bytes::from(body), url })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn resolver_checks_every_answer() {
        let dns = StaticResolver::new()
            .with("public.test", &[ip("93.184.216.34")])
            .with("rebind.test", &[ip("93.184.216.34"), ip("127.0.0.1")])
            .with("metadata.test", &[ip("169.254.169.254")])
            .with("localhost", &[ip("127.0.0.1"), ip("::1")]);
        let strict = PolicyResolver { policy: Arc::new(SsrfPolicy::strict()), dns: Arc::new(dns.clone()) };
        assert_eq!(strict.addresses("public.test").await.unwrap(), vec![ip("93.184.216.34")]);
        assert_eq!(strict.addresses("PUBLIC.test.").await.unwrap(), vec![ip("93.184.216.34")]);
        for refused in ["rebind.test", "metadata.test", "localhost", "localhost.", "0x7f000001"] {
            let err = strict.addresses(refused).await.unwrap_err();
            assert!(err.downcast_ref::<Refused>().is_some(), "{refused}: {err}");
        }
        let missing = strict.addresses("nowhere.test").await.unwrap_err();
        assert!(missing.downcast_ref::<Refused>().is_none(), "a lookup failure is not a policy refusal");

        let dev = PolicyResolver { policy: Arc::new(SsrfPolicy::development()), dns: Arc::new(dns) };
        assert!(dev.addresses("rebind.test").await.is_ok());
        assert!(dev.addresses("metadata.test").await.is_err());
    }

    #[tokio::test]
    async fn the_system_resolver_is_checked_too() {
        // `localhost` resolves (from /etc/hosts, no network) to loopback: refused unless loopback is allowed.
        let strict = PolicyResolver { policy: Arc::new(SsrfPolicy::strict()), dns: Arc::new(SystemResolver) };
        let policy = Arc::new(SsrfPolicy::strict().allow_host("localhost").unwrap().allow_loopback(false));
        let trusted = PolicyResolver { policy, dns: Arc::new(SystemResolver) };
        assert!(strict.addresses("localhost").await.unwrap_err().downcast_ref::<Refused>().is_some());
        let addresses = trusted.addresses("localhost").await.unwrap();
        assert!(addresses.iter().all(|a| a.is_loopback()), "{addresses:?}");
    }
}
