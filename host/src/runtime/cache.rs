//! Compiles each plugin once and keeps the machine code on disk.
//!
//! The cache key is the SHA-256 of the plugin binary together with the engine's compatibility
//! hash (wasmtime version and compilation settings), so a new host or a new plugin build never
//! loads stale code. Files are written to a temporary name and renamed, so a crash never leaves
//! a half-written artefact; an artefact that fails to load is recompiled and replaced.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled plugins are kept.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

impl CompileCache {
    /// A cache in `dir`, or no caching with `None`.
    pub fn new(dir: Option<PathBuf>) -> Self {
        CompileCache { dir }
    }

    /// The compiled component for `wasm`, from the cache or freshly compiled.
    pub fn component(&self, engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Component> {
        let Some(path) = self.path_for(engine, wasm) else {
            return Component::new(engine, wasm);
        };
        if path.exists() {
            // SAFETY: the file was produced by `Component::serialize` of an engine with the same
            // compatibility hash (part of its name), written by this host into its own cache
            // directory and renamed into place only once complete.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(error) => tracing::warn!(
                    path = %path.display(),
                    %error,
                    "cached plugin code unusable; recompiling"
                ),
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Err(error) = store(&path, &component.serialize()?) {
            tracing::warn!(path = %path.display(), %error, "could not cache compiled plugin");
        }
        Ok(component)
    }

    fn path_for(&self, engine: &Engine, wasm: &[u8]) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let digest = hex::encode(Sha256::digest(wasm));
        Some(dir.join(format!("{digest}-{:016x}.cwasm", engine_hash.finish())))
    }
}

fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("cache files live in a directory");
    std::fs::create_dir_all(dir)?;
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}
