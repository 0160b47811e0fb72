//! Tests of the limits: the limiter alone, then real components (written in WAT) in the
//! runtime's own engine, with the limiter a delivery's store gets.

use super::*;
use crate::runtime::{KvQuota, KvStore, LoadError, PluginRuntime, PluginSpec, RuntimeConfig};
use std::sync::Arc;
use wasmtime::component::{Component, Linker};
use wasmtime::{ResourceLimiter, Store};

const MIB: usize = 1 << 20;

#[test]
fn the_cap_counts_every_memory_of_the_plugin() {
    let mut limiter = MemoryLimiter::new(16 * MIB);
    // Two memories created at 6 MiB each, then the first grows to 9 MiB: 15 MiB in all.
    assert!(limiter.memory_growing(0, 6 * MIB, None).unwrap());
    assert!(limiter.memory_growing(0, 6 * MIB, None).unwrap());
    assert!(limiter.memory_growing(6 * MIB, 9 * MIB, None).unwrap());
    assert!(!limiter.hit());
    // The second growing to 8 MiB would make 17 MiB, each memory being under the cap.
    let error = limiter.memory_growing(6 * MIB, 8 * MIB, None).unwrap_err();
    assert!(limiter.hit());
    assert_eq!(
        error.to_string(),
        "the plugin tried to grow its memory to 17 MiB, over its cap of 16 MiB (memory_mb)"
    );
    // A refused growth leaves the total as it was.
    assert!(limiter.memory_growing(6 * MIB, 7 * MIB, None).unwrap());
}

/// The memory cap of the component tests.
const CAP: usize = 4 * MIB;

/// A runtime as `app` builds it, with a pool of two instances, on a temporary store.
fn runtime() -> (tempfile::TempDir, PluginRuntime) {
    let dir = tempfile::tempdir().unwrap();
    let db = redb::Database::create(dir.path().join("callhook.redb")).unwrap();
    let kv = KvStore::new(Arc::new(db), KvQuota::default());
    let config = RuntimeConfig {
        max_instances: 2,
        ..RuntimeConfig::default()
    };
    (dir, PluginRuntime::new(config, kv).unwrap())
}

/// A component of `instances` core instances of one module with the WAT `fields`. The module
/// carries the SDK's contract version, so that [`PluginRuntime::load`] gets as far as
/// compiling it (none implements the plugin world: those the pool accepts are instantiated
/// by [`instantiate`]).
fn component(instances: usize, fields: &str) -> Vec<u8> {
    let instantiate = "(core instance (instantiate $m))".repeat(instances);
    wat::parse_str(format!(
        r#"(component
             (core module $m (@custom "callhook:api-version" "0.3.0") {fields})
             {instantiate})"#
    ))
    .unwrap()
}

/// `count` memories of `mib` MiB each, as module fields.
fn memories(count: usize, mib: usize) -> String {
    format!("(memory {})", mib * MIB / 65536).repeat(count)
}

/// Instantiates `wasm` in the runtime's engine in a store limited as a delivery's is (capped at
/// [`CAP`]): the engine's error if any, and whether the limiter saw the cap hit.
fn instantiate(runtime: &PluginRuntime, wasm: &[u8]) -> (Result<(), String>, bool) {
    let component = Component::new(&runtime.engine, wasm).unwrap();
    let mut store = Store::new(&runtime.engine, MemoryLimiter::new(CAP));
    store.limiter(|limiter| limiter);
    let result = Linker::new(&runtime.engine)
        .instantiate(&mut store, &component)
        .map(drop)
        .map_err(|error| format!("{error:#}"));
    (result, store.data().hit())
}

#[test]
fn memories_of_separate_core_instances_count_together_against_the_cap() {
    let (_dir, runtime) = runtime();
    // Two core instances of a module with one memory, each memory under the 4 MiB cap alone.
    let (result, hit) = instantiate(&runtime, &component(2, &memories(1, 3)));
    assert_eq!(
        result,
        Err(
            "the plugin tried to grow its memory to 6 MiB, over its cap of 4 MiB (memory_mb)"
                .into()
        )
    );
    assert!(hit, "the cap hit is not noted");
    // 2 × 2 MiB is the cap exactly.
    let (result, hit) = instantiate(&runtime, &component(2, &memories(1, 2)));
    assert_eq!(result, Ok(()));
    assert!(!hit);
}

/// Refusals of the pool, before anything is instantiated: `PluginRuntime::load` fails.
fn load(runtime: &PluginRuntime, wasm: Vec<u8>) -> String {
    let spec = PluginSpec {
        name: "wide".into(),
        wasm: wasm.into(),
        allowed_hosts: vec![],
        limits: PluginLimits::default(),
        settings: Default::default(),
        secrets: Default::default(),
        ca_file: None,
    };
    match runtime.load(spec) {
        Err(LoadError::Link { plugin, message }) if plugin == "wide" => message,
        other => panic!("not refused at load: {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_component_over_the_limits_per_component_is_refused_at_load() {
    let (_dir, runtime) = runtime();
    let limit = |limit: u32| limit as usize;
    // (what the pool counts, the limit, the fields of a module instantiated that many times)
    let cases = [
        (
            "core module instances",
            limit(PluginLimits::MAX_CORE_INSTANCES),
            "",
        ),
        (
            "Wasm linear memories",
            limit(PluginLimits::MAX_MEMORIES),
            "(memory 0)",
        ),
        (
            "tables",
            limit(PluginLimits::MAX_TABLES),
            "(table 0 funcref)",
        ),
    ];
    for (what, limit, fields) in cases {
        let (at_the_limit, _) = instantiate(&runtime, &component(limit, fields));
        assert_eq!(at_the_limit, Ok(()), "{limit} {what}");
        let message = load(&runtime, component(limit + 1, fields));
        let refusal = format!(
            "The component transitively contains {} {what}, which exceeds the configured \
             maximum of {limit} in the pooling allocator",
            limit + 1
        );
        assert!(message.contains(&refusal), "{what}: {message}");
    }
}

#[test]
fn a_core_module_with_two_memories_or_tables_is_refused_at_load() {
    let (_dir, runtime) = runtime();
    // The pool's default of one memory and one table per core module stands: a plugin cannot
    // gather its memories in one module either.
    let message = load(&runtime, component(1, &memories(2, 1)));
    assert!(
        message.contains("defined memories count of 2 exceeds the per-instance limit of 1"),
        "{message}"
    );
    let message = load(&runtime, component(1, &"(table 0 funcref)".repeat(2)));
    assert!(
        message.contains("defined tables count of 2 exceeds the per-instance limit of 1"),
        "{message}"
    );
}
