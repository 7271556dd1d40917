//! Where client states live: the [`FrictionStore`] trait and [`MemoryStore`], the bounded in-process
//! default (least-recently-used eviction plus a penalty box for evicted clients that were penalised).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::decision::Eviction;
use super::state::ClientState;
use crate::lru::Lru;
use crate::time::UnixTime;
use crate::token::TokenHash;

/// Client ids longer than this are stored as a digest, so a store's memory is bounded by its capacity.
pub const MAX_INLINE_CLIENT_ID_LEN: usize = 128;

/// What happened in the store while a state was fetched for update.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreOutcome {
    /// The state came back from the penalty box.
    pub restored: bool,
    /// Another client was evicted to make room.
    pub evicted: Option<Eviction>,
}

/// A synchronous, in-process home for [`ClientState`]s, one per client id.
///
/// A store shared between replicas (e.g. Redis) is asynchronous and does not fit this trait: it loads the
/// [`ClientState`], runs [`Controller::evaluate`](super::Controller::evaluate) on it, and saves it back.
pub trait FrictionStore: fmt::Debug + Send {
    /// Run `update` on the id (as stored) and state of `client_id`; an unknown client's state is created
    /// fresh, or restored from wherever the store keeps evicted penalised clients.
    fn update(
        &mut self,
        client_id: &str,
        now: UnixTime,
        update: &mut dyn FnMut(&Arc<str>, &mut ClientState),
    ) -> StoreOutcome;

    /// The state of `client_id`, if known (without touching its recency; including a penalised client the
    /// store evicted but still remembers).
    fn get(&self, client_id: &str) -> Option<&ClientState>;

    /// Visit every known client.
    fn for_each(&self, visit: &mut dyn FnMut(&str, &ClientState));

    /// How many clients are known.
    fn len(&self) -> usize;

    /// Whether no client is known.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The id as stored: itself when short, else a digest form that no short id can equal. Stores of your own
/// should key by it too, so their memory per client is bounded.
pub fn stored_id(client_id: &str) -> std::borrow::Cow<'_, str> {
    if client_id.len() <= MAX_INLINE_CLIENT_ID_LEN {
        std::borrow::Cow::Borrowed(client_id)
    } else {
        std::borrow::Cow::Owned(format!(
            "sha256:{}:{}",
            TokenHash::of(client_id).to_hex(),
            "#".repeat(MAX_INLINE_CLIENT_ID_LEN)
        ))
    }
}

/// How many of the least recently used clients are examined for an unpenalised one to evict first.
const EVICTION_SCAN: usize = 8;

/// The default store: at most `max_clients` states, least recently used evicted first (preferring, among
/// the few oldest, one that is not penalised). An evicted client that *is* penalised moves to a small
/// bounded penalty box for `cooldown`, and gets its state back if it returns in time: flooding the store
/// with new client ids does not reset anyone's friction. All operations are O(1) amortised.
pub struct MemoryStore {
    clients: Lru<Arc<str>, ClientState>,
    penalty: PenaltyBox,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("clients", &self.clients.len())
            .field("capacity", &self.clients.capacity())
            .field("penalty_box", &self.penalty.states.len())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// At most `max_clients` clients (at least 1), and up to `penalty_box_size` evicted penalised clients
    /// kept for `cooldown`.
    pub fn new(max_clients: usize, penalty_box_size: usize, cooldown: Duration) -> Self {
        MemoryStore {
            clients: Lru::new(max_clients),
            penalty: PenaltyBox {
                states: HashMap::new(),
                order: VecDeque::new(),
                capacity: penalty_box_size,
                cooldown,
            },
        }
    }

    /// How many evicted clients the penalty box holds (expired ones included until they are swept).
    pub fn penalty_box_len(&self) -> usize {
        self.penalty.states.len()
    }

    /// Evict one client: an unpenalised one among the few oldest if any, else the oldest.
    fn evict_one(&mut self, now: UnixTime) -> Option<Eviction> {
        let unpenalised = self
            .clients
            .iter()
            .take(EVICTION_SCAN)
            .find(|(_, state)| !state.is_penalised())
            .map(|(id, _)| Arc::clone(id));
        let (id, state) = match unpenalised {
            Some(id) => self.clients.remove(&id)?,
            None => self.clients.pop_oldest()?,
        };
        let penalised = state.is_penalised();
        if penalised {
            self.penalty.put(id.clone(), state, now);
        }
        Some(Eviction { client_id: id, penalised })
    }
}

impl FrictionStore for MemoryStore {
    fn update(
        &mut self,
        client_id: &str,
        now: UnixTime,
        update: &mut dyn FnMut(&Arc<str>, &mut ClientState),
    ) -> StoreOutcome {
        let key = stored_id(client_id);
        if let Some((id, state)) = self.clients.get_key_value_mut(&*key) {
            update(id, state);
            return StoreOutcome { restored: false, evicted: None };
        }
        let evicted = if self.clients.len() >= self.clients.capacity() { self.evict_one(now) } else { None };
        let (id, mut state, restored) = match self.penalty.take(&key, now) {
            Some((id, state)) => (id, state, true),
            None => (Arc::from(&*key), ClientState::new(), false),
        };
        // `update` sees only the id and the state, so running it before the insertion is the same.
        update(&id, &mut state);
        // Room was made above, so nothing is evicted here.
        self.clients.insert(id, state);
        StoreOutcome { restored, evicted }
    }

    fn get(&self, client_id: &str) -> Option<&ClientState> {
        let key = stored_id(client_id);
        // A client waiting in the penalty box is still known: its status must not look clean.
        match self.clients.peek(&*key) {
            Some(state) => Some(state),
            None => self.penalty.states.get(&*key).map(|(state, _)| state),
        }
    }

    fn for_each(&self, visit: &mut dyn FnMut(&str, &ClientState)) {
        // Most recently used first.
        for (id, state) in self.clients.iter().rev() {
            visit(id, state);
        }
    }

    fn len(&self) -> usize {
        self.clients.len()
    }
}

/// Evicted penalised clients, kept for a cool-down; the oldest go first when it is full.
#[derive(Debug)]
struct PenaltyBox {
    states: HashMap<Arc<str>, (ClientState, UnixTime)>,
    /// Insertion order with each entry's expiry, to drop the oldest; stale pairs are skipped.
    order: VecDeque<(Arc<str>, UnixTime)>,
    capacity: usize,
    cooldown: Duration,
}

impl PenaltyBox {
    fn put(&mut self, id: Arc<str>, state: ClientState, now: UnixTime) {
        if self.capacity == 0 {
            return;
        }
        self.sweep(now);
        while self.states.len() >= self.capacity {
            let Some((old, expires)) = self.order.pop_front() else { break };
            if self.states.get(&old).is_some_and(|(_, e)| *e == expires) {
                self.states.remove(&old);
            }
        }
        let expires = now + self.cooldown;
        self.order.push_back((id.clone(), expires));
        self.states.insert(id, (state, expires));
        // Stale order entries (clients taken back out) must not pile up.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let states = &self.states;
            self.order.retain(|(id, e)| states.get(id).is_some_and(|(_, x)| x == e));
        }
    }

    fn take(&mut self, id: &str, now: UnixTime) -> Option<(Arc<str>, ClientState)> {
        let (key, (state, expires)) = self.states.remove_entry(id)?;
        (expires > now).then_some((key, state))
    }

    /// Drop expired entries from the old end.
    fn sweep(&mut self, now: UnixTime) {
        while let Some((id, expires)) = self.order.front() {
            if *expires > now {
                break;
            }
            if self.states.get(id).is_some_and(|(_, e)| e == expires) {
                self.states.remove(id);
            }
            self.order.pop_front();
        }
    }
}
