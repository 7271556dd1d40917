use std::sync::Arc;

use crate::{MemoryStore, Store, StoreError};

/// How [`open`] connects.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Apply pending schema migrations after connecting.
    pub migrate: bool,
    /// Upper bound on pooled connections (SQL backends).
    pub max_connections: u32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { migrate: true, max_connections: 16 }
    }
}

/// Open the backend a URL names: `memory:`, `sqlite://authflow.db` (created if missing) or
/// `postgres://user@host/db`.
///
/// ```
/// # tokio_test_shim::block_on(async {
/// let store = authflow_store::open("memory:", &Default::default()).await.unwrap();
/// assert_eq!(store.backend(), "memory");
/// # });
/// # mod tokio_test_shim { pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #   tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f) } }
/// ```
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(unused_variables))]
pub async fn open(url: &str, options: &OpenOptions) -> Result<Arc<dyn Store>, StoreError> {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
    match scheme {
        "memory" => Ok(Arc::new(MemoryStore::new())),
        #[cfg(feature = "sqlite")]
        "sqlite" => {
            let store = crate::sqlite::SqliteStore::connect(url, options.max_connections).await?;
            if options.migrate {
                store.migrate().await?;
            }
            Ok(Arc::new(store))
        }
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => {
            let store = crate::postgres::PostgresStore::connect(url, options.max_connections).await?;
            if options.migrate {
                store.migrate().await?;
            }
            Ok(Arc::new(store))
        }
        _ => Err(StoreError::Unavailable(
            format!("unsupported database URL scheme {scheme:?} (expected memory:, sqlite:// or postgres://)").into(),
        )),
    }
}
