//! `authflow serve`.

use std::time::Duration;

use authflow_server::AuthServer;
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

    let server = AuthServer::builder(issuer.clone(), store.clone()).scopes(config.scopes.clone()).build()?;
    let _purger = server.spawn_purger(Duration::from_secs(config.purge_interval_secs.max(1)));

    tracing::info!(%issuer, backend = store.backend(), "authflow listening on http://{local}");
    let listener = listener.tap_io(|tcp| {
        // Small request/response exchanges: don't let Nagle hold them back.
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, server.router()).with_graceful_shutdown(shutdown_signal()).await?;
    tracing::info!("authflow stopped");
    Ok(())
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
