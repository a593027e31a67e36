//! What the sandbox costs: one PostgreSQL `backup` call natively, in a warm instance, and in a
//! fresh instance per call (with and without the instance pool); and loading a plugin by
//! compiling it versus deserializing it from the disk cache.
//!
//! `cargo bench -p dbo-plugin-runtime --bench backup_call -- --warm-up-time 1 --measurement-time 3`

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use dbo_engine::Engine;
use dbo_plugin_artifacts::POSTGRES;
use dbo_plugin_runtime::{InstanceAllocation, PluginRuntime, RuntimeConfig};

fn runtime(instance_allocation: InstanceAllocation) -> PluginRuntime {
    PluginRuntime::new(RuntimeConfig {
        instance_allocation,
        ..Default::default()
    })
    .expect("the runtime starts")
}

fn backup_call(c: &mut Criterion) {
    let sdk_request = dbo_plugin_sdk::testing::backup_request();
    let request = common::backup_request_from(&sdk_request);
    let pooled = runtime(InstanceAllocation::Pooling {
        max_concurrent_calls: 16,
    });
    let on_demand = runtime(InstanceAllocation::OnDemand);
    let plugin = pooled.load("builtin:postgres", POSTGRES).expect("loads");
    let on_demand_plugin = on_demand.load("builtin:postgres", POSTGRES).expect("loads");
    let warm = plugin.warm().expect("instantiates");

    let mut group = c.benchmark_group("backup_call");
    group.bench_function("native", |b| {
        b.iter(|| {
            <dbo_engine_postgres::Postgres as dbo_plugin_sdk::Engine>::backup(black_box(
                &sdk_request,
            ))
        })
    });
    group.bench_function("warm_instance", |b| {
        b.iter(|| warm.backup(black_box(&request)).expect("backup"))
    });
    group.bench_function("fresh_instance_pooled", |b| {
        b.iter(|| plugin.backup(black_box(&request)).expect("backup"))
    });
    group.bench_function("fresh_instance_on_demand", |b| {
        b.iter(|| {
            on_demand_plugin
                .backup(black_box(&request))
                .expect("backup")
        })
    });
    group.finish();
}

fn load(c: &mut Criterion) {
    let cache = tempfile::tempdir().expect("temporary directory");
    let uncached = runtime(InstanceAllocation::OnDemand);
    let cached = PluginRuntime::new(RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        instance_allocation: InstanceAllocation::OnDemand,
        ..Default::default()
    })
    .expect("the runtime starts");
    // Fill the cache once; every measured load then finds it there (the in-memory cache only
    // holds plugins that are still alive, and each iteration drops its plugin).
    drop(cached.load("builtin:postgres", POSTGRES).expect("loads"));

    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    // One load per batch, so each plugin is dropped before the next load and none is found in
    // the runtime's in-memory cache.
    group.bench_function("compile", |b| {
        b.iter_batched(
            || (),
            |()| {
                uncached
                    .load("builtin:postgres", black_box(POSTGRES))
                    .expect("loads")
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("disk_cache", |b| {
        b.iter_batched(
            || (),
            |()| {
                cached
                    .load("builtin:postgres", black_box(POSTGRES))
                    .expect("loads")
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, backup_call, load);
criterion_main!(benches);
