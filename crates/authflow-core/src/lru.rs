//! A bounded least-recently-used map: the recency bookkeeping shared by the in-process stores
//! ([`MemoryRateLimiter`](crate::ratelimit::MemoryRateLimiter)'s shards, the friction
//! [`MemoryStore`](crate::friction::MemoryStore), the authorization server's client cache and its resource
//! indicators' canonical forms).
//!
//! Sans-IO and policy-free: [`Lru`] only remembers which entry was used least recently. Callers with a
//! smarter eviction policy (evict an idle or unpenalised entry among the few oldest first) look at the old
//! end with [`Lru::iter`] (oldest first, bounded with `take`), [`Lru::remove`] their victim, and let
//! [`Lru::insert`] evict the plain oldest entry only when nothing better was found.
//!
//! Layout: the entries live in a `Vec` of slots that also form an intrusive doubly linked list ordered by
//! recency (indices instead of pointers, so no `unsafe`), and a `HashMap` maps each key to its slot. Freed
//! slots are reused, so the arena never holds more than `capacity` slots. Every operation is O(1) (hashing
//! aside) except [`Lru::retain`], which is O(n).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::iter::FusedIterator;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::time::UnixTime;

/// No slot: the end of the recency list. `Vec::get(NIL)` is `None`, so a stray `NIL` can never panic.
const NIL: usize = usize::MAX;

/// One arena slot: an entry (`None` while the slot is on the free list) and its neighbours by recency.
struct Slot<K, V> {
    entry: Option<(K, V)>,
    /// Towards the most recently used end.
    newer: usize,
    /// Towards the least recently used end.
    older: usize,
}

/// A map holding at most `capacity` entries, which knows the order in which they were last used.
///
/// Each key is stored twice (in the index and in its slot), so `K` should be cheap to clone, such as an
/// `Arc<str>`. An entry becomes the most recently used when it is inserted or fetched with [`Lru::get_mut`]
/// or [`Lru::get_key_value_mut`]; [`Lru::peek`] and [`Lru::iter`] leave the order alone.
///
/// No method panics, whatever the sequence of calls.
pub struct Lru<K, V> {
    index: HashMap<K, usize>,
    slots: Vec<Slot<K, V>>,
    /// Vacant slots, reused before the arena grows.
    free: Vec<usize>,
    newest: usize,
    oldest: usize,
    capacity: usize,
}

impl<K, V> Lru<K, V> {
    /// An empty map holding at most `capacity` entries (at least 1; 0 is treated as 1). Nothing is allocated
    /// up front: the arena grows with use.
    pub fn new(capacity: usize) -> Self {
        Lru {
            index: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            newest: NIL,
            oldest: NIL,
            capacity: capacity.max(1),
        }
    }

    /// The most entries held at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// The entries, least recently used first (`.rev()` for most recently used first), without changing
    /// the order. Scanning only the old end is `iter().take(n)`, O(n).
    pub fn iter(&self) -> Iter<'_, K, V> {
        Iter { slots: &self.slots, front: self.oldest, back: self.newest, remaining: self.len() }
    }

    /// Detach slot `i` from the recency list, joining its neighbours.
    fn unlink(&mut self, i: usize) {
        let Some(slot) = self.slots.get(i) else { return };
        let (newer, older) = (slot.newer, slot.older);
        match self.slots.get_mut(newer) {
            Some(n) => n.older = older,
            None => self.newest = older,
        }
        match self.slots.get_mut(older) {
            Some(o) => o.newer = newer,
            None => self.oldest = newer,
        }
    }

    /// Attach the (detached) slot `i` at the most recently used end.
    fn push_newest(&mut self, i: usize) {
        let previous = self.newest;
        let Some(slot) = self.slots.get_mut(i) else { return };
        slot.older = previous;
        slot.newer = NIL;
        match self.slots.get_mut(previous) {
            Some(p) => p.newer = i,
            None => self.oldest = i,
        }
        self.newest = i;
    }

    /// Make slot `i` the most recently used.
    fn touch(&mut self, i: usize) {
        if self.newest != i {
            self.unlink(i);
            self.push_newest(i);
        }
    }

    /// Detach slot `i`, put it on the free list and return its entry. The caller removes the index entry.
    fn vacate(&mut self, i: usize) -> Option<(K, V)> {
        let entry = self.slots.get_mut(i)?.entry.take()?;
        self.unlink(i);
        self.free.push(i);
        Some(entry)
    }

    /// The entry in slot `i`.
    fn entry_mut(&mut self, i: usize) -> Option<(&K, &mut V)> {
        let (key, value) = self.slots.get_mut(i)?.entry.as_mut()?;
        Some((&*key, value))
    }
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    /// The value of `key`, which becomes the most recently used entry.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_key_value_mut(key).map(|(_, value)| value)
    }

    /// The key as stored and the value of `key`, which becomes the most recently used entry.
    pub fn get_key_value_mut<Q>(&mut self, key: &Q) -> Option<(&K, &mut V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = *self.index.get(key)?;
        self.touch(i);
        self.entry_mut(i)
    }

    /// The value of `key`, leaving the recency order alone.
    pub fn peek<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = *self.index.get(key)?;
        self.slots.get(i)?.entry.as_ref().map(|(_, value)| value)
    }

    /// Insert `key` as the most recently used entry, returning the entry that no longer fits:
    ///
    /// - if `key` was already present, its value is replaced (the stored key is kept) and `(key, old value)`
    ///   is returned;
    /// - otherwise, if the map was full, the least recently used entry is evicted and returned;
    /// - otherwise `None`.
    pub fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        if let Some(&i) = self.index.get(&key) {
            self.touch(i);
            let (_, slot_value) = self.entry_mut(i)?;
            let old = std::mem::replace(slot_value, value);
            return Some((key, old));
        }
        let evicted = if self.len() >= self.capacity { self.pop_oldest() } else { None };
        let slot = Slot { entry: Some((key.clone(), value)), newer: NIL, older: NIL };
        let i = match self.free.pop() {
            Some(i) => match self.slots.get_mut(i) {
                Some(vacant) => {
                    *vacant = slot;
                    i
                }
                // Unreachable: free slots are always in the arena. Growing keeps the map consistent anyway.
                None => {
                    self.slots.push(slot);
                    self.slots.len() - 1
                }
            },
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.push_newest(i);
        self.index.insert(key, i);
        evicted
    }

    /// Remove `key`, returning its entry (with the key as stored).
    pub fn remove<Q>(&mut self, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.index.remove(key)?;
        self.vacate(i)
    }

    /// Remove and return the least recently used entry.
    pub fn pop_oldest(&mut self) -> Option<(K, V)> {
        let i = self.oldest;
        let (key, value) = self.vacate(i)?;
        self.index.remove(&key);
        Some((key, value))
    }

    /// Keep only the entries for which `keep` returns `true`, visiting them least recently used first and
    /// leaving the order of the survivors alone. O(n).
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        let mut i = self.oldest;
        while let Some(slot) = self.slots.get_mut(i) {
            let next = slot.newer;
            let kept = slot.entry.as_mut().is_none_or(|(key, value)| keep(key, value));
            if !kept {
                if let Some((key, _)) = self.vacate(i) {
                    self.index.remove(&key);
                }
            }
            i = next;
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for Lru<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lru").field("capacity", &self.capacity).field("oldest_first", &DebugEntries(self)).finish()
    }
}

struct DebugEntries<'a, K, V>(&'a Lru<K, V>);

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for DebugEntries<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

/// The entries of an [`Lru`], least recently used first; see [`Lru::iter`].
pub struct Iter<'a, K, V> {
    slots: &'a [Slot<K, V>],
    /// The next slot from the old end.
    front: usize,
    /// The next slot from the new end.
    back: usize,
    /// Entries not yet yielded from either end: the two cursors never cross.
    remaining: usize,
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let slot = self.slots.get(self.front)?;
        let (key, value) = slot.entry.as_ref()?;
        self.front = slot.newer;
        self.remaining -= 1;
        Some((key, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}

impl<K, V> DoubleEndedIterator for Iter<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let slot = self.slots.get(self.back)?;
        let (key, value) = slot.entry.as_ref()?;
        self.back = slot.older;
        self.remaining -= 1;
        Some((key, value))
    }
}

impl<K, V> FusedIterator for Iter<'_, K, V> {}

impl<K, V> fmt::Debug for Iter<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").field("remaining", &self.remaining).finish_non_exhaustive()
    }
}

/// A thread-safe bounded [`Lru`] whose entries expire: what the in-process caches need (clients read
/// from storage, introspection verdicts). Expired entries are dropped when seen; capacity 0 disables it.
pub struct ExpiringLru<K, V> {
    enabled: bool,
    inner: Mutex<Lru<K, (V, UnixTime)>>,
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for ExpiringLru<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExpiringLru").field("enabled", &self.enabled).finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> ExpiringLru<K, V> {
    /// An empty cache of at most `capacity` entries (0: it remembers nothing).
    pub fn new(capacity: usize) -> Self {
        ExpiringLru { enabled: capacity > 0, inner: Mutex::new(Lru::new(capacity)) }
    }

    fn lock(&self) -> MutexGuard<'_, Lru<K, (V, UnixTime)>> {
        // Entries are whole values, so a panic elsewhere cannot leave one half-written: keep going.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value of `key` if it lives at `now` (it becomes the most recently used); an expired one is dropped.
    pub fn get<Q>(&self, key: &Q, now: UnixTime) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut lru = self.lock();
        match lru.get_mut(key) {
            Some((value, expires_at)) if now < *expires_at => Some(value.clone()),
            Some(_) => {
                lru.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remember `value` until `expires_at` (exclusive), evicting the least recently used entry when full.
    pub fn insert(&self, key: K, value: V, expires_at: UnixTime) {
        if self.enabled {
            self.lock().insert(key, (value, expires_at));
        }
    }

    /// Forget `key`.
    pub fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().remove(key);
    }

    /// How many entries are held (live, or expired and not yet seen).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;

    #[test]
    fn expiring_entries_end_at_their_deadline_and_are_bounded() {
        let t = UnixTime::from_secs;
        let cache: ExpiringLru<String, u32> = ExpiringLru::new(2);
        cache.insert("a".to_owned(), 1, t(10));
        assert_eq!(cache.get("a", UnixTime::from_millis(9_999)), Some(1), "looked up by &str");
        assert_eq!(cache.get("a", t(10)), None, "the deadline is exclusive");
        assert!(cache.is_empty(), "an expired entry is dropped when seen");
        cache.insert("a".to_owned(), 1, t(100));
        cache.insert("b".to_owned(), 2, t(100));
        assert_eq!(cache.get("a", t(0)), Some(1));
        cache.insert("c".to_owned(), 3, t(100));
        assert_eq!((cache.get("b", t(0)), cache.len()), (None, 2), "the least recently used went");
        cache.remove("a");
        assert_eq!(cache.get("a", t(0)), None);
        let off: ExpiringLru<String, u32> = ExpiringLru::new(0);
        off.insert("a".to_owned(), 1, t(100));
        assert_eq!(off.get("a", t(0)), None, "capacity 0 remembers nothing");
    }

    /// The entries, oldest first.
    fn entries<K: Clone, V: Clone>(lru: &Lru<K, V>) -> Vec<(K, V)> {
        lru.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Internal consistency: the list, both directions, the index and the free list agree.
    fn check_invariants<K: Hash + Eq + Clone + fmt::Debug, V>(lru: &Lru<K, V>) {
        let forward: Vec<&K> = lru.iter().map(|(k, _)| k).collect();
        let mut backward: Vec<&K> = lru.iter().rev().map(|(k, _)| k).collect();
        backward.reverse();
        assert_eq!(forward, backward);
        assert_eq!(forward.len(), lru.len());
        assert!(lru.len() <= lru.capacity());
        assert!(lru.slots.len() <= lru.capacity(), "the arena never outgrows the capacity");
        assert_eq!(lru.slots.len(), lru.len() + lru.free.len());
        for key in forward {
            let i = lru.index[key];
            assert_eq!(lru.slots[i].entry.as_ref().map(|(k, _)| k), Some(key));
        }
        for &i in &lru.free {
            assert!(lru.slots[i].entry.is_none());
        }
    }

    #[test]
    fn evicts_least_recently_inserted_first() {
        let mut lru = Lru::new(3);
        assert_eq!(lru.insert("a", 1), None);
        assert_eq!(lru.insert("b", 2), None);
        assert_eq!(lru.insert("c", 3), None);
        assert_eq!(lru.insert("d", 4), Some(("a", 1)));
        assert_eq!(lru.insert("e", 5), Some(("b", 2)));
        assert_eq!(entries(&lru), [("c", 3), ("d", 4), ("e", 5)]);
        assert_eq!((lru.len(), lru.capacity()), (3, 3));
        check_invariants(&lru);
    }

    #[test]
    fn get_mut_touches_and_peek_does_not() {
        let mut lru = Lru::new(3);
        lru.insert("a", 1);
        lru.insert("b", 2);
        lru.insert("c", 3);
        assert_eq!(lru.peek("a"), Some(&1));
        assert_eq!(entries(&lru), [("a", 1), ("b", 2), ("c", 3)]);
        *lru.get_mut("a").unwrap() += 10;
        assert_eq!(entries(&lru), [("b", 2), ("c", 3), ("a", 11)]);
        // Touching the newest entry is a no-op.
        assert_eq!(lru.get_key_value_mut("a"), Some((&"a", &mut 11)));
        assert_eq!(entries(&lru), [("b", 2), ("c", 3), ("a", 11)]);
        // Touching the middle one.
        assert_eq!(lru.get_mut("c"), Some(&mut 3));
        assert_eq!(entries(&lru), [("b", 2), ("a", 11), ("c", 3)]);
        assert_eq!(lru.insert("d", 4), Some(("b", 2)));
        assert_eq!(lru.get_mut("b"), None);
        assert_eq!(lru.peek("b"), None);
        check_invariants(&lru);
    }

    #[test]
    fn borrowed_lookups_return_the_stored_key() {
        let mut lru: Lru<Arc<str>, u32> = Lru::new(2);
        let stored: Arc<str> = Arc::from("client");
        lru.insert(Arc::clone(&stored), 7);
        let (key, value) = lru.get_key_value_mut("client").unwrap();
        assert!(Arc::ptr_eq(key, &stored));
        *value = 8;
        assert_eq!(lru.peek("client"), Some(&8));
        let (key, value) = lru.remove("client").unwrap();
        assert!(Arc::ptr_eq(&key, &stored));
        assert_eq!(value, 8);
    }

    #[test]
    fn insert_existing_key_replaces_and_touches() {
        let mut lru = Lru::new(2);
        lru.insert("a", 1);
        lru.insert("b", 2);
        assert_eq!(lru.insert("a", 10), Some(("a", 1)));
        assert_eq!(entries(&lru), [("b", 2), ("a", 10)]);
        assert_eq!(lru.insert("c", 3), Some(("b", 2)));
        check_invariants(&lru);
    }

    #[test]
    fn remove_from_every_position() {
        for victim in ["a", "b", "c"] {
            let mut lru = Lru::new(3);
            lru.insert("a", 1);
            lru.insert("b", 2);
            lru.insert("c", 3);
            assert_eq!(lru.remove(victim).map(|(k, _)| k), Some(victim));
            assert_eq!(lru.remove(victim), None);
            assert_eq!(lru.len(), 2);
            assert!(lru.iter().all(|(k, _)| *k != victim));
            check_invariants(&lru);
            // Room again: no eviction.
            assert_eq!(lru.insert("d", 4), None);
            check_invariants(&lru);
        }
        let mut empty: Lru<&str, u32> = Lru::new(1);
        assert_eq!((empty.remove("x"), empty.pop_oldest()), (None, None));
        assert_eq!(empty.iter().next(), None);
    }

    #[test]
    fn freed_slots_are_reused() {
        let mut lru = Lru::new(4);
        for i in 0..4 {
            lru.insert(i, i);
        }
        assert_eq!(lru.remove(&1), Some((1, 1)));
        assert_eq!(lru.pop_oldest(), Some((0, 0)));
        assert_eq!(lru.free.len(), 2);
        lru.insert(10, 10);
        lru.insert(11, 11);
        assert!(lru.free.is_empty());
        assert_eq!(lru.slots.len(), 4, "no new slot while a freed one is available");
        assert_eq!(entries(&lru), [(2, 2), (3, 3), (10, 10), (11, 11)]);
        // Churn through many keys: the arena stays at the capacity.
        for i in 100..1_000 {
            lru.insert(i, i);
            if i % 3 == 0 {
                lru.remove(&(i - 1));
            }
        }
        assert_eq!(lru.slots.len(), 4);
        check_invariants(&lru);
    }

    #[test]
    fn capacity_one() {
        let mut lru = Lru::new(1);
        assert_eq!(lru.insert("a", 1), None);
        assert_eq!(lru.insert("b", 2), Some(("a", 1)));
        assert_eq!(lru.get_mut("b"), Some(&mut 2));
        assert_eq!(lru.insert("b", 3), Some(("b", 2)));
        assert_eq!(entries(&lru), [("b", 3)]);
        assert_eq!(lru.pop_oldest(), Some(("b", 3)));
        assert_eq!(lru.len(), 0);
        assert_eq!(lru.insert("c", 4), None);
        check_invariants(&lru);
        // A capacity of zero holds one entry rather than none.
        let mut zero = Lru::new(0);
        assert_eq!(zero.capacity(), 1);
        assert_eq!(zero.insert("a", 1), None);
        assert_eq!(zero.insert("b", 2), Some(("a", 1)));
        check_invariants(&zero);
    }

    #[test]
    fn bounded_scan_of_the_old_end_and_retain() {
        let mut lru = Lru::new(10);
        for i in 0..10 {
            lru.insert(i, i * 10);
        }
        lru.get_mut(&0);
        let oldest: Vec<i32> = lru.iter().take(3).map(|(k, _)| *k).collect();
        assert_eq!(oldest, [1, 2, 3]);
        let newest: Vec<i32> = lru.iter().rev().take(2).map(|(k, _)| *k).collect();
        assert_eq!(newest, [0, 9]);
        // Both ends of one iterator meet without repeating an entry.
        let mut it = lru.iter();
        let (mut seen, mut front) = (Vec::new(), true);
        while let Some((k, _)) = if front { it.next() } else { it.next_back() } {
            seen.push(*k);
            front = !front;
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!(it.next(), None);
        lru.retain(|k, v| {
            *v += 1;
            k % 2 == 0
        });
        assert_eq!(entries(&lru), [(2, 21), (4, 41), (6, 61), (8, 81), (0, 1)]);
        check_invariants(&lru);
        lru.retain(|_, _| false);
        assert_eq!(lru.len(), 0);
        assert_eq!(lru.iter().next(), None);
        check_invariants(&lru);
        assert_eq!(format!("{:?}", Lru::<u8, u8>::new(2)), "Lru { capacity: 2, oldest_first: {} }");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u32),
        GetMut(u8),
        Peek(u8),
        Remove(u8),
        PopOldest,
        Retain(u8),
        Scan(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..12, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            3 => (0u8..12).prop_map(Op::GetMut),
            1 => (0u8..12).prop_map(Op::Peek),
            2 => (0u8..12).prop_map(Op::Remove),
            1 => Just(Op::PopOldest),
            1 => (1u8..5).prop_map(Op::Retain),
            1 => (0usize..12).prop_map(Op::Scan),
        ]
    }

    proptest! {
        /// Against a plain `Vec` of entries, oldest first.
        #[test]
        fn matches_a_vec_model(capacity in 0usize..8, ops in proptest::collection::vec(op(), 0..200)) {
            let mut lru = Lru::new(capacity);
            let mut model: Vec<(u8, u32)> = Vec::new();
            let cap = capacity.max(1);
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let expected = match model.iter().position(|(mk, _)| *mk == k) {
                            Some(p) => Some((k, model.remove(p).1)),
                            None if model.len() >= cap => Some(model.remove(0)),
                            None => None,
                        };
                        model.push((k, v));
                        prop_assert_eq!(lru.insert(k, v), expected);
                    }
                    Op::GetMut(k) => {
                        // Read, then bump the value, to check the reference points into the map.
                        let expected = model.iter().position(|(mk, _)| *mk == k).map(|p| {
                            let (k, v) = model.remove(p);
                            model.push((k, v.wrapping_add(1)));
                            v
                        });
                        let got = lru.get_mut(&k).map(|v| std::mem::replace(v, v.wrapping_add(1)));
                        prop_assert_eq!(got, expected);
                    }
                    Op::Peek(k) => {
                        let expected = model.iter().find(|(mk, _)| *mk == k).map(|(_, v)| v);
                        prop_assert_eq!(lru.peek(&k), expected);
                    }
                    Op::Remove(k) => {
                        let expected = model.iter().position(|(mk, _)| *mk == k).map(|p| model.remove(p));
                        prop_assert_eq!(lru.remove(&k), expected);
                    }
                    Op::PopOldest => {
                        let expected = (!model.is_empty()).then(|| model.remove(0));
                        prop_assert_eq!(lru.pop_oldest(), expected);
                    }
                    Op::Retain(m) => {
                        model.retain(|(k, _)| k % m != 0);
                        lru.retain(|k, _| k % m != 0);
                    }
                    Op::Scan(n) => {
                        let got: Vec<(u8, u32)> = lru.iter().take(n).map(|(k, v)| (*k, *v)).collect();
                        prop_assert_eq!(&got[..], &model[..n.min(model.len())]);
                        let got: Vec<(u8, u32)> = lru.iter().rev().take(n).map(|(k, v)| (*k, *v)).collect();
                        let expected: Vec<(u8, u32)> = model.iter().rev().take(n).copied().collect();
                        prop_assert_eq!(got, expected);
                    }
                }
                prop_assert_eq!(entries(&lru), model.clone());
                prop_assert_eq!(lru.len(), model.len());
                check_invariants(&lru);
            }
        }
    }
}
