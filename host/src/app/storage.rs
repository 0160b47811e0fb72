//! The host's storage directory and its database, kept owner-only, and how healthy it is.
//!
//! The database `callhook.redb` holds the durable queue, the engine's call state, the recording
//! jobs and the plugins' stored data. It holds callers' numbers, plugins' tokens (often) and
//! signed links to recordings, so the directory is 0700 and the database 0600.
//!
//! [`StorageHealth`] is what `/healthz` and `/metrics` say about it: whether the last write of
//! events failed (the derivation loop holds the events and retries, see `app::derive`), and how
//! much room the file system has left ([`watch_free_space`] warns before it is full).

use anyhow::Context;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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

/// How often [`watch_free_space`] looks.
const FREE_SPACE_EVERY: Duration = Duration::from_secs(60);
/// Below this much free space (or [`LOW_SPACE_PERCENT`] of the file system, whichever is
/// more), [`watch_free_space`] warns.
const LOW_SPACE_BYTES: u64 = 256 << 20;
/// See [`LOW_SPACE_BYTES`].
const LOW_SPACE_PERCENT: u64 = 5;

/// Whether the database takes the host's writes, and the room left on its file system.
#[derive(Debug, Default)]
pub struct StorageHealth {
    failing: Mutex<Option<String>>,
    free_bytes: AtomicU64,
    total_bytes: AtomicU64,
}

impl StorageHealth {
    /// The last write went through.
    pub fn stored(&self) {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The last write failed with `error`.
    pub fn failed(&self, error: &str) {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_owned());
    }

    /// Why writes fail, while they do.
    pub fn failing(&self) -> Option<String> {
        self.failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The free and total bytes of the storage's file system at the last look; `(0, 0)` before
    /// the first.
    pub fn space(&self) -> (u64, u64) {
        (
            self.free_bytes.load(Ordering::Relaxed),
            self.total_bytes.load(Ordering::Relaxed),
        )
    }

    /// Notes a look at the file system; whether its free space is low.
    fn measured(&self, free: u64, total: u64) -> bool {
        self.free_bytes.store(free, Ordering::Relaxed);
        self.total_bytes.store(total, Ordering::Relaxed);
        free < LOW_SPACE_BYTES.max(total / 100 * LOW_SPACE_PERCENT)
    }
}

/// The free and total bytes of the file system `dir` is on (for an unprivileged process).
fn space_of(dir: &Path) -> std::io::Result<(u64, u64)> {
    let stat = rustix::fs::statvfs(dir).map_err(std::io::Error::from)?;
    let block = stat.f_frsize.max(1);
    Ok((stat.f_bavail * block, stat.f_blocks * block))
}

/// Looks at the free space of `dir`'s file system now and every minute until `cancel`,
/// recording it in `health` and warning once each time it falls low (under 256 MiB or 5 %),
/// before the database and the recordings, which share it by default, fill it.
pub async fn watch_free_space(
    dir: PathBuf,
    health: std::sync::Arc<StorageHealth>,
    cancel: CancellationToken,
) {
    let mut warned = false;
    loop {
        match space_of(&dir) {
            Ok((free, total)) => {
                let low = health.measured(free, total);
                if low && !warned {
                    tracing::warn!(
                        dir = %dir.display(),
                        free_mib = free >> 20,
                        total_mib = total >> 20,
                        "the storage's file system is almost full; events stop being stored \
                         when it is (free space, or move recordings.mp3_dir elsewhere)"
                    );
                }
                warned = low;
            }
            Err(error) => {
                tracing::debug!(%error, dir = %dir.display(), "cannot read the free space");
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(FREE_SPACE_EVERY) => {}
        }
    }
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

    #[test]
    fn health_reports_failures_until_a_write_goes_through() {
        let health = StorageHealth::default();
        assert_eq!(health.failing(), None);
        health.failed("No space left on device");
        assert_eq!(health.failing().as_deref(), Some("No space left on device"));
        health.stored();
        assert_eq!(health.failing(), None);
    }

    #[test]
    fn free_space_is_low_under_256_mib_or_5_percent() {
        let health = StorageHealth::default();
        const GIB: u64 = 1 << 30;
        assert!(!health.measured(10 * GIB, 100 * GIB));
        assert!(health.measured(4 * GIB, 100 * GIB), "under 5 %");
        assert!(health.measured(255 << 20, GIB), "under 256 MiB");
        assert!(!health.measured(300 << 20, GIB));
        assert_eq!(health.space(), (300 << 20, GIB));
    }

    #[test]
    fn the_free_space_of_a_real_directory_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let (free, total) = space_of(dir.path()).unwrap();
        assert!(total > 0 && free <= total, "{free} of {total}");
    }
}
