//! Friction control: slow down, then question, then stop a client that calls some tool far more than its
//! share — without the cliff of a rate limit.
//!
//! Agentic clients retry aggressively, and a 429 invites a retry storm. Instead, each client's recent calls
//! are watched, and for every *controlled* tool (one with a target share, e.g. `delete_note` at most 5 % of
//! a client's calls) a friction `f` in [0, 1] rises smoothly while the tool's share is above its target:
//!
//! | friction | [`Level`] | effect ([`FrictionMode::Both`]) |
//! |---|---|---|
//! | < 0.1 / < 0.3 / < 0.6 | NONE / LOW / MEDIUM | allowed, delayed by `f · max_delay_ms` |
//! | 0.6 – 0.95 | HIGH | allowed with a justification, delayed |
//! | ≥ 0.95 | BLOCKED | refused, with a hint of when to retry |
//!
//! [`FrictionMode::Latency`] only delays (nothing is ever refused); [`FrictionMode::Block`] never delays.
//! Tools not configured are *read* tools: recorded, never slowed.
//!
//! ## The control law (per client, per call)
//! 1. **Idle decay.** Since the client's last call, friction, shares and spent budget decay as
//!    `e^(−time_decay_rate · seconds)` — on *every* check, so a client whose only calls were refused still
//!    recovers by waiting.
//! 2. **Share.** The call joins a sliding window of the client's last `window_size` calls (read tools
//!    included: they count in the denominator). Each controlled tool's share of the window feeds an
//!    exponential moving average (`alpha`).
//! 3. **Friction.** After `warmup_calls`, each controlled tool's friction moves by `k · excess`, where the
//!    excess is the largest of: the tool's share over its own target, and for each of its groups the group's
//!    combined share over the group's target (pushing members in proportion to their share). Within
//!    `dead_zone` nothing moves; a negative excess lowers friction `recovery_factor` (2) times faster.
//!    Refused calls count too: retrying harder only keeps a tool blocked.
//! 4. **Saturation relief.** A tool whose friction stays at or above `saturation_threshold` for a whole
//!    window has its targets relaxed by `relief_step` per call (up to `max_relief`), so a workload that
//!    genuinely needs a tool is not shut out for ever; once its share is under the configured targets again,
//!    the relief is given back step by step.
//! 5. **Decision.** Cost (`min_cost`..`max_cost`, linear in friction) is charged to the optional budget;
//!    the [`Decision`] says whether to run the call, how long to delay it, and what to log.
//!
//! States are bounded: [`MemoryStore`] keeps at most `max_clients`, evicting the least recently used, and
//! keeps evicted clients that were still penalised in a penalty box for `penalty_cooldown_secs`, so that
//! eviction is no escape. A [`ClientState`] is a serde value, so a shared store can hold it instead (see
//! [`Controller::evaluate`]).
//!
//! The controller never reads a clock, sleeps or logs: `authflow-resource`'s `FrictionLayer` does that
//! around MCP `tools/call` requests.

mod config;
mod controller;
mod decision;
mod policy;
mod state;
mod store;

pub use config::{
    BudgetConfig, FrictionConfig, FrictionConfigError, FrictionMode, GroupConfig, MAX_CONTROLLED_TOOLS,
    MAX_TOOL_NAME_LEN, MAX_WINDOW_SIZE,
};
pub use controller::{ClientStatus, Controller, ToolStatus};
pub use decision::{
    Call, Decision, Eviction, Level, Refusal, SaturationEvent, BLOCKED_THRESHOLD, HIGH_THRESHOLD, LOW_THRESHOLD,
};
pub use state::{ClientState, ToolView};
pub use store::{stored_id, FrictionStore, MemoryStore, StoreOutcome, MAX_INLINE_CLIENT_ID_LEN};
