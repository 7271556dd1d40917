//! The two things the sans-IO core never does itself: read the clock and draw random bytes.

use std::time::SystemTime;

use authflow_core::{Entropy, UnixTime};

pub use authflow_core::time::{Clock, ManualClock};

/// The system clock: the one place the server reads the time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        UnixTime::from_system_time(SystemTime::now())
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
