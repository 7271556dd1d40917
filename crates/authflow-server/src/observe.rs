//! Observability: a request id and a span for every request, Prometheus metrics at `/metrics`, and the
//! audit log's target.
//!
//! - **Request ids**: an incoming `X-Request-Id` of up to 64 characters from `[A-Za-z0-9._-]` (a proxy's) is
//!   kept, anything else is replaced by a fresh one (a random per-process prefix and a counter); the id is
//!   echoed in the response and is a field of the request's span, so every log line of the request carries it.
//! - **Metrics**: requests by route and status, latency histograms by route, tokens issued by grant type,
//!   introspection answers by outcome (active or not: the authorization server's hits and misses), and
//!   requests refused because storage or Redis did not answer.
//!   Routes are the router's patterns (`/register/{client_id}`), never raw paths, so the label set stays
//!   bounded whatever clients send. `authflow_requests_total{status="503"}` counts storage and Redis
//!   outages (they are the only source of 503).
//! - **Audit**: security events are logged with target [`AUDIT`] (`AUTHFLOW_LOG=audit=info` isolates them);
//!   they name clients and users by id and never carry a secret.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use authflow_core::GrantType;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::AppState;

/// The `tracing` target of audit events.
pub const AUDIT: &str = "audit";

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Latency bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// What one route has seen: requests by status, and their latency.
#[derive(Debug, Default)]
struct RouteStats {
    statuses: Vec<(u16, u64)>,
    latency: Histogram,
}

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Keyed by route pattern. One lock per request, and no allocation once a route has been seen.
    routes: Mutex<HashMap<String, RouteStats>>,
    tokens: [AtomicU64; 4],
    /// Introspection answers: inactive, active.
    introspections: [AtomicU64; 2],
    unavailable: AtomicU64,
}

fn grant_index(grant: GrantType) -> usize {
    match grant {
        GrantType::AuthorizationCode => 0,
        GrantType::RefreshToken => 1,
        GrantType::ClientCredentials => 2,
        GrantType::DeviceCode => 3,
    }
}

const GRANTS: [GrantType; 4] =
    [GrantType::AuthorizationCode, GrantType::RefreshToken, GrantType::ClientCredentials, GrantType::DeviceCode];

impl Metrics {
    /// Count a token response for `grant`.
    pub fn token_issued(&self, grant: GrantType) {
        self.tokens[grant_index(grant)].fetch_add(1, Ordering::Relaxed);
    }

    /// Count an introspection answer.
    pub fn introspected(&self, active: bool) {
        self.introspections[usize::from(active)].fetch_add(1, Ordering::Relaxed);
    }

    fn observe(&self, route: &str, status: u16, seconds: f64) {
        if status == 503 {
            self.unavailable.fetch_add(1, Ordering::Relaxed);
        }
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let stats = match routes.get_mut(route) {
            Some(stats) => stats,
            None => routes.entry(route.to_owned()).or_default(),
        };
        match stats.statuses.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => stats.statuses.push((status, 1)),
        }
        let h = &mut stats.latency;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP authflow_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE authflow_requests_total counter\n");
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<&String> = routes.keys().collect();
        names.sort();
        for name in &names {
            let mut statuses = routes[*name].statuses.clone();
            statuses.sort_unstable();
            let route = label(name);
            for (status, n) in statuses {
                let _ = writeln!(out, "authflow_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
            }
        }
        out.push_str("# HELP authflow_request_duration_seconds HTTP request latency by route.\n");
        out.push_str("# TYPE authflow_request_duration_seconds histogram\n");
        for name in names {
            let h = &routes[name].latency;
            let route = label(name);
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                let _ =
                    writeln!(out, "authflow_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}");
            }
            let _ =
                writeln!(out, "authflow_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "authflow_request_duration_seconds_sum{{route=\"{route}\"}} {}", h.sum);
            let _ = writeln!(out, "authflow_request_duration_seconds_count{{route=\"{route}\"}} {}", h.count);
        }
        drop(routes);
        out.push_str("# HELP authflow_tokens_issued_total Token responses by grant type.\n");
        out.push_str("# TYPE authflow_tokens_issued_total counter\n");
        for grant in GRANTS {
            let n = self.tokens[grant_index(grant)].load(Ordering::Relaxed);
            let _ = writeln!(out, "authflow_tokens_issued_total{{grant_type=\"{}\"}} {n}", grant.as_str());
        }
        out.push_str("# HELP authflow_introspections_total Introspection answers by outcome.\n");
        out.push_str("# TYPE authflow_introspections_total counter\n");
        for (active, n) in ["false", "true"].iter().zip(&self.introspections) {
            let _ = writeln!(out, "authflow_introspections_total{{active=\"{active}\"}} {}", n.load(Ordering::Relaxed));
        }
        out.push_str("# HELP authflow_storage_unavailable_total Requests refused (503) because storage or Redis did not answer.\n");
        out.push_str("# TYPE authflow_storage_unavailable_total counter\n");
        let _ = writeln!(out, "authflow_storage_unavailable_total {}", self.unavailable.load(Ordering::Relaxed));
        out
    }
}

/// A label value escaped for the exposition format.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A fresh request id: a random per-process prefix and a counter. Unique across replicas and restarts
/// without a CSPRNG read per request; ids are correlation handles, not secrets.
fn new_request_id() -> HeaderValue {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| crate::random_id()[..16].to_owned());
    let id = format!("{prefix}.{:x}", NEXT.fetch_add(1, Ordering::Relaxed));
    HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn acceptable_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The middleware: request id, span, metrics.
pub(crate) async fn observe(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let id = match request.headers().get(&REQUEST_ID) {
        Some(v) if acceptable_id(v) => v.clone(),
        _ => new_request_id(),
    };
    request.headers_mut().insert(REQUEST_ID.clone(), id.clone());
    // MatchedPath is an Arc<str> inside: cloning it does not allocate.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!(
        "request",
        id = id.to_str().unwrap_or_default(),
        method = %request.method(),
        route = route,
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    state.metrics.observe(route, status, elapsed);
    span.in_scope(|| tracing::debug!(status, latency_ms = elapsed * 1000.0, "request finished"));
    response.headers_mut().insert(REQUEST_ID.clone(), id);
    response
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_is_well_formed_and_cumulative() {
        let m = Metrics::default();
        m.observe("/token", 200, 0.003);
        m.observe("/token", 200, 0.2);
        m.observe("/token", 400, 0.0005);
        m.token_issued(GrantType::ClientCredentials);
        let text = m.render();
        assert!(text.contains("authflow_requests_total{route=\"/token\",status=\"200\"} 2\n"), "{text}");
        assert!(text.contains("authflow_requests_total{route=\"/token\",status=\"400\"} 1\n"), "{text}");
        assert!(text.contains("authflow_request_duration_seconds_bucket{route=\"/token\",le=\"0.001\"} 1\n"));
        assert!(text.contains("authflow_request_duration_seconds_bucket{route=\"/token\",le=\"0.005\"} 2\n"));
        assert!(text.contains("authflow_request_duration_seconds_bucket{route=\"/token\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("authflow_tokens_issued_total{grant_type=\"client_credentials\"} 1\n"));
        assert!(text.contains("authflow_tokens_issued_total{grant_type=\"authorization_code\"} 0\n"));
    }

    #[test]
    fn only_tame_request_ids_are_kept() {
        assert!(acceptable_id(&HeaderValue::from_static("abc-123_x.y")));
        assert!(!acceptable_id(&HeaderValue::from_static("")));
        assert!(!acceptable_id(&HeaderValue::from_static("a b")));
        assert!(!acceptable_id(&HeaderValue::from_str(&"a".repeat(65)).unwrap()));
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn fresh_request_ids_are_distinct_and_would_be_kept() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_ne!(a, b);
        assert!(acceptable_id(&a) && acceptable_id(&b), "{a:?} {b:?}");
    }
}
