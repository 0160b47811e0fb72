//! Builds workspace plugins for `wasm32-wasip2` with a nested `cargo build --profile plugin`
//! (the release profile with link-time optimisation, in the workspace's `Cargo.toml`), shared by
//! the build scripts of `host` (the plugins shipped in the binary) and of
//! `tests/plugins/artifacts` (the plugins only the tests use).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace's profile for wasm plugins.
const PROFILE: &str = "plugin";

/// Builds `packages` of the workspace at `workspace` into `target_dir` (its own target
/// directory, so the outer build's lock is not contended) and returns each one's `.wasm`,
/// `file` being the package's library name.
pub fn build(workspace: &Path, target_dir: &Path, packages: &[(&str, &str)]) -> Vec<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args([
            "build",
            "--profile",
            PROFILE,
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(target_dir);
    for (package, _) in packages {
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
    packages
        .iter()
        .map(|(_, file)| {
            let wasm = target_dir
                .join("wasm32-wasip2")
                .join(PROFILE)
                .join(format!("{file}.wasm"));
            assert!(wasm.exists(), "{} was not built", wasm.display());
            wasm
        })
        .collect()
}
