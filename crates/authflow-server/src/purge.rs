//! Background removal of expired codes, tokens and other rows.

use std::sync::Arc;
use std::time::Duration;

use authflow_store::Store;
use tokio::task::JoinHandle;

use crate::runtime::Clock;

/// Purge expired rows every `every`. Safe to run on every replica: each purge is a set of idempotent deletes.
/// A failing purge is logged and retried at the next tick; it never stops the server.
pub fn spawn_purger(store: Arc<dyn Store>, clock: Arc<dyn Clock>, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match store.purge_expired(clock.now()).await {
                Ok(report) if report.total() > 0 => tracing::info!(?report, "purged expired rows"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purge failed; will retry"),
            }
        }
    })
}
