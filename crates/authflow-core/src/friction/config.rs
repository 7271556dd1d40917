//! [`FrictionConfig`]: the settings, as they appear in a `[friction]` TOML section, and their validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Longest sliding window accepted: the window is kept per client, so it bounds per-client memory.
pub const MAX_WINDOW_SIZE: usize = 10_000;

/// Longest tool name accepted in a configuration (MCP recommends at most 128 characters).
pub const MAX_TOOL_NAME_LEN: usize = 256;

/// Most controlled tools (listed or group members) a configuration may name: slots are `u16` and every
/// check visits each one.
pub const MAX_CONTROLLED_TOOLS: usize = 1_000;

/// How friction acts on calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrictionMode {
    /// Only delay calls (proportionally to friction, up to `max_delay_ms`); never refuse them. Clients
    /// slow themselves down without ever seeing an error.
    Latency,
    /// Never delay; require a justification at level HIGH and refuse at BLOCKED.
    Block,
    /// Both: delay allowed calls, require a justification at HIGH, refuse at BLOCKED.
    #[default]
    Both,
}

impl FrictionMode {
    /// Whether allowed calls are delayed.
    pub const fn delays(self) -> bool {
        matches!(self, FrictionMode::Latency | FrictionMode::Both)
    }

    /// Whether calls may be refused (justification, blocking).
    pub const fn blocks(self) -> bool {
        matches!(self, FrictionMode::Block | FrictionMode::Both)
    }
}

/// Tools whose *combined* share is limited, e.g. every mutation at most 20 % of a client's calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// A name for events and status.
    pub name: String,
    /// The member tools. Members not listed in [`FrictionConfig::tools`] are controlled with no target of
    /// their own (only the group's applies).
    pub tools: Vec<String>,
    /// Highest combined share of the members, in (0, 1].
    pub target: f64,
}

/// A per-client budget of call cost: a bucket of `capacity` units refilled at `refill_per_sec`; every
/// allowed call to a controlled tool spends its cost (`min_cost`..`max_cost`, growing with friction).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Most cost a client may spend in a burst.
    pub capacity: f64,
    /// Cost units given back per second.
    pub refill_per_sec: f64,
}

/// The friction controller's settings. Every field has a default, so an empty `[friction]` section is a
/// valid (if inert: no tool is controlled) configuration; unknown keys are refused.
///
/// ```
/// use authflow_core::friction::{FrictionConfig, FrictionMode};
///
/// let config: FrictionConfig = serde_json::from_value(serde_json::json!({
///     "mode": "both",
///     "tools": { "delete_note": 0.05, "send_email": 0.1 },
///     "groups": [{ "name": "mutations", "tools": ["create_note", "delete_note"], "target": 0.2 }],
/// })).unwrap();
/// assert_eq!(config.mode, FrictionMode::Both);
/// assert_eq!(config.window_size, 100);
/// config.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FrictionConfig {
    /// How many of a client's most recent calls the share of each tool is computed over.
    pub window_size: usize,
    /// Weight of the newest share in the exponential moving average, in (0, 1].
    pub alpha: f64,
    /// Gain: friction moves by `k · (share − target)` per call.
    pub k: f64,
    /// `|share − target|` below this moves nothing, so a client sitting on its target is left alone.
    pub dead_zone: f64,
    /// Calls from a new client before friction adjusts (its first shares are noise).
    pub warmup_calls: u32,
    /// Friction and shares decay as `e^(−rate·seconds)` while a client is idle (0.001/s ≈ 11.5 min half-life).
    pub time_decay_rate: f64,
    /// How much faster friction falls than it rises (2 = twice as fast).
    pub recovery_factor: f64,
    /// Cost of a call at zero friction.
    pub min_cost: f64,
    /// Cost of a call at full friction.
    pub max_cost: f64,
    /// An optional cost budget per client.
    pub budget: Option<BudgetConfig>,
    /// Delay, block, or both.
    pub mode: FrictionMode,
    /// Delay at full friction (latency modes), in milliseconds; the delay is proportional to friction.
    pub max_delay_ms: u64,
    /// Controlled tools and the highest share of a client's calls each should take, in (0, 1]. Tools not
    /// listed here or in a group are *read* tools: they count in the share denominator but are never slowed.
    pub tools: BTreeMap<String, f64>,
    /// Groups of tools with a combined target.
    pub groups: Vec<GroupConfig>,
    /// Friction at or above which a tool counts as saturated.
    pub saturation_threshold: f64,
    /// How much a saturated tool's target is relaxed per call once it has stayed saturated for a whole
    /// window (and given back per call once the client's share is under the configured target again).
    pub relief_step: f64,
    /// The most a target is ever relaxed.
    pub max_relief: f64,
    /// Clients remembered at once (least recently used evicted first).
    pub max_clients: usize,
    /// Evicted clients still penalised are kept this long in the penalty box, so eviction is no escape.
    pub penalty_cooldown_secs: u64,
    /// Capacity of the penalty box.
    pub penalty_box_size: usize,
}

impl Default for FrictionConfig {
    fn default() -> Self {
        FrictionConfig {
            window_size: 100,
            alpha: 0.15,
            k: 0.08,
            dead_zone: 0.01,
            warmup_calls: 20,
            time_decay_rate: 0.001,
            recovery_factor: 2.0,
            min_cost: 1.0,
            max_cost: 10.0,
            budget: None,
            mode: FrictionMode::Both,
            max_delay_ms: 2_000,
            tools: BTreeMap::new(),
            groups: Vec::new(),
            saturation_threshold: 0.9,
            relief_step: 0.005,
            max_relief: 0.2,
            max_clients: 10_000,
            penalty_cooldown_secs: 3_600,
            penalty_box_size: 1_024,
        }
    }
}

/// Why a [`FrictionConfig`] was refused. Each variant names the offending key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FrictionConfigError {
    /// A number is outside its range (or not finite).
    #[error("friction.{key} must be {expected}, got {value}")]
    OutOfRange {
        /// The key.
        key: &'static str,
        /// The accepted range, in words.
        expected: &'static str,
        /// The value given.
        value: f64,
    },
    /// A tool's target is outside (0, 1].
    #[error("friction.tools.{tool}: the target must be in (0, 1], got {target}")]
    ToolTarget {
        /// The tool.
        tool: String,
        /// The target given.
        target: f64,
    },
    /// A group is malformed.
    #[error("friction.groups.{group}: {reason}")]
    Group {
        /// The group's name.
        group: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// `min_cost` is above `max_cost`.
    #[error("friction.min_cost ({min}) must not exceed friction.max_cost ({max})")]
    CostOrder {
        /// `min_cost`.
        min: f64,
        /// `max_cost`.
        max: f64,
    },
    /// A tool name is empty or longer than [`MAX_TOOL_NAME_LEN`] bytes.
    #[error("friction: the tool name {0:?} must be 1 to 256 bytes long")]
    ToolName(String),
    /// Too many controlled tools.
    #[error("friction controls at most {MAX_CONTROLLED_TOOLS} tools, got {0}")]
    TooManyTools(usize),
}

fn check(key: &'static str, value: f64, ok: bool, expected: &'static str) -> Result<(), FrictionConfigError> {
    if value.is_finite() && ok {
        Ok(())
    } else {
        Err(FrictionConfigError::OutOfRange { key, expected, value })
    }
}

fn is_target(t: f64) -> bool {
    t.is_finite() && t > 0.0 && t <= 1.0
}

/// The longest an idle client's state is kept by a store that forgets by age (e.g. Redis).
const MAX_IDLE_STATE_LIFETIME: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

impl FrictionConfig {
    /// How long an idle client's state still matters, for stores that forget by age: until a full friction
    /// has decayed below LOW and a spent budget has refilled, and never less than the penalty cool-down
    /// (forgetting must not be an escape that eviction is not). Capped at a week, reached when nothing
    /// decays.
    pub fn idle_state_lifetime(&self) -> std::time::Duration {
        let cap = MAX_IDLE_STATE_LIFETIME.as_secs_f64();
        let decay = if self.time_decay_rate > 0.0 {
            (1.0 / super::decision::LOW_THRESHOLD).ln() / self.time_decay_rate
        } else {
            cap
        };
        let refill = match &self.budget {
            Some(b) if b.refill_per_sec > 0.0 => b.capacity / b.refill_per_sec,
            Some(_) => cap,
            None => 0.0,
        };
        let secs = decay.max(refill).max(self.penalty_cooldown_secs as f64).min(cap);
        std::time::Duration::from_secs_f64(secs.ceil())
    }

    /// Check every value; the controller only accepts a configuration that passes.
    pub fn validate(&self) -> Result<(), FrictionConfigError> {
        let count = |v: usize| v as f64;
        check("window_size", count(self.window_size), (1..=MAX_WINDOW_SIZE).contains(&self.window_size), "1..=10000")?;
        check("alpha", self.alpha, self.alpha > 0.0 && self.alpha <= 1.0, "in (0, 1]")?;
        check("k", self.k, self.k > 0.0 && self.k <= 1.0, "in (0, 1]")?;
        check("dead_zone", self.dead_zone, (0.0..0.5).contains(&self.dead_zone), "in [0, 0.5)")?;
        check(
            "time_decay_rate",
            self.time_decay_rate,
            (0.0..=1.0).contains(&self.time_decay_rate),
            "in [0, 1] per second",
        )?;
        check("recovery_factor", self.recovery_factor, (1.0..=100.0).contains(&self.recovery_factor), "in [1, 100]")?;
        check("min_cost", self.min_cost, self.min_cost >= 0.0, "at least 0")?;
        check("max_cost", self.max_cost, self.max_cost >= 0.0, "at least 0")?;
        if self.min_cost > self.max_cost {
            return Err(FrictionConfigError::CostOrder { min: self.min_cost, max: self.max_cost });
        }
        if let Some(b) = &self.budget {
            check(
                "budget.capacity",
                b.capacity,
                b.capacity >= self.max_cost && b.capacity > 0.0,
                "positive and at least max_cost",
            )?;
            check("budget.refill_per_sec", b.refill_per_sec, b.refill_per_sec > 0.0, "positive")?;
        }
        let max_delay = self.max_delay_ms as f64;
        check("max_delay_ms", max_delay, self.max_delay_ms <= 60_000, "at most 60000")?;
        let sat = self.saturation_threshold;
        check("saturation_threshold", sat, sat > 0.0 && sat <= 1.0, "in (0, 1]")?;
        check("relief_step", self.relief_step, (0.0..=1.0).contains(&self.relief_step), "in [0, 1]")?;
        check("max_relief", self.max_relief, (0.0..=1.0).contains(&self.max_relief), "in [0, 1]")?;
        check("max_clients", count(self.max_clients), self.max_clients >= 1, "at least 1")?;
        for (tool, &target) in &self.tools {
            if !is_target(target) {
                return Err(FrictionConfigError::ToolTarget { tool: tool.clone(), target });
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for g in &self.groups {
            let err = |reason| FrictionConfigError::Group { group: g.name.clone(), reason };
            if g.name.is_empty() {
                return Err(err("the name must not be empty"));
            }
            if !names.insert(g.name.as_str()) {
                return Err(err("two groups have this name"));
            }
            if g.tools.is_empty() {
                return Err(err("a group needs at least one tool"));
            }
            if !is_target(g.target) {
                return Err(err("the target must be in (0, 1]"));
            }
            let unique: std::collections::BTreeSet<&String> = g.tools.iter().collect();
            if unique.len() != g.tools.len() {
                return Err(err("a tool is listed twice"));
            }
        }
        let controlled = self.controlled_tools();
        if let Some(bad) = controlled.iter().find(|t| t.is_empty() || t.len() > MAX_TOOL_NAME_LEN) {
            return Err(FrictionConfigError::ToolName(bad.chars().take(MAX_TOOL_NAME_LEN).collect()));
        }
        if controlled.len() > MAX_CONTROLLED_TOOLS {
            return Err(FrictionConfigError::TooManyTools(controlled.len()));
        }
        Ok(())
    }

    /// Every controlled tool (listed, or a group member), sorted, each once.
    pub fn controlled_tools(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self.tools.keys().map(String::as_str).collect();
        all.extend(self.groups.iter().flat_map(|g| g.tools.iter().map(String::as_str)));
        all.sort_unstable();
        all.dedup();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn idle_states_live_until_friction_and_budget_have_recovered() {
        let mut c = FrictionConfig::default();
        // ln(10) / 0.001 = 2302.6 s of decay, below the one-hour cool-down.
        assert_eq!(c.idle_state_lifetime(), Duration::from_secs(3_600));
        c.penalty_cooldown_secs = 60;
        assert_eq!(c.idle_state_lifetime(), Duration::from_secs(2_303));
        c.budget = Some(BudgetConfig { capacity: 100.0, refill_per_sec: 0.01 });
        assert_eq!(c.idle_state_lifetime(), Duration::from_secs(10_000), "the budget refills last");
        c.time_decay_rate = 0.0;
        assert_eq!(c.idle_state_lifetime(), Duration::from_secs(7 * 24 * 3600), "no decay: the cap");
    }
}
