//! `authflow serve`.

use std::time::Duration;

use authflow_server::policy::AccessTokenFormat;
use authflow_server::{AuthServer, Policy};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::cli::CliResult;
use crate::config::Config;

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
    if config.redis.is_some() {
        tracing::warn!("redis is configured but this build keeps shared state in the database and in memory");
    }

    for client in &config.clients {
        crate::admin::upsert_static_client(store.as_ref(), client).await?;
    }
    let server = AuthServer::builder(issuer.clone(), store.clone())
        .scopes(config.scopes.clone())
        .policy(policy(&config)?)
        .build()?;
    let _purger = server.spawn_purger(Duration::from_secs(config.purge_interval_secs.max(1)));

    tracing::info!(%issuer, backend = store.backend(), "authflow listening on http://{local}");
    let listener = listener.tap_io(|tcp| {
        // Small request/response exchanges: don't let Nagle hold them back.
        let _ = tcp.set_nodelay(true);
    });
    // Peer addresses feed the per-address rate limits (login, registration).
    let app = server.router().into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    tracing::info!("authflow stopped");
    Ok(())
}

/// Lifetimes and rules from the configuration.
fn policy(config: &Config) -> Result<Policy, String> {
    if config.access_token_ttl_secs == 0 || config.refresh_token_ttl_secs == 0 {
        return Err("token lifetimes must be positive".into());
    }
    if !(1..=600).contains(&config.code_ttl_secs) {
        return Err("code_ttl_secs must be between 1 and 600 (RFC 6749 §4.1.2 recommends at most 10 minutes)".into());
    }
    let access_token_format = match config.access_token_format.as_str() {
        "opaque" => AccessTokenFormat::Opaque,
        "jwt" => AccessTokenFormat::Jwt,
        other => return Err(format!("access_token_format must be \"opaque\" or \"jwt\", not {other:?}")),
    };
    Ok(Policy {
        access_token_format,
        access_token_ttl: Duration::from_secs(config.access_token_ttl_secs),
        refresh_token_ttl: Duration::from_secs(config.refresh_token_ttl_secs),
        code_ttl: Duration::from_secs(config.code_ttl_secs),
        resources: config.resources.clone(),
        require_resource: config.require_resource,
        registration_token: config.registration_initial_access_token.as_deref().map(authflow_core::TokenHash::of),
        dynamic_client_ttl: config.dynamic_client_ttl_secs.map(Duration::from_secs),
        cors_origins: config.cors_origins.clone(),
        ..Policy::default()
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: draining in-flight requests");
}

/// A database URL with any password removed, for error messages.
fn redact_url(url: &str) -> String {
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
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(super::redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact_url("sqlite://authflow.db"), "sqlite://authflow.db");
    }
}
