//! Builds the WebAssembly plugins the host ships or tests with, so that `cargo build` alone
//! produces a `callhook` binary with the default plugin embedded.
//!
//! The plugins are built by a nested `cargo build --release --target wasm32-wasip2` into
//! `target/plugins` (its own target directory, so the outer build's lock is not contended).
//! Their paths reach the host as `CALLHOOK_GENERIC_WEBHOOK_WASM` (embedded with
//! `include_bytes!`) and `CALLHOOK_SANDBOX_PROBE_WASM` (used by the tests).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Workspace packages built for `wasm32-wasip2`, with the variable their path is exported as.
const PLUGINS: [(&str, &str, &str); 2] = [
    (
        "generic-webhook",
        "generic_webhook",
        "CALLHOOK_GENERIC_WEBHOOK_WASM",
    ),
    (
        "sandbox-probe",
        "sandbox_probe",
        "CALLHOOK_SANDBOX_PROBE_WASM",
    ),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    for watched in [
        "plugin-sdk",
        "plugins",
        "tests/plugins",
        "wit",
        "Cargo.lock",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    let target_dir = workspace.join("target").join("plugins");
    build_plugins(&workspace, &target_dir);
    for (_, file, variable) in PLUGINS {
        let wasm = target_dir
            .join("wasm32-wasip2")
            .join("release")
            .join(format!("{file}.wasm"));
        assert!(wasm.exists(), "{} was not built", wasm.display());
        println!("cargo:rustc-env={variable}={}", wasm.display());
    }
}

fn build_plugins(workspace: &Path, target_dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(target_dir);
    for (package, _, _) in PLUGINS {
        command.args(["--package", package]);
    }
    // The outer build's settings (flags for the host target, wrappers like clippy-driver,
    // coverage instrumentation) must not leak into the plugin build.
    for variable in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_LLVM_COV",
        "LLVM_PROFILE_FILE",
    ] {
        command.env_remove(variable);
    }
    let status = command
        .status()
        .expect("could not run cargo to build the wasm plugins");
    assert!(
        status.success(),
        "building the wasm plugins failed; is the target installed? \
         run `rustup target add wasm32-wasip2`"
    );
}
