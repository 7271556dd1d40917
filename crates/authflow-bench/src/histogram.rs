//! A log-linear latency histogram (HDR-style, fixed precision): 32 sub-buckets per power of two, so any
//! recorded value is reported within 1/32 (about 3 %) of itself, in 15 KiB whatever the range.

use std::time::Duration;

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Enough buckets for any `u64` nanosecond count.
const BUCKETS: usize = (64 - SUB_BITS as usize) * SUB + SUB;

/// Latencies in nanoseconds.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram").field("total", &self.total).field("max", &self.max).finish_non_exhaustive()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: Box::new([0; BUCKETS]), total: 0, max: 0 }
    }
}

fn index(v: u64) -> usize {
    if v < (2 * SUB) as u64 {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - SUB_BITS;
    (shift as usize + 1) * SUB + ((v >> shift) as usize & (SUB - 1))
}

/// The smallest value of bucket `i`.
fn lower_bound(i: usize) -> u64 {
    if i < 2 * SUB {
        return i as u64;
    }
    let shift = (i / SUB - 1) as u32;
    ((SUB + i % SUB) as u64) << shift
}

impl Histogram {
    /// Count one latency.
    pub fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[index(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
    }

    /// Add another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// How many latencies were recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0 < q ≤ 1): the middle of the bucket holding the value of that rank, at most the
    /// largest value recorded (exactly it for q = 1). Zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        if rank >= self.total {
            return Duration::from_nanos(self.max);
        }
        let mut seen = 0;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (lo, hi) = (lower_bound(i), lower_bound(i + 1));
                return Duration::from_nanos((lo + (hi - lo) / 2).min(self.max));
            }
        }
        Duration::from_nanos(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        for i in 0..BUCKETS - 1 {
            assert!(lower_bound(i) < lower_bound(i + 1), "bucket {i}");
            assert_eq!(index(lower_bound(i)), i);
            assert_eq!(index(lower_bound(i + 1) - 1), i);
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_within_the_precision() {
        let mut h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        for (q, want) in [(0.5, 500_000.0), (0.99, 990_000.0), (1.0, 1_000_000.0)] {
            let got = h.quantile(q).as_nanos() as f64;
            assert!((got - want).abs() / want <= 1.0 / 32.0, "q{q}: {got} vs {want}");
        }
        let mut other = Histogram::default();
        other.record(Duration::from_secs(1));
        h.merge(&other);
        assert_eq!(h.len(), 1001);
        assert_eq!(h.quantile(1.0), Duration::from_secs(1));
        assert_eq!(Histogram::default().quantile(0.5), Duration::ZERO);
    }
}
