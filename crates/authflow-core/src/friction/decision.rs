//! What a check is asked ([`Call`]) and what it answers ([`Decision`], [`Level`], [`Refusal`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

/// Friction at or above which calls need a justification.
pub const HIGH_THRESHOLD: f64 = 0.6;
/// Friction at or above which calls are refused.
pub const BLOCKED_THRESHOLD: f64 = 0.95;
/// Friction at or above which a client counts as penalised (level LOW and up).
pub const LOW_THRESHOLD: f64 = 0.1;
const MEDIUM_THRESHOLD: f64 = 0.3;

/// Friction, in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    /// Below 0.1.
    None,
    /// 0.1 to 0.3.
    Low,
    /// 0.3 to 0.6.
    Medium,
    /// 0.6 to 0.95: allowed with a justification (in the blocking modes).
    High,
    /// 0.95 and up: refused (in the blocking modes).
    Blocked,
}

impl Level {
    /// The level of friction `f`.
    pub fn of(f: f64) -> Level {
        match f {
            f if f >= BLOCKED_THRESHOLD => Level::Blocked,
            f if f >= HIGH_THRESHOLD => Level::High,
            f if f >= MEDIUM_THRESHOLD => Level::Medium,
            f if f >= LOW_THRESHOLD => Level::Low,
            _ => Level::None,
        }
    }

    /// `"NONE"`, `"LOW"`, …
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Low => "LOW",
            Level::Medium => "MEDIUM",
            Level::High => "HIGH",
            Level::Blocked => "BLOCKED",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One tool call to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call<'a> {
    /// The tool's name (`params.name` of an MCP `tools/call`).
    pub tool: &'a str,
    /// Whether the caller gave a justification (lets a HIGH call through).
    pub justified: bool,
}

impl<'a> Call<'a> {
    /// A call to `tool` without justification.
    pub const fn new(tool: &'a str) -> Self {
        Call { tool, justified: false }
    }

    /// With (or without) a justification.
    pub const fn justified(mut self, justified: bool) -> Self {
        self.justified = justified;
        self
    }
}

/// Why a call is refused.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// Friction is at BLOCKED.
    Blocked {
        /// How long the client should stay away from this tool so the next call is no longer blocked
        /// (every refused call counts, so retrying sooner only prolongs the block). `None` when friction
        /// does not decay with time (`time_decay_rate = 0`): only calling other tools lowers it.
        retry_after: Option<Duration>,
    },
    /// Friction is HIGH and no justification was given.
    JustificationRequired,
    /// The client's cost budget is spent.
    Budget {
        /// When the budget will have refilled enough for this call.
        retry_after: Duration,
    },
}

impl Refusal {
    /// The retry hint, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match *self {
            Refusal::Blocked { retry_after } => retry_after,
            Refusal::JustificationRequired => None,
            Refusal::Budget { retry_after } => Some(retry_after),
        }
    }

    /// The hint in whole seconds, rounded up (at least 1).
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after().map(|d| (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1))
    }
}

/// A tool's target started or stopped being relaxed (saturation relief).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SaturationEvent {
    /// The tool.
    pub tool: Arc<str>,
    /// `true`: relief engaged (the tool stayed saturated for a whole window); `false`: released (usage
    /// went back under the configured target and the relief was given back).
    pub engaged: bool,
    /// The tool's effective target after this call.
    pub target: f64,
}

/// Another client was evicted from the bounded store to make room for this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Eviction {
    /// The evicted client.
    pub client_id: Arc<str>,
    /// Whether it was penalised, and so moved to the penalty box rather than forgotten.
    pub penalised: bool,
}

/// The answer to one check, with everything an IO layer needs to act and to log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The client (as stored: ids longer than 128 bytes are replaced by a digest).
    pub client_id: Arc<str>,
    /// The tool.
    pub tool: Arc<str>,
    /// Whether the tool is controlled (read tools are recorded but never slowed).
    pub controlled: bool,
    /// The tool's friction level after this call.
    pub level: Level,
    /// The tool's friction after this call, in [0, 1].
    pub friction: f64,
    /// The tool's smoothed share of the client's recent calls.
    pub ema: f64,
    /// The tool's effective target (configured target plus saturation relief); 1 for read tools.
    pub target: f64,
    /// The call's cost (0 for read tools and refused calls).
    pub cost: f64,
    /// Whether the call may run.
    pub allowed: bool,
    /// Why not, when refused.
    pub refusal: Option<Refusal>,
    /// How long to wait before running an allowed call (latency modes).
    pub delay: Duration,
    /// Whether the level requires a justification (HIGH in the blocking modes).
    pub justification_required: bool,
    /// Whether a required justification was given and let the call through.
    pub justified: bool,
    /// Saturation relief that engaged or was released on this call (any tool of this client).
    pub saturation: Vec<SaturationEvent>,
    /// A client evicted to make room for this one, if any.
    pub evicted: Option<Eviction>,
    /// Whether this client's state came back from the penalty box.
    pub restored: bool,
}
