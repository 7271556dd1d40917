//! Coalescing concurrent point operations into one statement.
//!
//! Under load many requests each look up (or write) one row at the same moment, and each statement alone
//! costs a round trip and the database's per-statement work, which dwarf the per-row work. A [`Batcher`]
//! runs a request at once while fewer than `max_in_flight` batches are running; past that, requests wait
//! and leave together, as one batch, as soon as a running batch finishes. At low load nothing waits; at
//! high load the per-statement cost is shared by up to `max_batch` requests.
//!
//! A batch runs in a task of its own, so a request that is cancelled (a client that hung up) never
//! abandons the others' statement half-way.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use crate::{StoreError, StoreResult};

/// An operation that can run for many inputs at once.
pub(crate) trait BatchOp: Send + Sync + 'static {
    /// One request's input.
    type Input: Send + 'static;
    /// One request's answer.
    type Output: Send + 'static;

    /// Run `inputs` together: one result per input, in order (a result missing at the end is answered
    /// with [`StoreError::Unavailable`]).
    fn run(&self, inputs: Vec<Self::Input>) -> impl Future<Output = Vec<StoreResult<Self::Output>>> + Send;
}

/// The same failure for each of `n` requests of a batch.
pub(crate) fn each<T>(e: StoreError, n: usize) -> Vec<StoreResult<T>> {
    let shared = Arc::new(e);
    (0..n)
        .map(|_| {
            Err(match &*shared {
                StoreError::Conflict(what) => StoreError::Conflict(what),
                StoreError::Corrupt(why) => StoreError::Corrupt(why.clone()),
                _ => StoreError::Unavailable(Box::new(Shared(shared.clone()))),
            })
        })
        .collect()
}

/// One error reported to every request of a batch.
#[derive(Debug)]
struct Shared(Arc<StoreError>);

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The inner error's own message, without `StoreError`'s "storage unavailable: " prefix twice.
        match &*self.0 {
            StoreError::Unavailable(inner) => inner.fmt(f),
            other => other.fmt(f),
        }
    }
}

impl std::error::Error for Shared {}

type Waiting<Op> = (<Op as BatchOp>::Input, oneshot::Sender<StoreResult<<Op as BatchOp>::Output>>);

/// Runs an operation for concurrent requests in batches.
pub(crate) struct Batcher<Op: BatchOp> {
    op: Op,
    max_in_flight: usize,
    max_batch: usize,
    state: Mutex<State<Op>>,
}

struct State<Op: BatchOp> {
    waiting: Vec<Waiting<Op>>,
    in_flight: usize,
}

impl<Op: BatchOp> std::fmt::Debug for Batcher<Op> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("max_in_flight", &self.max_in_flight)
            .field("max_batch", &self.max_batch)
            .finish()
    }
}

impl<Op: BatchOp> Batcher<Op> {
    /// Up to `max_in_flight` batches at once (e.g. the connections the operation may use), each of at most
    /// `max_batch` requests.
    pub(crate) fn new(op: Op, max_in_flight: usize, max_batch: usize) -> Arc<Self> {
        Arc::new(Batcher {
            op,
            max_in_flight: max_in_flight.max(1),
            max_batch: max_batch.max(1),
            state: Mutex::new(State { waiting: Vec::new(), in_flight: 0 }),
        })
    }

    /// Run the operation for `input`, alone or in a batch.
    pub(crate) async fn call(self: &Arc<Self>, input: Op::Input) -> StoreResult<Op::Output> {
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut state = self.state();
            state.waiting.push((input, answer));
            self.start(&mut state)
        };
        if let Some(batch) = start {
            tokio::spawn(Arc::clone(self).drive(batch));
        }
        answered.await.unwrap_or_else(|_| Err(StoreError::Unavailable("the batch was abandoned".into())))
    }

    fn state(&self) -> MutexGuard<'_, State<Op>> {
        // The state is consistent at every unlock; a panic elsewhere leaves nothing half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claim a slot for a new batch of the waiting requests, if one is free.
    fn start(&self, state: &mut State<Op>) -> Option<Vec<Waiting<Op>>> {
        if state.waiting.is_empty() || state.in_flight >= self.max_in_flight {
            return None;
        }
        state.in_flight += 1;
        Some(self.take(state))
    }

    fn take(&self, state: &mut State<Op>) -> Vec<Waiting<Op>> {
        if state.waiting.len() <= self.max_batch {
            std::mem::take(&mut state.waiting)
        } else {
            state.waiting.drain(..self.max_batch).collect()
        }
    }

    /// Run `batch`, then the requests that arrived meanwhile, until none wait; then free the slot.
    async fn drive(self: Arc<Self>, mut batch: Vec<Waiting<Op>>) {
        let mut slot = Slot { batcher: &self, held: true };
        loop {
            let (inputs, answers): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let results = self.op.run(inputs).await;
            for (answer, result) in answers.into_iter().zip(results) {
                // A request that stopped waiting (cancelled) needs no answer.
                let _ = answer.send(result);
            }
            let mut state = self.state();
            if state.waiting.is_empty() {
                // Freed under the lock that `call` checks it under, so no request is left waiting unseen.
                state.in_flight -= 1;
                slot.held = false;
                return;
            }
            batch = self.take(&mut state);
        }
    }
}

/// Frees a batch slot if the operation panicked, and hands the waiting requests to a new batch.
struct Slot<'a, Op: BatchOp> {
    batcher: &'a Arc<Batcher<Op>>,
    held: bool,
}

impl<Op: BatchOp> Drop for Slot<'_, Op> {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let next = {
            let mut state = self.batcher.state();
            state.in_flight -= 1;
            self.batcher.start(&mut state)
        };
        if let Some(batch) = next {
            tokio::spawn(Arc::clone(self.batcher).drive(batch));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// Doubles its inputs; remembers each batch's size; panics on 999; fails on 0.
    #[derive(Default)]
    struct Double {
        batches: Mutex<Vec<usize>>,
        running: AtomicUsize,
        most_running: AtomicUsize,
    }

    impl BatchOp for Arc<Double> {
        type Input = u32;
        type Output = u32;

        async fn run(&self, inputs: Vec<u32>) -> Vec<StoreResult<u32>> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_running.fetch_max(now, Ordering::SeqCst);
            self.batches.lock().unwrap().push(inputs.len());
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            assert!(!inputs.contains(&999), "unlucky");
            if inputs.contains(&0) {
                return each(StoreError::Corrupt("zero".into()), inputs.len());
            }
            inputs.into_iter().map(|i| Ok(i * 2)).collect()
        }
    }

    #[tokio::test]
    async fn a_lone_request_runs_at_once() {
        let op = Arc::new(Double::default());
        let batcher = Batcher::new(op.clone(), 2, 8);
        assert_eq!(batcher.call(21).await.unwrap(), 42);
        assert_eq!(*op.batches.lock().unwrap(), [1]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_batches_and_each_gets_its_answer() {
        let op = Arc::new(Double::default());
        let batcher = Batcher::new(op.clone(), 2, 8);
        let calls: Vec<_> = (1..=40u32)
            .map(|i| {
                let batcher = batcher.clone();
                tokio::spawn(async move { (i, batcher.call(i).await) })
            })
            .collect();
        for call in calls {
            let (i, answer) = call.await.unwrap();
            assert_eq!(answer.unwrap(), i * 2);
        }
        let batches = op.batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 40, "every request ran once: {batches:?}");
        assert!(batches.len() < 40, "some requests shared a statement: {batches:?}");
        assert!(batches.iter().all(|&n| n <= 8), "no batch exceeds the limit: {batches:?}");
        assert!(op.most_running.load(Ordering::SeqCst) <= 2, "at most two batches at once");
        assert_eq!(batcher.state().in_flight, 0, "every slot freed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_batch_fails_each_of_its_requests_and_the_next_batch_runs() {
        let op = Arc::new(Double::default());
        let batcher = Batcher::new(op.clone(), 1, 64);
        let first = tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.call(1).await }
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        // These queue behind the first batch and run together: 0 makes their batch fail.
        let (zero, five) = tokio::join!(batcher.call(0), batcher.call(5));
        assert_eq!(first.await.unwrap().unwrap(), 2);
        assert!(matches!(zero, Err(StoreError::Corrupt(_))));
        assert!(matches!(five, Err(StoreError::Corrupt(_))), "same batch, same failure");
        assert_eq!(batcher.call(4).await.unwrap(), 8, "later requests are unaffected");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_batch_frees_its_slot_and_hands_on_the_waiting_requests() {
        let op = Arc::new(Double::default());
        let batcher = Batcher::new(op.clone(), 1, 1);
        let unlucky = tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.call(999).await }
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        // Queued behind the panicking batch, in batches of one.
        let after = tokio::time::timeout(Duration::from_secs(10), batcher.call(3)).await;
        assert_eq!(after.expect("not stranded").unwrap(), 6);
        assert!(matches!(unlucky.await.unwrap(), Err(StoreError::Unavailable(_))));
        assert_eq!(batcher.state().in_flight, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_request_does_not_cancel_its_batch() {
        let op = Arc::new(Double::default());
        let batcher = Batcher::new(op.clone(), 1, 64);
        let first = tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.call(1).await }
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        let (cancelled, kept) =
            tokio::join!(tokio::time::timeout(Duration::from_micros(1), batcher.call(7)), batcher.call(8));
        assert!(cancelled.is_err(), "gave up waiting");
        assert_eq!(kept.unwrap(), 16);
        assert_eq!(first.await.unwrap().unwrap(), 2);
        assert_eq!(op.batches.lock().unwrap().iter().sum::<usize>(), 3, "the cancelled input still ran");
    }
}
