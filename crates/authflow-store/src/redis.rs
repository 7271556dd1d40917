//! Redis for what replicas must share and is short-lived (feature `redis`): one-time markers (client
//! assertion `jti`s), rate-limit windows, and the [`SharedMap`] the resource toolkit keeps introspection
//! verdicts and friction states in. Durable state stays in SQL.
//!
//! One auto-reconnecting multiplexed connection ([`ConnectionManager`]) serves every request. Every key
//! starts with the configured prefix, so deployments (and tests) can share a Redis without meeting.
//!
//! - [`ReplayStore::remember_once`] is one `SET key 1 NX PX ttl`: atomic by itself.
//! - [`RateLimiter::check`] keeps the core's sliding-window arithmetic in one place (Rust) and makes it
//!   atomic with [`SharedMap::compare_and_swap`] (one Lua script): read the window, decide with
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

use crate::traits::{RateLimiter, ReplayStore, SharedMap, StoreResult, Swap};
use crate::StoreError;

/// Compare-and-swap: set `KEYS[1]` to `ARGV[3]` (expiring after `ARGV[4]` ms) if it still holds `ARGV[2]`
/// (when `ARGV[1]` is `1`) or is absent (when `ARGV[1]` is `0`). Answers `{1}` on success, else `{0, current}`
/// (`current` nil when absent), so the caller can decide again without another round trip.
const COMPARE_AND_SWAP: &str = r"
local current = redis.call('GET', KEYS[1])
local expected = false
if ARGV[1] == '1' then expected = ARGV[2] end
if current ~= expected then return {0, current} end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return {1}
";

/// How many keys one `SCAN` step looks at.
const SCAN_COUNT: usize = 256;

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
        Ok(RedisShared { conn, prefix: prefix.to_owned(), cas: Script::new(COMPARE_AND_SWAP) })
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

/// A stored window; `None` (absent) is a fresh one, `Some(None)` junk.
fn decode(stored: Option<&[u8]>) -> Option<WindowState> {
    let Some(stored) = stored else {
        return Some(WindowState::new());
    };
    let mut parts = std::str::from_utf8(stored).ok()?.split(':');
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
        let key = format!("rate:{key}");
        let mut stored = self.get(&key).await?;
        for _ in 0..MAX_ATTEMPTS {
            let before = decode(stored.as_deref()).ok_or_else(|| StoreError::Corrupt(format!("rate window {key}")))?;
            let mut after = before;
            let decision = limit.check(&mut after, now);
            if after == before {
                // A refusal changes nothing (only allowed requests count): nothing to write.
                return Ok(decision);
            }
            let ttl = now.saturating_until(after.idle_at(limit));
            match self.compare_and_swap(&key, stored.as_deref(), encode(&after).as_bytes(), ttl).await? {
                Swap::Done => return Ok(decision),
                Swap::Conflict(theirs) => stored = theirs,
            }
        }
        Err(StoreError::unavailable(std::io::Error::other("rate-limit window too contended")))
    }

    async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.conn.clone();
        bounded(redis::cmd("PING").query_async::<String>(&mut conn)).await.map(drop)
    }
}

/// Milliseconds for `PX`: at least 1 (0 is an error in Redis).
fn px(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// `prefix` with the glob characters of `SCAN … MATCH` escaped, then `*`.
fn glob_prefix(prefix: &str) -> String {
    let mut glob = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            glob.push('\\');
        }
        glob.push(c);
    }
    glob.push('*');
    glob
}

/// Keys of the [`SharedMap`] live under `<prefix>map:`, apart from the markers and windows.
const MAP: &str = "map";

#[async_trait]
impl SharedMap for RedisShared {
    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let mut conn = self.conn.clone();
        bounded(redis::cmd("GET").arg(self.key(MAP, key)).query_async(&mut conn)).await
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> StoreResult<()> {
        let mut conn = self.conn.clone();
        let mut set = redis::cmd("SET");
        set.arg(self.key(MAP, key)).arg(value).arg("PX").arg(px(ttl));
        bounded(set.query_async(&mut conn)).await
    }

    async fn remove(&self, key: &str) -> StoreResult<()> {
        let mut conn = self.conn.clone();
        bounded(redis::cmd("DEL").arg(self.key(MAP, key)).query_async::<()>(&mut conn)).await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        ttl: Duration,
    ) -> StoreResult<Swap> {
        let mut conn = self.conn.clone();
        let mut invocation = self.cas.key(self.key(MAP, key));
        invocation
            .arg(if expected.is_some() { "1" } else { "0" })
            .arg(expected.unwrap_or_default())
            .arg(new)
            .arg(px(ttl));
        let reply: Vec<redis::Value> = bounded(invocation.invoke_async(&mut conn)).await?;
        match reply.as_slice() {
            [redis::Value::Int(1)] => Ok(Swap::Done),
            [redis::Value::Int(0)] | [redis::Value::Int(0), redis::Value::Nil] => Ok(Swap::Conflict(None)),
            [redis::Value::Int(0), redis::Value::BulkString(current)] => Ok(Swap::Conflict(Some(current.clone()))),
            other => Err(StoreError::Corrupt(format!("unexpected compare-and-swap reply {other:?}"))),
        }
    }

    async fn scan(&self, prefix: &str, limit: usize) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let mut conn = self.conn.clone();
        let full_prefix = self.key(MAP, "");
        let pattern = glob_prefix(&format!("{full_prefix}{prefix}"));
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let mut step = redis::cmd("SCAN");
            step.arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(SCAN_COUNT);
            let (next, batch): (u64, Vec<String>) = bounded(step.query_async(&mut conn)).await?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 || keys.len() >= limit {
                break;
            }
        }
        // SCAN may return a key twice.
        keys.sort_unstable();
        keys.dedup();
        keys.truncate(limit);
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<Vec<u8>>> = bounded(redis::cmd("MGET").arg(&keys).query_async(&mut conn)).await?;
        // A key that expired between SCAN and MGET is simply gone.
        Ok(keys
            .into_iter()
            .zip(values)
            .filter_map(|(key, value)| Some((key.strip_prefix(&full_prefix)?.to_owned(), value?)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_round_trip_and_junk_is_refused() {
        let state = WindowState { window_start: UnixTime::from_millis(1_700_000_000_000), prev: 7, curr: 3 };
        assert_eq!(decode(Some(encode(&state).as_bytes())), Some(state));
        assert_eq!(decode(None), Some(WindowState::new()));
        for junk in ["", "1:2", "1:2:3:4", "a:b:c", "-1:0:0", "1:2:\u{fffd}"] {
            assert_eq!(decode(Some(junk.as_bytes())), None, "{junk}");
        }
    }

    #[test]
    fn scan_patterns_match_the_prefix_literally() {
        assert_eq!(glob_prefix("p:friction:"), "p:friction:*");
        assert_eq!(glob_prefix("a*b?c[d]e\\"), "a\\*b\\?c\\[d\\]e\\\\*");
    }
}
