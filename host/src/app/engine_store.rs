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

use crate::calls::{EngineState, FinishedCall, StateChanges};
use crate::queue::{Deliverer, Queue};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use std::sync::Arc;

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
    /// The stored state is not readable by this version.
    #[error("engine state store: stored state unreadable ({0}); starting with no calls")]
    Corrupt(String),
}

fn database(error: impl std::fmt::Display) -> EngineStoreError {
    EngineStoreError::Database(error.to_string())
}

/// The engine state's place in the database.
#[derive(Clone)]
pub struct EngineStore {
    db: Arc<Database>,
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
        }
    }

    /// The last saved state, if any. A state saved whole by an earlier version is moved to
    /// per-call records first.
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
            let (_, record) = entry.map_err(database)?;
            records.push(record.value().to_vec());
        }
        EngineState::from_records(
            dns.as_ref().map(|d| d.value()),
            records.iter().map(Vec::as_slice),
        )
        .map(Some)
        .map_err(|e| EngineStoreError::Corrupt(e.to_string()))
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
                    tracing::error!(%error, "the saved call state is unreadable; dropped")
                }
            }
        }
        write.delete_table(WHOLE_STATE).map_err(database)?;
        write.commit().map_err(database)
    }

    /// The finished calls whose recordings were not handled yet.
    pub fn recording_jobs(&self) -> Result<Vec<FinishedCall>, EngineStoreError> {
        let read = self.db.begin_read().map_err(database)?;
        let jobs = match read.open_table(RECORDING_JOBS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(error) => return Err(database(error)),
        };
        let mut calls = Vec::new();
        for entry in jobs.iter().map_err(database)? {
            let (_, record) = entry.map_err(database)?;
            let call = serde_json::from_slice(record.value())
                .map_err(|e| EngineStoreError::Corrupt(e.to_string()))?;
            calls.push(call);
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
    use crate::calls::{Dn, Engine, EngineConfig, Input};
    use crate::pbx::participant::{DnType, Participant};
    use crate::queue::QueueConfig;

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
        engine.apply(
            Input::Snapshot {
                dns: vec![Dn {
                    dn: "120".into(),
                    dn_type: DnType::Wextension,
                }],
                participants: vec![participant],
            },
            "2026-11-24T10:00:00Z".parse().unwrap(),
        );
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
