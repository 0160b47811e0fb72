//! Which contract version a plugin was built against, and the bindings that serve it.
//!
//! The SDK embeds its version in the custom section `callhook:api-version` of the plugin's core
//! module. The host reads it before compiling, so a plugin built for a contract this host
//! cannot serve is refused with a clear message instead of a linker error.

use super::state::PluginState;
use super::{since_v0_1_0, since_v0_2_0, since_v0_3_0};

/// The custom section that carries the contract version.
pub const API_VERSION_SECTION: &str = "callhook:api-version";

// `SUPPORTED`: the contract versions this host serves, `(major, minor, patch)`, read by
// `build.rs` from the package lines of `wit/since_v*/plugin.wit`, so the folders are the one
// source of the numbers. A plugin matches a version by `(major, minor)` (0.x versions: the
// minor is the major); each has its arm in [`PluginPre`].
include!(concat!(env!("OUT_DIR"), "/contract_versions.rs"));

fn served(version: ApiVersion) -> bool {
    SUPPORTED
        .iter()
        .any(|&(major, minor, _)| (major, minor) == (version.major, version.minor))
}

/// A contract version, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Why a plugin's contract version is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The file is not a WebAssembly component.
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    /// No `callhook:api-version` section: not built with the callhook plugin SDK.
    #[error(
        "no `{API_VERSION_SECTION}` section: the plugin was not built with callhook-plugin-sdk's \
         register_plugin! macro"
    )]
    Missing,
    /// The section is not a `major.minor.patch` version.
    #[error("the `{API_VERSION_SECTION}` section holds {0:?}, not a version")]
    Malformed(String),
    /// A version this host does not serve.
    #[error(
        "the plugin was built against contract {found}, which this host (serving {supported}) \
         cannot load; rebuild it with a matching callhook-plugin-sdk"
    )]
    Unsupported {
        /// The plugin's version.
        found: ApiVersion,
        /// What this host serves.
        supported: String,
    },
}

/// Reads and checks the contract version of a plugin binary.
pub fn api_version(wasm: &[u8]) -> Result<ApiVersion, VersionError> {
    if !wasmparser::Parser::is_component(wasm) {
        return Err(VersionError::NotAComponent(
            "expected a component (build with --target wasm32-wasip2)".into(),
        ));
    }
    let mut section = None;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| VersionError::NotAComponent(e.to_string()))?;
        if let wasmparser::Payload::CustomSection(reader) = payload
            && reader.name() == API_VERSION_SECTION
        {
            section = Some(reader.data().to_vec());
        }
    }
    let text = String::from_utf8_lossy(&section.ok_or(VersionError::Missing)?).into_owned();
    let version = parse(&text).ok_or(VersionError::Malformed(text))?;
    if served(version) {
        Ok(version)
    } else {
        Err(VersionError::Unsupported {
            found: version,
            supported: SUPPORTED
                .iter()
                .map(|(major, minor, _)| format!("{major}.{minor}.x"))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

fn parse(text: &str) -> Option<ApiVersion> {
    let mut parts = text.trim().split('.').map(|p| p.parse::<u32>().ok());
    let version = ApiVersion {
        major: parts.next()??,
        minor: parts.next()??,
        patch: parts.next()??,
    };
    parts.next().is_none().then_some(version)
}

/// A plugin ready to instantiate, by contract version. Matched exhaustively wherever the host
/// calls into plugins, so adding a version is a compile error until every call site serves it.
pub enum PluginPre {
    /// `callhook:plugin@0.1.x`.
    V0_1(since_v0_1_0::PluginPre<PluginState>),
    /// `callhook:plugin@0.2.x`.
    V0_2(since_v0_2_0::PluginPre<PluginState>),
    /// `callhook:plugin@0.3.x`.
    V0_3(since_v0_3_0::PluginPre<PluginState>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(
            parse("0.1.0"),
            Some(ApiVersion {
                major: 0,
                minor: 1,
                patch: 0
            })
        );
        assert_eq!(
            parse(" 1.22.333 "),
            Some(ApiVersion {
                major: 1,
                minor: 22,
                patch: 333
            })
        );
        for bad in ["", "0.1", "0.1.0.0", "a.b.c", "0.-1.0"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn serves_every_contract_folder_and_the_sdk_builds_against_the_newest() {
        assert_eq!(SUPPORTED, [(0, 1, 0), (0, 2, 0), (0, 3, 0)]);
        let (major, minor, patch) = SUPPORTED[SUPPORTED.len() - 1];
        assert_eq!(
            format!("{major}.{minor}.{patch}"),
            callhook_plugin_sdk::API_VERSION
        );
    }

    #[test]
    fn rejects_core_modules() {
        let core_module = b"\0asm\x01\0\0\0";
        assert!(matches!(
            api_version(core_module),
            Err(VersionError::NotAComponent(_))
        ));
    }
}
