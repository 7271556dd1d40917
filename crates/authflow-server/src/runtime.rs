//! The two things the sans-IO core never does itself: read the clock and draw random bytes.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use authflow_core::{Entropy, UnixTime};

/// A source of the current time. Tests use [`ManualClock`] to move time without sleeping.
pub trait Clock: Send + Sync + Debug {
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

/// A clock that only moves when told to.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: UnixTime) -> Self {
        ManualClock(Arc::new(AtomicU64::new(start.as_millis())))
    }

    /// Move forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(u64::try_from(by.as_millis()).unwrap_or(u64::MAX), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        UnixTime::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// The operating system's CSPRNG.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        // Failing to read the OS CSPRNG leaves no safe way to mint credentials: stop rather than continue weak.
        getrandom::fill(dest).expect("the operating system's random number generator failed");
    }
}

/// A random identifier (client ids, user ids): 128 bits from the OS CSPRNG, base64url.
pub fn random_id() -> String {
    use base64::Engine;
    // An id starting with '-' reads as a flag on command lines (`authflow client remove -x…`): draw again.
    loop {
        let mut bytes = [0u8; 16];
        OsEntropy.fill_bytes(&mut bytes);
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        if !id.starts_with('-') {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_never_look_like_flags() {
        for _ in 0..2000 {
            let id = super::random_id();
            assert_eq!(id.len(), 22);
            assert!(!id.starts_with('-'));
        }
    }
}
