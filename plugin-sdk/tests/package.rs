//! The published crate carries its contract: `cargo package` lists the WIT the bindings are
//! generated from, so the SDK builds from crates.io without this repository.

#[test]
fn the_package_contains_the_wit_contract() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "package",
            "--list",
            "--allow-dirty",
            "--offline",
            "-p",
            "callhook-plugin-sdk",
        ])
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let files: Vec<&str> = stdout.lines().collect();
    for wanted in [
        "build.rs",
        "wit/plugin.wit",
        "wit/deps/http/http.wit",
        "wit/deps/io/io.wit",
        "wit/deps/clocks/clocks.wit",
    ] {
        assert!(files.contains(&wanted), "{wanted} missing from {files:?}");
    }
    let wit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/wit/plugin.wit"))
        .expect("wit/plugin.wit");
    let package = format!(
        "package callhook:plugin@{};",
        callhook_plugin_sdk::API_VERSION
    );
    assert!(wit.contains(&package), "{package}");
}
