//! Builds the plugins only the tests use (`sandbox-probe`, `contract-probe`, and the 0.1 and
//! 0.2 `kv-probe`s) for `wasm32-wasip2` and exports their paths as the variables in `PLUGINS`.
//! This crate is a dev-dependency of the host, so `cargo build` and the release package never
//! build them (the model is wasmtime's `test-programs`).

use std::path::PathBuf;

#[path = "../../../host/build/wasm_plugins.rs"]
mod wasm_plugins;

/// The test plugins, with the variable their path is exported as.
const PLUGINS: [(&str, &str, &str); 4] = [
    (
        "sandbox-probe",
        "sandbox_probe",
        "CALLHOOK_SANDBOX_PROBE_WASM",
    ),
    (
        "contract-probe",
        "contract_probe",
        "CALLHOOK_CONTRACT_PROBE_WASM",
    ),
    (
        "kv-probe-v0-1",
        "kv_probe_v0_1",
        "CALLHOOK_KV_PROBE_V0_1_WASM",
    ),
    (
        "kv-probe-v0-2",
        "kv_probe_v0_2",
        "CALLHOOK_KV_PROBE_V0_2_WASM",
    ),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.join("../../..");
    for watched in [
        "plugin-sdk",
        "tests/plugins/sandbox-probe",
        "tests/plugins/contract-probe",
        "tests/plugins/kv-probe-v0-1",
        "tests/plugins/kv-probe-v0-2",
        "wit",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    let target_dir = workspace.join("target").join("plugins");
    let packages = PLUGINS.map(|(package, file, _)| (package, file));
    let built = wasm_plugins::build(&workspace, &target_dir, &packages);
    for ((_, _, variable), wasm) in PLUGINS.iter().zip(built) {
        println!("cargo:rustc-env={variable}={}", wasm.display());
    }
}
