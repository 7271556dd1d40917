//! Stopping cleanly: every long-running command drains in-flight requests on Ctrl-C or SIGTERM.

use std::future::Future;

/// Installs the SIGINT (Ctrl-C) and SIGTERM handlers now and returns a future that resolves at the first signal.
///
/// Call it before announcing that the process is ready: a handler installed lazily, at the future's first poll,
/// leaves a window in which a supervisor's SIGTERM kills the process instead of stopping it.
pub(crate) fn listen() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! { _ = interrupt.recv() => {}, _ = terminate.recv() => {} }
            tracing::info!("shutting down: draining in-flight requests");
        })
    }
    #[cfg(not(unix))]
    {
        let mut ctrl_c = tokio::signal::windows::ctrl_c()?;
        Ok(async move {
            ctrl_c.recv().await;
            tracing::info!("shutting down: draining in-flight requests");
        })
    }
}
