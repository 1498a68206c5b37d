//! Startup: the queen starting on a data directory of many kept entries and a week of history,
//! written by the bench in the store's own format. Measures the time from spawn until `/health`
//! answers and until a restored entry is served, on a fresh copy of the directory each time.
//!
//! The schema is the queen's own: the bench lets the queen under test create an empty database
//! (so the tables are exactly what `crates/fleet-store/src/schema.rs` makes in that build), then
//! fills it with rusqlite: `entries` rows as `heartbeat_registry::Kept` serializes them,
//! `transitions` rows as `/v1/events` serves them, and the meta keys a graceful stop leaves.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;
use chrono::{SubsecRound, Utc};
use rusqlite::{Connection, params};
use serde::Serialize;
use shared_contract::{Id, Kind, State, Status, Target, Timestamp, Transition};
use tokio::time::Instant;
use worker_contract::WorkerInfo;

use crate::{
    Env,
    config::BenchArgs,
    http,
    metrics::{STORE_ROWS, STORE_WRITES},
    payload::{worker_id, worker_info},
    report::Check,
    scenarios::{
        flag_duration, spawn_queen,
        store::{IDLE_FOR, db_size, settle},
    },
    stats::median,
};

const MIB: f64 = 1024.0 * 1024.0;
/// The worker ids of the kept entries.
const PREFIX: &str = "kept-w";
/// How far back the history reaches: a week, less a minute so that the queen's first pruning
/// (at start) finds nothing older than its default `--history-retention 7d`.
const HISTORY: Duration = Duration::from_secs(7 * 24 * 3600 - 60);
/// How long one start may take before the run counts as failed.
const START_LIMIT: Duration = Duration::from_secs(120);

/// Settings of the startup scenario.
#[derive(Debug, Clone)]
pub struct StartupOptions {
    /// Kept worker entries: half online, three tenths offline, a fifth left.
    pub entries: usize,
    /// Kept transitions over the last week.
    pub transitions: usize,
    /// Starts measured.
    pub runs: u32,
}

impl StartupOptions {
    /// Builds the options from the command line.
    pub fn from_args(args: &BenchArgs) -> Self {
        if args.quick {
            return Self {
                entries: 2_000,
                transitions: 20_000,
                runs: 3,
            };
        }
        Self {
            entries: args.startup_entries.max(1),
            transitions: args.startup_transitions,
            runs: args.startup_runs.max(1),
        }
    }
}

/// One measured start.
#[derive(Debug, Clone, Serialize)]
pub struct StartRun {
    /// From spawn until the queen logged its address (read every 20 ms).
    pub listening_ms: f64,
    /// From spawn until `/health` answered 200.
    pub health_ms: f64,
    /// From spawn until `GET /v1/workers/ID` served the restored online entry.
    pub entry_ms: f64,
    /// What `/health` said about the store.
    pub health_store: String,
    /// Entries online, offline and left after the start, from `/metrics`.
    pub online: u64,
    /// Offline entries after the start.
    pub offline: u64,
    /// Left entries after the start.
    pub left: u64,
    /// Rows the queen wrote after its start, until its store was idle.
    pub rows_written: u64,
    /// Transactions it committed meanwhile.
    pub commits: u64,
    /// From spawn until the store had written what the start changed (read every 100 ms).
    pub store_idle_ms: f64,
    /// `queen.db-wal` then, in bytes.
    pub wal_bytes: u64,
    /// Time of one `GET /v1/events?since=…&limit=1000` from the middle of the week, once idle.
    pub events_ms: f64,
    /// Transitions that query returned.
    pub events: usize,
    /// Time of one `GET /v1/events?limit=1000` (the newest), once idle.
    pub events_newest_ms: f64,
    /// Queen RSS after the start, in bytes.
    pub rss_bytes: u64,
}

/// Figures of the startup scenario.
#[derive(Debug, Clone, Serialize)]
pub struct StartupFigures {
    /// `user_version` of the schema the queen created.
    pub schema_version: u32,
    /// Kept entries written.
    pub entries: usize,
    /// Of which online.
    pub entries_online: usize,
    /// Kept transitions written.
    pub transitions: usize,
    /// Seconds the bench took to write the database.
    pub build_s: f64,
    /// `queen.db` as written, in bytes.
    pub db_bytes: u64,
    /// Every start, in order.
    pub runs: Vec<StartRun>,
    /// Median time until `/health` answered.
    pub health_median_ms: f64,
    /// Median time until the restored entry was served.
    pub entry_median_ms: f64,
    /// Largest time until `/health` answered.
    pub health_max_ms: f64,
}

impl StartupFigures {
    /// Writes the scenario's text report.
    pub fn write_text(&self, s: &mut String) -> std::fmt::Result {
        writeln!(
            s,
            "\n[startup] {} kept entries ({} online), {} transitions over 7 days (schema v{}); written in {:.1} s, queen.db {:.1} MiB",
            self.entries,
            self.entries_online,
            self.transitions,
            self.schema_version,
            self.build_s,
            self.db_bytes as f64 / MIB
        )?;
        for (n, r) in self.runs.iter().enumerate() {
            writeln!(
                s,
                "  start {}: listening {:.0} ms, /health {:.0} ms, restored entry {:.0} ms; online/offline/left {}/{}/{}; then wrote {} rows in {} commits, idle at {:.0} ms (WAL {:.1} MiB); /v1/events since mid-week {:.1} ms ({} events), newest {:.1} ms; RSS {:.1} MiB",
                n + 1,
                r.listening_ms,
                r.health_ms,
                r.entry_ms,
                r.online,
                r.offline,
                r.left,
                r.rows_written,
                r.commits,
                r.store_idle_ms,
                r.wal_bytes as f64 / MIB,
                r.events_ms,
                r.events,
                r.events_newest_ms,
                r.rss_bytes as f64 / MIB
            )?;
        }
        writeln!(
            s,
            "  median: /health {:.0} ms, restored entry {:.0} ms (max /health {:.0} ms)",
            self.health_median_ms, self.entry_median_ms, self.health_max_ms
        )
    }

    /// The scenario's targets.
    pub fn checks(&self) -> Vec<Check> {
        let restored = !self.runs.is_empty()
            && self
                .runs
                .iter()
                .all(|r| r.online as usize == self.entries_online && r.health_store == "ok");
        vec![Check {
            name: "startup_health_median_ms",
            value: self.health_median_ms,
            target: "<= 2 s",
            pass: restored && self.health_median_ms <= 2000.0,
        }]
    }
}

/// Runs the startup scenario.
pub async fn run(env: &Env, opts: &StartupOptions) -> anyhow::Result<StartupFigures> {
    let source = tempfile::Builder::new()
        .prefix("rbee-bench-startup-")
        .tempdir()
        .context("create a data directory")?;
    let schema_version = create_schema(env, source.path()).await?;
    let built_at = Instant::now();
    let (entries, transitions) = (opts.entries, opts.transitions);
    let db = source.path().join("queen.db");
    let written = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || build(&db, entries, transitions))
            .await
            .context("the database builder panicked")??
    };
    let build_s = built_at.elapsed().as_secs_f64();
    let (db_bytes, _) = db_size(source.path());
    // An online entry in the middle of the id range.
    let probe = (entries / 2..entries)
        .find(|&i| state_of(i) == State::Online)
        .or_else(|| (0..entries).find(|&i| state_of(i) == State::Online))
        .map(|i| worker_id(PREFIX, i))
        .context("no online entry to look for")?;
    let mut runs = Vec::new();
    for _ in 0..opts.runs {
        let copy = tempfile::Builder::new()
            .prefix("rbee-bench-startup-run-")
            .tempdir()
            .context("create a data directory")?;
        std::fs::copy(&db, copy.path().join("queen.db")).context("copy the database")?;
        runs.push(start_once(env, copy.path(), &probe, &written).await?);
    }
    let health: Vec<f64> = runs.iter().map(|r| r.health_ms).collect();
    let entry: Vec<f64> = runs.iter().map(|r| r.entry_ms).collect();
    Ok(StartupFigures {
        schema_version,
        entries,
        entries_online: written.online,
        transitions,
        build_s,
        db_bytes,
        health_median_ms: median(&health),
        entry_median_ms: median(&entry),
        health_max_ms: health.iter().copied().fold(0.0, f64::max),
        runs,
    })
}

/// Lets the queen create its database in `dir` (then kills it) and returns the schema version.
async fn create_schema(env: &Env, dir: &Path) -> anyhow::Result<u32> {
    let queen = spawn_queen(env, &[("--data-dir", dir.display().to_string())]).await?;
    let limit = Instant::now() + START_LIMIT;
    while !matches!(http::get(queen.addr, "/health").await, Ok((200, _))) {
        anyhow::ensure!(
            Instant::now() < limit,
            "/health did not answer within {START_LIMIT:?}:\n{}",
            queen.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The schema and the meta keys are committed before the queen serves.
    queen.stop().await;
    let conn = Connection::open(dir.join("queen.db")).context("open the new database")?;
    Ok(conn.query_row("PRAGMA user_version", [], |row| row.get(0))?)
}

async fn start_once(
    env: &Env,
    dir: &Path,
    probe: &str,
    written: &Written,
) -> anyhow::Result<StartRun> {
    let flags = [
        ("--data-dir", dir.display().to_string()),
        // Nothing expires while it is measured: no timeout, no retention runs out.
        (
            "--heartbeat-timeout",
            flag_duration(Duration::from_secs(600)),
        ),
        ("--retention", flag_duration(Duration::from_secs(3600))),
    ];
    let spawned = Instant::now();
    let limit = spawned + START_LIMIT;
    let queen = spawn_queen(env, &flags).await?;
    let listening_ms = ms(spawned.elapsed());
    let addr = queen.addr;
    let health_body = loop {
        if let Ok((200, body)) = http::get(addr, "/health").await {
            break body;
        }
        anyhow::ensure!(
            Instant::now() < limit,
            "/health did not answer within {START_LIMIT:?}:\n{}",
            queen.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let health_ms = ms(spawned.elapsed());
    let entry_path = format!("/v1/workers/{probe}");
    loop {
        if let Ok((200, body)) = http::get(addr, &entry_path).await {
            let entry: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if entry["restored"] == serde_json::Value::Bool(true) && entry["state"] == "online" {
                break;
            }
        }
        anyhow::ensure!(
            Instant::now() < limit,
            "{entry_path} did not show the restored entry within {START_LIMIT:?}:\n{}",
            queen.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let entry_ms = ms(spawned.elapsed());
    let health: serde_json::Value = serde_json::from_slice(&health_body).unwrap_or_default();

    // The start rewrites what it changed (the online entries, now restored): wait until written.
    let metrics = settle(addr, STORE_ROWS, Some(dir), limit).await?;
    let store_idle_ms = ms(spawned.elapsed().saturating_sub(IDLE_FOR));
    let (_, wal_bytes) = db_size(dir);
    let events_path = format!(
        "/v1/events?since={}&limit=1000",
        (written.history_start + chrono::Duration::days(3))
            .trunc_subsecs(0)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let asked = Instant::now();
    let (status, body) = http::get(addr, &events_path)
        .await
        .context("GET /v1/events")?;
    let events_ms = ms(asked.elapsed());
    anyhow::ensure!(status == 200, "{events_path} answered {status}");
    let events = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.as_array()
                .map(Vec::len)
                .or_else(|| v["events"].as_array().map(Vec::len))
        })
        .unwrap_or(0);

    let asked = Instant::now();
    let (status, _) = http::get(addr, "/v1/events?limit=1000")
        .await
        .context("GET /v1/events")?;
    let events_newest_ms = ms(asked.elapsed());
    anyhow::ensure!(status == 200, "/v1/events?limit=1000 answered {status}");
    let count = |state: &str| {
        metrics
            .value(
                "rbee_entries",
                &format!("kind=\"worker\",state=\"{state}\""),
            )
            .map_or(0, |v| v.max(0.0) as u64)
    };
    let run = StartRun {
        listening_ms,
        health_ms,
        entry_ms,
        health_store: health["store"].as_str().unwrap_or("?").to_owned(),
        online: count("online"),
        offline: count("offline"),
        left: count("left"),
        rows_written: metrics.counter(STORE_ROWS),
        commits: metrics.counter(STORE_WRITES),
        store_idle_ms,
        wal_bytes,
        events_ms,
        events,
        events_newest_ms,
        rss_bytes: queen.stats()?.rss_bytes,
    };
    queen.stop().await;
    Ok(run)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The state kept for entry `i`: half online, three tenths offline, a fifth left.
fn state_of(i: usize) -> State {
    match i % 10 {
        0..=4 => State::Online,
        5..=7 => State::Offline,
        _ => State::Left,
    }
}

/// The kept form of an entry, field for field as the queen writes it (`heartbeat_registry::Kept`).
#[derive(Serialize)]
struct KeptBody<'a> {
    payload: &'a WorkerInfo,
    state: State,
    first_seen: Timestamp,
    last_seen: Timestamp,
    since: Timestamp,
    clock_skew_ms: i64,
    restarts: u32,
    conflict: bool,
    restored: bool,
}

/// What [`build`] wrote.
#[derive(Debug, Clone)]
struct Written {
    online: usize,
    history_start: Timestamp,
}

/// Writes a database as a queen would have left it after a graceful stop: `entries` worker
/// entries and `transitions` transitions spread evenly over the last week.
fn build(db: &PathBuf, entries: usize, transitions: usize) -> anyhow::Result<Written> {
    let mut conn = Connection::open(db).with_context(|| format!("open {}", db.display()))?;
    // The time column's name says its unit (`at_ms` when the store was first written, `at_us`
    // since); anything else is a schema this bench does not know.
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('transitions')")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let (at_column, per_ms) = if columns.iter().any(|c| c == "at_us") {
        ("at_us", 1_000)
    } else if columns.iter().any(|c| c == "at_ms") {
        ("at_ms", 1)
    } else {
        anyhow::bail!("the transitions table has no at_us or at_ms column: {columns:?}");
    };
    // One transaction without a journal: the file is the bench's, and a failed build is thrown away.
    let mode: String = conn.query_row("PRAGMA journal_mode=OFF", [], |row| row.get(0))?;
    anyhow::ensure!(
        mode.eq_ignore_ascii_case("off"),
        "journal mode stayed {mode}"
    );
    conn.pragma_update(None, "synchronous", "OFF")?;
    let now = Utc::now();
    let history_start = now - chrono::Duration::from_std(HISTORY)?;
    let span_ms = i64::try_from(HISTORY.as_millis())?;
    let tx = conn.transaction()?;
    let reasons = [
        (None, Target::Online, "first heartbeat"),
        (Some(State::Online), Target::Online, "status ready -> busy"),
        (Some(State::Online), Target::Online, "status busy -> ready"),
        (Some(State::Online), Target::Offline, "heartbeat timeout"),
        (Some(State::Offline), Target::Online, "heartbeat resumed"),
        (Some(State::Online), Target::Left, "graceful shutdown"),
    ];
    {
        let mut insert = tx.prepare(&format!(
            "INSERT INTO transitions (revision, {at_column}, kind, id, body) VALUES (?1, ?2, ?3, ?4, ?5)"
        ))?;
        let denominator = i64::try_from(transitions.max(1))?;
        for k in 0..transitions {
            let k64 = i64::try_from(k)?;
            let at_ms = history_start.timestamp_millis() + span_ms * k64 / denominator;
            let at = chrono::DateTime::from_timestamp_millis(at_ms).context("history time")?;
            let id = worker_id(PREFIX, k % entries);
            let (from, to, reason) = reasons[k % reasons.len()];
            let body = serde_json::to_string(&Transition {
                kind: Kind::Worker,
                id: Id::parse("id", &id)?,
                from,
                to,
                reason: reason.to_owned(),
                at,
            })?;
            insert.execute(params![k64 + 1, at_ms * per_ms, "worker", id, body])?;
        }
    }
    let mut online = 0;
    {
        let mut insert =
            tx.prepare("INSERT INTO entries (kind, id, revision, body) VALUES (?1, ?2, ?3, ?4)")?;
        for i in 0..entries {
            let state = state_of(i);
            let i64_ = i64::try_from(i)?;
            let jitter = chrono::Duration::milliseconds(i64_ % 300_000);
            let first_seen = now - chrono::Duration::days(2) - jitter;
            let (last_seen, since, status) = match state {
                State::Online => {
                    online += 1;
                    let status = if i % 2 == 0 {
                        Status::Ready
                    } else {
                        Status::Busy
                    };
                    (
                        now - chrono::Duration::milliseconds(i64_ % 5_000),
                        first_seen,
                        status,
                    )
                }
                // Went away within the last five minutes, well inside the queen's retention.
                State::Offline => (
                    now - jitter - chrono::Duration::seconds(15),
                    now - jitter,
                    Status::Ready,
                ),
                State::Left => (now - jitter, now - jitter, Status::Stopped),
            };
            let mut payload = worker_info(PREFIX, i, first_seen - chrono::Duration::seconds(10));
            payload.status = status;
            let body = serde_json::to_string(&KeptBody {
                payload: &payload,
                state,
                first_seen,
                last_seen,
                since,
                clock_skew_ms: 0,
                restarts: 0,
                conflict: false,
                restored: false,
            })?;
            let revision = i64::try_from(transitions + i + 1)?;
            insert.execute(params!["worker", payload.id, revision, body])?;
        }
    }
    let revision = (transitions + entries).to_string();
    let epoch = format!("{:016x}", rand::random::<u64>());
    for (key, value) in [
        ("epoch", epoch.as_str()),
        ("revision", &revision),
        ("clean", "1"),
    ] {
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![key, value],
        )?;
    }
    tx.commit()?;
    // As a queen leaves it: in WAL mode, everything checkpointed into the one file.
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
    anyhow::ensure!(
        mode.eq_ignore_ascii_case("wal"),
        "journal mode stayed {mode}"
    );
    drop(conn);
    Ok(Written {
        online,
        history_start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store's schema as `crates/fleet-store/src/schema.rs` creates it (`MIGRATIONS[0]`, with
    /// `at_us`); the scenario itself lets the queen create it.
    const SCHEMA_V1: &str =
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
         CREATE TABLE entries (kind TEXT NOT NULL, id TEXT NOT NULL, revision INTEGER NOT NULL,
             body TEXT NOT NULL, PRIMARY KEY (kind, id)) WITHOUT ROWID;
         CREATE TABLE transitions (revision INTEGER PRIMARY KEY, at_us INTEGER NOT NULL,
             kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL);
         CREATE INDEX transitions_at ON transitions (at_us);
         CREATE INDEX transitions_id ON transitions (id, revision);
         PRAGMA user_version = 1;";

    #[test]
    fn builds_a_database_in_the_stores_format() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("queen.db");
        Connection::open(&db)
            .unwrap()
            .execute_batch(SCHEMA_V1)
            .unwrap();
        let written = build(&db, 20, 60).unwrap();
        assert_eq!(written.online, 10);
        let conn = Connection::open(&db).unwrap();
        let at: i64 = conn
            .query_row(
                "SELECT at_us FROM transitions WHERE revision = 2",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let history_start_us = written.history_start.timestamp_micros();
        assert!(at > history_start_us && at - history_start_us < 7 * 24 * 3600 * 1_000_000 / 20);
        let meta = |key: &str| -> String {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(meta("clean"), "1");
        assert_eq!(meta("revision"), "80");
        assert_eq!(meta("epoch").len(), 16);
        let n: i64 = conn
            .query_row("SELECT count(*) FROM transitions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 60);
        let body: String = conn
            .query_row(
                "SELECT body FROM entries WHERE id = 'kept-w-000000'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["state"], "online");
        assert_eq!(v["payload"]["id"], "kept-w-000000");
        assert_eq!(v["restored"], false);
        let t: String = conn
            .query_row("SELECT body FROM transitions WHERE revision = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        let t: serde_json::Value = serde_json::from_str(&t).unwrap();
        assert_eq!(t["from"], serde_json::Value::Null);
        assert_eq!(t["to"], "online");
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
}
