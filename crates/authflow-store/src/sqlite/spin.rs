//! How the writer's thread waits for the next write: it spins for a while before it sleeps, while writes
//! come close together.
//!
//! Waking a sleeping thread costs the waker a system call and the write a scheduling delay: tens of
//! microseconds on a virtual machine, whose idle vCPU the host has to wake first. On two cores, the spin
//! brought 1-6 % more client_credentials issuances per second on SQLite at 32 connections (four interleaved
//! pairs), 16 % more at 8 and 61 % more at 1, whose p50 went from 123 µs to 70 µs.
//!
//! Spinning while writes are far apart would only burn a core: the thread spins only while its recent waits
//! for a write (a moving average; the time it spends running groups does not count) are shorter than the
//! spin, and a trickle of writes makes it sleep at once. A new write every 100 µs or so of idleness keeps it
//! spinning: up to a core's worth of polling, the price of answering each write without a wake-up. On a
//! single core it never spins: the thread that would send the write could not run meanwhile.

use std::sync::mpsc::{Receiver, RecvError, TryRecvError};
use std::time::{Duration, Instant};

/// The longest spin: about a client's round trip on loopback, which is the gap a busy writer sees.
pub(super) const MAX_SPIN: Duration = Duration::from_micros(100);

/// The recent waits for a write, and so whether to spin.
#[derive(Debug)]
pub(super) struct Spin {
    /// Moving average of the waits, in microseconds; starts long (no spinning until writes come often).
    gap_us: u64,
    /// Spinning on the only core keeps the thread that would send the write from running.
    one_core: bool,
}

impl Default for Spin {
    fn default() -> Self {
        let one_core = std::thread::available_parallelism().map_or(true, |cores| cores.get() == 1);
        Spin { gap_us: IDLE_GAP_US, one_core }
    }
}

/// Where the average starts, and the most one wait counts for: a long sleep is "far apart", however long.
const IDLE_GAP_US: u64 = 4 * MAX_SPIN.as_micros() as u64;

impl Spin {
    /// How long to spin before sleeping: [`MAX_SPIN`] while the thread waits less than that for a write,
    /// else (or on one core) none.
    pub(super) fn budget(&self) -> Duration {
        if !self.one_core && self.gap_us < MAX_SPIN.as_micros() as u64 {
            MAX_SPIN
        } else {
            Duration::ZERO
        }
    }

    /// The thread waited `gap` for a write (spinning, sleeping or both).
    pub(super) fn waited(&mut self, gap: Duration) {
        let gap_us = u64::try_from(gap.as_micros()).unwrap_or(u64::MAX).min(IDLE_GAP_US);
        // A quarter of the new wait: a few short gaps in a row start the spinning, a few long ones stop it.
        self.gap_us = (self.gap_us * 3 + gap_us) / 4;
    }

    /// The next job from `queue`: spin for it while writes come often, then sleep until it comes. Fails
    /// once the queue is closed and empty.
    pub(super) fn next<T>(&mut self, queue: &Receiver<T>) -> Result<T, RecvError> {
        let started = Instant::now();
        let budget = self.budget();
        let mut tries = 0u32;
        let job = loop {
            match queue.try_recv() {
                Ok(job) => break Ok(job),
                Err(TryRecvError::Disconnected) => break Err(RecvError),
                Err(TryRecvError::Empty) if budget.is_zero() => break queue.recv(),
                Err(TryRecvError::Empty) => {}
            }
            tries = tries.wrapping_add(1);
            // The clock every 64 tries only: reading it costs more than a try.
            if tries % 64 == 0 && started.elapsed() >= budget {
                break queue.recv();
            }
            std::hint::spin_loop();
        };
        self.waited(started.elapsed());
        job
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn spins_only_while_writes_come_close_together() {
        let mut spin = Spin { one_core: false, ..Spin::default() };
        assert_eq!(spin.budget(), Duration::ZERO, "no spinning before writes have come often");
        spin.waited(micros(5));
        assert_eq!(spin.budget(), Duration::ZERO, "one short gap is not enough");
        for _ in 0..6 {
            spin.waited(micros(5));
        }
        assert_eq!(spin.budget(), MAX_SPIN, "a run of short gaps starts it");
        spin.waited(Duration::from_secs(30));
        assert_eq!(spin.budget(), Duration::ZERO, "one long sleep stops it");
        for _ in 0..6 {
            spin.waited(micros(5));
        }
        assert_eq!(spin.budget(), MAX_SPIN, "and a long sleep counts no more than a long gap");
        for _ in 0..3 {
            spin.waited(micros(300));
        }
        assert_eq!(spin.budget(), Duration::ZERO, "gaps longer than the spin stop it");
    }

    #[test]
    fn next_takes_what_is_queued_and_fails_once_closed() {
        let (send, queue) = std::sync::mpsc::channel();
        let mut spin = Spin { gap_us: 0, one_core: false };
        send.send(1).unwrap();
        assert_eq!(spin.next(&queue), Ok(1));
        let late = std::thread::spawn(move || {
            std::thread::sleep(MAX_SPIN * 20);
            send.send(2).unwrap();
        });
        assert_eq!(spin.next(&queue), Ok(2), "after the spin, it sleeps until the write comes");
        assert_eq!(spin.budget(), Duration::ZERO, "the long wait stopped the spinning");
        late.join().unwrap();
        assert_eq!(spin.next(&queue), Err(RecvError), "the sender is gone");

        let (send, queue) = std::sync::mpsc::channel::<u8>();
        let mut spin = Spin { gap_us: 0, one_core: false };
        assert_eq!(spin.budget(), MAX_SPIN);
        let gone = std::thread::spawn(move || drop(send));
        assert_eq!(spin.next(&queue), Err(RecvError), "the sender went while it spun");
        gone.join().unwrap();
    }

    #[test]
    fn never_spins_on_one_core() {
        let spin = Spin { gap_us: 0, one_core: true };
        assert_eq!(spin.budget(), Duration::ZERO);
    }
}
