//! The queen's kept state (SPEC section 10) in an embedded SQLite database.
//!
//! The store knows rows, not kinds: the queen hands it each material change as a kind name, an
//! id and a JSON body, already serialized. One writer thread owns the writing connection and
//! commits what accumulated in one transaction every [`BATCH_WINDOW`] (group commit), so the
//! heartbeat path never waits on the disk; an entry changed several times within a batch is
//! written once. A failed write keeps everything it held, is retried with backoff, and the
//! store reports [`Health::Failing`] until a write succeeds again.
//!
//! A directory holds `queen.db` (with its WAL files) and `queen.lock`, an OS file lock held for
//! the queen's life, so a second queen on the same directory refuses to start; the kernel drops
//! the lock when the process dies, SIGKILL included.

#![warn(missing_docs)]

mod open;
mod query;
mod schema;
mod writer;

pub use open::{Kept, KeptEntry, OpenError};
pub use query::EventQuery;
pub use writer::Observer;

use std::{
    fs::File,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use rusqlite::Connection;

/// How long changes accumulate before one transaction commits them: the store's lag behind
/// the fleet is about this, which keeps well inside the 100 ms the contract allows.
pub const BATCH_WINDOW: Duration = Duration::from_millis(50);

/// How the store was set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The data directory; created if missing.
    pub dir: PathBuf,
    /// Transitions older than this are pruned.
    pub history_retention: Duration,
}

/// One material change, as the queen's change log hands it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The revision the change got.
    pub revision: u64,
    /// The entry's kind (`worker`, `hive`).
    pub kind: &'static str,
    /// The entry's id.
    pub id: String,
    /// The entry's kept form as JSON; `None` when the entry was removed.
    pub entry: Option<String>,
    /// The transition the change carries, if any.
    pub transition: Option<TransitionRecord>,
    /// When the change was appended to the log; the commit lag counts from here.
    pub appended: Instant,
}

/// A transition as kept for `/v1/events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionRecord {
    /// Queen wall-clock time of the transition, in microseconds since the Unix epoch.
    pub at_us: i64,
    /// The transition as served, JSON.
    pub body: String,
}

/// Whether the last write succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Every write so far succeeded, or the last one did.
    Ok,
    /// The last write failed; it is being retried.
    Failing,
}

/// Why a read of the kept history failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the kept history: {0}")]
pub struct QueryError(#[from] rusqlite::Error);

/// An open store: the lock, a reading connection and the writer thread.
pub struct Store {
    path: PathBuf,
    writer: writer::Writer,
    reader: Mutex<Connection>,
    /// Held for the store's life; the OS releases it when the process ends.
    _lock: File,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("health", &self.health())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the database in `config.dir`, checks it, and returns it with the
    /// state it kept. Fails, with a message naming the path, when the directory cannot be
    /// created or locked, or the database is damaged or of an unknown version.
    pub fn open(
        config: &StoreConfig,
        observer: Arc<dyn Observer>,
    ) -> Result<(Store, Kept), OpenError> {
        let opened = open::open(&config.dir)?;
        let writer = writer::Writer::start(
            opened.writer,
            config.history_retention,
            observer,
            opened.path.clone(),
        );
        let store = Store {
            path: opened.path,
            writer,
            reader: Mutex::new(opened.reader),
            _lock: opened.lock,
        };
        Ok((store, opened.kept))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names the change log the kept revisions belong to and marks the store in use, so that a
    /// stop without [`Store::close`] is recognised at the next start. Written at once.
    pub fn begin(&self, epoch: &str, revision: u64) -> Result<(), OpenError> {
        self.writer
            .begin(epoch, revision)
            .map_err(|error| OpenError::Write {
                path: self.path.clone(),
                error,
            })
    }

    /// Queues changes for the next batch; never waits on the disk.
    pub fn record(&self, records: impl IntoIterator<Item = Record>) {
        self.writer.record(records);
    }

    /// Whether the last write succeeded.
    pub fn health(&self) -> Health {
        self.writer.health()
    }

    /// The newest revision committed to disk.
    pub fn committed(&self) -> u64 {
        self.writer.committed()
    }

    /// Returns the kept transitions that match `query`, oldest first, with their revisions.
    /// Blocking: call it off the async runtime.
    pub fn events(&self, query: &EventQuery) -> Result<Vec<(u64, String)>, QueryError> {
        query::events(&self.reader.lock(), query)
    }

    /// Writes everything queued, then `entries` (each entry's kept form with its latest
    /// volatile fields, `(kind, id, json)`), marks the stop as clean and ends the writer.
    /// Blocking; retries a failing write for up to `grace`.
    pub fn close(&self, entries: Vec<(&'static str, String, String)>, grace: Duration) -> bool {
        self.writer.close(entries, grace)
    }
}
