//! The writer thread: group commits of what the change log handed in, retried when they fail.

use std::{
    collections::{HashMap, VecDeque},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, params};
use tracing::{error, info, warn};

use crate::{BATCH_WINDOW, Health, Record, TransitionRecord};

/// Told about every commit and every failed write, for metrics.
pub trait Observer: Send + Sync {
    /// A batch of `rows` committed; its oldest change had waited `lag` since it was appended.
    fn committed(&self, rows: usize, lag: Duration);
    /// A write failed (it will be retried).
    fn failed(&self);
}

/// The first retry of a failed write waits this long, doubling up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// How often transitions older than the history retention are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Rows deleted per pruning statement, so that pruning a long backlog never holds the writer
/// for long.
const PRUNE_CHUNK: usize = 5_000;
/// Transitions queued while writes fail, at most; beyond it the oldest are dropped, and said so.
const MAX_QUEUED_TRANSITIONS: usize = 200_000;

/// The rows a graceful stop writes last: `(kind, id, kept JSON)`.
pub(crate) type FinalRows = Vec<(&'static str, String, String)>;
/// The final rows and until when a failing write is retried.
type Closing = (FinalRows, Instant);

pub(crate) struct Writer {
    shared: Arc<Shared>,
    /// The connection until [`Writer::begin`] hands it to the thread.
    conn: Mutex<Option<Connection>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    history_retention: Duration,
    observer: Arc<dyn Observer>,
    path: PathBuf,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    failing: AtomicBool,
    committed: AtomicU64,
}

#[derive(Default)]
struct Pending {
    /// The latest kept form of each changed entry (`None`: removed) and its revision.
    entries: HashMap<(&'static str, String), (u64, Option<String>)>,
    transitions: VecDeque<(u64, &'static str, String, TransitionRecord)>,
    /// The newest revision handed in.
    revision: u64,
    /// When the oldest change not yet written was appended.
    oldest: Option<Instant>,
    /// Set by [`Writer::close`]: the final rows, and how long to keep retrying.
    closing: Option<Closing>,
    /// Transitions dropped because writes failed for too long, not yet reported.
    dropped: u64,
    /// Set when the store is dropped without [`Writer::close`]: the thread ends without
    /// writing more, as if the process had died.
    abandoned: bool,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.transitions.is_empty()
    }

    /// Puts a batch that failed back in front of what arrived meanwhile (which is newer).
    fn restore(&mut self, batch: Batch) {
        for (key, value) in batch.entries {
            self.entries.entry(key).or_insert(value);
        }
        for transition in batch.transitions.into_iter().rev() {
            self.transitions.push_front(transition);
        }
        self.revision = self.revision.max(batch.revision);
        self.oldest = match (self.oldest, batch.oldest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.trim();
    }

    fn trim(&mut self) {
        while self.transitions.len() > MAX_QUEUED_TRANSITIONS {
            self.transitions.pop_front();
            self.dropped += 1;
        }
    }
}

/// What one transaction writes.
struct Batch {
    entries: HashMap<(&'static str, String), (u64, Option<String>)>,
    transitions: VecDeque<(u64, &'static str, String, TransitionRecord)>,
    revision: u64,
    oldest: Option<Instant>,
}

impl Batch {
    fn take(pending: &mut Pending) -> Batch {
        Batch {
            entries: std::mem::take(&mut pending.entries),
            transitions: std::mem::take(&mut pending.transitions),
            revision: pending.revision,
            oldest: pending.oldest.take(),
        }
    }

    fn rows(&self) -> usize {
        self.entries.len() + self.transitions.len()
    }
}

impl Writer {
    pub(crate) fn start(
        conn: Connection,
        history_retention: Duration,
        observer: Arc<dyn Observer>,
        path: PathBuf,
    ) -> Writer {
        Writer {
            shared: Arc::new(Shared {
                pending: Mutex::new(Pending::default()),
                wake: Condvar::new(),
                failing: AtomicBool::new(false),
                committed: AtomicU64::new(0),
            }),
            conn: Mutex::new(Some(conn)),
            thread: Mutex::new(None),
            history_retention,
            observer,
            path,
        }
    }

    /// Writes the epoch and marks the store in use, then starts the writer thread.
    pub(crate) fn begin(&self, epoch: &str, revision: u64) -> rusqlite::Result<()> {
        let Some(mut conn) = self.conn.lock().take() else {
            return Ok(());
        };
        let tx = conn.transaction()?;
        set_meta(&tx, "epoch", epoch)?;
        set_meta(&tx, "revision", &revision.to_string())?;
        set_meta(&tx, "clean", "0")?;
        tx.commit()?;
        self.shared.committed.store(revision, Ordering::Relaxed);
        {
            let mut pending = self.shared.pending.lock();
            pending.revision = pending.revision.max(revision);
        }
        let mut thread = Thread {
            shared: Arc::clone(&self.shared),
            conn,
            history_retention: self.history_retention,
            observer: Arc::clone(&self.observer),
            path: self.path.clone(),
            next_prune: Instant::now(),
        };
        let handle = std::thread::Builder::new()
            .name("fleet-store".to_owned())
            .spawn(move || thread.run())
            .map_err(|e| crate::open::failure(format!("cannot start the writer thread: {e}")))?;
        *self.thread.lock() = Some(handle);
        Ok(())
    }

    pub(crate) fn record(&self, records: impl IntoIterator<Item = Record>) {
        let mut pending = self.shared.pending.lock();
        let mut any = false;
        for record in records {
            any = true;
            pending.revision = pending.revision.max(record.revision);
            pending.oldest.get_or_insert(record.appended);
            if let Some(transition) = record.transition {
                pending.transitions.push_back((
                    record.revision,
                    record.kind,
                    record.id.clone(),
                    transition,
                ));
            }
            pending
                .entries
                .insert((record.kind, record.id), (record.revision, record.entry));
        }
        pending.trim();
        drop(pending);
        if any {
            self.shared.wake.notify_one();
        }
    }

    pub(crate) fn health(&self) -> Health {
        if self.shared.failing.load(Ordering::Relaxed) {
            Health::Failing
        } else {
            Health::Ok
        }
    }

    pub(crate) fn committed(&self) -> u64 {
        self.shared.committed.load(Ordering::Relaxed)
    }

    pub(crate) fn close(
        &self,
        entries: Vec<(&'static str, String, String)>,
        grace: Duration,
    ) -> bool {
        let Some(handle) = self.thread.lock().take() else {
            return false;
        };
        self.shared.pending.lock().closing = Some((entries, Instant::now() + grace));
        self.shared.wake.notify_one();
        let _ = handle.join();
        !self.shared.failing.load(Ordering::Relaxed)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.thread.lock().is_some() {
            self.shared.pending.lock().abandoned = true;
            self.shared.wake.notify_one();
        }
    }
}

struct Thread {
    shared: Arc<Shared>,
    conn: Connection,
    history_retention: Duration,
    observer: Arc<dyn Observer>,
    path: PathBuf,
    next_prune: Instant,
}

impl Thread {
    fn run(&mut self) {
        let mut retry: Option<Duration> = None;
        loop {
            let Some((batch, closing)) = self.next_batch(retry) else {
                return;
            };
            let written = if batch.rows() == 0 {
                Ok(())
            } else {
                write(&mut self.conn, &batch)
            };
            match written {
                Ok(()) => {
                    if batch.rows() > 0 {
                        let lag = batch.oldest.map_or(Duration::ZERO, |at| at.elapsed());
                        self.shared
                            .committed
                            .fetch_max(batch.revision, Ordering::Relaxed);
                        self.observer.committed(batch.rows(), lag);
                    }
                    retry = None;
                    self.recovered(batch.revision);
                }
                Err(error) => {
                    self.observer.failed();
                    if !self.shared.failing.swap(true, Ordering::Relaxed) {
                        error!(path = %self.path.display(), %error, "cannot write the kept state; the fleet carries on from memory and the write is retried");
                    }
                    self.shared.pending.lock().restore(batch);
                    retry = Some(retry.map_or(RETRY_FIRST, |r| (r * 2).min(RETRY_MAX)));
                }
            }
            if let Some((entries, deadline)) = closing {
                let pending_empty = self.shared.pending.lock().is_empty();
                if pending_empty && self.finish(&entries) {
                    return;
                }
                if Instant::now() >= deadline {
                    error!(path = %self.path.display(), "stopping with changes the kept state could not take; they are lost");
                    return;
                }
                self.shared.pending.lock().closing = Some((entries, deadline));
                continue;
            }
            self.prune_if_due();
        }
    }

    /// Waits for work, lets a batch gather for [`BATCH_WINDOW`] (or the retry delay), and takes
    /// it. When closing, takes whatever there is at once.
    fn next_batch(&self, retry: Option<Duration>) -> Option<(Batch, Option<Closing>)> {
        let mut pending = self.shared.pending.lock();
        let retry_at = retry.map(|r| Instant::now() + r);
        loop {
            if pending.abandoned {
                return None;
            }
            if pending.closing.is_some() {
                let closing = pending.closing.take();
                if let Some(at) = retry_at {
                    // Still pace retries while closing, up to the deadline.
                    let deadline = closing.as_ref().map_or(at, |c| c.1).min(at);
                    self.shared.wake.wait_until(&mut pending, deadline);
                }
                return Some((Batch::take(&mut pending), closing));
            }
            if pending.is_empty() {
                let prune_at = self.next_prune;
                if self
                    .shared
                    .wake
                    .wait_until(&mut pending, prune_at)
                    .timed_out()
                {
                    return Some((Batch::take(&mut pending), None));
                }
                continue;
            }
            let due = retry_at.unwrap_or_else(|| {
                pending
                    .oldest
                    .map_or_else(Instant::now, |at| at + BATCH_WINDOW)
            });
            if Instant::now() >= due {
                if pending.dropped > 0 {
                    warn!(
                        dropped = pending.dropped,
                        "writes failed for so long that the oldest queued transitions were dropped from the kept history"
                    );
                    pending.dropped = 0;
                }
                return Some((Batch::take(&mut pending), None));
            }
            self.shared.wake.wait_until(&mut pending, due);
        }
    }

    fn recovered(&self, revision: u64) {
        if self.shared.failing.swap(false, Ordering::Relaxed) {
            info!(path = %self.path.display(), revision, "writes to the kept state succeed again; caught up");
        }
    }

    /// Writes the final rows and marks the stop as clean.
    fn finish(&mut self, entries: &[(&'static str, String, String)]) -> bool {
        let result = (|| {
            let revision = self.shared.committed.load(Ordering::Relaxed);
            let tx = self.conn.transaction()?;
            {
                let mut upsert = tx.prepare_cached(UPSERT_ENTRY)?;
                for (kind, id, body) in entries {
                    upsert.execute(params![kind, id, revision_i64(revision), body])?;
                }
            }
            set_meta(&tx, "clean", "1")?;
            tx.commit()?;
            // Fold the WAL into the database so that the directory is one file at rest.
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        })();
        match result {
            Ok(()) => {
                self.recovered(self.shared.committed.load(Ordering::Relaxed));
                true
            }
            Err(error) => {
                self.observer.failed();
                if !self.shared.failing.swap(true, Ordering::Relaxed) {
                    error!(path = %self.path.display(), %error, "cannot write the kept state at stop; retrying");
                }
                false
            }
        }
    }

    fn prune_if_due(&mut self) {
        let now = Instant::now();
        if now < self.next_prune {
            return;
        }
        self.next_prune = now + PRUNE_EVERY;
        let Ok(since_epoch) = SystemTime::now().duration_since(UNIX_EPOCH) else {
            return;
        };
        let cutoff = i64::try_from(
            since_epoch
                .saturating_sub(self.history_retention)
                .as_micros(),
        )
        .unwrap_or(i64::MAX);
        loop {
            match self.conn.execute(
                "DELETE FROM transitions WHERE revision IN
                     (SELECT revision FROM transitions WHERE at_us < ?1 LIMIT ?2)",
                params![cutoff, PRUNE_CHUNK as i64],
            ) {
                Ok(n) if n == PRUNE_CHUNK => continue,
                Ok(_) => break,
                Err(error) => {
                    warn!(path = %self.path.display(), %error, "cannot prune the kept history; trying again later");
                    break;
                }
            }
        }
    }
}

const UPSERT_ENTRY: &str = "INSERT INTO entries (kind, id, revision, body) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (kind, id) DO UPDATE SET revision = excluded.revision, body = excluded.body";

fn write(conn: &mut Connection, batch: &Batch) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut upsert = tx.prepare_cached(UPSERT_ENTRY)?;
        let mut delete = tx.prepare_cached("DELETE FROM entries WHERE kind = ?1 AND id = ?2")?;
        for ((kind, id), (revision, body)) in &batch.entries {
            match body {
                Some(body) => upsert.execute(params![kind, id, revision_i64(*revision), body])?,
                None => delete.execute(params![kind, id])?,
            };
        }
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO transitions (revision, at_us, kind, id, body)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (revision, kind, id, transition) in &batch.transitions {
            insert.execute(params![
                revision_i64(*revision),
                transition.at_us,
                kind,
                id,
                transition.body
            ])?;
        }
    }
    set_meta(&tx, "revision", &batch.revision.to_string())?;
    tx.commit()
}

fn set_meta(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}

/// SQLite integers are signed; revisions never get near `i64::MAX`.
fn revision_i64(revision: u64) -> i64 {
    i64::try_from(revision).unwrap_or(i64::MAX)
}
