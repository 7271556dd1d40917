//! `authflow serve`.

use std::sync::Arc;
use std::time::Duration;

use authflow_core::device::DevicePolicy;
use authflow_core::ssrf::SsrfPolicy;
use authflow_server::policy::{AccessTokenFormat, IpNetwork, ProxyHeader};
use authflow_server::{AuthServer, Policy};
use authflow_store::redis::RedisShared;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::cli::CliResult;
use crate::config::Config;

/// The listener with `TCP_NODELAY` on every accepted connection: OAuth and MCP exchanges are small
/// request/response pairs that Nagle's algorithm would only delay (axum::serve does not set it).
pub(crate) fn no_delay(listener: TcpListener) -> axum::serve::TapIo<TcpListener, fn(&mut tokio::net::TcpStream)> {
    listener.tap_io(set_nodelay)
}

fn set_nodelay(tcp: &mut tokio::net::TcpStream) {
    let _ = tcp.set_nodelay(true);
}

/// Open storage, build the server and serve until SIGINT/SIGTERM, draining in-flight requests.
pub async fn serve(config: Config) -> CliResult {
    let listener =
        TcpListener::bind(&config.listen).await.map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let local = listener.local_addr()?;
    let issuer = match &config.issuer {
        Some(issuer) => issuer.clone(),
        None if local.ip().is_loopback() => format!("http://{local}"),
        None => {
            return Err(format!("listening on {local}, which is not loopback: set --issuer to the public URL").into())
        }
    };
    let issuer = url::Url::parse(&issuer).map_err(|e| format!("invalid issuer {issuer:?}: {e}"))?;

    let options = authflow_store::OpenOptions { migrate: config.migrate, ..Default::default() };
    let store = authflow_store::open(&config.database, &options)
        .await
        .map_err(|e| format!("cannot open storage {}: {e}", redact_url(&config.database)))?;

    for client in &config.clients {
        crate::admin::upsert_static_client(store.as_ref(), client).await?;
    }
    let key_encryption = config.key_encryption()?;
    let rules = policy(&config)?;
    log_trusted_proxies(&rules);
    let mut builder = AuthServer::builder(issuer.clone(), store.clone()).scopes(config.scopes.clone()).policy(rules);
    if let Some(url) = &config.redis {
        // Replicas share an issuer, so it names their keyspace: one Redis can serve several deployments.
        let prefix = format!("authflow:{}:", issuer.as_str().trim_end_matches('/'));
        let redis = RedisShared::connect(url, &prefix)
            .await
            .map_err(|e| format!("cannot connect to Redis at {}: {e}", redact_url(url)))?;
        let redis = Arc::new(redis);
        builder = builder.rate_limiter(redis.clone()).replay_store(redis);
        tracing::info!("rate limits and one-time markers are shared through Redis");
    }
    if let Some(key) = key_encryption {
        builder = builder.key_encryption(key);
    }
    for provider in &config.upstream {
        builder = builder.upstream(provider.clone());
    }
    builder = builder.local_passwords(config.local_passwords);
    if !config.outbound_allowed_hosts.is_empty() {
        let policy = outbound_policy(&config.outbound_allowed_hosts)?;
        tracing::info!(allowed = ?config.outbound_allowed_hosts, "outbound calls may reach these private hosts");
        let http = authflow_resource::SafeHttpClient::builder(policy).timeout(Duration::from_secs(5)).build()?;
        builder = builder.http_client(http);
    }
    let server = builder.build()?;
    let _purger = server.spawn_purger(Duration::from_secs(config.purge_interval_secs.max(1)));

    tracing::info!(%issuer, backend = store.backend(), "authflow listening on http://{local}");
    let stop = crate::shutdown::listen()?;
    let listener = no_delay(listener);
    // Peer addresses feed the per-address rate limits (login, registration).
    let app = server.router().into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(stop).await?;
    tracing::info!("authflow stopped");
    Ok(())
}

/// The SSRF policy of outbound calls: the strict one, plus the private hosts and networks the operator named
/// (an identity provider or a client's keys on the internal network).
fn outbound_policy(allowed: &[String]) -> Result<SsrfPolicy, String> {
    allowed.iter().try_fold(SsrfPolicy::strict(), |policy, entry| match entry.parse::<IpNetwork>() {
        Ok(network) => Ok(policy.allow_network(network)),
        Err(_) if entry.contains('/') => Err(format!("outbound_allowed_hosts: {entry:?} is not a network")),
        Err(_) => policy.allow_host(entry).map_err(|e| format!("outbound_allowed_hosts: {entry:?}: {e}")),
    })
}

/// Lifetimes and rules from the configuration.
fn policy(config: &Config) -> Result<Policy, String> {
    if config.access_token_ttl_secs == 0 || config.refresh_token_ttl_secs == 0 {
        return Err("token lifetimes must be positive".into());
    }
    if !(1..=600).contains(&config.code_ttl_secs) {
        return Err("code_ttl_secs must be between 1 and 600 (RFC 6749 §4.1.2 recommends at most 10 minutes)".into());
    }
    if !(60..=3600).contains(&config.device_code_ttl_secs) {
        return Err("device_code_ttl_secs must be between 60 and 3600".into());
    }
    if !(1..=60).contains(&config.device_poll_interval_secs) {
        return Err("device_poll_interval_secs must be between 1 and 60".into());
    }
    let signing_algorithm = config.signing_algorithm()?;
    let access_token_format = match config.access_token_format.as_str() {
        "opaque" => AccessTokenFormat::Opaque,
        "jwt" => AccessTokenFormat::Jwt,
        other => return Err(format!("access_token_format must be \"opaque\" or \"jwt\", not {other:?}")),
    };
    let trusted_proxies = config
        .trusted_proxies
        .iter()
        .map(|n| n.parse::<IpNetwork>().map_err(|e| format!("trusted_proxies: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let trusted_proxy_header = match config.trusted_proxy_header.to_ascii_lowercase().as_str() {
        "x-forwarded-for" => ProxyHeader::XForwardedFor,
        "forwarded" => ProxyHeader::Forwarded,
        other => {
            return Err(format!("trusted_proxy_header must be \"x-forwarded-for\" or \"forwarded\", not {other:?}"))
        }
    };
    Ok(Policy {
        access_token_format,
        signing_algorithm,
        trusted_proxies,
        trusted_proxy_header,
        access_token_ttl: Duration::from_secs(config.access_token_ttl_secs),
        refresh_token_ttl: Duration::from_secs(config.refresh_token_ttl_secs),
        code_ttl: Duration::from_secs(config.code_ttl_secs),
        resources: config.resources.clone(),
        require_resource: config.require_resource,
        registration_token: config.registration_initial_access_token.as_deref().map(authflow_core::TokenHash::of),
        dynamic_client_ttl: config.dynamic_client_ttl_secs.map(Duration::from_secs),
        cors_origins: config.cors_origins.clone(),
        client_id_metadata_documents: config.client_id_metadata_documents,
        client_cache_ttl: Duration::from_secs(config.client_cache_ttl_secs),
        device: DevicePolicy {
            lifetime: Duration::from_secs(config.device_code_ttl_secs),
            interval_secs: config.device_poll_interval_secs,
        },
        ..Policy::default()
    })
}

/// Say at start whose word the per-address limits take; warn when a network lets any client name itself.
fn log_trusted_proxies(policy: &Policy) {
    if policy.trusted_proxies.is_empty() {
        return;
    }
    let networks = policy.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ");
    let header = match policy.trusted_proxy_header {
        ProxyHeader::XForwardedFor => "X-Forwarded-For",
        ProxyHeader::Forwarded => "Forwarded",
    };
    tracing::info!(%networks, header, "per-address limits use the client address trusted proxies forward");
    if policy.trusted_proxies.iter().any(|n| n.prefix() == 0) {
        tracing::warn!(
            "trusted_proxies includes a /0 network: any client can pick the address its limits count against"
        );
    }
}

/// A database URL with any password removed, for error messages.
pub(crate) fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use authflow_server::policy::{IpNetwork, ProxyHeader};

    use crate::config::Config;

    #[test]
    fn outbound_calls_reach_only_the_private_hosts_named() {
        use std::net::IpAddr;
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let policy = super::outbound_policy(&["idp.corp.internal".into(), "10.20.0.0/16".into()]).unwrap();
        assert!(policy.is_trusted_host("IdP.corp.internal."));
        assert!(!policy.is_trusted_host("other.corp.internal"));
        assert!(policy.check_ip(ip("10.20.3.4")).is_ok());
        assert!(policy.check_ip(ip("10.21.0.1")).is_err(), "the rest of the private ranges stays refused");
        assert!(policy.check_ip(ip("127.0.0.1")).is_err());
        assert!(!policy.allows_http(), "https is still required");
        for bad in ["10.0.0.1/8", "not a host", "10.0.0.0/99"] {
            assert!(super::outbound_policy(&[bad.into()]).unwrap_err().contains("outbound_allowed_hosts"), "{bad}");
        }
    }

    #[test]
    fn trusted_proxies_are_checked_at_start() {
        let policy = super::policy(&Config::default()).unwrap();
        assert!(policy.trusted_proxies.is_empty(), "none by default");
        assert_eq!(policy.trusted_proxy_header, ProxyHeader::XForwardedFor);

        let config = Config {
            trusted_proxies: vec!["10.0.0.0/8".into(), "::1".into()],
            trusted_proxy_header: "Forwarded".into(),
            ..Config::default()
        };
        let policy = super::policy(&config).unwrap();
        let expected: Vec<IpNetwork> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        assert_eq!(policy.trusted_proxies, expected);
        assert_eq!(policy.trusted_proxy_header, ProxyHeader::Forwarded);

        for (bad, says) in [
            ("10.0.0.0/33", "trusted_proxies: invalid network \"10.0.0.0/33\": the prefix length is at most 32"),
            ("10.0.0.1/8", "did you mean 10.0.0.0/8?"),
            ("proxy.internal", "CIDR notation"),
        ] {
            let config = Config { trusted_proxies: vec![bad.into()], ..Config::default() };
            let e = super::policy(&config).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let config = Config { trusted_proxy_header: "x-real-ip".into(), ..Config::default() };
        assert!(super::policy(&config).unwrap_err().contains("trusted_proxy_header"));
    }

    #[test]
    fn the_signing_algorithm_is_checked_at_start() {
        use authflow_core::jose::Algorithm;
        assert_eq!(super::policy(&Config::default()).unwrap().signing_algorithm, Algorithm::ES256);
        let config = Config { signing_algorithm: "EdDSA".into(), ..Config::default() };
        assert_eq!(super::policy(&config).unwrap().signing_algorithm, Algorithm::EdDSA);
        let config = Config { signing_algorithm: "RS256".into(), ..Config::default() };
        let e = super::policy(&config).unwrap_err();
        assert!(e.contains("signing_algorithm") && e.contains("\"RS256\""), "{e}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(super::redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact_url("sqlite://authflow.db"), "sqlite://authflow.db");
    }
}
