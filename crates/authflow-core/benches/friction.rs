//! The per-call cost of a friction check (`cargo bench -p authflow-core --bench friction`).

use std::hint::black_box;
use std::time::Duration;

use authflow_core::friction::{Call, Controller, FrictionConfig};
use authflow_core::UnixTime;
use criterion::{criterion_group, criterion_main, Criterion};

const CLIENTS: usize = 10_000;

fn config(tools: usize) -> FrictionConfig {
    let mut c = FrictionConfig { max_clients: CLIENTS, ..FrictionConfig::default() };
    for i in 0..tools {
        c.tools.insert(format!("tool_{i}"), 0.1);
    }
    c
}

/// A deterministic pseudo-random sequence (no RNG dependency, same order every run).
fn lcg(state: &mut u64) -> u64 {
    *state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    *state >> 33
}

fn checks(c: &mut Criterion) {
    let mut group = c.benchmark_group("friction_check");

    // One warm client, one controlled tool: the common hot path (window, EMA, control law, decision).
    let mut controller = Controller::new(config(1)).unwrap();
    let mut now = UnixTime::from_secs(1_800_000_000);
    for _ in 0..200 {
        now = now + Duration::from_millis(100);
        controller.check("agent", Call::new("tool_0"), now);
    }
    group.bench_function("warm_client_controlled_tool", |b| {
        b.iter(|| {
            now = now + Duration::from_millis(1);
            black_box(controller.check(black_box("agent"), Call::new(black_box("tool_0")), now))
        })
    });
    group.bench_function("warm_client_read_tool", |b| {
        b.iter(|| {
            now = now + Duration::from_millis(1);
            black_box(controller.check(black_box("agent"), Call::new(black_box("list_notes")), now))
        })
    });

    // Ten controlled tools: every check updates each one.
    let mut controller = Controller::new(config(10)).unwrap();
    let mut i = 0u64;
    group.bench_function("warm_client_10_controlled_tools", |b| {
        b.iter(|| {
            now = now + Duration::from_millis(1);
            i += 1;
            let tool = if i % 2 == 0 { "tool_3" } else { "list_notes" };
            black_box(controller.check("agent", Call::new(tool), now))
        })
    });

    // 10 000 clients in the LRU, checked in a scattered order (cache misses, map lookups, recency moves).
    let ids: Vec<String> = (0..CLIENTS).map(|i| format!("client-{i:05}")).collect();
    let mut controller = Controller::new(config(1)).unwrap();
    for round in 0..25 {
        for id in &ids {
            now = now + Duration::from_micros(10);
            let tool = if round % 4 == 0 { "tool_0" } else { "list_notes" };
            controller.check(id, Call::new(tool), now);
        }
    }
    assert_eq!(authflow_core::friction::FrictionStore::len(controller.store()), CLIENTS);
    let mut seed = 7u64;
    group.bench_function("10k_clients_controlled_tool", |b| {
        b.iter(|| {
            now = now + Duration::from_millis(1);
            let id = &ids[(lcg(&mut seed) % CLIENTS as u64) as usize];
            black_box(controller.check(id, Call::new("tool_0"), now))
        })
    });

    // At capacity with a stream of new clients: every check evicts one (the worst case).
    let mut n = 0u64;
    group.bench_function("10k_clients_new_client_evicts", |b| {
        b.iter(|| {
            now = now + Duration::from_millis(1);
            n += 1;
            let id = format!("new-{n}");
            black_box(controller.check(&id, Call::new("tool_0"), now))
        })
    });
    group.finish();
}

criterion_group!(benches, checks);
criterion_main!(benches);
