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

use std::time::SystemTime;

use authflow_core::UnixTime;

pub use authflow_core::time::{Clock, ManualClock};

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        UnixTime::from_system_time(SystemTime::now())
    }
}
