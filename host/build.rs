//! Builds the WebAssembly plugins the host ships or tests with, so that `cargo build` alone
//! produces a `callhook` binary with the default plugin embedded.
//!
//! The plugins are built by a nested `cargo build --profile plugin --target wasm32-wasip2` into
//! `target/plugins` (its own target directory, so the outer build's lock is not contended; see
//! `build/wasm_plugins.rs`). Their paths reach the host as `CALLHOOK_GENERIC_WEBHOOK_WASM`,
//! `CALLHOOK_HUBSPOT_WASM`, `CALLHOOK_PIPEDRIVE_WASM`, `CALLHOOK_BITRIX24_WASM` and
//! `CALLHOOK_ZOHO_WASM`, embedded with `include_bytes!`. The plugins only tests use are built
//! by `tests/plugins/artifacts`, a dev-dependency, so a release build does not build them.
//!
//! It also reads the contract versions the host serves from the `package callhook:plugin@X.Y.Z;`
//! lines of `wit/since_v*/plugin.wit` (the one source of the version numbers; the SDK reads its
//! own from the same line of the newest folder) into `$OUT_DIR/contract_versions.rs`.
//!
//! And it embeds the plugin SDK's source for `callhook plugin new`, which writes it next to a
//! new plugin so that the plugin builds anywhere: every file of `plugin-sdk` a build needs (the
//! WIT through its symlink) and a manifest with the workspace's inherited keys resolved, into
//! `$OUT_DIR/plugin_sdk.rs`.

use std::path::{Path, PathBuf};
#[path = "build/wasm_plugins.rs"]
mod wasm_plugins;

/// Workspace packages built for `wasm32-wasip2`, with the variable their path is exported as.
const PLUGINS: [(&str, &str, &str); 5] = [
    (
        "generic-webhook",
        "generic_webhook",
        "CALLHOOK_GENERIC_WEBHOOK_WASM",
    ),
    ("hubspot", "hubspot", "CALLHOOK_HUBSPOT_WASM"),
    ("pipedrive", "pipedrive", "CALLHOOK_PIPEDRIVE_WASM"),
    ("bitrix24", "bitrix24", "CALLHOOK_BITRIX24_WASM"),
    ("zoho", "zoho", "CALLHOOK_ZOHO_WASM"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    for watched in ["plugin-sdk", "plugins", "wit", "Cargo.lock", "Cargo.toml"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    write_contract_versions(&workspace);
    write_embedded_sdk(&workspace);
    let target_dir = workspace.join("target").join("plugins");
    let packages = PLUGINS.map(|(package, file, _)| (package, file));
    let built = wasm_plugins::build(&workspace, &target_dir, &packages);
    for ((_, _, variable), wasm) in PLUGINS.iter().zip(built) {
        println!("cargo:rustc-env={variable}={}", wasm.display());
    }
}

/// Writes `SUPPORTED: [(u32, u32, u32); N]`, the versions of `wit/since_v*/plugin.wit`, oldest
/// first.
fn write_contract_versions(workspace: &Path) {
    let mut versions = Vec::new();
    for entry in std::fs::read_dir(workspace.join("wit")).expect("wit/ is readable") {
        let path = entry.expect("wit/ is readable").path().join("plugin.wit");
        if !path.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("plugin.wit is readable");
        let version = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("package callhook:plugin@"))
            .and_then(|rest| rest.strip_suffix(';'))
            .unwrap_or_else(|| panic!("{} has no package line", path.display()));
        let parts: Vec<u32> = version
            .split('.')
            .map(|n| n.parse().expect("a numeric version"))
            .collect();
        assert_eq!(parts.len(), 3, "{version} is not major.minor.patch");
        versions.push((parts[0], parts[1], parts[2]));
    }
    versions.sort();
    let list = versions
        .iter()
        .map(|(a, b, c)| format!("({a}, {b}, {c})"))
        .collect::<Vec<_>>()
        .join(", ");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("contract_versions.rs");
    std::fs::write(
        out,
        format!(
            "/// The contract versions this host serves, oldest first (from `wit/since_v*/`).\n\
             pub const SUPPORTED: [(u32, u32, u32); {}] = [{list}];\n",
            versions.len()
        ),
    )
    .expect("OUT_DIR is writable");
}

/// Writes `SDK_MANIFEST` (a standalone `Cargo.toml` of the SDK) and `SDK_FILES` (each file's
/// path in the crate and its bytes).
fn write_embedded_sdk(workspace: &Path) {
    let sdk = workspace.join("plugin-sdk");
    let mut files = Vec::new();
    for part in ["build.rs", "README.md", "src", "wit"] {
        collect_files(&sdk.join(part), &mut files);
    }
    files.sort();
    let mut out = format!(
        "/// The SDK's `Cargo.toml`, standalone (no workspace keys).\n\
         pub const SDK_MANIFEST: &str = {:?};\n\
         /// The SDK's files a build needs: path in the crate, bytes.\n\
         pub const SDK_FILES: &[(&str, &[u8])] = &[\n",
        standalone_sdk_manifest(workspace)
    );
    for file in files {
        let relative = file.strip_prefix(&sdk).expect("under plugin-sdk");
        out.push_str(&format!(
            "    ({:?}, include_bytes!({:?})),\n",
            relative.to_str().expect("SDK paths are UTF-8"),
            file.to_str().expect("SDK paths are UTF-8")
        ));
    }
    out.push_str("];\n");
    let path = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("plugin_sdk.rs");
    std::fs::write(path, out).expect("OUT_DIR is writable");
}

/// Every file under `path` (following symbolic links), or `path` itself.
fn collect_files(path: &Path, files: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("the SDK is readable") {
            collect_files(&entry.expect("the SDK is readable").path(), files);
        }
    } else {
        files.push(path.to_owned());
    }
}

/// The SDK's manifest with every `workspace = true` key replaced by the workspace's value, and
/// without its lints and dev-dependencies (a plugin author builds it, never tests it).
fn standalone_sdk_manifest(workspace: &Path) -> String {
    let read = |path: PathBuf| -> toml::Table {
        let text = std::fs::read_to_string(&path).expect("manifests are readable");
        text.parse().expect("manifests are valid TOML")
    };
    let root = read(workspace.join("Cargo.toml"));
    let mut sdk = read(workspace.join("plugin-sdk").join("Cargo.toml"));
    let inherited = |table: &toml::Table, key: &str| -> toml::Value {
        table
            .get("workspace")
            .and_then(|w| w.get(key))
            .cloned()
            .unwrap_or_else(|| panic!("the workspace has no {key}"))
    };
    let is_inherited =
        |value: &toml::Value| value.get("workspace").and_then(toml::Value::as_bool) == Some(true);
    if let Some(toml::Value::Table(package)) = sdk.get_mut("package") {
        let from = inherited(&root, "package");
        for (key, value) in package.iter_mut() {
            if is_inherited(value) {
                *value = from.get(key).cloned().expect("an inherited package key");
            }
        }
    }
    if let Some(toml::Value::Table(dependencies)) = sdk.get_mut("dependencies") {
        let from = inherited(&root, "dependencies");
        for (name, value) in dependencies.iter_mut() {
            if is_inherited(value) {
                *value = from.get(name).cloned().expect("an inherited dependency");
            }
        }
    }
    sdk.remove("lints");
    sdk.remove("dev-dependencies");
    toml::to_string(&sdk).expect("a manifest serializes")
}
