//! The store's one writer: group commit of the writes that wait, one fsync per batch.
//!
//! Callers hand a [`Write`] over a bounded channel and block on their own reply channel. The
//! writer thread takes the first write that arrives and every other already waiting (up to
//! [`MAX_BATCH_WRITES`] or about [`MAX_BATCH_BYTES`]), applies them in arrival order in one
//! redb write transaction, commits it (an fsync), and only then answers each caller with its
//! own result. While it commits, new writes queue up for the next batch, so under load each
//! fsync covers all the writes that arrived during the previous one, and when idle a write is
//! committed at once, alone: batching adds no wait.

use super::{KvError, Write};
use redb::Database;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

/// At most this many writes share one transaction.
pub const MAX_BATCH_WRITES: usize = 256;
/// A batch takes no further write once its keys and values reach this many bytes (so it can
/// exceed it by one write).
pub const MAX_BATCH_BYTES: usize = 4 << 20;
/// At most this many writes wait for the writer; a caller beyond them blocks until there is
/// room.
pub const MAX_WAITING: usize = 1024;

/// What a caller gets back: `Ok(false)` only for a `set-if` that found another value.
type Reply = Result<bool, KvError>;

/// A write and where its result goes.
struct Request {
    write: Write,
    reply: Sender<Reply>,
}

/// The handle on the writer thread. Dropping it closes the channel; the thread commits what it
/// has taken and ends, and the drop waits for that, so the database is no longer held after.
pub(super) struct Writer {
    requests: Option<SyncSender<Request>>,
    thread: Option<JoinHandle<()>>,
    /// Writes handed in and not answered yet, waiting or in the batch being committed.
    unanswered: AtomicUsize,
}

impl Writer {
    /// Starts the writer thread on `db`. Should the system refuse a thread, every write is
    /// answered [`KvError::Unavailable`] with the reason.
    pub(super) fn start(db: Arc<Database>) -> Writer {
        let (requests, waiting) = mpsc::sync_channel(MAX_WAITING);
        let thread = std::thread::Builder::new()
            .name("kv-writer".into())
            .spawn(move || run(&db, &waiting));
        match thread {
            Ok(thread) => Writer {
                requests: Some(requests),
                thread: Some(thread),
                unanswered: AtomicUsize::new(0),
            },
            Err(error) => {
                tracing::error!(%error, "could not start the plugins' key-value writer");
                Writer {
                    requests: None,
                    thread: None,
                    unanswered: AtomicUsize::new(0),
                }
            }
        }
    }

    /// Hands `write` to the writer and waits for its result (durable when `Ok`).
    pub(super) fn submit(&self, write: Write) -> Reply {
        let (reply, answer) = mpsc::channel();
        let requests = self.requests.as_ref().ok_or_else(stopped)?;
        self.unanswered.fetch_add(1, Ordering::SeqCst);
        let sent = requests.send(Request { write, reply });
        let answered = match sent {
            Ok(()) => answer.recv().unwrap_or_else(|_| Err(stopped())),
            Err(_) => Err(stopped()),
        };
        self.unanswered.fetch_sub(1, Ordering::SeqCst);
        answered
    }

    /// How many writes were handed in and are not answered yet: for tests that make writes
    /// wait together behind a held commit.
    #[cfg(test)]
    pub(super) fn unanswered(&self) -> usize {
        self.unanswered.load(Ordering::SeqCst)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            // A panic in the thread has already answered its callers (their reply channels
            // closed); there is nothing left to report.
            let _ = thread.join();
        }
    }
}

/// The answer when the writer is gone (it could not start, or it panicked).
fn stopped() -> KvError {
    KvError::Unavailable("the key-value writer has stopped".to_owned())
}

/// The writer thread: one batch after another until every [`Writer`] handle is dropped.
fn run(db: &Database, waiting: &Receiver<Request>) {
    while let Ok(first) = waiting.recv() {
        let mut bytes = first.write.bytes();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_WRITES && bytes < MAX_BATCH_BYTES {
            let Ok(next) = waiting.try_recv() else {
                break;
            };
            bytes += next.write.bytes();
            batch.push(next);
        }
        commit(db, batch);
    }
}

/// Applies `batch` in one transaction, commits it and answers every caller: each with its own
/// result once the commit is durable, or all with [`KvError::Unavailable`] when the database
/// failed (none of the batch is then known to be durable).
fn commit(db: &Database, batch: Vec<Request>) {
    match apply(db, &batch) {
        Ok(results) => {
            for (request, result) in batch.into_iter().zip(results) {
                // A caller that went away needs no answer.
                let _ = request.reply.send(result);
            }
        }
        Err(why) => {
            for request in batch {
                let _ = request.reply.send(Err(KvError::Unavailable(why.clone())));
            }
        }
    }
}

/// The results of `batch`, in order, once committed; or the database's message. A write's own
/// failure (quota, sizes) changed nothing, so it stays its own; a storage failure may have
/// left the transaction half-changed, so it drops the transaction (redb aborts it).
fn apply(db: &Database, batch: &[Request]) -> Result<Vec<Reply>, String> {
    let tx = db.begin_write().map_err(|error| error.to_string())?;
    let mut results = Vec::with_capacity(batch.len());
    for request in batch {
        match request.write.apply(&tx) {
            Err(KvError::Unavailable(why)) => return Err(why),
            result => results.push(result),
        }
    }
    tx.commit().map_err(|error| error.to_string())?;
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::kv_store::{Change, KvQuota, KvStore};

    /// Commits `changes` of plugin `p` as one batch, as the writer would; their results.
    fn one_batch(db: &Database, quota: KvQuota, changes: Vec<Change>) -> Vec<Reply> {
        let (batch, answers): (Vec<_>, Vec<_>) = changes
            .into_iter()
            .map(|change| {
                let (reply, answer) = mpsc::channel();
                let write = Write {
                    plugin: "p".to_owned(),
                    quota,
                    now: 1,
                    change,
                };
                (Request { write, reply }, answer)
            })
            .unzip();
        commit(db, batch);
        answers
            .iter()
            .map(|answer| answer.recv().unwrap())
            .collect()
    }

    fn database() -> (tempfile::TempDir, Arc<Database>) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("kv.redb")).unwrap();
        (dir, Arc::new(db))
    }

    fn put(key: &str, value: &[u8]) -> Change {
        Change::put(key, value, None)
    }

    /// Compare-and-set in one batch: of several `set-if` from the same value, the first in
    /// arrival order wins and the others see its value.
    #[test]
    fn of_set_ifs_racing_in_one_batch_exactly_the_first_wins() {
        let (_dir, db) = database();
        let quota = KvQuota::default();
        assert_eq!(
            one_batch(&db, quota, vec![put("token", b"old")]),
            [Ok(true)]
        );
        let racing = (0..8)
            .map(|i| Change::PutIf {
                key: "token".to_owned(),
                expected: Some(b"old".to_vec()),
                value: format!("new{i}").into_bytes(),
            })
            .collect();
        let results = one_batch(&db, quota, racing);
        let mut want = vec![Ok(false); 8];
        want[0] = Ok(true);
        assert_eq!(results, want);
        let kv = KvStore::new(db, quota);
        assert_eq!(kv.get("p", "token").unwrap(), Some(b"new0".to_vec()));
    }

    /// A write over a limit fails alone: the writes before and after it in the batch commit,
    /// and its bytes are not counted.
    #[test]
    fn a_write_over_the_quota_fails_alone_in_its_batch() {
        let (_dir, db) = database();
        let quota = KvQuota {
            max_key_bytes: 4,
            max_value_bytes: 8,
            max_total_bytes: 20,
        };
        let results = one_batch(
            &db,
            quota,
            vec![
                put("k1", &[1; 8]), // 10 bytes
                put("k2", &[2; 8]), // 20 bytes
                put("k3", b""),     // 22: over
                put("12345", b""),  // key too long
                put("k4", &[4; 9]), // value too large
                Change::PutIf {
                    key: "k1".to_owned(),
                    expected: Some(vec![1; 8]),
                    value: vec![1; 2],
                }, // 14 bytes
                put("k3", &[3; 4]), // 20 bytes
                Change::Delete {
                    key: "k2".to_owned(),
                }, // 10 bytes
            ],
        );
        assert_eq!(
            results,
            [
                Ok(true),
                Ok(true),
                Err(KvError::QuotaExceeded(20)),
                Err(KvError::KeyTooLong(4)),
                Err(KvError::ValueTooLarge(8)),
                Ok(true),
                Ok(true),
                Ok(true),
            ]
        );
        let kv = KvStore::new(db, quota);
        assert_eq!(kv.get("p", "k1").unwrap(), Some(vec![1; 2]));
        assert_eq!(kv.get("p", "k2").unwrap(), None);
        assert_eq!(kv.get("p", "k3").unwrap(), Some(vec![3; 4]));
        assert_eq!(kv.get("p", "k4").unwrap(), None);
        // 10 bytes used: 10 more fit, 11 do not.
        assert_eq!(kv.set("p", "k55", &[5; 8]), Err(KvError::QuotaExceeded(20)));
        kv.set("p", "k5", &[5; 8]).unwrap();
    }
}
