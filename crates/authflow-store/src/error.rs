use authflow_core::{ErrorCode, OAuthError};

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique key already exists (e.g. a client id, a username, a live user code).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The backend could not be reached or failed; the request may succeed later.
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored row could not be decoded: a bug or a hand-edited database.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Wrap any backend error as [`StoreError::Unavailable`].
    pub fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Unavailable(Box::new(e))
    }
}

/// Storage failures reach clients as `503 temporarily_unavailable` (never as a panic or a 500 that leaks
/// details); a conflict the caller did not handle is a server bug, reported as `server_error`.
impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => OAuthError::new(ErrorCode::TemporarilyUnavailable).retry_after(1),
            StoreError::Conflict(_) | StoreError::Corrupt(_) => OAuthError::new(ErrorCode::ServerError),
        }
    }
}
