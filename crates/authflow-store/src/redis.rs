//! Redis for what replicas must share and is short-lived (feature `redis`): one-time markers (client
//! assertion `jti`s) and rate-limit windows. Durable state stays in SQL.
//!
//! One auto-reconnecting multiplexed connection ([`ConnectionManager`]) serves every request. Every key
//! starts with the configured prefix, so deployments (and tests) can share a Redis without meeting.
//!
//! - [`ReplayStore::remember_once`] is one `SET key 1 NX PX ttl`: atomic by itself.
//! - [`RateLimiter::check`] keeps the core's sliding-window arithmetic in one place (Rust) and makes it
//!   atomic with a compare-and-set script: read the window, decide with
//!   [`RateLimit::check`](authflow_core::ratelimit::RateLimit::check), write it back only if nobody changed
//!   it meanwhile, else decide again on what they wrote. No `WATCH` (which a multiplexed connection cannot
//!   use safely) and no second copy of the formula in Lua.
//!
//! ```no_run
//! # async fn run() -> Result<(), authflow_store::StoreError> {
//! let redis = authflow_store::redis::RedisShared::connect("redis://127.0.0.1:6379", "authflow:").await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use authflow_core::ratelimit::{Decision, RateLimit, WindowState};
use authflow_core::UnixTime;
use redis::aio::ConnectionManager;
use redis::Script;

use crate::traits::{RateLimiter, ReplayStore, StoreResult};
use crate::StoreError;

/// Compare-and-set: replace `KEYS[1]` by `ARGV[2]` (expiring after `ARGV[3]` ms) if it still holds `ARGV[1]`
/// (`""` meaning absent). Returns `false` on success, else the value found (a string), so the caller can
/// decide again without another round trip.
const COMPARE_AND_SET: &str = r"
local current = redis.call('GET', KEYS[1])
if current == false then current = '' end
if current ~= ARGV[1] then return current end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return false
";

/// How many times a contended window is decided again before giving up (each retry means another request
/// for the same key won the race, so this many in a row is extraordinary).
const MAX_ATTEMPTS: usize = 16;

/// The longest any one Redis operation may take. While Redis is away the connection manager keeps
/// reconnecting in the background; requests must not queue behind that, they fail fast (503) instead.
const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// Run one Redis operation under [`OP_TIMEOUT`].
async fn bounded<T>(op: impl std::future::Future<Output = redis::RedisResult<T>>) -> StoreResult<T> {
    match tokio::time::timeout(OP_TIMEOUT, op).await {
        Ok(result) => result.map_err(unavailable),
        Err(_) => Err(StoreError::unavailable(std::io::Error::other("Redis did not answer in time"))),
    }
}

/// A Redis connection with a key prefix, shared by clones.
#[derive(Clone)]
pub struct RedisShared {
    conn: ConnectionManager,
    prefix: String,
    cas: Script,
}

impl fmt::Debug for RedisShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisShared").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::unavailable(e)
}

impl RedisShared {
    /// Connect to `url` (`redis://host:port/db`); every key is prefixed with `prefix`. Fails if Redis does
    /// not answer now; afterwards the connection is re-established by itself when Redis comes back.
    pub async fn connect(url: &str, prefix: &str) -> StoreResult<RedisShared> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(3))
            .set_response_timeout(Duration::from_secs(3))
            .set_number_of_retries(2)
            // These feed backon's exponential backoff (first delay 1 s, times `factor` per attempt): the
            // crate's default factor of 100 makes the second reconnection attempt wait 100 s.
            .set_factor(2)
            .set_max_delay(1000);
        // The manager retries its first connection too; a deployment starting against a dead Redis should
        // hear so promptly rather than hang.
        let conn = tokio::time::timeout(Duration::from_secs(5), client.get_connection_manager_with_config(config))
            .await
            .map_err(|_| StoreError::unavailable(std::io::Error::other("Redis did not answer within 5 s")))?
            .map_err(unavailable)?;
        Ok(RedisShared { conn, prefix: prefix.to_owned(), cas: Script::new(COMPARE_AND_SET) })
    }

    /// The prefix every key starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, kind: &str, key: &str) -> String {
        format!("{}{kind}:{key}", self.prefix)
    }

    /// Delete every key under the prefix (tests clean up with it).
    pub async fn delete_all(&self) -> StoreResult<()> {
        let mut conn = self.conn.clone();
        let keys: Vec<String> =
            bounded(redis::cmd("KEYS").arg(format!("{}*", self.prefix)).query_async(&mut conn)).await?;
        if !keys.is_empty() {
            bounded(redis::cmd("DEL").arg(keys).query_async::<()>(&mut conn)).await?;
        }
        Ok(())
    }
}

/// A window as stored: `window_start_ms:prev:curr`.
fn encode(state: &WindowState) -> String {
    format!("{}:{}:{}", state.window_start.as_millis(), state.prev, state.curr)
}

fn decode(stored: &str) -> Option<WindowState> {
    if stored.is_empty() {
        return Some(WindowState::new());
    }
    let mut parts = stored.split(':');
    let start = parts.next()?.parse().ok()?;
    let prev = parts.next()?.parse().ok()?;
    let curr = parts.next()?.parse().ok()?;
    parts.next().is_none().then(|| WindowState { window_start: UnixTime::from_millis(start), prev, curr })
}

#[async_trait]
impl ReplayStore for RedisShared {
    async fn remember_once(&self, key: &str, expires_at: UnixTime, now: UnixTime) -> StoreResult<bool> {
        let ttl_ms = u64::try_from(now.saturating_until(expires_at).as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.conn.clone();
        let set: Option<String> = bounded(
            redis::cmd("SET").arg(self.key("once", key)).arg(1).arg("NX").arg("PX").arg(ttl_ms).query_async(&mut conn),
        )
        .await?;
        Ok(set.is_some())
    }
}

#[async_trait]
impl RateLimiter for RedisShared {
    async fn check(&self, key: &str, limit: &RateLimit, now: UnixTime) -> StoreResult<Decision> {
        let key = self.key("rate", key);
        let mut conn = self.conn.clone();
        let mut stored: String =
            bounded(redis::cmd("GET").arg(&key).query_async::<Option<String>>(&mut conn)).await?.unwrap_or_default();
        for _ in 0..MAX_ATTEMPTS {
            let before = decode(&stored).ok_or_else(|| StoreError::Corrupt(format!("rate window {stored:?}")))?;
            let mut after = before;
            let decision = limit.check(&mut after, now);
            if after == before {
                // A refusal changes nothing (only allowed requests count): nothing to write.
                return Ok(decision);
            }
            let ttl_ms = u64::try_from(now.saturating_until(after.idle_at(limit)).as_millis()).unwrap_or(u64::MAX);
            let mut invocation = self.cas.key(&key);
            invocation.arg(&stored).arg(encode(&after)).arg(ttl_ms.max(1));
            let found: Option<String> = bounded(invocation.invoke_async(&mut conn)).await?;
            match found {
                None => return Ok(decision),
                Some(theirs) => stored = theirs,
            }
        }
        Err(StoreError::unavailable(std::io::Error::other("rate-limit window too contended")))
    }

    async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.conn.clone();
        bounded(redis::cmd("PING").query_async::<String>(&mut conn)).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_round_trip_and_junk_is_refused() {
        let state = WindowState { window_start: UnixTime::from_millis(1_700_000_000_000), prev: 7, curr: 3 };
        assert_eq!(decode(&encode(&state)), Some(state));
        assert_eq!(decode(""), Some(WindowState::new()));
        for junk in ["1:2", "1:2:3:4", "a:b:c", "-1:0:0"] {
            assert_eq!(decode(junk), None, "{junk}");
        }
    }
}
