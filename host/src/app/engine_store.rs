//! Keeps the engine's call state durable, so a restarted host continues calls in progress with
//! the same ids and links and closes calls that ended while it was down (scenario 11).
//!
//! On disk: table `engine_state` in the host's redb database, one row `current` holding the
//! JSON of [`EngineState`]. It is rewritten after every input that produced events or changed
//! which calls are active; a crash loses at most the input being applied, which the next
//! snapshot after reconnecting heals.

use crate::calls::EngineState;
use redb::{Database, ReadableDatabase, TableDefinition};
use std::sync::Arc;

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("engine_state");
const KEY: &str = "current";

/// Why the state could not be read or written.
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

impl EngineStore {
    /// The store in `db`.
    pub fn new(db: Arc<Database>) -> Self {
        EngineStore { db }
    }

    /// The last saved state, if any.
    pub fn load(&self) -> Result<Option<EngineState>, EngineStoreError> {
        let read = self.db.begin_read().map_err(database)?;
        let table = match read.open_table(TABLE) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(error) => return Err(database(error)),
        };
        let Some(bytes) = table.get(KEY).map_err(database)? else {
            return Ok(None);
        };
        serde_json::from_slice(bytes.value())
            .map(Some)
            .map_err(|e| EngineStoreError::Corrupt(e.to_string()))
    }

    /// Replaces the saved state.
    pub fn save(&self, state: &EngineState) -> Result<(), EngineStoreError> {
        let bytes = serde_json::to_vec(state).map_err(database)?;
        let write = self.db.begin_write().map_err(database)?;
        write
            .open_table(TABLE)
            .map_err(database)?
            .insert(KEY, bytes.as_slice())
            .map_err(database)?;
        write.commit().map_err(database)
    }
}
