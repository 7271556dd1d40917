//! Deterministic simulations of the friction controller: injected time, scripted clients.

use std::time::Duration;

use authflow_core::friction::{
    BudgetConfig, Call, ClientState, Controller, Decision, FrictionConfig, FrictionConfigError, FrictionMode,
    FrictionStore, GroupConfig, Level, Refusal,
};
use authflow_core::UnixTime;
use serde_json::json;

const START: UnixTime = UnixTime::from_secs(1_800_000_000);

fn config(tools: &[(&str, f64)]) -> FrictionConfig {
    FrictionConfig { tools: tools.iter().map(|(t, v)| (t.to_string(), *v)).collect(), ..Default::default() }
}

/// A controller and a clock that moves `step` before every call.
struct Sim {
    c: Controller,
    now: UnixTime,
    step: Duration,
}

impl Sim {
    fn new(config: FrictionConfig) -> Sim {
        Sim { c: Controller::new(config).expect("valid config"), now: START, step: Duration::from_millis(500) }
    }

    fn call(&mut self, client: &str, tool: &str) -> Decision {
        self.now = self.now + self.step;
        self.c.check(client, Call::new(tool), self.now)
    }

    fn justified(&mut self, client: &str, tool: &str) -> Decision {
        self.now = self.now + self.step;
        self.c.check(client, Call::new(tool).justified(true), self.now)
    }

    fn friction(&self, client: &str, tool: &str) -> f64 {
        let status = self.c.status(client, self.now).expect("known client");
        status.tools.iter().find(|t| &*t.tool == tool).expect("controlled tool").friction
    }
}

#[test]
fn a_tool_called_all_the_time_is_blocked_soon_after_warmup() {
    let mut sim = Sim::new(config(&[("delete_note", 0.1)]));
    let warmup = sim.c.config().warmup_calls as usize;
    let mut first_blocked = None;
    let mut previous = (0.0, Level::None);
    for n in 1..=200 {
        let d = sim.call("agent", "delete_note");
        assert!(d.controlled);
        if n <= warmup {
            assert_eq!((d.friction, d.level, d.allowed), (0.0, Level::None, true), "no friction in warm-up");
        }
        // Friction only rises while the share stays above target, through every level in order.
        assert!(d.friction >= previous.0 && d.level >= previous.1, "call {n}: {d:?}");
        previous = (d.friction, d.level);
        // Latency before refusal: the delay follows friction.
        if d.allowed {
            assert_eq!(d.delay, Duration::from_millis((d.friction * 2000.0).round() as u64));
        }
        if d.level == Level::High {
            assert!(d.justification_required);
            assert_eq!(d.refusal, Some(Refusal::JustificationRequired), "no justification given");
        }
        if d.level == Level::Blocked {
            assert!(!d.allowed && d.cost == 0.0 && d.delay == Duration::ZERO);
            assert!(matches!(d.refusal, Some(Refusal::Blocked { retry_after: Some(_) })));
            first_blocked.get_or_insert(n);
        }
    }
    let first = first_blocked.expect("blocked at some point");
    assert!(first > warmup && first <= warmup + 35, "blocked at call {first}");
    assert_eq!(previous.1, Level::Blocked, "still blocked while hammering");
}

#[test]
fn a_tool_under_its_target_never_gains_friction() {
    let mut sim = Sim::new(config(&[("send_email", 0.1), ("delete_note", 0.05)]));
    let mut seen = 0;
    for n in 0..3000 {
        // 3 % send_email (every 33rd call), the rest reads.
        let tool = if n % 33 == 0 { "send_email" } else { "list_notes" };
        let d = sim.call("steady", tool);
        assert!(d.allowed);
        if d.controlled {
            seen += 1;
            assert_eq!((d.friction, d.level, d.delay, d.cost), (0.0, Level::None, Duration::ZERO, 1.0), "{d:?}");
            if n > 100 {
                assert!(d.ema < 0.1, "{d:?}");
            }
        }
    }
    assert!(seen > 80);
    // A tool never called stays at rest too.
    assert_eq!(sim.friction("steady", "delete_note"), 0.0);
}

#[test]
fn reads_are_recorded_but_never_slowed() {
    let mut sim = Sim::new(config(&[("delete_note", 0.1)]));
    for _ in 0..500 {
        let d = sim.call("reader", "list_notes");
        assert!(d.allowed && !d.controlled && d.refusal.is_none());
        assert_eq!((d.level, d.delay, d.cost), (Level::None, Duration::ZERO, 0.0));
    }
    assert_eq!(sim.c.status("reader", sim.now).unwrap().calls, 500);
    // A (hostile) huge read-tool name is reported truncated.
    assert_eq!(sim.call("reader", &"é".repeat(10_000)).tool.len(), 256);
}

#[test]
fn an_idle_blocked_client_is_allowed_again_after_decay() {
    let mut sim = Sim::new(config(&[("delete_note", 0.1)]));
    let mut last = sim.call("agent", "delete_note");
    while last.level != Level::Blocked {
        last = sim.call("agent", "delete_note");
    }
    // Its only calls from now on are refused, and retrying does not help.
    for _ in 0..50 {
        last = sim.call("agent", "delete_note");
        assert!(!last.allowed, "{last:?}");
    }
    let Some(Refusal::Blocked { retry_after: Some(retry_after) }) = last.refusal else { panic!("{last:?}") };
    assert!(retry_after > Duration::from_secs(30) && retry_after < Duration::from_secs(600), "{retry_after:?}");
    let blocked_at = sim.now;

    // Too early: still blocked (and that call counts again).
    let mut early = Controller::new(config(&[("delete_note", 0.1)])).unwrap();
    let mut state = ClientState::new();
    let mut now = START;
    for _ in 0..100 {
        now = now + Duration::from_millis(500);
        early.evaluate(&mut state, "agent", Call::new("delete_note"), now);
    }
    let d = early.evaluate(&mut state, "agent", Call::new("delete_note"), now + Duration::from_secs(10));
    assert_eq!(d.level, Level::Blocked, "10 s of quiet are not enough");
    let _ = &mut early;

    // Status decays while idle, without any call.
    let f0 = sim.friction("agent", "delete_note");
    sim.now = blocked_at + retry_after / 2;
    assert!(sim.friction("agent", "delete_note") < f0);

    // Waiting as told is enough, even though the client's only recent calls were refused.
    sim.now = blocked_at + retry_after;
    let d = sim.c.check("agent", Call::new("delete_note").justified(true), sim.now);
    assert!(d.allowed, "{d:?}");
    assert!(d.justified && d.level == Level::High);
    // Hammering again re-blocks it at once.
    assert_eq!(sim.call("agent", "delete_note").level, Level::Blocked);

    // After an hour of quiet, friction is nearly gone.
    sim.now = sim.now + Duration::from_secs(3600);
    assert!(sim.friction("agent", "delete_note") < 0.1);
}

#[test]
fn friction_falls_when_usage_drops() {
    let mut sim = Sim::new(config(&[("delete_note", 0.2)]));
    for _ in 0..40 {
        sim.justified("agent", "delete_note");
    }
    let peak = sim.friction("agent", "delete_note");
    assert!(peak >= 0.6, "{peak}");
    let mut calls = 0;
    while sim.friction("agent", "delete_note") > 0.0 {
        sim.call("agent", "list_notes");
        calls += 1;
        assert!(calls < 200, "friction must fall back to zero");
    }
    // Reads while recovering: the tool is usable again.
    let d = sim.call("agent", "delete_note");
    assert!(d.allowed && d.level == Level::None);
}

fn mutations(target: f64) -> FrictionConfig {
    let mut c = config(&[]);
    c.groups = vec![GroupConfig {
        name: "mutations".into(),
        tools: vec!["create_note".into(), "update_note".into(), "delete_note".into()],
        target,
    }];
    c
}

#[test]
fn group_targets_hold() {
    const MEMBERS: [&str; 3] = ["create_note", "update_note", "delete_note"];
    // 45 % mutations in all, 15 % each: every member is pushed, and the group ends up refused.
    let mut sim = Sim::new(mutations(0.2));
    for n in 0..400 {
        let tool = if n % 20 < 9 { MEMBERS[n % 3] } else { "list_notes" };
        sim.justified("busy", tool);
    }
    for m in MEMBERS {
        assert!(sim.friction("busy", m) >= 0.95, "{m}: {}", sim.friction("busy", m));
        assert_eq!(sim.call("busy", m).refusal.map(|r| matches!(r, Refusal::Blocked { .. })), Some(true));
    }

    // 15 % mutations in all: under the group target, nobody gains friction.
    let mut sim = Sim::new(mutations(0.2));
    for n in 0..2000 {
        let tool = if n % 20 < 3 { MEMBERS[n % 3] } else { "list_notes" };
        let d = sim.call("calm", tool);
        assert!(d.allowed && d.friction == 0.0, "{d:?}");
    }

    // The push is proportional to each member's share: 24 % creates and 6 % deletes (30 % in all).
    let mut sim = Sim::new(mutations(0.2));
    for n in 0..60 {
        let tool = match n % 50 {
            0..12 => "create_note",
            12..15 => "delete_note",
            _ => "list_notes",
        };
        sim.justified("mixed", tool);
    }
    let (create, delete, update) = (
        sim.friction("mixed", "create_note"),
        sim.friction("mixed", "delete_note"),
        sim.friction("mixed", "update_note"),
    );
    assert!(create > delete && delete > 0.0, "create {create}, delete {delete}");
    assert!((delete / create - 0.25).abs() < 0.1, "about proportional: {delete} / {create}");
    assert_eq!(update, 0.0, "a member not called is not pushed");
}

#[test]
fn an_own_target_and_a_group_target_both_apply() {
    let mut c = mutations(0.5);
    c.tools.insert("delete_note".into(), 0.05);
    let mut sim = Sim::new(c);
    // 20 % deletes: under the group's 50 %, over delete's own 5 %.
    for n in 0..200 {
        sim.justified("agent", if n % 5 == 0 { "delete_note" } else { "list_notes" });
    }
    assert!(sim.friction("agent", "delete_note") > 0.9);
    assert_eq!(sim.friction("agent", "create_note"), 0.0);
}

#[test]
fn saturation_relief_engages_and_releases() {
    let mut sim = Sim::new(config(&[("search_web", 0.2)]));
    let (mut engaged_at, mut max_target) = (None, 0.2_f64);
    // A workload that really needs 40 % searches, and justifies them.
    for n in 0..600 {
        let tool = if n % 5 < 2 { "search_web" } else { "list_notes" };
        let d = sim.justified("researcher", tool);
        for event in &d.saturation {
            assert_eq!(&*event.tool, "search_web");
            assert!(event.engaged, "no release while usage stays high");
            assert!(engaged_at.is_none(), "engages once");
            engaged_at = Some(n);
        }
        if d.controlled {
            max_target = max_target.max(d.target);
            if engaged_at.is_none() {
                assert_eq!(d.target, 0.2);
            }
        }
    }
    let engaged_at = engaged_at.expect("relief engaged");
    // Saturation (friction ≥ 0.9) must first last a whole window of 100 calls.
    assert!(engaged_at > 100, "{engaged_at}");
    assert!(max_target > 0.25 && max_target <= 0.4 + 1e-9, "relaxed, within max_relief: {max_target}");
    let relaxed = sim.friction("researcher", "search_web");
    assert!(relaxed < 0.95, "relief lets the workload through: {relaxed}");

    // Usage back to 5 %: the relief is given back, and the target returns to what was configured.
    let mut released = false;
    for n in 0..1000 {
        let d = sim.call("researcher", if n % 20 == 0 { "search_web" } else { "list_notes" });
        for event in &d.saturation {
            assert!(!event.engaged);
            assert!((event.target - 0.2).abs() < 1e-9);
            released = true;
        }
        if released && d.controlled {
            assert_eq!(d.target, 0.2);
        }
    }
    assert!(released, "relief released");
}

#[test]
fn eviction_is_no_escape() {
    let mut c = config(&[("delete_note", 0.1)]);
    c.max_clients = 2;
    let mut sim = Sim::new(c);
    for client in ["bad-1", "bad-2"] {
        while sim.call(client, "delete_note").level != Level::Blocked {}
    }
    // A newcomer evicts the least recently used client; both are penalised, so it goes to the penalty box.
    let d = sim.call("newcomer", "list_notes");
    let evicted = d.evicted.expect("someone evicted");
    assert_eq!((&*evicted.client_id, evicted.penalised), ("bad-1", true));
    assert!(!d.restored);
    assert_eq!(sim.c.store().len(), 2);
    assert_eq!(sim.c.store().penalty_box_len(), 1);
    let boxed = sim.c.status("bad-1", sim.now).expect("still known while in the penalty box");
    assert_eq!(boxed.tools[0].level, Level::Blocked);

    // bad-1 comes back: its penalty is restored, not reset. The unpenalised newcomer makes room for it.
    let d = sim.call("bad-1", "delete_note");
    assert!(d.restored, "{d:?}");
    assert_eq!(d.level, Level::Blocked);
    assert_eq!(d.evicted.map(|e| (e.client_id.to_string(), e.penalised)), Some(("newcomer".into(), false)));
    assert_eq!(sim.c.store().penalty_box_len(), 0);

    // An unpenalised client evicted comes back fresh.
    let d = sim.call("newcomer", "list_notes");
    assert!(!d.restored);
    assert_eq!(d.evicted.map(|e| (e.client_id.to_string(), e.penalised)), Some(("bad-2".into(), true)));
    assert_eq!(sim.c.status("newcomer", sim.now).unwrap().calls, 1);
    assert!(sim.call("bad-2", "delete_note").restored);
}

#[test]
fn an_unpenalised_client_is_evicted_before_a_penalised_older_one() {
    let mut c = config(&[("delete_note", 0.1)]);
    c.max_clients = 3;
    let mut sim = Sim::new(c);
    while sim.call("bad", "delete_note").level != Level::Blocked {}
    sim.call("good-1", "list_notes");
    sim.call("good-2", "list_notes");
    let d = sim.call("good-3", "list_notes");
    assert_eq!(d.evicted.map(|e| (e.client_id.to_string(), e.penalised)), Some(("good-1".into(), false)));
    assert!(sim.c.status("bad", sim.now).is_some(), "the penalised client stays in the store");
}

#[test]
fn the_penalty_box_is_bounded_and_expires() {
    let mut c = config(&[("delete_note", 0.1)]);
    (c.max_clients, c.penalty_box_size, c.penalty_cooldown_secs) = (1, 1, 600);
    let mut sim = Sim::new(c);
    while sim.call("bad-1", "delete_note").level != Level::Blocked {}
    while sim.call("bad-2", "delete_note").level != Level::Blocked {} // evicts bad-1 into the box
    sim.call("bad-3", "list_notes"); // evicts bad-2; the box holds one: bad-1 is dropped
    assert_eq!(sim.c.store().penalty_box_len(), 1);
    assert!(!sim.call("bad-1", "list_notes").restored, "dropped from the full box");
    // bad-1 evicted bad-3 (unpenalised, forgotten); bad-2 evicts bad-1 (likewise) and gets its state back.
    assert!(sim.call("bad-2", "list_notes").restored);
    sim.now = sim.now + Duration::from_secs(601);
    let d = sim.call("bad-3", "list_notes");
    assert_eq!(d.evicted.map(|e| e.penalised), Some(true), "bad-2 is still penalised");
    sim.now = sim.now + Duration::from_secs(601);
    assert!(!sim.call("bad-2", "list_notes").restored, "cool-down over");
}

#[test]
fn latency_mode_delays_but_never_refuses() {
    let mut c = config(&[("delete_note", 0.1)]);
    (c.mode, c.max_delay_ms) = (FrictionMode::Latency, 1500);
    let mut sim = Sim::new(c);
    let mut max = Duration::ZERO;
    for _ in 0..200 {
        let d = sim.call("agent", "delete_note");
        assert!(d.allowed && !d.justification_required && d.refusal.is_none(), "{d:?}");
        assert_eq!(d.delay, Duration::from_millis((d.friction * 1500.0).round() as u64));
        max = max.max(d.delay);
    }
    assert_eq!(max, Duration::from_millis(1500), "capped at max_delay_ms");

    let mut c = config(&[("delete_note", 0.1)]);
    c.mode = FrictionMode::Block;
    let mut sim = Sim::new(c);
    let refused = (0..200).map(|_| sim.call("agent", "delete_note")).inspect(|d| assert_eq!(d.delay, Duration::ZERO));
    assert!(refused.filter(|d| !d.allowed).count() > 100);
}

#[test]
fn the_budget_limits_cost_and_refills() {
    let mut c = config(&[("export", 1.0)]); // never gains friction: every call costs min_cost
    c.budget = Some(BudgetConfig { capacity: 20.0, refill_per_sec: 2.0 });
    let mut sim = Sim::new(c);
    sim.step = Duration::ZERO;
    for _ in 0..20 {
        let d = sim.call("agent", "export");
        assert!(d.allowed && d.cost == 1.0);
    }
    let d = sim.call("agent", "export");
    assert_eq!(d.refusal, Some(Refusal::Budget { retry_after: Duration::from_millis(500) }));
    assert!(sim.call("agent", "list").allowed, "read tools do not spend");
    sim.now = sim.now + Duration::from_millis(499);
    assert!(!sim.call("agent", "export").allowed);
    sim.now = sim.now + Duration::from_millis(1);
    assert!(sim.call("agent", "export").allowed);
}

#[test]
fn shared_store_round_trip_gives_the_same_decisions() {
    // A store of its own (as a Redis one would): load, evaluate, save as JSON, every call.
    let cfg = config(&[("delete_note", 0.1), ("send_email", 0.2)]);
    let mut memory = Sim::new(cfg.clone());
    let external = Controller::new(cfg).unwrap();
    let mut saved = serde_json::to_string(&ClientState::new()).unwrap();
    for n in 0..300 {
        let tool = ["delete_note", "send_email", "list_notes", "delete_note"][n % 4];
        let a = memory.justified("agent", tool);
        let mut state: ClientState = serde_json::from_str(&saved).unwrap();
        let b = external.evaluate(&mut state, "agent", Call::new(tool).justified(true), memory.now);
        saved = serde_json::to_string(&state).unwrap();
        // JSON may round the last bit of a float; decisions must not differ otherwise.
        assert_eq!(
            (&a.level, a.allowed, &a.refusal, &a.delay),
            (&b.level, b.allowed, &b.refusal, &b.delay),
            "call {n}"
        );
        assert!((a.friction - b.friction).abs() < 1e-9 && (a.ema - b.ema).abs() < 1e-9, "call {n}");
    }
}

#[test]
fn tampered_or_stale_states_never_panic() {
    let c = Controller::new(config(&[("delete_note", 0.1)])).unwrap();
    let bad = json!({
        "calls": u64::MAX, "last_seen": u64::MAX, "budget_spent": -5.0,
        "window": [0, 7, 65535, 3, 0],
        "tools": [
            {"name": "gone", "in_window": 99, "ema": 7.5, "friction": -3.0, "saturated_calls": 4_000_000_000u32,
             "relief": 2.0},
            {"name": "delete_note", "in_window": 4_000_000_000u32, "ema": 1e300, "friction": 3.0,
             "saturated_calls": 0, "relief": 0.0}
        ]
    });
    let mut state: ClientState = serde_json::from_value(bad).unwrap();
    for t in [0, 1, u64::MAX] {
        let d = c.evaluate(&mut state, "x", Call::new("delete_note"), UnixTime::from_millis(t));
        assert!((0.0..=1.0).contains(&d.friction) && (0.0..=1.0).contains(&d.ema), "{d:?}");
    }
    assert_eq!(state.tools().map(|t| t.tool.to_owned()).collect::<Vec<_>>(), ["delete_note"]);
}

#[test]
fn a_clock_going_backwards_does_not_undo_decay() {
    let mut sim = Sim::new(config(&[("delete_note", 0.1)]));
    while sim.call("agent", "delete_note").level != Level::Blocked {}
    sim.now = sim.now + Duration::from_secs(300);
    assert!(sim.c.check("agent", Call::new("list"), sim.now).allowed);
    let later = sim.friction("agent", "delete_note");
    assert!(later < 0.95, "decayed over 5 minutes: {later}");
    // Now the clock jumps back: no extra decay, and no "un-decay" back up to the old friction either; the
    // call itself adds at most k · (1 − target).
    let d = sim.c.check("agent", Call::new("delete_note").justified(true), START);
    assert!(d.friction <= later + 0.08 * 0.9 + 1e-9, "{} vs {later}", d.friction);
    assert!(d.friction > later - 0.2, "{} vs {later}", d.friction);
    assert_eq!(sim.c.status("agent", sim.now).unwrap().calls, sim.c.status("agent", START).unwrap().calls);
}

#[test]
fn long_client_ids_are_stored_as_digests() {
    let mut sim = Sim::new(config(&[]));
    let long = "c".repeat(1000);
    let d = sim.call(&long, "list");
    assert!(d.client_id.starts_with("sha256:") && d.client_id.len() < 300);
    assert_eq!(sim.call(&long, "list").client_id, d.client_id);
    assert_eq!(sim.c.status(&long, sim.now).unwrap().calls, 2);
}

#[test]
fn configuration_is_validated() {
    // Defaults, and unknown keys refused (the `[friction]` TOML section embeds this type).
    let c: FrictionConfig = serde_json::from_value(json!({})).unwrap();
    assert_eq!(c, FrictionConfig::default());
    c.validate().unwrap();
    assert!(serde_json::from_value::<FrictionConfig>(json!({"windowsize": 10})).is_err());
    assert!(serde_json::from_value::<FrictionConfig>(json!({"mode": "sleep"})).is_err());
    assert!(serde_json::from_value::<FrictionConfig>(
        json!({"groups": [{"name": "g", "tools": ["a"], "target": 0.1, "x": 1}]})
    )
    .is_err());
    let parsed: FrictionConfig = serde_json::from_value(json!({
        "mode": "latency", "max_delay_ms": 500, "tools": {"a": 0.1},
        "budget": {"capacity": 50.0, "refill_per_sec": 0.5},
        "groups": [{"name": "g", "tools": ["a", "b"], "target": 0.3}]
    }))
    .unwrap();
    parsed.validate().unwrap();
    assert_eq!(parsed.controlled_tools(), ["a", "b"]);

    let invalid = |edit: &dyn Fn(&mut FrictionConfig)| {
        let mut c = FrictionConfig::default();
        edit(&mut c);
        let err = c.validate().expect_err("must be refused");
        assert!(Controller::new(c).is_err());
        err
    };
    let key = |e: FrictionConfigError| match e {
        FrictionConfigError::OutOfRange { key, .. } => key,
        other => panic!("{other:?}"),
    };
    assert_eq!(key(invalid(&|c| c.window_size = 0)), "window_size");
    assert_eq!(key(invalid(&|c| c.window_size = 1_000_000)), "window_size");
    assert_eq!(key(invalid(&|c| c.alpha = 0.0)), "alpha");
    assert_eq!(key(invalid(&|c| c.k = f64::NAN)), "k");
    assert_eq!(key(invalid(&|c| c.dead_zone = -0.1)), "dead_zone");
    assert_eq!(key(invalid(&|c| c.time_decay_rate = f64::INFINITY)), "time_decay_rate");
    assert_eq!(key(invalid(&|c| c.recovery_factor = 0.5)), "recovery_factor");
    assert_eq!(key(invalid(&|c| c.max_delay_ms = 3_600_000)), "max_delay_ms");
    assert_eq!(key(invalid(&|c| c.max_clients = 0)), "max_clients");
    assert_eq!(
        key(invalid(&|c| c.budget = Some(BudgetConfig { capacity: 5.0, refill_per_sec: 1.0 }))),
        "budget.capacity"
    );
    assert_eq!(
        key(invalid(&|c| c.budget = Some(BudgetConfig { capacity: 50.0, refill_per_sec: 0.0 }))),
        "budget.refill_per_sec"
    );
    assert!(matches!(invalid(&|c| c.min_cost = 20.0), FrictionConfigError::CostOrder { .. }));
    let err = invalid(&|c| {
        c.tools.insert("delete".into(), 1.5);
    });
    assert!(matches!(&err, FrictionConfigError::ToolTarget { tool, .. } if tool == "delete"));
    assert!(err.to_string().contains("friction.tools.delete"), "{err}");
    let group = |name: &str, tools: &[&str], target: f64| GroupConfig {
        name: name.into(),
        tools: tools.iter().map(|t| t.to_string()).collect(),
        target,
    };
    for groups in [
        vec![group("g", &[], 0.2)],
        vec![group("", &["a"], 0.2)],
        vec![group("g", &["a"], 0.0)],
        vec![group("g", &["a", "a"], 0.2)],
        vec![group("g", &["a"], 0.2), group("g", &["b"], 0.2)],
    ] {
        let err = invalid(&|c| c.groups = groups.clone());
        assert!(matches!(err, FrictionConfigError::Group { .. }), "{err:?}");
    }
    for name in ["", &"x".repeat(257)] {
        let err = invalid(&|c| c.tools = [(name.to_owned(), 0.5)].into());
        assert!(matches!(err, FrictionConfigError::ToolName(_)), "{err:?}");
    }
    let err = invalid(&|c| c.tools = (0..1001).map(|i| (format!("t{i}"), 0.5)).collect());
    assert_eq!(err, FrictionConfigError::TooManyTools(1001));
}

#[test]
fn a_toml_friction_section_parses() {
    #[derive(serde::Deserialize)]
    struct File {
        friction: FrictionConfig,
    }
    let file: File = toml::from_str(
        r#"
        [friction]
        mode = "both"            # latency | block | both
        max_delay_ms = 2000
        window_size = 100
        warmup_calls = 20
        max_clients = 10000
        budget = { capacity = 200.0, refill_per_sec = 0.5 }

        [friction.tools]         # tool = highest share of a client's calls
        delete_note = 0.05
        send_email = 0.1

        [[friction.groups]]
        name = "mutations"
        tools = ["create_note", "update_note", "delete_note"]
        target = 0.2
        "#,
    )
    .unwrap();
    let c = file.friction;
    c.validate().unwrap();
    assert_eq!((c.mode, c.tools["delete_note"], c.groups[0].tools.len()), (FrictionMode::Both, 0.05, 3));
    assert_eq!(c.budget, Some(BudgetConfig { capacity: 200.0, refill_per_sec: 0.5 }));
    assert_eq!(c.alpha, 0.15, "unset keys keep their defaults");
    assert!(toml::from_str::<File>("[friction]\nwindow = 5\n").is_err(), "unknown keys are refused");
}
