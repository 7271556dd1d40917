//! Randomness as a parameter. The core never asks the OS for random bytes; callers hand in an [`Entropy`]
//! source (the HTTP crates use the OS CSPRNG, tests use a seeded one).

/// A source of cryptographically secure random bytes.
pub trait Entropy {
    /// Fill `dest` entirely with random bytes.
    fn fill_bytes(&mut self, dest: &mut [u8]);
}

impl<E: Entropy + ?Sized> Entropy for &mut E {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        (**self).fill_bytes(dest)
    }
}

/// A deterministic, **insecure** generator for tests and simulations (SplitMix64).
#[derive(Debug, Clone)]
pub struct SeededEntropy(u64);

impl SeededEntropy {
    /// A generator whose output is fully determined by `seed`.
    pub fn new(seed: u64) -> Self {
        SeededEntropy(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Entropy for SeededEntropy {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// A uniformly random index in `0..n` without modulo bias (rejection sampling). `n` must be non-zero.
pub fn uniform_index(entropy: &mut impl Entropy, n: usize) -> usize {
    assert!(n > 0, "uniform_index over an empty range");
    let n = n as u64;
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let mut b = [0u8; 8];
        entropy.fill_bytes(&mut b);
        let v = u64::from_le_bytes(b);
        if v < zone {
            return (v % n) as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_is_deterministic_and_fills_odd_lengths() {
        let (mut a, mut b) = (SeededEntropy::new(7), SeededEntropy::new(7));
        let (mut x, mut y) = ([0u8; 13], [0u8; 13]);
        a.fill_bytes(&mut x);
        b.fill_bytes(&mut y);
        assert_eq!(x, y);
        assert_ne!(x, [0u8; 13]);
    }

    #[test]
    fn uniform_index_stays_in_range_and_covers_it() {
        let mut e = SeededEntropy::new(1);
        let mut seen = [false; 20];
        for _ in 0..2000 {
            seen[uniform_index(&mut e, 20)] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
