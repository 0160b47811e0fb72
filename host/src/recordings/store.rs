//! The MP3 folder: file names, safe lookups, and the key that signs links.
//!
//! Every MP3 is `{id}-{n}.mp3` directly in the folder: `id` the call id with the link of the part
//! the recording belongs to (`210701165649_782-1`), `n` counting that part's recordings from 1.
//! Call ids are digits, `_` and `-`, so names need no escaping in URLs or shells. Names that
//! start with a dot are the store's own (temporary `.*.mp3.partial` files, `.link-key`) and are
//! never served. [`Store::resolve`] accepts only names made of `[A-Za-z0-9_.-]` ending in `.mp3`,
//! without a leading dot: no `/`, no `\`, no `..`, whatever encoding a request used, so a name
//! always means a file directly in the folder.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rand::RngCore;

use crate::calls::event::CallId;

/// The name of the file in the MP3 folder that keeps the generated link-signing key.
const KEY_FILE: &str = ".link-key";

/// The MP3 folder.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store in `dir`, created (with its parents) if missing.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Store> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Store { dir })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `{id}-{n}.mp3`: the name of the `n`th recording (from 1) of the part with call id `id`.
    pub fn file_name(id: &CallId, n: usize) -> String {
        format!("{id}-{n}.mp3")
    }

    /// Where the file `name` lives, if `name` is a name the store may hold (see module docs).
    /// Says nothing about whether the file exists.
    pub fn resolve(&self, name: &str) -> Option<PathBuf> {
        is_mp3_name(name).then(|| self.dir.join(name))
    }

    /// The key that signs links: read from `{dir}/.link-key`, or made (32 random bytes, hex) and
    /// written there (mode 0600 on Unix) on first use.
    pub fn link_key(&self) -> io::Result<Vec<u8>> {
        let path = self.dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => return Ok(text.trim().as_bytes().to_vec()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let key = hex::encode(key);
        let mut temp = tempfile::Builder::new()
            .prefix(".link-key")
            .tempfile_in(&self.dir)?;
        temp.write_all(key.as_bytes())?;
        temp.as_file().sync_all()?;
        // tempfile creates files readable by the owner only.
        temp.persist(&path).map_err(|e| e.error)?;
        Ok(key.into_bytes())
    }
}

/// Whether `name` is a plain MP3 file name: `[A-Za-z0-9_.-]+\.mp3`, no leading dot.
fn is_mp3_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".mp3") else {
        return false;
    };
    !stem.is_empty()
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_files_by_part_and_number() {
        let id = CallId {
            stamp: "210701165649".to_owned(),
            pbx_call_id: 782,
            link: 1,
        };
        assert_eq!(Store::file_name(&id, 2), "210701165649_782-1-2.mp3");
    }

    #[test]
    fn resolves_only_plain_mp3_names() {
        let store = Store {
            dir: PathBuf::from("/srv/rec"),
        };
        for (name, ok) in [
            ("210701165649_782-1-1.mp3", true),
            ("a.b.mp3", true),
            ("../secret.mp3", false),
            ("..%2Fsecret.mp3", false),
            ("sub/x.mp3", false),
            ("sub\\x.mp3", false),
            ("/etc/passwd", false),
            (".link-key", false),
            (".x.mp3.partial", false),
            (".hidden.mp3", false),
            ("x..mp3", false),
            (".mp3", false),
            ("", false),
            ("x.wav", false),
            ("x.mp3\0", false),
        ] {
            assert_eq!(store.resolve(name).is_some(), ok, "{name:?}");
        }
    }

    #[test]
    fn keeps_the_generated_link_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("mp3")).unwrap();
        let key = store.link_key().unwrap();
        assert_eq!(key.len(), 64);
        assert_eq!(
            store.link_key().unwrap(),
            key,
            "the same key after a restart"
        );
    }
}
