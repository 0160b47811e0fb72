//! Retention: MP3s older than `KEEP_DAYS` are deleted by a periodic sweep.
//!
//! Age is the file's modification time, which the converter sets when it writes the file, so
//! the sweep needs no index and survives restarts; an operator can also extend a file's life by
//! touching it. Only plain `*.mp3` files directly in the folder are swept. Temporary
//! `.*.mp3.partial` files left by a crash mid-conversion are deleted once a day old. The clock
//! is a parameter ([`sweep`]'s `now`) so tests need not wait.

use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

/// How old a leftover temporary file must be before the sweep removes it.
const PARTIAL_AGE: Duration = Duration::from_secs(86_400);

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// MP3s (and leftover temporary files) deleted.
    pub deleted: usize,
    /// MP3s kept.
    pub kept: usize,
    /// Files that could not be examined or deleted (logged).
    pub failed: usize,
}

/// Deletes the MP3s in `dir` last modified more than `keep` before `now`.
pub fn sweep(dir: &Path, keep: Duration, now: SystemTime) -> io::Result<SweepReport> {
    let mut report = SweepReport::default();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else {
            report.failed += 1;
            continue;
        };
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let limit = if name.ends_with(".mp3") && !name.starts_with('.') {
            keep
        } else if name.starts_with('.') && name.ends_with(".mp3.partial") {
            PARTIAL_AGE
        } else {
            continue;
        };
        let modified = entry.metadata().and_then(|m| {
            if m.is_file() {
                m.modified()
            } else {
                Err(io::Error::other("not a file"))
            }
        });
        let Ok(modified) = modified else {
            continue;
        };
        let age = now.duration_since(modified).unwrap_or_default();
        if age <= limit {
            report.kept += 1;
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => report.deleted += 1,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => {
                report.failed += 1;
                tracing::warn!(file = %entry.path().display(), %error, "cannot delete an old recording");
            }
        }
    }
    Ok(report)
}

/// Sweeps `dir` now and then every `every` until `cancel` fires.
pub async fn run(dir: &Path, keep: Duration, every: Duration, cancel: CancellationToken) {
    loop {
        let (dir_owned, now) = (dir.to_owned(), SystemTime::now());
        match tokio::task::spawn_blocking(move || sweep(&dir_owned, keep, now)).await {
            Ok(Ok(report)) if report.deleted > 0 || report.failed > 0 => {
                tracing::info!(deleted = report.deleted, kept = report.kept, failed = report.failed,
                    dir = %dir.display(), "recordings retention sweep");
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(dir = %dir.display(), %error, "cannot sweep the recordings folder");
            }
            Err(error) => tracing::warn!(%error, "the recordings sweep stopped unexpectedly"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn deletes_only_old_mp3s() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let files = [
            ("old-1.mp3", 31, false),
            ("young-1.mp3", 29, true),
            ("fresh-1.mp3", 0, true),
            ("old.wav", 40, true),
            (".link-key", 400, true),
            (".abc.mp3.partial", 2, false),
            (".new.mp3.partial", 0, true),
        ];
        for (name, days, _) in files {
            let file = File::create(dir.path().join(name)).unwrap();
            file.set_modified(now - DAY * days).unwrap();
        }
        std::fs::create_dir(dir.path().join("old-dir.mp3")).unwrap();
        let report = sweep(dir.path(), DAY * 30, now).unwrap();
        for (name, _, kept) in files {
            assert_eq!(dir.path().join(name).exists(), kept, "{name}");
        }
        assert!(dir.path().join("old-dir.mp3").exists());
        assert_eq!((report.deleted, report.kept, report.failed), (2, 3, 0));
    }

    #[tokio::test]
    async fn runs_until_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old-1.mp3");
        File::create(&old)
            .unwrap()
            .set_modified(SystemTime::now() - DAY * 2)
            .unwrap();
        let cancel = CancellationToken::new();
        let task = tokio::spawn({
            let (dir, cancel) = (dir.path().to_owned(), cancel.clone());
            async move { run(&dir, DAY, Duration::from_millis(10), cancel).await }
        });
        tokio::time::timeout(Duration::from_secs(5), async {
            while old.exists() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the first sweep deletes the old file");
        cancel.cancel();
        task.await.unwrap();
    }
}
