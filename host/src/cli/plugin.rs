//! `callhook plugin new`: scaffolds a ready-to-build plugin crate from the SDK template.

use anyhow::Context;
use std::path::{Path, PathBuf};

const CARGO_TOML: &str = include_str!("template/Cargo.toml.in");
const LIB_RS: &str = include_str!("template/lib.rs.in");

/// The SDK this binary was built from, used as a path dependency while it is still there.
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugin-sdk");

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
    let sdk = match sdk.or_else(|| Some(PathBuf::from(BUILT_SDK)).filter(|p| p.exists())) {
        Some(path) => {
            let path = path
                .canonicalize()
                .with_context(|| format!("while resolving the SDK path {}", path.display()))?;
            format!("{{ path = {:?} }}", path.display().to_string())
        }
        None => format!("\"{}\"", env!("CARGO_PKG_VERSION")),
    };
    let fill = |template: &str| {
        template
            .replace("{name}", name)
            .replace("{type_name}", &type_name(name))
            .replace("{sdk}", &sdk)
    };
    write(&dir.join("Cargo.toml"), &fill(CARGO_TOML))?;
    write(&dir.join("src").join("lib.rs"), &fill(LIB_RS))?;
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

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
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
