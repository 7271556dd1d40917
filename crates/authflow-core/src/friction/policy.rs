//! [`Policy`]: a validated configuration compiled for fast checks, and the control law itself — a pure
//! function of a [`ClientState`], a call and the time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::config::{FrictionConfig, FrictionConfigError, MAX_TOOL_NAME_LEN};
use super::decision::{Call, Decision, Level, Refusal, SaturationEvent, BLOCKED_THRESHOLD};
use super::state::{clamp01, ClientState, READ_SLOT};
use crate::time::UnixTime;

/// One controlled tool.
#[derive(Debug)]
struct ToolSpec {
    name: Arc<str>,
    /// Its own target, if listed in `tools` (group-only members have none).
    own: Option<f64>,
    /// The lowest target among its own and its groups': reported as "the target", and the worst case for
    /// retry hints.
    lowest: f64,
}

#[derive(Debug)]
struct GroupSpec {
    members: Vec<usize>,
    target: f64,
}

/// A validated [`FrictionConfig`], indexed for the per-call path.
#[derive(Debug)]
pub(crate) struct Policy {
    config: FrictionConfig,
    tools: Vec<ToolSpec>,
    names: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u16>,
    groups: Vec<GroupSpec>,
}

impl Policy {
    pub(crate) fn new(config: FrictionConfig) -> Result<Self, FrictionConfigError> {
        config.validate()?;
        let names: Vec<Arc<str>> = config.controlled_tools().into_iter().map(Arc::from).collect();
        let index: HashMap<Arc<str>, u16> =
            names.iter().enumerate().filter_map(|(i, n)| Some((n.clone(), u16::try_from(i).ok()?))).collect();
        let slot = |name: &str| index.get(name).map(|&i| usize::from(i));
        let groups: Vec<GroupSpec> = config
            .groups
            .iter()
            .map(|g| GroupSpec { members: g.tools.iter().filter_map(|t| slot(t)).collect(), target: g.target })
            .collect();
        let tools = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let own = config.tools.get(&**name).copied();
                let lowest = groups
                    .iter()
                    .filter(|g| g.members.contains(&i))
                    .map(|g| g.target)
                    .chain(own)
                    .fold(1.0_f64, f64::min);
                ToolSpec { name: name.clone(), own, lowest }
            })
            .collect();
        Ok(Policy { config, tools, names, index, groups })
    }

    pub(crate) fn config(&self) -> &FrictionConfig {
        &self.config
    }

    pub(crate) fn tool_names(&self) -> &[Arc<str>] {
        &self.names
    }

    pub(crate) fn window_size(&self) -> usize {
        self.config.window_size
    }

    /// The reported target of slot `i` (its lowest configured target).
    pub(crate) fn target_of(&self, i: usize) -> f64 {
        self.tools.get(i).map_or(1.0, |t| t.lowest)
    }

    /// `state` as it will be at `now` if nothing happens meanwhile (friction, shares and budget decayed).
    pub(crate) fn decay(&self, state: &mut ClientState, now: UnixTime) {
        // A clock going backwards neither decays nor un-decays.
        if now > state.last_seen && state.calls > 0 {
            let secs = now.saturating_since(state.last_seen).as_secs_f64();
            let factor = (-self.config.time_decay_rate * secs).exp();
            for t in &mut state.tools {
                t.friction *= factor;
                t.ema *= factor;
            }
            if let Some(budget) = &self.config.budget {
                state.budget_spent = (state.budget_spent - budget.refill_per_sec * secs).max(0.0);
            }
        }
        state.last_seen = state.last_seen.max(now);
    }

    /// Check one call of the client whose state is `state`, and record it (refused calls count too: an
    /// agent retrying a refused call only raises its friction).
    pub(crate) fn evaluate(
        &self,
        state: &mut ClientState,
        client_id: Arc<str>,
        call: Call<'_>,
        now: UnixTime,
    ) -> Decision {
        let cfg = &self.config;
        state.align(self);
        self.decay(state, now);
        let slot = self.index.get(call.tool).copied();
        state.record(slot.unwrap_or(READ_SLOT), cfg.window_size);

        let n = state.window.len().max(1) as f64;
        // During warm-up the average simply follows the share, so that it starts from the share of the
        // whole warm-up rather than lagging behind its first, noisy calls.
        let warm = state.calls > u64::from(cfg.warmup_calls);
        let alpha = if warm { cfg.alpha } else { 1.0 };
        for t in &mut state.tools {
            let share = f64::from(t.in_window) / n;
            t.ema = clamp01(alpha * share + (1.0 - alpha) * t.ema);
        }
        let mut saturation = Vec::new();
        if warm {
            self.adjust(state, &mut saturation);
        }

        let Some(i) = slot.map(usize::from) else {
            // The name is the caller's input: bounded, since a read tool's name is only ever reported.
            let tool: Arc<str> = Arc::from(truncate(call.tool, MAX_TOOL_NAME_LEN));
            return Decision {
                client_id,
                tool,
                controlled: false,
                level: Level::None,
                friction: 0.0,
                ema: 0.0,
                target: 1.0,
                cost: 0.0,
                allowed: true,
                refusal: None,
                delay: Duration::ZERO,
                justification_required: false,
                justified: false,
                saturation,
                evicted: None,
                restored: false,
            };
        };
        let (friction, ema, relief) = state.tools.get(i).map_or((0.0, 0.0, 0.0), |t| (t.friction, t.ema, t.relief));
        let level = Level::of(friction);
        let justification_required = cfg.mode.blocks() && level == Level::High;
        let mut refusal = if cfg.mode.blocks() && level == Level::Blocked {
            Some(Refusal::Blocked { retry_after: self.unblock_after(i, friction) })
        } else if justification_required && !call.justified {
            Some(Refusal::JustificationRequired)
        } else {
            None
        };
        let mut cost = cfg.min_cost + (cfg.max_cost - cfg.min_cost) * friction;
        if let (None, Some(budget)) = (&refusal, &cfg.budget) {
            let over = state.budget_spent + cost - budget.capacity;
            if over > 0.0 {
                refusal = Some(Refusal::Budget { retry_after: secs_up(over / budget.refill_per_sec) });
            } else {
                state.budget_spent += cost;
            }
        }
        let allowed = refusal.is_none();
        if !allowed {
            cost = 0.0;
        }
        let delay = if allowed && cfg.mode.delays() {
            // Friction is in [0, 1], so the product is at most max_delay_ms.
            Duration::from_millis((friction * cfg.max_delay_ms as f64).round() as u64)
        } else {
            Duration::ZERO
        };
        Decision {
            client_id,
            tool: self.names[i].clone(),
            controlled: true,
            level,
            friction,
            ema,
            target: (self.target_of(i) + relief).min(1.0),
            cost,
            allowed,
            refusal,
            delay,
            justification_required,
            justified: allowed && justification_required,
            saturation,
            evicted: None,
            restored: false,
        }
    }

    /// The control law: move every controlled tool's friction by `k` times its largest excess over its own
    /// and its groups' targets (less any saturation relief), falling `recovery_factor` times faster than it
    /// rises; then update saturation relief.
    fn adjust(&self, state: &mut ClientState, saturation: &mut Vec<SaturationEvent>) {
        let cfg = &self.config;
        for (t, spec) in state.tools.iter_mut().zip(&self.tools) {
            t.excess = spec.own.map_or(f64::NEG_INFINITY, |target| t.ema - target);
        }
        for g in &self.groups {
            let (total, heaviest) = g
                .members
                .iter()
                .filter_map(|&m| state.tools.get(m))
                .fold((0.0_f64, 0.0_f64), |(sum, max), t| (sum + t.ema, max.max(t.ema)));
            let over = total - g.target;
            for &m in &g.members {
                if let Some(t) = state.tools.get_mut(m) {
                    // Over target, members are pushed in proportion to their share (the heaviest fully);
                    // under it, the group lets every member fall alike.
                    let excess = if over > 0.0 && heaviest > 0.0 { over * t.ema / heaviest } else { over };
                    t.excess = t.excess.max(excess);
                }
            }
        }
        for (t, spec) in state.tools.iter_mut().zip(&self.tools) {
            let raw = t.excess;
            let excess = raw - t.relief;
            let mut delta = if excess.abs() < cfg.dead_zone || !excess.is_finite() { 0.0 } else { cfg.k * excess };
            if delta < 0.0 {
                delta *= cfg.recovery_factor;
            }
            t.friction = clamp01(t.friction + delta);

            t.saturated_calls =
                if t.friction >= cfg.saturation_threshold { t.saturated_calls.saturating_add(1) } else { 0 };
            let before = t.relief;
            if t.saturated_calls as usize >= cfg.window_size {
                t.relief = (t.relief + cfg.relief_step).min(cfg.max_relief);
            } else if raw <= 0.0 {
                // Usage is back under every configured target: give the relief back.
                t.relief = (t.relief - cfg.relief_step).max(0.0);
            }
            let engaged = before == 0.0 && t.relief > 0.0;
            let released = before > 0.0 && t.relief == 0.0;
            if engaged || released {
                let target = (spec.lowest + t.relief).min(1.0);
                saturation.push(SaturationEvent { tool: spec.name.clone(), engaged, target });
            }
        }
    }

    /// How long friction `f` of slot `i` must decay for the next call not to be blocked, whatever that call
    /// adds (at most `k · (1 − lowest target)`).
    fn unblock_after(&self, i: usize, f: f64) -> Option<Duration> {
        let rate = self.config.time_decay_rate;
        if rate <= 0.0 {
            return None;
        }
        let worst_step = self.config.k * (1.0 - self.target_of(i));
        let aim = (BLOCKED_THRESHOLD - worst_step - 1e-6).max(0.01);
        Some(secs_up((f / aim).ln().max(0.0) / rate))
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `secs` as a duration rounded up to the next millisecond (so waiting that long is always enough).
fn secs_up(secs: f64) -> Duration {
    let ms = (secs * 1000.0).ceil();
    // Bounded: NaN and negatives become 0; absurdly long hints are capped at a day.
    Duration::from_millis(if ms.is_finite() { ms.clamp(0.0, 86_400_000.0) as u64 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        let mut c = FrictionConfig::default();
        c.tools.insert("t".into(), 0.2);
        Policy::new(c).unwrap()
    }

    fn step(policy: &Policy, ema: f64, friction: f64) -> f64 {
        let mut state = ClientState::new();
        state.align(policy);
        state.tools[0].ema = ema;
        state.tools[0].friction = friction;
        policy.adjust(&mut state, &mut Vec::new());
        state.tools[0].friction - friction
    }

    #[test]
    fn falls_twice_as_fast_as_it_rises_outside_the_dead_zone() {
        let p = policy();
        let up = step(&p, 0.3, 0.5);
        let down = step(&p, 0.1, 0.5);
        assert!((up - 0.08 * 0.1).abs() < 1e-12, "{up}");
        assert!((down + 2.0 * 0.08 * 0.1).abs() < 1e-12, "{down}");
        // Inside the dead zone (±0.01) nothing moves.
        assert_eq!(step(&p, 0.205, 0.5), 0.0);
        assert_eq!(step(&p, 0.195, 0.5), 0.0);
        // Clamped to [0, 1].
        assert!((step(&p, 1.0, 0.99) - 0.01).abs() < 1e-12);
        assert!((step(&p, 0.0, 0.01) + 0.01).abs() < 1e-12);
    }

    #[test]
    fn retry_hint_covers_the_worst_next_step() {
        let p = policy();
        let after = p.unblock_after(0, 1.0).unwrap();
        let decayed = (-0.001 * after.as_secs_f64()).exp();
        assert!(decayed + 0.08 * 0.8 < BLOCKED_THRESHOLD);
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate("abc", 5), "abc");
        assert!(secs_up(f64::NAN) == Duration::ZERO && secs_up(1e300) == Duration::from_secs(86_400));
    }
}
