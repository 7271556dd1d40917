//! CORS for browser-based clients (MCP Inspector runs in a web page and calls `/register`, `/token` and
//! `/revoke` directly). These endpoints use no cookies, so no credentialed CORS is ever granted; origins are
//! an allow-list: loopback origins (local developer tools) plus those configured.

use axum::http::{header, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Whether `origin` is `http(s)://localhost|127.0.0.1|[::1][:port]`.
fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) else { return false };
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split_once(']').filter(|(_, tail)| tail.is_empty() || tail.starts_with(':')).map(|(h, _)| h),
        None => Some(rest.split(':').next().unwrap_or("")),
    };
    matches!(host, Some("localhost" | "127.0.0.1" | "::1"))
}

/// The layer: loopback origins, plus `allowed` (exact origins, or `*` for any).
pub(crate) fn layer(allowed: &[String]) -> CorsLayer {
    let any = allowed.iter().any(|o| o == "*");
    let allowed: Vec<String> = allowed.to_vec();
    let origin = AllowOrigin::predicate(move |origin: &HeaderValue, _| {
        let Ok(origin) = origin.to_str() else { return false };
        any || is_loopback_origin(origin) || allowed.iter().any(|a| a == origin)
    });
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .max_age(std::time::Duration::from_secs(600))
}

#[cfg(test)]
mod tests {
    use super::is_loopback_origin;

    #[test]
    fn loopback_origins() {
        for ok in ["http://localhost:6274", "http://127.0.0.1", "https://localhost", "http://[::1]:8080"] {
            assert!(is_loopback_origin(ok), "{ok}");
        }
        for bad in [
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example",
            "https://example.com",
            "null",
            "http://[::1]evil",
        ] {
            assert!(!is_loopback_origin(bad), "{bad}");
        }
    }
}
