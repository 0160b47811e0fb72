//! A disk for tests of what the host does when storage is slow or fails: a redb file backend
//! whose fsyncs are counted, can be held (a slow disk: commits wait) and can fail (a full disk).

use redb::Database;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// A file backend whose fsyncs are counted, can be held (a slow disk: commits wait) and can
/// fail (a full disk).
#[derive(Debug)]
struct TestDisk {
    file: redb::backends::FileBackend,
    control: Arc<DiskControl>,
}

/// What a test does with its [`TestDisk`].
#[derive(Debug, Default)]
pub(crate) struct DiskControl {
    syncs: AtomicUsize,
    held: Mutex<bool>,
    released: Condvar,
    fail_next: AtomicBool,
}

impl DiskControl {
    /// Fsyncs so far.
    pub(crate) fn syncs(&self) -> usize {
        self.syncs.load(Ordering::SeqCst)
    }

    /// Makes every fsync wait until [`DiskControl::release`].
    pub(crate) fn hold(&self) {
        *self.held.lock().unwrap() = true;
    }

    /// Lets held fsyncs go on.
    pub(crate) fn release(&self) {
        *self.held.lock().unwrap() = false;
        self.released.notify_all();
    }

    /// Makes the next fsync fail, as on a full disk.
    pub(crate) fn fail_next_sync(&self) {
        self.fail_next.store(true, Ordering::SeqCst);
    }
}

impl redb::StorageBackend for TestDisk {
    fn len(&self) -> std::io::Result<u64> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        let control = &self.control;
        let mut held = control.held.lock().unwrap();
        while *held {
            held = control.released.wait(held).unwrap();
        }
        drop(held);
        control.syncs.fetch_add(1, Ordering::SeqCst);
        if control.fail_next.swap(false, Ordering::SeqCst) {
            return Err(std::io::Error::other("No space left on device (injected)"));
        }
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.file.write(offset, data)
    }
    fn close(&self) -> std::io::Result<()> {
        self.file.close()
    }
}

/// A database at `path` on a [`TestDisk`], and its control.
pub(crate) fn open(path: &Path) -> (Arc<Database>, Arc<DiskControl>) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    let control = Arc::new(DiskControl::default());
    let disk = TestDisk {
        file: redb::backends::FileBackend::new(file).unwrap(),
        control: control.clone(),
    };
    let db = Database::builder().create_with_backend(disk).unwrap();
    (Arc::new(db), control)
}
