//! Keeps the engine's call state durable, so a restarted host continues calls in progress with
//! the same ids and links and closes calls that ended while it was down (scenario 11).
//!
//! On disk, in the delivery queue's redb database: table `engine_calls` (PBX call id → the
//! call's record) and table `engine_meta` (`dns` → the DN table's record). Records are the
//! engine's own JSON ([`StateChanges`]). Only what changed is written: after every batch of
//! inputs, the records of the calls it touched (deleted when the call is over) and the DN table
//! if a snapshot replaced it, in the same transaction that takes the batch's events
//! ([`Queue::take`]), so the saved state and the events taken never disagree. A batch that
//! produced no event is committed without an fsync, so a crash may lose it; the next snapshot
//! after reconnecting heals that.
//!
//! Finished calls waiting for their recordings are kept too, in table `recording_jobs` (PBX
//! call id → the [`FinishedCall`] as JSON): written with the events that ended the call, and
//! removed in the transaction that takes the call's `recording` event (or when the recorder
//! gives up). A host stopped or killed in between looks for the recordings again when it
//! starts.
//!
//! A record that does not read (a damaged row, or one an incompatible version wrote) is
//! skipped alone when the state is loaded: logged as an error with its table and key, counted
//! ([`EngineStore::unreadable_records`], `/metrics`), and left in place for inspection; the
//! other calls and jobs are restored. A call whose record was skipped is seen again as new by
//! the next snapshot; its record is overwritten then, or stays until removed by hand.

use crate::calls::{EngineState, FinishedCall, StateChanges, UnreadableRecord};
use crate::queue::{Deliverer, Queue};
use crate::telemetry::state::{StateRecordUnreadable, WholeStateUnreadable};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const CALLS: TableDefinition<u64, &[u8]> = TableDefinition::new("engine_calls");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("engine_meta");
const DNS_KEY: &str = "dns";
const RECORDING_JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("recording_jobs");
/// Where the whole state was kept as one JSON row (`current`) before per-call records.
const WHOLE_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("engine_state");

/// Why the state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EngineStoreError {
    /// The database failed.
    #[error("engine state store: {0}")]
    Database(String),
}

fn database(error: impl std::fmt::Display) -> EngineStoreError {
    EngineStoreError::Database(error.to_string())
}

/// The engine state's place in the database.
#[derive(Clone)]
pub struct EngineStore {
    db: Arc<Database>,
    /// Records skipped because they did not read, shared by clones.
    unreadable: Arc<AtomicU64>,
}

/// The records of a [`StateChanges`] and of new recording jobs, ready to write.
#[derive(Debug, Default)]
pub struct StateRecords {
    dns: Option<Vec<u8>>,
    calls: Vec<(u64, Option<Vec<u8>>)>,
    recording_jobs: Vec<(u64, Vec<u8>)>,
}

impl StateRecords {
    /// The records of `changes`, and of `finished` calls whose recordings are to be fetched.
    pub fn of(changes: &StateChanges, finished: &[FinishedCall]) -> Self {
        StateRecords {
            dns: changes.dns_record(),
            calls: changes.call_records(),
            recording_jobs: finished
                .iter()
                .map(|call| {
                    let json = serde_json::to_vec(call).expect("a finished call serializes");
                    (call.pbx_call_id, json)
                })
                .collect(),
        }
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.dns.is_none() && self.calls.is_empty() && self.recording_jobs.is_empty()
    }
}

impl EngineStore {
    /// The store in `queue`'s database, where [`EngineStore::write_in`] writes with the events.
    pub fn of<D: Deliverer>(queue: &Queue<D>) -> Self {
        EngineStore {
            db: queue.database().clone(),
            unreadable: Arc::default(),
        }
    }

    /// How many saved records (calls, the DN table, recording jobs) were skipped since start
    /// because they did not read.
    pub fn unreadable_records(&self) -> u64 {
        self.unreadable.load(Ordering::Relaxed)
    }

    /// The counter behind [`EngineStore::unreadable_records`], for `/metrics`.
    pub fn unreadable_counter(&self) -> Arc<AtomicU64> {
        self.unreadable.clone()
    }

    /// Logs and counts a record that does not read; the caller skips it.
    fn skip_unreadable(&self, table: &str, key: &str, error: &dyn std::fmt::Display) {
        StateRecordUnreadable { table, key, error }.emit(&self.unreadable);
    }

    /// The last saved state, if any. A state saved whole by an earlier version is moved to
    /// per-call records first. A record that does not read is skipped alone (see the module
    /// documentation); only a failing database is an error.
    pub fn load(&self) -> Result<Option<EngineState>, EngineStoreError> {
        self.migrate_whole_state()?;
        let read = self.db.begin_read().map_err(database)?;
        let meta = match read.open_table(META) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(error) => return Err(database(error)),
        };
        let calls = match read.open_table(CALLS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(error) => return Err(database(error)),
        };
        let dns = meta.get(DNS_KEY).map_err(database)?;
        let mut records = Vec::new();
        for entry in calls.iter().map_err(database)? {
            let (id, record) = entry.map_err(database)?;
            records.push((id.value(), record.value().to_vec()));
        }
        let (state, unreadable) = EngineState::read_records(
            dns.as_ref().map(|d| d.value()),
            records.iter().map(|(id, record)| (*id, record.as_slice())),
        );
        for UnreadableRecord { pbx_call_id, error } in &unreadable {
            match pbx_call_id {
                Some(id) => self.skip_unreadable("engine_calls", &id.to_string(), error),
                None => self.skip_unreadable("engine_meta", DNS_KEY, error),
            }
        }
        Ok(Some(state))
    }

    /// Rewrites a state saved as one row as per-call records and drops the old table.
    fn migrate_whole_state(&self) -> Result<(), EngineStoreError> {
        let read = self.db.begin_read().map_err(database)?;
        let whole = match read.open_table(WHOLE_STATE) {
            Ok(table) => table
                .get("current")
                .map_err(database)?
                .map(|row| row.value().to_vec()),
            // Nothing to move: the usual case, without a write at every start.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(error) => return Err(database(error)),
        };
        drop(read);
        let write = self.db.begin_write().map_err(database)?;
        if let Some(json) = whole {
            match serde_json::from_slice::<EngineState>(&json) {
                Ok(state) => {
                    let records = StateRecords::of(&StateChanges::from(&state), &[]);
                    Self::write_in(&write, &records).map_err(EngineStoreError::Database)?;
                }
                Err(error) => {
                    WholeStateUnreadable { error: &error }.emit(&self.unreadable);
                }
            }
        }
        write.delete_table(WHOLE_STATE).map_err(database)?;
        write.commit().map_err(database)
    }

    /// The finished calls whose recordings were not handled yet. A job that does not read is
    /// skipped alone, like a call record.
    pub fn recording_jobs(&self) -> Result<Vec<FinishedCall>, EngineStoreError> {
        let read = self.db.begin_read().map_err(database)?;
        let jobs = match read.open_table(RECORDING_JOBS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(error) => return Err(database(error)),
        };
        let mut calls = Vec::new();
        for entry in jobs.iter().map_err(database)? {
            let (id, record) = entry.map_err(database)?;
            match serde_json::from_slice(record.value()) {
                Ok(call) => calls.push(call),
                Err(error) => {
                    self.skip_unreadable("recording_jobs", &id.value().to_string(), &error)
                }
            }
        }
        Ok(calls)
    }

    /// Removes the recording job of call `pbx_call_id` within `write`, the queue's transaction
    /// that takes its `recording` event (if any).
    pub fn recording_done_in(write: &WriteTransaction, pbx_call_id: u64) -> Result<(), String> {
        let mut jobs = write
            .open_table(RECORDING_JOBS)
            .map_err(|e| e.to_string())?;
        jobs.remove(pbx_call_id).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Writes `records` over the saved state within `write`, the queue's transaction that takes
    /// the events of the same inputs.
    pub fn write_in(write: &WriteTransaction, records: &StateRecords) -> Result<(), String> {
        let text = |e: redb::Error| e.to_string();
        let mut meta = write.open_table(META).map_err(|e| text(e.into()))?;
        let mut calls = write.open_table(CALLS).map_err(|e| text(e.into()))?;
        let mut jobs = write
            .open_table(RECORDING_JOBS)
            .map_err(|e| text(e.into()))?;
        for (id, record) in &records.recording_jobs {
            jobs.insert(id, record.as_slice())
                .map_err(|e| text(e.into()))?;
        }
        if let Some(dns) = &records.dns {
            meta.insert(DNS_KEY, dns.as_slice())
                .map_err(|e| text(e.into()))?;
        }
        for (id, record) in &records.calls {
            match record {
                Some(record) => calls.insert(id, record.as_slice()).map(drop),
                None => calls.remove(id).map(drop),
            }
            .map_err(|e| text(e.into()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Plugins;
    use crate::callcontrol::{Change, Dn, DnType, Participant};
    use crate::calls::{Engine, EngineConfig};
    use crate::queue::QueueConfig;

    fn participant(id: u64, dn: &str, callid: u64) -> Participant {
        Participant {
            id,
            dn: dn.into(),
            callid,
            party_caller_id: "425630434343".into(),
            party_dn_type: DnType::Unknown,
            ..Participant::default()
        }
    }

    /// Three calls in progress, on extensions 120, 121 and 122.
    fn engine_with_three_calls() -> Engine {
        let mut engine = Engine::new(EngineConfig::default());
        let dns = ["120", "121", "122"]
            .map(|dn| Dn {
                dn: dn.into(),
                dn_type: DnType::Wextension,
            })
            .to_vec();
        let participants = vec![
            participant(1, "120", 781),
            participant(2, "121", 782),
            participant(3, "122", 783),
        ];
        engine.apply(Change::Snapshot {
            at: "2026-11-24T10:00:00Z".parse().unwrap(),
            dns,
            participants,
        });
        assert_eq!(engine.active_calls(), 3);
        engine
    }

    fn store_in(dir: &tempfile::TempDir) -> (Arc<Database>, Queue<Plugins>, EngineStore) {
        let db = Arc::new(Database::create(dir.path().join("callhook.redb")).unwrap());
        let queue = Queue::open(db.clone(), QueueConfig::default(), Plugins::new([])).unwrap();
        let store = EngineStore::of(&queue);
        (db, queue, store)
    }

    fn overwrite<K: redb::Key + 'static>(
        db: &Database,
        table: TableDefinition<K, &[u8]>,
        key: K::SelfType<'_>,
        bytes: &[u8],
    ) {
        let write = db.begin_write().unwrap();
        write.open_table(table).unwrap().insert(key, bytes).unwrap();
        write.commit().unwrap();
    }

    #[tokio::test]
    async fn one_unreadable_call_record_is_skipped_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _queue, store) = store_in(&dir);
        let state = engine_with_three_calls().state();
        let records = StateRecords::of(&StateChanges::from(&state), &[]);
        let write = db.begin_write().unwrap();
        EngineStore::write_in(&write, &records).unwrap();
        write.commit().unwrap();
        overwrite(&db, CALLS, 782, b"{\"not\": \"a call\"");

        let loaded = store.load().unwrap().expect("a state");
        let restored: Vec<(u64, Option<Vec<u8>>)> = StateChanges::from(&loaded).call_records();
        let expected: Vec<(u64, Option<Vec<u8>>)> = records
            .calls
            .iter()
            .filter(|(id, _)| *id != 782)
            .cloned()
            .collect();
        assert_eq!(restored, expected, "calls 781 and 783 are restored whole");
        assert_eq!(
            StateChanges::from(&loaded).dns_record(),
            records.dns,
            "and the DN table"
        );
        assert_eq!(store.unreadable_records(), 1);
        let engine = Engine::restore(EngineConfig::default(), loaded);
        assert_eq!(engine.active_calls(), 2);
    }

    #[tokio::test]
    async fn an_unreadable_dn_table_or_recording_job_is_skipped_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _queue, store) = store_in(&dir);
        let state = engine_with_three_calls().state();
        let finished = |pbx_call_id| FinishedCall {
            pbx_call_id,
            parts: Vec::new(),
            last_end: None,
        };
        let records = StateRecords::of(
            &StateChanges::from(&state),
            &[finished(700), finished(701), finished(702)],
        );
        let write = db.begin_write().unwrap();
        EngineStore::write_in(&write, &records).unwrap();
        write.commit().unwrap();
        overwrite(&db, META, DNS_KEY, b"\xff");
        overwrite(&db, RECORDING_JOBS, 701, b"[1, 2");

        let loaded = store.load().unwrap().expect("a state");
        assert_eq!(StateChanges::from(&loaded).call_records(), records.calls);
        let jobs: Vec<u64> = store
            .recording_jobs()
            .unwrap()
            .iter()
            .map(|job| job.pbx_call_id)
            .collect();
        assert_eq!(jobs, [700, 702]);
        assert_eq!(store.unreadable_records(), 2);
    }

    fn engine_with_a_call() -> Engine {
        let mut engine = Engine::new(EngineConfig::default());
        let participant = Participant {
            id: 1,
            dn: "120".into(),
            callid: 782,
            party_caller_id: "425630434343".into(),
            party_dn_type: DnType::Unknown,
            ..Participant::default()
        };
        engine.apply(Change::Snapshot {
            at: "2026-11-24T10:00:00Z".parse().unwrap(),
            dns: vec![Dn {
                dn: "120".into(),
                dn_type: DnType::Wextension,
            }],
            participants: vec![participant],
        });
        assert_eq!(engine.active_calls(), 1);
        engine
    }

    #[tokio::test]
    async fn a_state_saved_whole_by_an_earlier_version_is_moved_to_records() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::create(dir.path().join("callhook.redb")).unwrap());
        let state = engine_with_a_call().state();
        let write = db.begin_write().unwrap();
        write
            .open_table(WHOLE_STATE)
            .unwrap()
            .insert("current", serde_json::to_vec(&state).unwrap().as_slice())
            .unwrap();
        write.commit().unwrap();

        let queue = Queue::open(db.clone(), QueueConfig::default(), Plugins::new([])).unwrap();
        let store = EngineStore::of(&queue);
        assert_eq!(store.load().unwrap(), Some(state.clone()));
        let read = db.begin_read().unwrap();
        assert!(
            matches!(
                read.open_table(WHOLE_STATE),
                Err(redb::TableError::TableDoesNotExist(_))
            ),
            "the old table is gone"
        );
        assert_eq!(
            store.load().unwrap(),
            Some(state),
            "and loading again agrees"
        );
    }
}
