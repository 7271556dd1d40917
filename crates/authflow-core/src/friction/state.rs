//! [`ClientState`]: everything the controller remembers about one client. It is a plain serde value, so a
//! shared store (e.g. Redis, for several replicas) can load it, let the controller update it, and save it.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::decision::LOW_THRESHOLD;
use super::policy::Policy;
use crate::time::UnixTime;

/// The window slot of a call to a read (uncontrolled) tool.
pub(crate) const READ_SLOT: u16 = u16::MAX;

/// What the controller remembers about one controlled tool of one client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ToolState {
    pub(crate) name: String,
    /// Calls to the tool in the window.
    pub(crate) in_window: u32,
    pub(crate) ema: f64,
    pub(crate) friction: f64,
    /// Consecutive calls (of this client) during which the tool's friction was saturated.
    pub(crate) saturated_calls: u32,
    /// How much the tool's targets are currently relaxed.
    pub(crate) relief: f64,
    /// Scratch for one check: the tool's largest excess over its targets.
    #[serde(skip)]
    pub(crate) excess: f64,
}

impl ToolState {
    fn new(name: &str) -> Self {
        ToolState {
            name: name.to_owned(),
            in_window: 0,
            ema: 0.0,
            friction: 0.0,
            saturated_calls: 0,
            relief: 0.0,
            excess: 0.0,
        }
    }
}

/// One client's friction state: its recent calls, and per controlled tool the smoothed share, the
/// friction and the saturation relief.
///
/// Obtain and update it through [`Controller`](super::Controller) (in-process) or
/// [`Controller::evaluate`](super::Controller::evaluate) (for a store of your own); its fields are private so
/// that it stays consistent. A state saved under one configuration and loaded under another is re-aligned by
/// tool name (tools no longer controlled count as read tools).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientState {
    pub(crate) calls: u64,
    pub(crate) last_seen: UnixTime,
    /// The slot (index into `tools`, or [`READ_SLOT`]) of each recent call, oldest first.
    pub(crate) window: VecDeque<u16>,
    pub(crate) tools: Vec<ToolState>,
    pub(crate) budget_spent: f64,
}

/// A read-only view of one tool in a [`ClientState`] (values as of the client's last check).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToolView<'a> {
    /// The tool.
    pub tool: &'a str,
    /// Friction, in [0, 1].
    pub friction: f64,
    /// Smoothed share of the client's recent calls.
    pub ema: f64,
    /// Current saturation relief added to the tool's targets.
    pub relief: f64,
}

impl ClientState {
    /// The state of a client never seen.
    pub fn new() -> Self {
        ClientState::default()
    }

    /// Calls checked so far.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// The time of the last check.
    pub fn last_seen(&self) -> UnixTime {
        self.last_seen
    }

    /// The controlled tools' values, as of the last check (without the decay since).
    pub fn tools(&self) -> impl Iterator<Item = ToolView<'_>> {
        self.tools.iter().map(|t| ToolView { tool: &t.name, friction: t.friction, ema: t.ema, relief: t.relief })
    }

    /// Whether some tool's friction is at level LOW or above: such a client keeps its state through an
    /// eviction (the penalty box).
    pub fn is_penalised(&self) -> bool {
        self.tools.iter().any(|t| t.friction >= LOW_THRESHOLD)
    }

    /// Make `tools` match the policy's controlled tools, in order. Cheap when they already do (the usual
    /// case); otherwise rebuilds by name and re-counts the window, which also repairs a state that was
    /// tampered with in a store.
    pub(crate) fn align(&mut self, policy: &Policy) {
        let names = policy.tool_names();
        let aligned = self.tools.len() == names.len()
            && self.tools.iter().zip(names).all(|(t, n)| t.name == **n)
            && self.window.len() <= policy.window_size();
        if aligned {
            return;
        }
        let old = std::mem::take(&mut self.tools);
        let remap: Vec<u16> = old
            .iter()
            .map(|t| names.iter().position(|n| **n == *t.name).and_then(|p| u16::try_from(p).ok()).unwrap_or(READ_SLOT))
            .collect();
        let mut by_name = old;
        self.tools = names
            .iter()
            .map(|n| match by_name.iter().position(|t| *t.name == **n) {
                Some(p) => by_name.swap_remove(p),
                None => ToolState::new(n),
            })
            .collect();
        while self.window.len() > policy.window_size() {
            self.window.pop_front();
        }
        for slot in &mut self.window {
            *slot = remap.get(usize::from(*slot)).copied().unwrap_or(READ_SLOT);
        }
        for t in &mut self.tools {
            t.in_window = 0;
            t.ema = clamp01(t.ema);
            t.friction = clamp01(t.friction);
            t.relief = clamp01(t.relief);
        }
        for &slot in &self.window {
            if let Some(t) = self.tools.get_mut(usize::from(slot)) {
                t.in_window += 1;
            }
        }
        if !self.budget_spent.is_finite() || self.budget_spent < 0.0 {
            self.budget_spent = 0.0;
        }
    }

    /// Append a call to the window, dropping the oldest beyond `size`.
    pub(crate) fn record(&mut self, slot: u16, size: usize) {
        self.calls = self.calls.saturating_add(1);
        self.window.push_back(slot);
        if let Some(t) = self.tools.get_mut(usize::from(slot)) {
            t.in_window = t.in_window.saturating_add(1);
        }
        while self.window.len() > size {
            if let Some(old) = self.window.pop_front() {
                if let Some(t) = self.tools.get_mut(usize::from(old)) {
                    t.in_window = t.in_window.saturating_sub(1);
                }
            }
        }
    }
}

/// `x` in [0, 1]; NaN becomes 0.
pub(crate) fn clamp01(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}
