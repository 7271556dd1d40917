//! Time as a value. The core never reads a clock: callers pass `now` in, which keeps every rule testable
//! and deterministic.

use std::fmt;
use std::ops::{Add, Sub};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Milliseconds since the Unix epoch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct UnixTime(u64);

impl UnixTime {
    /// The epoch itself.
    pub const EPOCH: UnixTime = UnixTime(0);

    /// From milliseconds since the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        UnixTime(ms)
    }

    /// From whole seconds since the epoch (saturating).
    pub const fn from_secs(s: u64) -> Self {
        UnixTime(s.saturating_mul(1000))
    }

    /// From a `SystemTime` the caller read (times before the epoch become the epoch).
    pub fn from_system_time(t: std::time::SystemTime) -> Self {
        let since = t.duration_since(std::time::SystemTime::UNIX_EPOCH).unwrap_or_default();
        UnixTime(millis(since))
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the epoch, rounded down (the unit of JWT `exp`/`iat` and RFC 7662 fields).
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub fn saturating_since(self, earlier: UnixTime) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// `later - self`, or zero when `later` is earlier.
    pub fn saturating_until(self, later: UnixTime) -> Duration {
        later.saturating_since(self)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Add<Duration> for UnixTime {
    type Output = UnixTime;
    fn add(self, rhs: Duration) -> UnixTime {
        UnixTime(self.0.saturating_add(millis(rhs)))
    }
}

impl Sub<Duration> for UnixTime {
    type Output = UnixTime;
    fn sub(self, rhs: Duration) -> UnixTime {
        UnixTime(self.0.saturating_sub(millis(rhs)))
    }
}

impl fmt::Debug for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UnixTime({}.{:03})", self.0 / 1000, self.0 % 1000)
    }
}

/// A source of the current time, for the IO crates that wrap the core (the core's own rules never ask for
/// the time: they take `now` as an argument). The crates that may read the OS clock provide a `SystemClock`;
/// tests use [`ManualClock`] to move time without sleeping.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Now.
    fn now(&self) -> UnixTime;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> UnixTime {
        (**self).now()
    }
}

/// A clock that moves only when told to. Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use authflow_core::time::{Clock, ManualClock, UnixTime};
///
/// let clock = ManualClock::new(UnixTime::from_secs(1_700_000_000));
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now(), UnixTime::from_secs(1_700_000_005));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: UnixTime) -> Self {
        ManualClock(Arc::new(AtomicU64::new(start.as_millis())))
    }

    /// Move forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(millis(by), Ordering::SeqCst);
    }

    /// Show `to` (which may be earlier than now).
    pub fn set(&self, to: UnixTime) {
        self.0.store(to.as_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        UnixTime::from_millis(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = UnixTime::from_secs(10);
        assert_eq!((t + Duration::from_millis(1500)).as_millis(), 11_500);
        assert_eq!((t - Duration::from_secs(20)), UnixTime::EPOCH);
        assert_eq!(t.saturating_since(UnixTime::from_secs(12)), Duration::ZERO);
        assert_eq!(t.saturating_until(UnixTime::from_secs(12)), Duration::from_secs(2));
        assert_eq!(UnixTime::from_millis(u64::MAX) + Duration::from_secs(1), UnixTime::from_millis(u64::MAX));
        let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_millis(1_234);
        assert_eq!(UnixTime::from_system_time(t).as_millis(), 1_234);
        assert_eq!(
            UnixTime::from_system_time(std::time::SystemTime::UNIX_EPOCH - Duration::from_secs(1)),
            UnixTime::EPOCH
        );
    }
}
