//! [`Controller`]: the policy plus a store of client states; the type IO layers hold.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::config::{FrictionConfig, FrictionConfigError};
use super::decision::{Call, Decision, Level};
use super::policy::Policy;
use super::state::ClientState;
use super::store::{stored_id, FrictionStore, MemoryStore};
use crate::time::UnixTime;

/// The friction controller: a validated configuration and the states of the clients it has seen.
///
/// It is sans-IO and synchronous: every method takes `now`, nothing sleeps (a [`Decision`] says how long
/// the caller should delay) and nothing is logged (a [`Decision`] carries what to log). See the
/// [module docs](super) for the control law.
///
/// ```
/// use std::time::Duration;
/// use authflow_core::friction::{Call, Controller, FrictionConfig, Level};
/// use authflow_core::UnixTime;
///
/// let mut config = FrictionConfig::default();
/// config.tools.insert("delete_note".into(), 0.1); // at most 10 % of a client's calls
/// let mut friction = Controller::new(config).unwrap();
///
/// let mut now = UnixTime::from_secs(1_700_000_000);
/// let mut first_blocked = None;
/// for call in 1..=100 {
///     now = now + Duration::from_millis(200);
///     let decision = friction.check("agent-7", Call::new("delete_note"), now);
///     if decision.level == Level::Blocked && first_blocked.is_none() {
///         assert!(!decision.allowed);
///         first_blocked = Some(call);
///     }
/// }
/// assert!(first_blocked.is_some_and(|n| n < 60), "a tool hammered at 100 % is blocked");
///
/// // Read tools (not listed) are recorded but never slowed.
/// let read = friction.check("agent-7", Call::new("list_notes"), now);
/// assert!(read.allowed && !read.controlled && read.delay == Duration::ZERO);
/// ```
#[derive(Debug)]
pub struct Controller<S = MemoryStore> {
    policy: Policy,
    store: S,
}

/// One tool's friction for a client, for status pages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolStatus {
    /// The tool.
    pub tool: Arc<str>,
    /// Its level now.
    pub level: Level,
    /// Its friction now.
    pub friction: f64,
    /// Its smoothed share now.
    pub ema: f64,
    /// Its effective target (lowest configured target plus relief).
    pub target: f64,
}

/// A client's friction, for status pages: every controlled tool with its level, as of `now` (idle decay
/// included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientStatus {
    /// The client id, as stored.
    pub client_id: String,
    /// Calls checked so far.
    pub calls: u64,
    /// The controlled tools.
    pub tools: Vec<ToolStatus>,
}

impl Controller<MemoryStore> {
    /// A controller keeping states in memory, bounded by `max_clients` and the penalty box settings.
    pub fn new(config: FrictionConfig) -> Result<Self, FrictionConfigError> {
        let store = MemoryStore::new(
            config.max_clients,
            config.penalty_box_size,
            Duration::from_secs(config.penalty_cooldown_secs),
        );
        Controller::with_store(config, store)
    }
}

impl<S: FrictionStore> Controller<S> {
    /// A controller keeping states in `store`.
    pub fn with_store(config: FrictionConfig, store: S) -> Result<Self, FrictionConfigError> {
        Ok(Controller { policy: Policy::new(config)?, store })
    }

    /// The configuration.
    pub fn config(&self) -> &FrictionConfig {
        self.policy.config()
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Check and record one call of `client_id` at `now`.
    pub fn check(&mut self, client_id: &str, call: Call<'_>, now: UnixTime) -> Decision {
        let policy = &self.policy;
        let mut decision = None;
        let outcome = self.store.update(client_id, now, &mut |id, state| {
            decision = Some(policy.evaluate(state, id.clone(), call, now));
        });
        // The store always runs the update; the fallback only keeps this free of panics.
        let mut decision = decision
            .unwrap_or_else(|| policy.evaluate(&mut ClientState::new(), Arc::from(&*stored_id(client_id)), call, now));
        decision.evicted = outcome.evicted;
        decision.restored = outcome.restored;
        decision
    }

    /// Check and record one call on a state kept elsewhere (e.g. loaded from a shared store, to be saved
    /// back afterwards). `client_id` is only copied into the decision.
    pub fn evaluate(&self, state: &mut ClientState, client_id: &str, call: Call<'_>, now: UnixTime) -> Decision {
        self.policy.evaluate(state, Arc::from(client_id), call, now)
    }

    /// The friction of `client_id` as of `now`, or `None` if the client is unknown. Changes nothing.
    pub fn status(&self, client_id: &str, now: UnixTime) -> Option<ClientStatus> {
        self.store.get(client_id).map(|state| self.status_of(&stored_id(client_id), state, now))
    }

    /// The friction of every known client as of `now`, most recently seen first.
    pub fn statuses(&self, now: UnixTime) -> Vec<ClientStatus> {
        let mut all = Vec::with_capacity(self.store.len());
        self.store.for_each(&mut |id, state| all.push(self.status_of(id, state, now)));
        all
    }

    /// The status of a client never seen: every controlled tool at rest.
    pub fn fresh_status(&self, client_id: &str) -> ClientStatus {
        self.status_of(&stored_id(client_id), &ClientState::new(), UnixTime::EPOCH)
    }

    /// The friction of a state kept elsewhere (see [`evaluate`](Self::evaluate)) as of `now`, under the id
    /// it is stored as.
    pub fn status_of(&self, id: &str, state: &ClientState, now: UnixTime) -> ClientStatus {
        let mut state = state.clone();
        state.align(&self.policy);
        self.policy.decay(&mut state, now);
        let tools = self
            .policy
            .tool_names()
            .iter()
            .zip(&state.tools)
            .enumerate()
            .map(|(i, (name, t))| ToolStatus {
                tool: name.clone(),
                level: Level::of(t.friction),
                friction: t.friction,
                ema: t.ema,
                target: (self.policy.target_of(i) + t.relief).min(1.0),
            })
            .collect();
        ClientStatus { client_id: id.to_owned(), calls: state.calls, tools }
    }
}
