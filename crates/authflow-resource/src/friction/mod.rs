//! Friction control for MCP `tools/call`: [`FrictionLayer`] slows down, then asks for a justification,
//! then refuses a client that calls some tool far more than its share, and [`FrictionController::status_router`]
//! shows each client its own levels. The control law is `authflow_core::friction` (see there); this
//! module adds the clock, the sleeping, the logging and the MCP wire format.
//!
//! ```no_run
//! use axum::{routing::post, Router};
//! use authflow_core::friction::FrictionConfig;
//! use authflow_resource::{FrictionController, ProtectedResource, TokenVerifier};
//!
//! # fn app(resource: ProtectedResource, verifier: impl TokenVerifier) -> Result<Router, Box<dyn std::error::Error>> {
//! let config: FrictionConfig = serde_json::from_str(r#"{ "tools": { "delete_note": 0.05 } }"#)?;
//! let friction = FrictionController::new(config)?;
//! let router = Router::new()
//!     // Inside the bearer layer: friction is per verified client.
//!     .route("/mcp", post(|| async { "your MCP server here" }).layer(friction.layer()))
//!     // GET /friction, auth-protected like the MCP endpoint.
//!     .merge(friction.status_router())
//!     .layer(resource.bearer_auth(verifier).require_scopes(["notes:read"]))
//!     .merge(resource.router());
//! # Ok(router) }
//! ```
//!
//! ## Where it goes
//! [`FrictionLayer`] must be placed **inside** [`BearerAuthLayer`](crate::BearerAuthLayer) (added to the
//! route before the bearer layer wraps the router, as above): it keys friction by the [`VerifiedToken`]
//! that layer leaves in the request extensions. A request without one passes through untouched, so a
//! misplaced layer degrades to doing nothing, never to refusing everyone. The client is the pair of the
//! token's `client_id` and `sub`: one public MCP client used by many people is many clients.
//!
//! ## What it does to a request
//! Only `POST` bodies are read (buffered up to [`FrictionLayer::max_body_bytes`], 4 MiB by default; a
//! larger body is refused with 413, since letting it through unread would be a way around the control).
//! The body is handed on unchanged. For a JSON-RPC `tools/call` *request*:
//! - a **read** tool (not in the configuration) is recorded and forwarded;
//! - a **controlled** tool is checked: if allowed, the layer sleeps for the decision's delay (latency
//!   modes; capped by `max_delay_ms`) and forwards; if refused, it answers itself, HTTP 200, with an MCP
//!   tool error (`result.isError = true`) carrying the same `id`, a text saying why and when to retry, and
//!   `result._meta["authflow/friction"]` with the level, reason and `retry_after_secs`;
//! - at level HIGH, a call is let through only with a justification: a non-blank string in
//!   `params._meta.justification` (preferred: tools never see it) or `params.arguments.justification`.
//!
//! Anything else — other methods, notifications (no `id`: nothing to answer), responses, non-JSON — is
//! forwarded untouched. JSON-RPC **batches** holding a `tools/call` are refused with a JSON-RPC
//! `-32600` error: MCP dropped batching in 2025-06-18, and checking part of a batch while forwarding the
//! rest would need answers stitched from two sources.
//!
//! ## Events
//! [`FrictionController::check`] emits `tracing` events under the target `authflow_resource::friction`,
//! named `friction_check` (DEBUG, every `tools/call`), `friction_justification` (INFO, with the text),
//! `friction_block` (INFO), `friction_saturation` (WARN, relief engaged or released),
//! `friction_eviction` (INFO; WARN when the evicted client was penalised) and `friction_restoration` (INFO),
//! with the fields `client_id`, `tool`, `level`, `ema`, `target_share`, `cost`, `allowed`, `delay_ms`,
//! `justification_required` as relevant.
//!
//! ## The status route
//! `GET /friction` answers `{"clients": [{"client_id", "subject", "calls", "tools": [{"tool", "level",
//! "friction", "ema", "target"}]}]}` with `Cache-Control: no-store`. A caller sees only its own entry; a
//! token with the admin scope (`friction:admin` unless changed with [`FrictionController::admin_scope`])
//! sees every client known (in memory, or up to `max_clients` of the shared store). The route reads the
//! [`VerifiedToken`], so it must be mounted behind the bearer layer; without one it answers 500 (a
//! configuration error), never somebody's state.
//!
//! ## Replicas
//! By default each process keeps its own states, so a client spreading its calls over N replicas of an MCP
//! server meets 1/N of the friction. [`FrictionController::shared_state`] keeps them in a [`SharedMap`]
//! (Redis) instead: each check loads the client's state, runs the controller on it and writes it back with
//! a compare-and-swap, deciding again if another replica wrote first, so no call goes uncounted. States
//! live [`FrictionConfig::idle_state_lifetime`] after a client's last call (the store forgets by age rather
//! than by eviction). When the shared store fails, checks fall back to this process's own states with a
//! warning: friction degrades to per-replica, MCP calls keep working.

mod jsonrpc;
mod layer;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use authflow_core::friction::{
    stored_id, Call, ClientState, ClientStatus, Controller, Decision, FrictionConfig, FrictionConfigError,
};
use authflow_core::{TokenHash, UnixTime};
use authflow_store::{SharedMap, StoreError, Swap};
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

pub use layer::{Friction, FrictionLayer};

use crate::clock::{Clock, SystemClock};
use crate::verifier::VerifiedToken;

/// The default scope that lets a token see every client on the status route.
pub const DEFAULT_ADMIN_SCOPE: &str = "friction:admin";

const TARGET: &str = "authflow_resource::friction";

/// The shared friction state: a cheap handle (clones share it) given to the [`FrictionLayer`] and the
/// status route. See the [module docs](self).
#[derive(Clone)]
pub struct FrictionController {
    inner: Arc<Mutex<Controller>>,
    clock: Arc<dyn Clock>,
    admin_scope: Option<Arc<str>>,
    shared: Option<Arc<SharedStates>>,
}

impl std::fmt::Debug for FrictionController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrictionController")
            .field("clock", &self.clock)
            .field("admin_scope", &self.admin_scope)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

/// Client states kept in a [`SharedMap`] (see [Replicas](self#replicas)).
#[derive(Debug)]
struct SharedStates {
    map: Arc<dyn SharedMap>,
    ttl: Duration,
    max_clients: usize,
    /// Checks of one client in this process take turns (by stripe), so compare-and-swap conflicts only
    /// come from other replicas.
    turns: Vec<tokio::sync::Mutex<()>>,
}

/// Stripes of [`SharedStates::turns`].
const TURN_STRIPES: usize = 64;

/// Where a client's state lives in the shared map: a digest, so any id makes a short key.
const SHARED_PREFIX: &str = "friction:";

/// How many times a contended state is decided again before falling back to the local one (each retry
/// means another replica checked a call of the same client meanwhile).
const MAX_ATTEMPTS: usize = 16;

/// A state as shared, with the id it belongs to (keys are digests).
#[derive(Serialize, serde::Deserialize)]
struct SharedState {
    id: String,
    state: ClientState,
}

impl SharedStates {
    fn key(digest: &TokenHash) -> String {
        format!("{SHARED_PREFIX}{}", digest.to_hex())
    }

    /// The state stored for `id`, or a fresh one for anything else (absent, junk, another id).
    fn decode(stored: Option<&[u8]>, id: &str) -> ClientState {
        stored
            .and_then(|bytes| serde_json::from_slice::<SharedState>(bytes).ok())
            .filter(|s| s.id == id)
            .map(|s| s.state)
            .unwrap_or_default()
    }
}

/// The key friction is kept under for a token: its client and subject, as a JSON array (unambiguous
/// whatever the ids contain). `None` for a token naming neither.
pub(crate) fn client_key(token: &VerifiedToken) -> Option<String> {
    if token.client_id.is_none() && token.subject.is_none() {
        return None;
    }
    serde_json::to_string(&(&token.client_id, &token.subject)).ok()
}

impl FrictionController {
    /// A controller for `config` (validated), reading the system clock.
    pub fn new(config: FrictionConfig) -> Result<Self, FrictionConfigError> {
        Ok(FrictionController {
            inner: Arc::new(Mutex::new(Controller::new(config)?)),
            clock: Arc::new(SystemClock),
            admin_scope: Some(Arc::from(DEFAULT_ADMIN_SCOPE)),
            shared: None,
        })
    }

    /// Keep client states in `map` (e.g. `authflow_store::redis::RedisShared`), shared by every replica
    /// given the same map (see [Replicas](self#replicas)).
    pub fn shared_state(mut self, map: Arc<dyn SharedMap>) -> Self {
        let config = self.config();
        self.shared = Some(Arc::new(SharedStates {
            map,
            ttl: config.idle_state_lifetime(),
            max_clients: config.max_clients,
            turns: (0..TURN_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        }));
        self
    }

    /// Read time from `clock` (tests use a [`ManualClock`](crate::clock::ManualClock)).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The scope that lets a token see every client on the status route; `None`: nobody sees others.
    pub fn admin_scope(mut self, scope: Option<&str>) -> Self {
        self.admin_scope = scope.map(Arc::from);
        self
    }

    /// The layer checking `tools/call` requests against this controller.
    pub fn layer(&self) -> FrictionLayer {
        FrictionLayer::new(self.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Controller> {
        // The controller never panics mid-update, and a decision from a poisoned lock is still sound.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The configuration.
    pub fn config(&self) -> FrictionConfig {
        self.lock().config().clone()
    }

    /// Check and record one call of the client keyed `client_key` now, emitting the events.
    pub async fn check(&self, client_key: &str, call: Call<'_>) -> Decision {
        let decision = self.decide(client_key, call).await;
        emit(&decision, None);
        decision
    }

    /// [`check`](Self::check) with the justification text, if any, for the `friction_justification` event.
    pub(crate) async fn check_justified(&self, client_key: &str, tool: &str, justification: Option<&str>) -> Decision {
        let call = Call::new(tool).justified(justification.is_some());
        let decision = self.decide(client_key, call).await;
        emit(&decision, justification);
        decision
    }

    /// Check and record one call of the client `token` identifies; `None` if it names no client.
    pub async fn check_token(&self, token: &VerifiedToken, call: Call<'_>) -> Option<Decision> {
        let key = client_key(token)?;
        Some(self.check(&key, call).await)
    }

    async fn decide(&self, client_key: &str, call: Call<'_>) -> Decision {
        let now = self.clock.now();
        if let Some(shared) = &self.shared {
            match self.decide_shared(shared, client_key, call, now).await {
                Ok(decision) => return decision,
                Err(error) => {
                    tracing::warn!(target: TARGET, %error, "shared friction state unavailable; using this replica's")
                }
            }
        }
        self.lock().check(client_key, call, now)
    }

    /// Load, decide, compare-and-swap; on a conflict decide again on what the other replica wrote.
    async fn decide_shared(
        &self,
        shared: &SharedStates,
        client_key: &str,
        call: Call<'_>,
        now: UnixTime,
    ) -> Result<Decision, StoreError> {
        let id = stored_id(client_key);
        let digest = TokenHash::of(&id);
        let key = SharedStates::key(&digest);
        let stripe = usize::from(digest.as_bytes()[0]) % shared.turns.len();
        let _turn = shared.turns[stripe].lock().await;
        let mut stored = shared.map.get(&key).await?;
        for _ in 0..MAX_ATTEMPTS {
            let mut state = SharedStates::decode(stored.as_deref(), &id);
            let decision = self.lock().evaluate(&mut state, &id, call, now);
            let bytes = serde_json::to_vec(&SharedState { id: id.clone().into_owned(), state })
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            match shared.map.compare_and_swap(&key, stored.as_deref(), &bytes, shared.ttl).await? {
                Swap::Done => return Ok(decision),
                Swap::Conflict(theirs) => stored = theirs,
            }
        }
        Err(StoreError::unavailable(std::io::Error::other("friction state too contended")))
    }

    /// The friction of the client `token` identifies, as of now (every tool at rest if unknown).
    pub async fn status_of(&self, token: &VerifiedToken) -> Option<ClientStatus> {
        let key = client_key(token)?;
        let now = self.clock.now();
        if let Some(shared) = &self.shared {
            let id = stored_id(&key);
            match shared.map.get(&SharedStates::key(&TokenHash::of(&id))).await {
                Ok(stored) => {
                    let state = SharedStates::decode(stored.as_deref(), &id);
                    return Some(self.lock().status_of(&id, &state, now));
                }
                Err(error) => tracing::warn!(target: TARGET, %error, "shared friction state unavailable"),
            }
        }
        let controller = self.lock();
        Some(controller.status(&key, now).unwrap_or_else(|| controller.fresh_status(&key)))
    }

    /// Every known client's friction, most recently seen first.
    async fn statuses(&self) -> Vec<ClientStatus> {
        let now = self.clock.now();
        if let Some(shared) = &self.shared {
            match shared.map.scan(SHARED_PREFIX, shared.max_clients).await {
                Ok(entries) => {
                    let mut states: Vec<SharedState> =
                        entries.iter().filter_map(|(_, bytes)| serde_json::from_slice(bytes).ok()).collect();
                    states.sort_by_key(|s| std::cmp::Reverse(s.state.last_seen()));
                    let controller = self.lock();
                    return states.iter().map(|s| controller.status_of(&s.id, &s.state, now)).collect();
                }
                Err(error) => tracing::warn!(target: TARGET, %error, "shared friction state unavailable"),
            }
        }
        self.lock().statuses(now)
    }

    /// The route `GET /friction` (see the [module docs](self#the-status-route)). Mount it behind the
    /// [`BearerAuthLayer`](crate::BearerAuthLayer).
    pub fn status_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let controller = self.clone();
        Router::new().route(
            "/friction",
            get(move |token: VerifiedToken| {
                let controller = controller.clone();
                async move { controller.status_response(&token).await }
            }),
        )
    }

    async fn status_response(&self, token: &VerifiedToken) -> axum::response::Response {
        let admin = self.admin_scope.as_deref().is_some_and(|scope| token.has_scope(scope));
        let clients: Vec<StatusEntry> = if admin {
            self.statuses().await.into_iter().map(StatusEntry::from).collect()
        } else {
            self.status_of(token).await.into_iter().map(StatusEntry::from).collect()
        };
        let mut response = Json(StatusPage { clients }).into_response();
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

#[derive(Serialize)]
struct StatusPage {
    clients: Vec<StatusEntry>,
}

#[derive(Serialize)]
struct StatusEntry {
    client_id: Option<String>,
    subject: Option<String>,
    calls: u64,
    tools: Vec<authflow_core::friction::ToolStatus>,
}

impl From<ClientStatus> for StatusEntry {
    fn from(status: ClientStatus) -> Self {
        // Keys are `[client_id, sub]`; a key too long to keep is a digest, shown as the client id.
        let (client_id, subject) = serde_json::from_str::<(Option<String>, Option<String>)>(&status.client_id)
            .unwrap_or((Some(status.client_id), None));
        StatusEntry { client_id, subject, calls: status.calls, tools: status.tools }
    }
}

/// The `tracing` events of one decision (see the [module docs](self#events)).
fn emit(d: &Decision, justification: Option<&str>) {
    let delay_ms = u64::try_from(d.delay.as_millis()).unwrap_or(u64::MAX);
    tracing::debug!(
        name: "friction_check",
        target: TARGET,
        client_id = %d.client_id,
        tool = &*d.tool,
        controlled = d.controlled,
        level = %d.level,
        ema = d.ema,
        target_share = d.target,
        cost = d.cost,
        allowed = d.allowed,
        delay_ms,
        justification_required = d.justification_required,
        "friction_check"
    );
    if d.justified {
        tracing::info!(name: "friction_justification", target: TARGET, client_id = %d.client_id, tool = &*d.tool,
            level = %d.level, ema = d.ema, target_share = d.target, justification, "friction_justification");
    }
    if let Some(refusal) = &d.refusal {
        let reason = match refusal {
            authflow_core::friction::Refusal::Blocked { .. } => "blocked",
            authflow_core::friction::Refusal::JustificationRequired => "justification_required",
            authflow_core::friction::Refusal::Budget { .. } => "budget",
        };
        let retry_after_secs = refusal.retry_after_secs();
        tracing::info!(name: "friction_block", target: TARGET, client_id = %d.client_id, tool = &*d.tool,
            level = %d.level, ema = d.ema, target_share = d.target, reason, retry_after_secs, "friction_block");
    }
    for s in &d.saturation {
        tracing::warn!(name: "friction_saturation", target: TARGET, client_id = %d.client_id, tool = &*s.tool,
            engaged = s.engaged, target_share = s.target, "friction_saturation");
    }
    if let Some(e) = &d.evicted {
        if e.penalised {
            tracing::warn!(name: "friction_eviction", target: TARGET, client_id = %e.client_id, penalised = true,
                "friction_eviction");
        } else {
            tracing::info!(name: "friction_eviction", target: TARGET, client_id = %e.client_id, penalised = false,
                "friction_eviction");
        }
    }
    if d.restored {
        tracing::info!(name: "friction_restoration", target: TARGET, client_id = %d.client_id, "friction_restoration");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use authflow_core::friction::{Call, FrictionConfig};
    use authflow_core::UnixTime;

    use super::*;
    use crate::clock::ManualClock;

    /// A `tracing` writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// Every event, with its fields. (Only this test emits friction events in this binary, so the
    /// thread-local subscriber sees them all.)
    #[test]
    fn decisions_become_named_events() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish();
        let clock = ManualClock::new(UnixTime::from_secs(1_800_000_000));
        let config = FrictionConfig {
            window_size: 10,
            warmup_calls: 2,
            max_clients: 1,
            tools: [("delete_note".to_owned(), 0.2)].into(),
            ..FrictionConfig::default()
        };
        let friction = FrictionController::new(config).unwrap().with_clock(clock.clone());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // A current-thread runtime polls on this thread, where the subscriber is the default.
        tracing::subscriber::with_default(subscriber, || {
            runtime.block_on(async {
                let key = |sub: &str| client_key(&VerifiedToken::new(sub).with_client_id("app")).unwrap();
                let (alice, bob) = (key("alice"), key("bob"));
                let mut justified = false;
                // 40 % deletes, justified: HIGH calls pass with the text logged; saturation relief engages.
                for n in 0..150 {
                    clock.advance(Duration::from_millis(100));
                    let tool = if n % 5 < 2 { "delete_note" } else { "list_notes" };
                    let d = friction.check_justified(&alice, tool, Some("the user asked")).await;
                    justified |= d.justified;
                }
                assert!(justified);
                while friction.check(&alice, Call::new("delete_note")).await.allowed {}
                // Bob evicts the penalised Alice, who then comes back from the penalty box.
                assert!(friction.check(&bob, Call::new("list_notes")).await.evicted.is_some());
                assert!(friction.check(&alice, Call::new("list_notes")).await.restored);
            })
        });
        let logs = String::from_utf8(captured.0.lock().unwrap_or_else(PoisonError::into_inner).clone()).unwrap();
        for (event, fields) in [
            (
                "friction_check",
                &["client_id=", "tool=", "level=", "ema=", "target_share=", "cost=", "allowed=", "delay_ms="][..],
            ),
            ("friction_justification", &["justification=\"the user asked\"", "level=HIGH"]),
            ("friction_block", &["reason=\"blocked\"", "retry_after_secs=", "level=BLOCKED"]),
            ("friction_saturation", &["engaged=true", "target_share="]),
            ("friction_eviction", &["penalised=true", "client_id=[\"app\",\"alice\"]"]),
            ("friction_restoration", &["client_id=[\"app\",\"alice\"]"]),
        ] {
            let line = logs.lines().find(|l| l.contains(event) && fields.iter().all(|f| l.contains(f)));
            assert!(line.is_some(), "no {event} event with {fields:?} in:\n{logs}");
        }
    }
}
