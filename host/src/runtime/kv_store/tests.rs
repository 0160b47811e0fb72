//! Tests of the key-value store through its API, with a disk whose fsyncs can be held or fail.

use super::*;
use crate::test_disk::{self, DiskControl};

fn store(quota: KvQuota) -> (tempfile::TempDir, KvStore) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path().join("kv.redb")).unwrap();
    (dir, KvStore::new(Arc::new(db), quota))
}

/// Runs `write` on `threads` threads at once (thread `i` gets `i`, and writes to `kv`) while
/// `disk` holds every fsync, so that their first writes all wait for the writer together, then
/// lets the disk go on; returns each thread's result, in thread order.
fn all_at_once<T: Send>(
    kv: &KvStore,
    disk: &DiskControl,
    threads: usize,
    write: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    disk.hold();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let write = &write;
                scope.spawn(move || write(i))
            })
            .collect();
        // The first write's commit waits on the disk; the others queue up behind it.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while kv.writer.unanswered() < threads {
            assert!(
                std::time::Instant::now() < deadline,
                "only {} of {threads} writes reached the writer",
                kv.writer.unanswered()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        disk.release();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn values_are_private_to_each_plugin() {
    let (_dir, kv) = store(KvQuota::default());
    assert_eq!(kv.get("a", "k").unwrap(), None);
    kv.set("a", "k", b"1").unwrap();
    kv.set("b", "k", b"2").unwrap();
    assert_eq!(kv.get("a", "k").unwrap(), Some(b"1".to_vec()));
    assert_eq!(kv.get("b", "k").unwrap(), Some(b"2".to_vec()));
    kv.delete("a", "k").unwrap();
    kv.delete("a", "missing").unwrap();
    assert_eq!(kv.get("a", "k").unwrap(), None);
    assert_eq!(kv.get("b", "k").unwrap(), Some(b"2".to_vec()));
}

#[test]
fn rejects_keys_values_and_totals_over_the_quota() {
    let quota = KvQuota {
        max_key_bytes: 4,
        max_value_bytes: 8,
        max_total_bytes: 20,
    };
    let (_dir, kv) = store(quota);
    assert_eq!(kv.set("p", "12345", b""), Err(KvError::KeyTooLong(4)));
    assert_eq!(kv.set("p", "k", &[0; 9]), Err(KvError::ValueTooLarge(8)));
    kv.set("p", "k1", &[0; 8]).unwrap(); // 10 bytes
    kv.set("p", "k2", &[0; 8]).unwrap(); // 20 bytes
    assert_eq!(kv.set("p", "k3", b""), Err(KvError::QuotaExceeded(20)));
    // Replacing a value counts only the difference; deleting frees the space.
    kv.set("p", "k2", &[0; 2]).unwrap(); // 14 bytes
    kv.set("p", "k3", &[0; 4]).unwrap(); // 20 bytes
    kv.delete("p", "k1").unwrap(); // 10 bytes
    kv.set("p", "k4", &[0; 8]).unwrap(); // 20 bytes
    // Other plugins have their own quota.
    kv.set("q", "k1", &[0; 8]).unwrap();
    // A plugin's own quota replaces the store's.
    let small = kv.with_total_quota(6);
    assert_eq!(
        small.set("r", "k1", &[0; 5]),
        Err(KvError::QuotaExceeded(6))
    );
    small.set("r", "k1", &[0; 4]).unwrap();
}

#[test]
fn expiring_entries_vanish_and_free_their_quota() {
    let quota = KvQuota {
        max_total_bytes: 20,
        ..KvQuota::default()
    };
    let (_dir, kv) = store(quota);
    // Expiring 60 s after they were written.
    kv.write("p", 1_000, Change::put("rec:1", &[1; 8], Some(61_000)))
        .unwrap(); // 13 bytes
    kv.write("p", 2_000, Change::put("rec:2", &[2; 2], Some(62_000)))
        .unwrap(); // 20 bytes
    assert_eq!(kv.get_at("p", "rec:1", 60_999).unwrap(), Some(vec![1; 8]));
    assert_eq!(kv.get_at("p", "rec:1", 61_000).unwrap(), None);
    assert_eq!(kv.get_at("p", "rec:2", 61_000).unwrap(), Some(vec![2; 2]));
    // Full until a write after the expiry sweeps rec:1 away.
    let write = |now| kv.write("p", now, Change::put("k", &[0; 7], None));
    assert_eq!(write(60_000), Err(KvError::QuotaExceeded(20)));
    write(61_000).unwrap();
    assert_eq!(kv.get_at("p", "k", 61_000).unwrap(), Some(vec![0; 7]));
    // `set` makes an expiring entry permanent.
    kv.set("p", "rec:2", b"x").unwrap();
    assert_eq!(
        kv.get_at("p", "rec:2", u64::MAX).unwrap(),
        Some(b"x".to_vec())
    );
}

#[test]
fn set_if_compares_and_sets() {
    let (_dir, kv) = store(KvQuota::default());
    assert!(kv.set_if("p", "oauth", None, b"v1").unwrap());
    assert!(!kv.set_if("p", "oauth", None, b"v2").unwrap());
    assert!(!kv.set_if("p", "oauth", Some(b"v0"), b"v2").unwrap());
    assert!(kv.set_if("p", "oauth", Some(b"v1"), b"v2").unwrap());
    assert_eq!(kv.get("p", "oauth").unwrap(), Some(b"v2".to_vec()));
    kv.delete("p", "oauth").unwrap();
    assert!(kv.set_if("p", "oauth", None, b"v3").unwrap());
}

#[test]
fn set_if_lets_one_of_many_racing_writers_win() {
    let (_dir, kv) = store(KvQuota::default());
    kv.set("p", "token", b"old").unwrap();
    let winners: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let kv = kv.clone();
                scope.spawn(move || {
                    kv.set_if("p", "token", Some(b"old"), format!("new{i}").as_bytes())
                        .unwrap()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| usize::from(h.join().unwrap()))
            .sum()
    });
    assert_eq!(winners, 1);
}

/// Group commit: writers at once each get their own result (an oversized value fails alone),
/// the writes share commits (far fewer fsyncs than writes), and every write that returned `Ok`
/// is there, with its quota accounted, after the database is opened again.
#[test]
fn concurrent_writers_get_their_own_results_share_commits_and_last() {
    const THREADS: usize = 32;
    const EACH: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.redb");
    let (db, disk) = test_disk::open(&path);
    let quota = KvQuota {
        max_value_bytes: 8,
        ..KvQuota::default()
    };
    let kv = KvStore::new(db, quota);
    let before = disk.syncs();
    kv.set("p", "alone", b"x").unwrap();
    let per_commit = disk.syncs() - before;
    assert!(per_commit > 0, "a set is fsynced");

    // Thread t writes w{t}-0 ..= w{t}-9 in order: i % 5 == 3 deletes the key of i - 1, and
    // i % 5 == 4 is one byte over the value limit.
    let key = |t: usize, i: usize| format!("w{t}-{i}");
    let value = |t: usize, i: usize| format!("{t}.{i}").into_bytes();
    let before = disk.syncs();
    let results = all_at_once(&kv, &disk, THREADS, |t| {
        (0..EACH)
            .map(|i| match i % 5 {
                3 => kv.delete("p", &key(t, i - 1)),
                4 => kv.set("p", &key(t, i), &[0; 9]),
                _ => kv.set("p", &key(t, i), &value(t, i)),
            })
            .collect::<Vec<_>>()
    });
    let commits = (disk.syncs() - before) / per_commit;
    for thread in &results {
        for (i, result) in thread.iter().enumerate() {
            let want = if i % 5 == 4 {
                Err(KvError::ValueTooLarge(8))
            } else {
                Ok(())
            };
            assert_eq!(result, &want, "write {i}");
        }
    }
    let writes = THREADS * EACH;
    assert!(
        commits < writes / 2,
        "{writes} writes took {commits} commits"
    );

    drop(kv); // stops the writer, which releases the database
    let db = Arc::new(Database::create(&path).unwrap());
    let kv = KvStore::new(db.clone(), quota);
    let mut used = "alone".len() + 1;
    for t in 0..THREADS {
        for i in 0..EACH {
            let want = (i % 5 < 2).then(|| value(t, i));
            used += want.as_ref().map_or(0, |v| key(t, i).len() + v.len());
            assert_eq!(kv.get("p", &key(t, i)).unwrap(), want, "{}", key(t, i));
        }
    }
    let read = db.begin_read().unwrap();
    let usage = read.open_table(USAGE).unwrap();
    assert_eq!(usage.get("p").unwrap().unwrap().value(), used as u64);
}

/// A failing disk: the batch waiting on the failed fsync and every write after it are
/// answered `Unavailable` with the database's reason, and none hangs. (What the failed commit
/// wrote may still be read after reopening: an fsync that failed says nothing either way.)
#[test]
fn when_the_disk_fails_every_waiting_write_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.redb");
    let (db, disk) = test_disk::open(&path);
    let kv = KvStore::new(db, KvQuota::default());
    kv.set("p", "before", b"1").unwrap();

    disk.fail_next_sync();
    let results = all_at_once(&kv, &disk, 16, |i| kv.set("p", &format!("k{i}"), b"v"));
    for result in &results {
        assert!(
            matches!(result, Err(KvError::Unavailable(why)) if why.contains("injected") || why.contains("Previous I/O error")),
            "{result:?}"
        );
    }
    // redb refuses every later write until the database is opened again: so does the store,
    // at once.
    let after = kv.set("p", "after", b"1");
    assert!(
        matches!(&after, Err(KvError::Unavailable(why)) if why.contains("Previous I/O error")),
        "{after:?}"
    );

    drop(kv);
    let kv = KvStore::new(
        Arc::new(Database::create(&path).unwrap()),
        KvQuota::default(),
    );
    assert_eq!(kv.get("p", "before").unwrap(), Some(b"1".to_vec()));
    assert_eq!(kv.get("p", "after").unwrap(), None);
}
