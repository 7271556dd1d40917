//! Sliding-window rate limiting.
//!
//! The algorithm is the *sliding-window counter*: time is cut into fixed windows of length `W` (aligned to
//! the Unix epoch, so every replica and every store agrees on the boundaries), and a key remembers how many
//! requests it was allowed in the current window (`curr`) and in the one before (`prev`). The previous
//! window is assumed to have been spread evenly, so the part of it still inside the sliding window of length
//! `W` ending now is weighted by how much of it still overlaps:
//!
//! ```text
//! estimate = prev * (W - elapsed) / W + curr        elapsed = now - start of the current window
//! allowed  ⇔ estimate + 1 <= limit
//! ```
//!
//! All arithmetic is exact (integers, scaled by `W` in milliseconds), so a decision never depends on
//! floating-point rounding. Only allowed requests are counted: a client that keeps hammering while limited
//! does not extend its own lockout, and [`Decision::Limited`] tells it exactly when the next request will be
//! allowed if it stops.
//!
//! The pure part is [`RateLimit::check`] over a [`WindowState`], which a shared store (e.g. Redis) can keep
//! per key. [`MemoryRateLimiter`] is the in-process keyed store with bounded memory.
//!
//! ```
//! use std::time::Duration;
//! use authflow_core::ratelimit::{Decision, RateLimit, WindowState};
//! use authflow_core::UnixTime;
//!
//! let limit = RateLimit::new(2, Duration::from_secs(60)).unwrap();
//! let mut state = WindowState::new();
//! let now = UnixTime::from_secs(1_000_020);
//! assert_eq!(limit.check(&mut state, now), Decision::Allowed { remaining: 1 });
//! assert_eq!(limit.check(&mut state, now), Decision::Allowed { remaining: 0 });
//! assert!(!limit.check(&mut state, now).is_allowed());
//! ```

use std::borrow::Cow;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, OAuthError};
use crate::lru::Lru;
use crate::time::UnixTime;
use crate::token::TokenHash;

/// The longest window accepted. Longer periods are quotas, not rate limits; the bound also keeps every
/// computation far from overflow.
pub const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// Why a [`RateLimit`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// A limit of zero would refuse everything; disable the limiter instead.
    #[error("rate limit must allow at least one request")]
    ZeroLimit,
    /// The window is shorter than one millisecond, the resolution of [`UnixTime`].
    #[error("rate limit window must be at least 1 ms")]
    WindowTooShort,
    /// The window is longer than [`MAX_WINDOW`].
    #[error("rate limit window must be at most 366 days")]
    WindowTooLong,
    /// The window has a sub-millisecond part, which [`UnixTime`] cannot represent.
    #[error("rate limit window must be a whole number of milliseconds")]
    WindowNotWholeMillis,
}

/// A validated limit: at most `limit` requests per sliding `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    limit: u32,
    window_ms: u64,
}

/// The outcome of one [`RateLimit::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The request is allowed and was counted.
    Allowed {
        /// How many more requests would be allowed right now.
        remaining: u32,
    },
    /// The request is refused and was not counted.
    Limited {
        /// The earliest moment, from the `now` of the check, at which one more request will be allowed if
        /// none is made in between (exact to the millisecond).
        retry_after: Duration,
    },
}

impl Decision {
    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }

    /// The `Retry-After` value in whole seconds (rounded up, so a client honouring it is never early), or
    /// `None` when allowed.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Decision::Allowed { .. } => None,
            Decision::Limited { retry_after } => {
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                Some(secs.max(1))
            }
        }
    }

    /// `Ok(remaining)`, or a 429 `rate_limited` error carrying the `Retry-After` hint.
    pub fn into_result(self) -> Result<u32, OAuthError> {
        match self {
            Decision::Allowed { remaining } => Ok(remaining),
            Decision::Limited { .. } => {
                Err(OAuthError::new(ErrorCode::RateLimited).retry_after(self.retry_after_secs().unwrap_or(1)))
            }
        }
    }
}

/// What one key remembers: the start of its current fixed window and the requests allowed in it and in the
/// previous one. A fresh key is [`WindowState::new`]; a shared store persists these three numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WindowState {
    /// Start of the current fixed window (a multiple of the window length when the state began fresh).
    pub window_start: UnixTime,
    /// Requests allowed in the previous window.
    pub prev: u32,
    /// Requests allowed in the current window.
    pub curr: u32,
}

impl WindowState {
    /// The state of a key never seen.
    pub const fn new() -> Self {
        WindowState { window_start: UnixTime::EPOCH, prev: 0, curr: 0 }
    }

    /// From this instant on, the state behaves exactly like a fresh one under `limit` (both windows it counts
    /// have passed), so a store may drop it: use it as the key's expiry in a shared store.
    pub fn idle_at(&self, limit: &RateLimit) -> UnixTime {
        self.window_start + Duration::from_millis(limit.window_ms.saturating_mul(2))
    }

    /// Whether the state is equivalent to a fresh one at `now` (see [`WindowState::idle_at`]).
    pub fn is_idle(&self, limit: &RateLimit, now: UnixTime) -> bool {
        now >= self.idle_at(limit)
    }
}

impl RateLimit {
    /// At most `limit` requests per sliding `window`. The window must be a whole number of milliseconds
    /// between 1 ms and [`MAX_WINDOW`].
    pub fn new(limit: u32, window: Duration) -> Result<Self, RateLimitError> {
        if limit == 0 {
            return Err(RateLimitError::ZeroLimit);
        }
        if window < Duration::from_millis(1) {
            return Err(RateLimitError::WindowTooShort);
        }
        if window > MAX_WINDOW {
            return Err(RateLimitError::WindowTooLong);
        }
        if window.subsec_nanos() % 1_000_000 != 0 {
            return Err(RateLimitError::WindowNotWholeMillis);
        }
        // Cannot fail: bounded by MAX_WINDOW above.
        let window_ms = u64::try_from(window.as_millis()).map_err(|_| RateLimitError::WindowTooLong)?;
        Ok(RateLimit { limit, window_ms })
    }

    /// The number of requests allowed per window.
    pub const fn limit(&self) -> u32 {
        self.limit
    }

    /// The window length.
    pub const fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }

    /// Decide one request at `now`, counting it in `state` if it is allowed.
    ///
    /// A clock that went backwards (`now` before `state.window_start`) is treated as the window's start: the
    /// most conservative reading, so a clock step can neither panic nor unlock a key.
    pub fn check(&self, state: &mut WindowState, now: UnixTime) -> Decision {
        let elapsed = self.roll(state, now);
        let (w, l) = (u128::from(self.window_ms), u128::from(self.limit));
        // Everything is scaled by W: `used` is W × estimate.
        let used = u128::from(state.prev) * (w - u128::from(elapsed)) + u128::from(state.curr) * w;
        if used + w <= l * w {
            // curr + 1 <= limit here, so the increment cannot overflow.
            state.curr += 1;
            // Further requests allowed at this instant: the largest n with used + w + n·w <= l·w (<= limit).
            let remaining = (l * w - used - w) / w;
            Decision::Allowed { remaining: u32::try_from(remaining).unwrap_or(u32::MAX) }
        } else {
            let at = state.window_start + Duration::from_millis(self.earliest_allowed(state, elapsed));
            Decision::Limited { retry_after: now.saturating_until(at) }
        }
    }

    /// Advance `state` to the fixed window containing `now`, returning the milliseconds elapsed in it.
    fn roll(&self, state: &mut WindowState, now: UnixTime) -> u64 {
        let w = self.window_ms;
        let elapsed = now.as_millis().saturating_sub(state.window_start.as_millis());
        let windows = elapsed / w;
        if windows > 0 {
            state.prev = if windows == 1 { state.curr } else { 0 };
            state.curr = 0;
            // Keeps the state's phase (epoch-aligned for a fresh state) and stays <= now: no overflow.
            state.window_start = UnixTime::from_millis(state.window_start.as_millis() + windows * w);
        }
        elapsed % w
    }

    /// The offset from `state.window_start` of the earliest instant at which one request is allowed, given a
    /// refusal at `elapsed` and no request in between. The estimate never increases with time (it decays
    /// within a window and does not jump up at a boundary), so the first allowed instant is well defined.
    fn earliest_allowed(&self, state: &WindowState, elapsed: u64) -> u64 {
        let (w, l) = (u128::from(self.window_ms), u128::from(self.limit));
        let (p, c) = (u128::from(state.prev), u128::from(state.curr));
        // Later in this window, at offset t: p·(W − t) <= (l − c − 1)·W  ⇔  W − t <= ⌊(l − c − 1)·W / p⌋.
        // The refusal at `elapsed` guarantees the bound is below W − elapsed, so t lands after `elapsed`.
        if c < l {
            let slack = ((l - c - 1) * w).checked_div(p).unwrap_or(u128::MAX);
            if slack >= 1 {
                let t = to_u64(w - slack.min(w));
                debug_assert!(t > elapsed, "a refused instant cannot be the earliest allowed one");
                return t;
            }
        }
        // Otherwise in the next window, where `c` becomes the previous count and nothing is current:
        // c·(W − t) <= (l − 1)·W. At the window after that (offset 2W) both counts are zero, which the
        // formula reaches when the slack is zero.
        let slack = ((l - 1) * w).checked_div(c).unwrap_or(u128::MAX);
        to_u64(w + (w - slack.min(w)))
    }
}

/// Offsets are at most 2 × [`MAX_WINDOW`] in milliseconds, far below `u64::MAX`.
fn to_u64(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// Keys longer than this are stored by their SHA-256 digest, which bounds the memory per key.
pub const MAX_INLINE_KEY_LEN: usize = 64;

/// Default number of keys a [`MemoryRateLimiter`] remembers.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// Shards of the key map; each has its own lock, so unrelated keys rarely contend.
const SHARDS: usize = 16;

/// How many of the least recently used keys are examined for an idle one before evicting the oldest.
const IDLE_SCAN: usize = 8;

/// Idle keys reclaimed from the old end of a shard on every insertion, so memory follows the active set.
const RECLAIM_PER_INSERT: usize = 2;

/// An in-process rate limiter keyed by string (a client id, an IP address, a user).
///
/// Memory is bounded: at most `max_keys` keys (split evenly between shards), and keys longer than
/// [`MAX_INLINE_KEY_LEN`] bytes are stored as their SHA-256 digest. A key idle for two windows is
/// equivalent to a fresh one, so it is dropped without changing any decision; every insertion reclaims a
/// few such keys from the least-recently-used end.
///
/// **At capacity.** When a new key arrives and its shard is full, an idle key is evicted if one is found
/// among the 8 least recently used (exact when all keys share one window length, the usual
/// case); otherwise the least recently used key is evicted, even though it still holds counts. The
/// trade-off: refusing new keys instead would let anyone who can mint keys (spoofed client ids, many source
/// addresses) lock every newcomer out, whereas evicting means such a flood can reset the count of the
/// quietest limited key. Size `max_keys` above the number of keys active within two windows and the
/// second case never happens in normal operation.
///
/// Every operation is O(1) amortised; [`MemoryRateLimiter::purge_idle`] is the only O(n) one.
pub struct MemoryRateLimiter {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    max_keys: usize,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        MemoryRateLimiter::new()
    }
}

impl fmt::Debug for MemoryRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRateLimiter")
            .field("max_keys", &self.max_keys)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl MemoryRateLimiter {
    /// A limiter remembering at most [`DEFAULT_MAX_KEYS`] keys.
    pub fn new() -> Self {
        MemoryRateLimiter::with_max_keys(DEFAULT_MAX_KEYS)
    }

    /// A limiter remembering at most `max_keys` keys (at least 1; 0 is treated as 1).
    pub fn with_max_keys(max_keys: usize) -> Self {
        MemoryRateLimiter::with_shards(max_keys, SHARDS)
    }

    fn with_shards(max_keys: usize, shards: usize) -> Self {
        let max_keys = max_keys.max(1);
        // Never more shards than keys, so every shard can hold at least one key.
        let n = shards.clamp(1, max_keys);
        let shards = (0..n)
            .map(|i| Mutex::new(Shard::new(max_keys / n + usize::from(i < max_keys % n))))
            .collect::<Vec<_>>()
            .into_boxed_slice();
        MemoryRateLimiter { shards, hasher: RandomState::new(), max_keys }
    }

    /// The most keys remembered at once.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// Decide one request for `key` at `now` under `limit`, counting it if allowed.
    ///
    /// Use one limiter per [`RateLimit`] (or keys that include the limit's name): a key's state is
    /// interpreted under whatever limit is passed in.
    pub fn check(&self, key: &str, limit: &RateLimit, now: UnixTime) -> Decision {
        let key = stored_key(key);
        let index = (self.hasher.hash_one(&*key) % self.shards.len() as u64) as usize;
        let mut shard = self.shards[index].lock().unwrap_or_else(PoisonError::into_inner);
        shard.check(&key, limit, now)
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len()).sum()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drop every key idle at `now`, returning how many were dropped. O(n): for a periodic sweep when
    /// traffic stops, since insertions already reclaim idle keys as they go.
    pub fn purge_idle(&self, now: UnixTime) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).purge_idle(now)).sum()
    }
}

/// The key as stored: itself when short, otherwise a digest form longer than [`MAX_INLINE_KEY_LEN`], so it
/// can never equal a key stored as itself.
fn stored_key(key: &str) -> Cow<'_, str> {
    if key.len() <= MAX_INLINE_KEY_LEN {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(format!("sha256:{}", TokenHash::of(key).to_hex()))
    }
}

/// What a [`MemoryRateLimiter`] remembers per key.
struct KeyState {
    state: WindowState,
    /// When `state` becomes equivalent to a fresh one (under the limit it was last checked with).
    idle_at: UnixTime,
}

/// One shard: its keys in recency order, so touching and evicting are O(1).
struct Shard {
    keys: Lru<Arc<str>, KeyState>,
}

impl Shard {
    fn new(capacity: usize) -> Self {
        Shard { keys: Lru::new(capacity) }
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn check(&mut self, key: &str, limit: &RateLimit, now: UnixTime) -> Decision {
        if let Some(entry) = self.keys.get_mut(key) {
            let decision = limit.check(&mut entry.state, now);
            entry.idle_at = entry.state.idle_at(limit);
            return decision;
        }
        self.reclaim_idle(now, RECLAIM_PER_INSERT);
        // Make room for one key: an idle one among the few least recently used if any; otherwise the
        // insertion below evicts the least recently used.
        if self.keys.len() >= self.keys.capacity() {
            let idle = self.keys.iter().take(IDLE_SCAN).find(|(_, e)| e.idle_at <= now).map(|(k, _)| Arc::clone(k));
            if let Some(idle) = idle {
                self.keys.remove(&idle);
            }
        }
        let mut state = WindowState::new();
        let decision = limit.check(&mut state, now);
        self.keys.insert(Arc::from(key), KeyState { state, idle_at: state.idle_at(limit) });
        decision
    }

    /// Drop up to `max` idle keys from the least recently used end.
    fn reclaim_idle(&mut self, now: UnixTime, max: usize) {
        for _ in 0..max {
            match self.keys.iter().next() {
                Some((_, e)) if e.idle_at <= now => self.keys.pop_oldest(),
                _ => return,
            };
        }
    }

    fn purge_idle(&mut self, now: UnixTime) -> usize {
        let before = self.keys.len();
        self.keys.retain(|_, e| e.idle_at > now);
        before - self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn rl(limit: u32, window_ms: u64) -> RateLimit {
        RateLimit::new(limit, Duration::from_millis(window_ms)).unwrap()
    }

    fn ms(v: u64) -> UnixTime {
        UnixTime::from_millis(v)
    }

    #[test]
    fn validation() {
        assert_eq!(RateLimit::new(0, Duration::from_secs(1)), Err(RateLimitError::ZeroLimit));
        assert_eq!(RateLimit::new(1, Duration::ZERO), Err(RateLimitError::WindowTooShort));
        assert_eq!(RateLimit::new(1, Duration::from_micros(999)), Err(RateLimitError::WindowTooShort));
        assert_eq!(RateLimit::new(1, Duration::from_micros(1500)), Err(RateLimitError::WindowNotWholeMillis));
        assert_eq!(RateLimit::new(1, MAX_WINDOW + Duration::from_millis(1)), Err(RateLimitError::WindowTooLong));
        let l = RateLimit::new(u32::MAX, MAX_WINDOW).unwrap();
        assert_eq!((l.limit(), l.window()), (u32::MAX, MAX_WINDOW));
        assert_eq!(rl(3, 1).window(), Duration::from_millis(1));
    }

    #[test]
    fn burst_up_to_limit_then_refuse() {
        let limit = rl(5, 60_000);
        let mut s = WindowState::new();
        let now = UnixTime::from_secs(600);
        for remaining in (0..5).rev() {
            assert_eq!(limit.check(&mut s, now), Decision::Allowed { remaining });
        }
        // At the next boundary (660 s) these 5 still weigh fully; one more fits once 5·(60 − t)/60 <= 4,
        // i.e. t = 12 s into that window.
        assert_eq!(limit.check(&mut s, now), Decision::Limited { retry_after: Duration::from_secs(72) });
        assert!(!limit.check(&mut s.clone(), UnixTime::from_millis(671_999)).is_allowed());
        assert!(limit.check(&mut s.clone(), UnixTime::from_secs(672)).is_allowed());
        assert_eq!(s.curr, 5);
    }

    #[test]
    fn slides_across_a_window_boundary() {
        // 10 per minute: 10 at t=50 s; at t=70 s the estimate is 10·50/60 = 8.33, so 1 more, not 2.
        let limit = rl(10, 60_000);
        let mut s = WindowState::new();
        for _ in 0..10 {
            assert!(limit.check(&mut s, UnixTime::from_secs(50)).is_allowed());
        }
        assert_eq!(limit.check(&mut s, UnixTime::from_secs(70)), Decision::Allowed { remaining: 0 });
        let Decision::Limited { retry_after } = limit.check(&mut s, UnixTime::from_secs(70)) else {
            panic!("second request at 70 s must be refused")
        };
        // Next allowed when 10·(60 − t)/60 + 1 + 1 <= 10, i.e. t >= 12 s into the window: at 72 s.
        assert_eq!(retry_after, Duration::from_secs(2));
        assert!(limit.check(&mut s.clone(), UnixTime::from_secs(72)).is_allowed());
        assert!(!limit.check(&mut s.clone(), UnixTime::from_millis(71_999)).is_allowed());
    }

    #[test]
    fn refused_requests_are_not_counted() {
        let limit = rl(2, 1000);
        let mut s = WindowState::new();
        assert!(limit.check(&mut s, ms(0)).is_allowed());
        assert!(limit.check(&mut s, ms(0)).is_allowed());
        // Unlock when 2·(1000 − t)/1000 + 1 <= 2 in the next window: t = 500, i.e. at 1500 ms.
        assert_eq!(limit.check(&mut s, ms(100)), Decision::Limited { retry_after: Duration::from_millis(1400) });
        for t in (100..1500).step_by(50) {
            // Hammering never moves the unlock instant.
            assert_eq!(limit.check(&mut s, ms(t)), Decision::Limited { retry_after: Duration::from_millis(1500 - t) });
        }
        assert_eq!((s.prev, s.curr), (2, 0));
        assert_eq!(limit.check(&mut s, ms(1500)), Decision::Allowed { remaining: 0 });
    }

    #[test]
    fn full_current_window_waits_for_the_boundary_and_the_decay() {
        // limit 1: the previous window must decay to zero, i.e. two boundaries away.
        let limit = rl(1, 100);
        let mut s = WindowState::new();
        assert!(limit.check(&mut s, ms(30)).is_allowed());
        assert_eq!(limit.check(&mut s, ms(30)), Decision::Limited { retry_after: Duration::from_millis(170) });
        assert!(!limit.check(&mut s.clone(), ms(199)).is_allowed());
        assert!(limit.check(&mut s, ms(200)).is_allowed());
    }

    #[test]
    fn clock_going_backwards_is_conservative() {
        let limit = rl(3, 1000);
        let mut s = WindowState::new();
        for _ in 0..3 {
            assert!(limit.check(&mut s, ms(10_500)).is_allowed());
        }
        let start = s.window_start;
        assert_eq!(start, ms(10_000));
        // Unlocks at 11 334 ms (3·(1000 − 334)/1000 + 1 <= 3). A check 9 s in the past is read as the window's
        // start: it must neither unlock nor move the window, and its retry hint points at the same instant.
        assert_eq!(limit.check(&mut s, ms(1_000)), Decision::Limited { retry_after: Duration::from_millis(10_334) });
        assert_eq!(limit.check(&mut s, UnixTime::EPOCH).retry_after_secs(), Some(12));
        assert_eq!(s.window_start, start);
        assert!(!limit.check(&mut s, ms(11_333)).is_allowed());
        assert!(limit.check(&mut s, ms(11_334)).is_allowed());
    }

    #[test]
    fn idle_state_is_fresh() {
        let limit = rl(2, 1000);
        let mut s = WindowState::new();
        limit.check(&mut s, ms(1500));
        limit.check(&mut s, ms(1500));
        assert_eq!(s.idle_at(&limit), ms(3000));
        assert!(!s.is_idle(&limit, ms(2999)));
        assert!(s.is_idle(&limit, ms(3000)));
        let (mut fresh, mut old) = (WindowState::new(), s);
        assert_eq!(limit.check(&mut old, ms(3000)), limit.check(&mut fresh, ms(3000)));
        assert_eq!(old, fresh);
    }

    #[test]
    fn decision_helpers() {
        let allowed = Decision::Allowed { remaining: 3 };
        assert_eq!(allowed.retry_after_secs(), None);
        assert_eq!(allowed.into_result(), Ok(3));
        let limited = Decision::Limited { retry_after: Duration::from_millis(1001) };
        assert_eq!(limited.retry_after_secs(), Some(2));
        assert_eq!(Decision::Limited { retry_after: Duration::from_millis(1) }.retry_after_secs(), Some(1));
        let err = limited.into_result().unwrap_err();
        assert_eq!((err.code(), err.status(), err.retry_after_secs()), (ErrorCode::RateLimited, 429, Some(2)));
    }

    #[test]
    fn memory_limiter_keys_are_independent() {
        let limiter = MemoryRateLimiter::new();
        let limit = rl(2, 1000);
        let now = ms(5_000);
        assert!(limiter.check("a", &limit, now).is_allowed());
        assert!(limiter.check("a", &limit, now).is_allowed());
        assert!(!limiter.check("a", &limit, now).is_allowed());
        assert!(limiter.check("b", &limit, now).is_allowed());
        assert_eq!(limiter.len(), 2);
        // Long keys are stored by digest but still distinguished.
        let (long_a, long_b) = ("x".repeat(1000), format!("{}y", "x".repeat(999)));
        assert!(limiter.check(&long_a, &limit, now).is_allowed());
        assert!(limiter.check(&long_a, &limit, now).is_allowed());
        assert!(!limiter.check(&long_a, &limit, now).is_allowed());
        assert!(limiter.check(&long_b, &limit, now).is_allowed());
        // The digest form of a long key is not reachable by passing it as a short key.
        assert!(limiter.check(&stored_key(&long_a), &limit, now).is_allowed());
        assert_eq!(limiter.len(), 4 + 1);
    }

    #[test]
    fn memory_limiter_is_bounded() {
        let limiter = MemoryRateLimiter::with_max_keys(1000);
        let limit = rl(1, 60_000);
        for i in 0..10_000 {
            limiter.check(&format!("key-{i}"), &limit, ms(1_000_000));
            assert!(limiter.len() <= 1000);
        }
        assert!(limiter.len() > 900, "shards should fill nearly evenly, got {}", limiter.len());
        // Tiny capacities still have room for a key in every shard.
        let tiny = MemoryRateLimiter::with_max_keys(3);
        for i in 0..100 {
            tiny.check(&i.to_string(), &limit, ms(0));
        }
        assert!(tiny.len() <= 3);
        assert_eq!(MemoryRateLimiter::with_max_keys(0).max_keys(), 1);
    }

    #[test]
    fn eviction_prefers_idle_keys_then_least_recently_used() {
        let limiter = MemoryRateLimiter::with_shards(3, 1);
        let limit = rl(1, 1000);
        limiter.check("old", &limit, ms(0)); // idle from 2000 ms
        limiter.check("a", &limit, ms(1500));
        limiter.check("b", &limit, ms(1600));
        // "a" becomes the most recently used.
        assert!(!limiter.check("a", &limit, ms(2100)).is_allowed());
        // "old" is idle: reclaimed, nobody else evicted.
        limiter.check("c", &limit, ms(2100));
        assert_eq!(limiter.len(), 3);
        assert!(!limiter.check("a", &limit, ms(2100)).is_allowed());
        assert!(!limiter.check("b", &limit, ms(2100)).is_allowed());
        // Nothing idle: the least recently used ("c") goes; the others keep their counts.
        limiter.check("d", &limit, ms(2200));
        assert_eq!(limiter.len(), 3);
        assert!(!limiter.check("a", &limit, ms(2200)).is_allowed());
        assert!(!limiter.check("b", &limit, ms(2200)).is_allowed());
        assert!(limiter.check("c", &limit, ms(2200)).is_allowed(), "evicted key starts fresh");
    }

    #[test]
    fn insertions_reclaim_idle_keys_and_purge_sweeps() {
        let limiter = MemoryRateLimiter::with_shards(100, 1);
        let limit = rl(1, 1000);
        for i in 0..50 {
            limiter.check(&format!("k{i}"), &limit, ms(0));
        }
        limiter.check("new", &limit, ms(10_000));
        assert_eq!(limiter.len(), 50 + 1 - RECLAIM_PER_INSERT);
        assert_eq!(limiter.purge_idle(ms(10_000)), 50 - RECLAIM_PER_INSERT);
        assert_eq!(limiter.len(), 1);
        assert_eq!(limiter.purge_idle(ms(100_000)), 1);
        assert!(limiter.is_empty());
        // Freed slots are reused.
        limiter.check("again", &limit, ms(100_000));
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn concurrent_checks_on_one_key_allow_exactly_the_limit() {
        let limiter = MemoryRateLimiter::new();
        let limit = rl(100, 60_000);
        let allowed = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..50 {
                        if limiter.check("shared", &limit, ms(1_000)).is_allowed() {
                            allowed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(allowed.into_inner(), 100);
    }

    /// An independent model: decisions recomputed from the full history of allowed requests.
    fn model_allows(history: &[u64], limit: u32, w: u64, now: u64) -> bool {
        let start = now / w * w;
        let prev = history.iter().filter(|&&t| t < start && t + w >= start).count() as u128;
        let curr = history.iter().filter(|&&t| t >= start).count() as u128;
        let (w, l) = (u128::from(w), u128::from(limit));
        prev * (w - u128::from(now - start)) + (curr + 1) * w <= l * w
    }

    proptest! {
        #[test]
        fn matches_the_history_model(
            limit in 1u32..6,
            w in 1u64..200,
            steps in proptest::collection::vec(0u64..120, 1..80),
        ) {
            let rate = rl(limit, w);
            let mut s = WindowState::new();
            let (mut now, mut history) = (0u64, Vec::new());
            for step in steps {
                now += step;
                let expected = model_allows(&history, limit, w, now);
                let got = rate.check(&mut s, ms(now)).is_allowed();
                prop_assert_eq!(got, expected, "at {} with history {:?}", now, history);
                if got {
                    history.push(now);
                }
            }
            // Never more than `limit` in any fixed window.
            let mut per_window = HashMap::new();
            for t in &history {
                *per_window.entry(t / w).or_insert(0u32) += 1;
            }
            prop_assert!(per_window.values().all(|&n| n <= limit));
        }

        #[test]
        fn retry_after_is_exact(
            limit in 1u32..8,
            w in 1u64..5_000,
            prev in 0u32..10,
            curr in 0u32..10,
            start_windows in 0u64..1_000,
            offset in 0u64..10_000,
        ) {
            let rate = rl(limit, w);
            let state = WindowState { window_start: ms(start_windows * w), prev, curr };
            // Includes instants before the window start: a clock that went backwards.
            let now = (start_windows * w + offset % (2 * w)).saturating_sub(w / 2);
            let mut s = state;
            if let Decision::Limited { retry_after } = rate.check(&mut s, ms(now)) {
                prop_assert!(retry_after >= Duration::from_millis(1));
                prop_assert!(retry_after <= Duration::from_millis(2 * w + w / 2 + 1));
                prop_assert!(rate.check(&mut state.clone(), ms(now) + retry_after).is_allowed());
                let just_before = ms(now) + retry_after - Duration::from_millis(1);
                prop_assert!(!rate.check(&mut state.clone(), just_before).is_allowed());
                // The refusal was not counted: the state only moved to the current window.
                let mut rolled = state;
                rate.roll(&mut rolled, ms(now));
                prop_assert_eq!(s, rolled);
            }
        }

        #[test]
        fn remaining_is_exact(
            limit in 1u32..20,
            w in 1u64..1000,
            burst in proptest::collection::vec(0u64..300, 0..30),
            extra in 0u64..1000,
        ) {
            let rate = rl(limit, w);
            let mut s = WindowState::new();
            let mut now = 0;
            for step in burst {
                now += step;
                rate.check(&mut s, ms(now));
            }
            now += extra;
            if let Decision::Allowed { remaining } = rate.check(&mut s, ms(now)) {
                for _ in 0..remaining {
                    prop_assert!(rate.check(&mut s, ms(now)).is_allowed());
                }
                prop_assert!(!rate.check(&mut s, ms(now)).is_allowed());
            }
        }

        #[test]
        fn never_panics_and_earlier_is_never_looser(
            limit in 1u32..=u32::MAX,
            w in 1u64..=MAX_WINDOW.as_millis() as u64,
            prev in any::<u32>(),
            curr in any::<u32>(),
            start in any::<u64>(),
            now in any::<u64>(),
            back in any::<u64>(),
        ) {
            // Arbitrary (even inconsistent) states and instants, up to the end of time. Without requests in
            // between the estimate never grows, so anything allowed earlier is allowed later: in particular a
            // clock going backwards cannot unlock a key.
            let rate = rl(limit, w);
            let state = WindowState { window_start: ms(start), prev, curr };
            let later = rate.check(&mut state.clone(), ms(now));
            let earlier = rate.check(&mut state.clone(), ms(now.saturating_sub(back)));
            if earlier.is_allowed() {
                prop_assert!(later.is_allowed());
            }
            let _ = later.retry_after_secs();
        }

        #[test]
        fn memory_limiter_never_exceeds_capacity(
            cap in 1usize..40,
            keys in proptest::collection::vec((0u16..200, 0u64..500), 1..300),
        ) {
            let limiter = MemoryRateLimiter::with_max_keys(cap);
            let rate = rl(3, 100);
            let mut now = 0;
            for (k, step) in keys {
                now += step;
                limiter.check(&k.to_string(), &rate, ms(now));
                prop_assert!(limiter.len() <= cap);
            }
        }
    }
}
