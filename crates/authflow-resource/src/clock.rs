//! The clock the verifiers and caches read. Tests inject a [`ManualClock`] and move time without sleeping.
//!
//! Only *wall-clock* decisions go through it: token expiry, cache lifetimes, the JWKS refresh rate limit.
//! Network timeouts use the runtime's timer.
//!
//! ```
//! use std::time::Duration;
//! use authflow_resource::clock::{Clock, ManualClock};
//! use authflow_core::UnixTime;
//!
//! let clock = ManualClock::new(UnixTime::from_secs(1_700_000_000));
//! clock.advance(Duration::from_secs(5));
//! assert_eq!(clock.now(), UnixTime::from_secs(1_700_000_005));
//! ```

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use authflow_core::UnixTime;

/// A source of the current time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// Now.
    fn now(&self) -> UnixTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        let since = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        UnixTime::from_millis(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that moves only when told to. Clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: UnixTime) -> Self {
        ManualClock(Arc::new(AtomicU64::new(start.as_millis())))
    }

    /// Move forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(u64::try_from(by.as_millis()).unwrap_or(u64::MAX), Ordering::SeqCst);
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

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> UnixTime {
        (**self).now()
    }
}
