//! `callhook plugin new`: scaffolds a ready-to-build plugin crate from the SDK template.
//!
//! The binary carries the SDK it was built with (`build.rs` embeds its source and a standalone
//! manifest) and writes it into the new crate as `callhook-plugin-sdk/`, a path dependency: the
//! plugin builds wherever its folder goes, with nothing but the `callhook` binary and a Rust
//! toolchain, against exactly the contract version this host serves. `--sdk PATH` uses another
//! copy of the SDK instead.

use anyhow::Context;
use std::path::{Path, PathBuf};

const CARGO_TOML: &str = include_str!("template/Cargo.toml.in");
const LIB_RS: &str = include_str!("template/lib.rs.in");

include!(concat!(env!("OUT_DIR"), "/plugin_sdk.rs"));

/// The folder of the new crate the embedded SDK is written to.
const SDK_FOLDER: &str = "callhook-plugin-sdk";

/// Creates the crate `name` in `dir` (by default `./name`) and says how to build and load it.
pub fn new(name: &str, dir: Option<PathBuf>, sdk: Option<PathBuf>) -> anyhow::Result<()> {
    anyhow::ensure!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && name.starts_with(|c: char| c.is_ascii_alphabetic()),
        "the plugin name {name:?} must start with a letter and use only letters, digits, - and _"
    );
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    anyhow::ensure!(!dir.exists(), "{} exists already", dir.display());
    let sdk = match sdk {
        Some(path) => {
            let path = path
                .canonicalize()
                .with_context(|| format!("while resolving the SDK path {}", path.display()))?;
            format!("{{ path = {:?} }}", path.display().to_string())
        }
        None => {
            write_sdk(&dir.join(SDK_FOLDER))?;
            format!("{{ path = \"{SDK_FOLDER}\" }}")
        }
    };
    let fill = |template: &str| {
        template
            .replace("{name}", name)
            .replace("{type_name}", &type_name(name))
            .replace("{sdk}", &sdk)
    };
    write(&dir.join("Cargo.toml"), fill(CARGO_TOML))?;
    write(&dir.join("src").join("lib.rs"), fill(LIB_RS))?;
    let file = name.replace('-', "_");
    println!(
        "created {dir}\n\nbuild it:\n  cd {dir} && cargo build --release --target wasm32-wasip2\n\n\
         load it in callhook.toml:\n  [[plugin]]\n  name = \"{name}\"\n  \
         path = \"{dir}/target/wasm32-wasip2/release/{file}.wasm\"\n  \
         allowed_hosts = [\"https://crm.example.com\"]\n  [plugin.settings]\n  \
         url = \"https://crm.example.com/calls\"",
        dir = dir.display()
    );
    Ok(())
}

/// Writes the embedded SDK into `dir`.
fn write_sdk(dir: &Path) -> anyhow::Result<()> {
    write(&dir.join("Cargo.toml"), SDK_MANIFEST)?;
    for (path, bytes) in SDK_FILES {
        write(&dir.join(path), bytes)?;
    }
    Ok(())
}

fn write(path: &Path, contents: impl AsRef<[u8]>) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("while creating {}", parent.display()))?;
    }
    std::fs::write(path, contents).with_context(|| format!("while writing {}", path.display()))
}

/// `my-crm` → `MyCrm`.
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            let first = chars.next().map(|c| c.to_ascii_uppercase());
            first.into_iter().chain(chars).collect::<String>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::type_name;

    #[test]
    fn type_names_are_camel_case() {
        for (name, expected) in [
            ("my-crm", "MyCrm"),
            ("hubspot", "Hubspot"),
            ("zoho_crm2", "ZohoCrm2"),
        ] {
            assert_eq!(type_name(name), expected);
        }
    }
}
