//! Reads the contract version from the package line of `wit/plugin.wit`
//! (`package callhook:plugin@X.Y.Z;`), so that the version the SDK embeds in every plugin is
//! the one of the WIT it generates its bindings from. The host reads its served versions from
//! the same lines (`host/build.rs`).

fn main() {
    println!("cargo:rerun-if-changed=wit/plugin.wit");
    let text = std::fs::read_to_string("wit/plugin.wit").expect("wit/plugin.wit is readable");
    let version = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("package callhook:plugin@"))
        .and_then(|rest| rest.strip_suffix(';'))
        .expect("wit/plugin.wit has a `package callhook:plugin@X.Y.Z;` line");
    println!("cargo:rustc-env=CALLHOOK_API_VERSION={version}");
}
