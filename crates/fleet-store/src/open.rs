//! Opening a data directory: create, lock, check, migrate, and read back what was kept.

use std::{
    fs::{self, File, TryLockError},
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension as _};

use crate::schema::{self, Migrated};

/// What the database held at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kept {
    /// The epoch of the change log the revisions belong to; `None` for a new database.
    pub epoch: Option<String>,
    /// The newest revision committed.
    pub revision: u64,
    /// Whether the last queen on this database stopped gracefully, having written everything.
    pub clean: bool,
    /// Every kept entry.
    pub entries: Vec<KeptEntry>,
}

/// One kept entry, as the queen handed it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptEntry {
    /// The entry's kind.
    pub kind: String,
    /// The entry's id.
    pub id: String,
    /// The kept form, JSON.
    pub body: String,
}

/// Why a data directory could not be used; each message is one line naming the path.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory could not be created.
    #[error("cannot create data directory {path}: {error}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {path}: {error}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
    /// Another process holds the lock.
    #[error("data directory {path} is in use by another queen-rbee (lock held on {lock})")]
    InUse {
        /// The directory.
        path: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// The database could not be opened or read.
    #[error("cannot open database {path}: {error}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        error: rusqlite::Error,
    },
    /// The database is damaged.
    #[error("database {path} is damaged: {detail}")]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What the check found.
        detail: String,
    },
    /// The database was written by a newer build.
    #[error(
        "database {path} has schema version {found}, newer than this queen-rbee understands ({supported})"
    )]
    Newer {
        /// The database file.
        path: PathBuf,
        /// The version found.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// The first write at start failed.
    #[error("cannot write database {path}: {error}")]
    Write {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        error: rusqlite::Error,
    },
}

/// A directory opened and checked.
pub(crate) struct Opened {
    pub(crate) path: PathBuf,
    pub(crate) writer: Connection,
    pub(crate) reader: Connection,
    pub(crate) lock: File,
    pub(crate) kept: Kept,
}

/// The database's file name in the data directory.
pub(crate) const DB_FILE: &str = "queen.db";
/// The lock file's name in the data directory.
pub(crate) const LOCK_FILE: &str = "queen.lock";

pub(crate) fn open(dir: &Path) -> Result<Opened, OpenError> {
    fs::create_dir_all(dir).map_err(|error| OpenError::CreateDir {
        path: dir.to_owned(),
        error,
    })?;
    let lock = lock(dir)?;
    let path = dir.join(DB_FILE);
    let open_error = |error: rusqlite::Error| classify(&path, error);

    let mut writer = connect(&path).map_err(open_error)?;
    check(&writer, &path)?;
    match schema::migrate(&mut writer).map_err(open_error)? {
        Migrated::Current => {}
        Migrated::Newer(found) => {
            return Err(OpenError::Newer {
                path,
                found,
                supported: schema::VERSION,
            });
        }
    }
    let kept = read_kept(&writer).map_err(open_error)?;
    let reader = connect(&path).map_err(open_error)?;
    Ok(Opened {
        path,
        writer,
        reader,
        lock,
        kept,
    })
}

fn lock(dir: &Path) -> Result<File, OpenError> {
    let path = dir.join(LOCK_FILE);
    let lock_error = |error| OpenError::Lock {
        path: path.clone(),
        error,
    };
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(lock_error)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(OpenError::InUse {
            path: dir.to_owned(),
            lock: path,
        }),
        Err(TryLockError::Error(error)) => Err(lock_error(error)),
    }
}

/// Opens a connection in WAL mode: readers never block the writer, and a process killed in the
/// middle of a commit leaves the database as of the last complete one. `synchronous=NORMAL`
/// keeps every commit through a process crash; only a power cut may lose the last few.
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(2))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(failure(format!(
            "the journal stays in {mode} mode; WAL is needed"
        )));
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // A burst (a restore rewriting every online entry, say) grows the WAL; checkpoints then
    // shrink it back to this instead of keeping the largest size it ever reached.
    conn.pragma_update(None, "journal_size_limit", 16 * 1024 * 1024)?;
    Ok(conn)
}

/// Runs SQLite's structural check, so that a damaged file is refused at start rather than
/// failing on some later write.
fn check(conn: &Connection, path: &Path) -> Result<(), OpenError> {
    let mut stmt = conn
        .prepare("PRAGMA quick_check")
        .map_err(|e| classify(path, e))?;
    let problems: Vec<String> = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .and_then(Iterator::collect)
        .map_err(|e| classify(path, e))?;
    match problems.as_slice() {
        [ok] if ok == "ok" => Ok(()),
        _ => Err(OpenError::Damaged {
            path: path.to_owned(),
            detail: problems.first().cloned().unwrap_or_default(),
        }),
    }
}

fn read_kept(conn: &Connection) -> rusqlite::Result<Kept> {
    let meta = |key: &str| {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
            row.get::<_, String>(0)
        })
        .optional()
    };
    let epoch = meta("epoch")?;
    let revision = meta("revision")?.and_then(|r| r.parse().ok()).unwrap_or(0);
    let clean = meta("clean")?.as_deref() == Some("1");
    let mut stmt = conn.prepare("SELECT kind, id, body FROM entries ORDER BY kind, id")?;
    let entries = stmt
        .query_map([], |row| {
            Ok(KeptEntry {
                kind: row.get(0)?,
                id: row.get(1)?,
                body: row.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Kept {
        epoch,
        revision,
        clean,
        entries,
    })
}

/// An error of our own in SQLite's terms, with `message` as its text.
pub(crate) fn failure(message: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
        Some(message),
    )
}

/// Names a damaged file as such; other errors keep SQLite's own words.
fn classify(path: &Path, error: rusqlite::Error) -> OpenError {
    match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => OpenError::Damaged {
            path: path.to_owned(),
            detail: error.to_string(),
        },
        _ => OpenError::Open {
            path: path.to_owned(),
            error,
        },
    }
}
