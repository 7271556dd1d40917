//! The device authorization grant (RFC 8628). (being written)

use crate::scope::Scope;
use crate::time::UnixTime;
use crate::token::TokenHash;

/// Where a device authorization stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Waiting for the user.
    Pending,
    /// The user approved; the next poll receives tokens.
    Approved {
        /// The user who approved.
        subject: String,
    },
    /// The user denied.
    Denied,
    /// Tokens were issued; the device code is spent.
    Consumed,
}

/// One device authorization, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceGrant {
    /// SHA-256 of the device code (the device code itself is never stored).
    pub device_code_hash: TokenHash,
    /// The user code in normalised form (upper-case letters, no separator), e.g. `BCDFGHJK`.
    pub user_code: String,
    /// The client that asked.
    pub client_id: String,
    /// The scope asked for, if any.
    pub scope: Option<Scope>,
    /// RFC 8707 resources asked for.
    pub resources: Vec<String>,
    /// Where it stands.
    pub status: DeviceStatus,
    /// The minimum polling interval in seconds; grows by 5 on each `slow_down`.
    pub interval_secs: u64,
    /// When the device last polled.
    pub last_polled_at: Option<UnixTime>,
    /// When it was created.
    pub created_at: UnixTime,
    /// When it expires.
    pub expires_at: UnixTime,
    /// Optimistic-concurrency revision: storage bumps it on every update and refuses stale writes.
    pub revision: u64,
}
