//! The schema and its migrations, versioned by SQLite's `user_version`.

use rusqlite::{Connection, Transaction};

/// Migration `n` (0-based) takes the schema from version `n` to `n + 1`. Append, never edit.
const MIGRATIONS: &[&str] = &[
    // 1: entries, transitions and the log's identity.
    "CREATE TABLE meta (
         key   TEXT PRIMARY KEY,
         value TEXT NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE entries (
         kind     TEXT NOT NULL,
         id       TEXT NOT NULL,
         revision INTEGER NOT NULL,
         body     TEXT NOT NULL,
         PRIMARY KEY (kind, id)
     ) WITHOUT ROWID;
     CREATE TABLE transitions (
         revision INTEGER PRIMARY KEY,
         at_us    INTEGER NOT NULL,
         kind     TEXT NOT NULL,
         id       TEXT NOT NULL,
         body     TEXT NOT NULL
     );
     CREATE INDEX transitions_at ON transitions (at_us);
     CREATE INDEX transitions_id ON transitions (id, revision);",
];

/// The version this build writes.
pub(crate) const VERSION: u32 = MIGRATIONS.len() as u32;

/// What [`migrate`] found.
pub(crate) enum Migrated {
    /// The schema is at [`VERSION`] (possibly after migrating).
    Current,
    /// The database was written by a newer build.
    Newer(u32),
}

/// Brings the schema to [`VERSION`], each step in the same transaction as its version bump.
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<Migrated> {
    let version: u32 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > VERSION {
        return Ok(Migrated::Newer(version));
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx: Transaction<'_> = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", from + 1)?;
        tx.commit()?;
    }
    Ok(Migrated::Current)
}
