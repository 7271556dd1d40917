//! The verification cache: bounded, least-recently-used, expiring, keyed by the SHA-256 of the token (the
//! token itself is never kept), plus single-flight so concurrent misses for one token make one call.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

/// SHA-256 of a token: the only form in which a token is remembered.
pub(crate) type Key = [u8; 32];

/// The cache key of `token`.
pub(crate) fn key(token: &str) -> Key {
    Sha256::digest(token.as_bytes()).into()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a cache inconsistent in a way that matters: keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The bounded, expiring verdict caches.
pub(crate) type ExpiringLru<V> = authflow_core::lru::ExpiringLru<Key, V>;

/// At most one computation per key at a time: callers arriving while one runs wait for its result. If the
/// caller running it is cancelled, one of the waiters takes over.
pub(crate) struct SingleFlight<V> {
    inflight: Mutex<HashMap<Key, Arc<OnceCell<V>>>>,
}

/// Removes a flight from the map when its leader finishes or is dropped.
struct Landing<'a, V> {
    flights: &'a SingleFlight<V>,
    key: Key,
    cell: Arc<OnceCell<V>>,
}

impl<V> Drop for Landing<'_, V> {
    fn drop(&mut self) {
        let mut map = lock(&self.flights.inflight);
        if map.get(&self.key).is_some_and(|c| Arc::ptr_eq(c, &self.cell)) {
            map.remove(&self.key);
        }
    }
}

impl<V: Clone> SingleFlight<V> {
    pub(crate) fn new() -> Self {
        SingleFlight { inflight: Mutex::new(HashMap::new()) }
    }

    /// The result of `compute` for `key`, shared with every concurrent caller for the same key.
    pub(crate) async fn run<F, Fut>(&self, key: Key, compute: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let cell = lock(&self.inflight).entry(key).or_insert_with(|| Arc::new(OnceCell::new())).clone();
        let landing = Landing { flights: self, key, cell: cell.clone() };
        let value = cell.get_or_init(compute).await.clone();
        drop(landing);
        value
    }

    #[cfg(test)]
    fn in_flight(&self) -> usize {
        lock(&self.inflight).len()
    }

    /// References to the flight for `key`: one for the map, two per caller.
    #[cfg(test)]
    fn references(&self, key: &Key) -> usize {
        lock(&self.inflight).get(key).map_or(0, Arc::strong_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use authflow_core::UnixTime;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn t(s: u64) -> UnixTime {
        UnixTime::from_secs(s)
    }

    #[test]
    fn expires_exactly_at_the_deadline() {
        let c = ExpiringLru::new(4);
        c.insert(key("a"), 1, t(10));
        assert_eq!(c.get(&key("a"), UnixTime::from_millis(9_999)), Some(1));
        assert_eq!(c.get(&key("a"), t(10)), None);
        assert_eq!(c.len(), 0, "expired entries are dropped when seen");
    }

    #[test]
    fn evicts_the_least_recently_used() {
        let c = ExpiringLru::new(2);
        c.insert(key("a"), 1, t(100));
        c.insert(key("b"), 2, t(100));
        assert_eq!(c.get(&key("a"), t(0)), Some(1)); // b is now the oldest
        c.insert(key("c"), 3, t(100));
        assert_eq!((c.get(&key("a"), t(0)), c.get(&key("b"), t(0)), c.get(&key("c"), t(0))), (Some(1), None, Some(3)));
        c.insert(key("a"), 4, t(100));
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&key("a"), t(0)), Some(4));
        c.remove(&key("a"));
        assert_eq!(c.get(&key("a"), t(0)), None);
        let off = ExpiringLru::new(0);
        off.insert(key("a"), 1, t(100));
        assert_eq!(off.get(&key("a"), t(0)), None);
    }

    #[test]
    fn bounded_under_many_keys() {
        let c = ExpiringLru::new(100);
        for i in 0..10_000 {
            c.insert(key(&i.to_string()), i, t(100));
        }
        assert_eq!(c.len(), 100);
        assert_eq!(c.get(&key("9999"), t(0)), Some(9999));
        assert_eq!(c.get(&key("0"), t(0)), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn single_flight_runs_once_and_cleans_up() {
        let flights = Arc::new(SingleFlight::<usize>::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (flights, calls, gate) = (flights.clone(), calls.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                flights
                    .run(key("t"), || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        gate.notified().await;
                        42
                    })
                    .await
            }));
        }
        // Wait until every caller has joined the flight, then let the leader finish.
        while flights.references(&key("t")) < 1 + 2 * 20 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 42);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(flights.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_leader_hands_over() {
        let flights = SingleFlight::<usize>::new();
        let never = flights.run(key("t"), std::future::pending::<usize>);
        // Poll the leader once so it owns the flight, then drop it.
        tokio::select! {
            biased;
            _ = never => unreachable!("the computation never finishes"),
            _ = std::future::ready(()) => {}
        }
        assert_eq!(flights.in_flight(), 0);
        assert_eq!(flights.run(key("t"), || async { 7 }).await, 7);
    }
}
