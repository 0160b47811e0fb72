//! The host's storage directory and its database, kept owner-only.
//!
//! The database `callhook.redb` holds the durable queue, the engine's call state, the recording
//! jobs and the plugins' stored data. It holds callers' numbers, plugins' tokens (often) and
//! signed links to recordings, so the directory is 0700 and the database 0600.

use anyhow::Context;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The default `storage.dir`.
pub const DEFAULT_DIR: &str = "/var/lib/callhook";

/// Opens the database `callhook.redb` in the storage directory `dir`, creating both as
/// needed, owner-only: a new directory gets mode 0700 and a new database 0600; an existing
/// directory or database that others may read is tightened to that, and the command says so.
pub fn open(dir: &Path) -> anyhow::Result<redb::Database> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("while creating the storage directory {}", dir.display()))?;
    owner_only(dir, 0o700).with_context(|| {
        format!(
            "while making the storage directory {} owner-only",
            dir.display()
        )
    })?;
    let path = dir.join("callhook.redb");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("while creating the database {}", path.display()))?;
    owner_only(&path, 0o600)
        .with_context(|| format!("while making the database {} owner-only", path.display()))?;
    // An empty file is where redb initialises a new database.
    redb::Database::create(&path)
        .with_context(|| format!("while opening the database {}", path.display()))
}

/// Removes the group's and others' permissions from `path` (to `mode` at most), saying so when
/// there were any.
fn owner_only(path: &Path, mode: u32) -> std::io::Result<()> {
    let current = std::fs::metadata(path)?.permissions().mode() & 0o7777;
    if current & !mode == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(current & mode))?;
    println!(
        "{} was mode {current:o}; made it owner-only ({:o})",
        path.display(),
        current & mode
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_new_storage_directory_and_database_are_owner_only() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("state/callhook");
        drop(open(&dir).unwrap());
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("callhook.redb")), 0o600);
    }

    #[test]
    fn an_existing_storage_directory_and_database_are_made_owner_only() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("state");
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("callhook.redb");
        drop(redb::Database::create(&path).unwrap());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(open(&dir).unwrap());
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn an_owner_only_storage_keeps_its_stricter_modes() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("state");
        drop(open(&dir).unwrap());
        let path = dir.join("callhook.redb");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        owner_only(&path, 0o600).unwrap();
        assert_eq!(mode(&path), 0o400);
    }
}
