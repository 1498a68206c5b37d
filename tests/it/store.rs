//! The kept state through real processes, files and signals: a graceful restart forgets
//! nothing, a kill loses at most the last moment, bad data directories stop the queen at start,
//! a full disk never stops ingest, and a watch resumes across a restart.

use std::{
    collections::{BTreeMap, HashSet},
    fs::File,
    io::{ErrorKind, Read as _, Write as _},
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
    time::Duration,
};

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use test_support::{Daemon, Signal, SseRecorder, wait_for, wait_until};
use tokio::time::Instant;

use crate::fleet::{DEADLINE, INTERVAL, Queen, STARTUP, SWEEP, TIMEOUT, hive, slot, time, worker};

/// Everything is back within one interval of the queen's return, plus slack for a busy machine.
const RETURN: Duration = Duration::from_millis(INTERVAL.as_millis() as u64 + 1000);
/// Slack for observing a change from outside on a busy machine (polling, scheduling).
const OBSERVE: Duration = Duration::from_millis(750);

/// Returns the data directory as a flag value.
fn dir_arg(dir: &TempDir) -> String {
    dir.path()
        .to_str()
        .expect("temporary directories have UTF-8 paths")
        .to_owned()
}

/// A worker heartbeat sent directly, as from a process started at `started_at`.
fn beat(id: &str, started_at: &str) -> Value {
    json!({
        "worker": {
            "id": id, "hive_id": "store-hive", "model_id": "tiny/test-model",
            "device": "cpu", "port": 9301, "status": "ready",
            "health": { "status": "healthy" }, "started_at": started_at,
        },
        "timestamp": Utc::now().to_rfc3339(),
    })
}

/// Posts a heartbeat and asserts that it was acknowledged.
async fn ack(queen: &Queen, body: &Value) {
    let (status, answer) = queen.api.post("/v1/worker-heartbeat", body).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// Returns `/v1/events?QUERY`.
async fn events(queen: &Queen, query: &str) -> Vec<Value> {
    let (status, body) = queen.api.get(&format!("/v1/events?{query}")).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

/// Returns the snapshot's entries of `list` (`workers` or `hives`) by id.
fn by_id(snapshot: &Value, list: &str) -> BTreeMap<String, Value> {
    let kind = &list[..list.len() - 1];
    snapshot[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e[kind]["id"].as_str().unwrap().to_owned(), e.clone()))
        .collect()
}

/// Returns what `/health` says of the store.
async fn store_health(queen: &Queen) -> Option<String> {
    let body = queen.api.get_ok("/health").await?;
    assert_eq!(body["status"], "ok", "{body}");
    body["store"].as_str().map(str::to_owned)
}

/// Returns the sum of a metric's samples over all its labels.
async fn metric(queen: &Queen, name: &str) -> f64 {
    let response = queen
        .api
        .client()
        .get(queen.api.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Stops the queen with SIGTERM and checks that it exited 0 having written everything.
async fn stop(queen: &mut Queen) {
    queen.daemon.signal(Signal::SIGTERM);
    let status = queen.daemon.wait_exit(DEADLINE).await;
    assert_eq!(status.code(), Some(0), "{}", queen.daemon.output());
    assert_eq!(
        queen.daemon.count_containing("kept state written"),
        1,
        "{}",
        queen.daemon.output()
    );
}

/// The wall-clock time a log line was written (its first field, RFC 3339).
fn logged_at(line: &str) -> chrono::DateTime<Utc> {
    time(&json!(line.split_whitespace().next().unwrap()))
}

/// Starts a queen that must refuse to start, and returns its exit status and its error lines.
async fn refused(data_dir: &Path) -> (ExitStatus, Vec<String>, Daemon) {
    let mut daemon = Daemon::builder("queen-rbee")
        .name("refused queen")
        .args(["--bind", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data_dir)
        .spawn();
    let status = daemon.wait_exit(STARTUP).await;
    let errors = daemon
        .lines()
        .into_iter()
        .filter(|l| l.contains(" ERROR "))
        .collect();
    (status, errors, daemon)
}

/// Asserts that a queen on `data_dir` refuses to start with exit code 1, one error line naming
/// `path` and containing `words`, and without ever listening.
async fn assert_refused(data_dir: &Path, path: &Path, words: &str) {
    let (status, errors, daemon) = refused(data_dir).await;
    let output = daemon.output();
    assert!(!status.success(), "{output}");
    assert_eq!(status.code(), Some(1), "{output}");
    assert_eq!(errors.len(), 1, "one error line: {output}");
    let path = path.to_str().unwrap();
    assert!(errors[0].contains(path), "the error names {path}: {output}");
    assert!(
        errors[0].contains(words),
        "the error says {words:?}: {output}"
    );
    assert_eq!(
        daemon.count_containing("listening on"),
        0,
        "it must not serve: {output}"
    );
}

#[tokio::test]
async fn a_graceful_restart_brings_back_every_entry_and_transition() {
    let _slot = slot().await;
    let dir = TempDir::new().unwrap();
    let data = dir_arg(&dir);
    let extra = ["--data-dir", data.as_str()];
    let mut queen = Queen::start(&extra).await;
    let addr = queen.addr;
    let url = queen.url();
    let _hive = hive(&url, "keep-hive").spawn();
    let _k1 = worker(&url, "k1").spawn();
    let _k2 = worker(&url, "k2").spawn();
    let mut phoenix = worker(&url, "phoenix").spawn();
    let mut leaver = worker(&url, "leaver").spawn();
    let mut gone = worker(&url, "gone").spawn();
    let _twin_old = worker(&url, "twin").spawn();
    let live = ["k1", "k2", "phoenix", "twin"];
    queen
        .wait_all_available(
            &["keep-hive"],
            &["k1", "k2", "phoenix", "leaver", "gone", "twin"],
            STARTUP,
        )
        .await;

    // A restart: the same id from a new process.
    phoenix.kill().await;
    let _phoenix = worker(&url, "phoenix").spawn();
    queen
        .wait_entry("worker", "phoenix", "restarts = 1", STARTUP, |e| {
            e["restarts"] == 1 && e["state"] == "online"
        })
        .await;
    // A conflict: a second live process under the id of one still running.
    let _twin_new = worker(&url, "twin").spawn();
    queen
        .wait_entry(
            "worker",
            "twin",
            "a conflict after a restart",
            STARTUP,
            |e| e["restarts"] == 1 && e["conflict"] == true,
        )
        .await;
    // A graceful exit.
    leaver.signal(Signal::SIGTERM);
    leaver.wait_exit(DEADLINE).await;
    queen.wait_state("worker", "leaver", "left", DEADLINE).await;

    let before = queen.api.get_ok("/v1/heartbeats/snapshot").await.unwrap();
    let events_before = events(&queen, "limit=1000").await;
    assert!(
        events_before
            .iter()
            .any(|t| t["id"] == "phoenix" && t["reason"] == "restarted"),
        "{events_before:#?}"
    );
    assert!(
        events_before
            .iter()
            .any(|t| t["id"] == "twin"
                && t["reason"].as_str().is_some_and(|r| r.contains("conflict"))),
        "{events_before:#?}"
    );
    stop(&mut queen).await;
    // Killed while the queen is away: it must time out after the restart.
    gone.kill().await;

    let queen = Queen::start_on(addr, &extra).await;
    let up = Instant::now();
    let after = queen.api.get_ok("/v1/heartbeats/snapshot").await.unwrap();
    assert_eq!(
        after["epoch"], before["epoch"],
        "a clean stop keeps the epoch"
    );
    assert!(
        after["revision"].as_u64().unwrap() >= before["revision"].as_u64().unwrap(),
        "the revision went back: {} after {}",
        after["revision"],
        before["revision"]
    );
    for list in ["workers", "hives"] {
        let kind = &list[..list.len() - 1];
        let (was, now) = (by_id(&before, list), by_id(&after, list));
        assert_eq!(
            was.keys().collect::<Vec<_>>(),
            now.keys().collect::<Vec<_>>(),
            "{list} after the restart"
        );
        for (id, old) in &was {
            let new = &now[id];
            for field in ["first_seen", "restarts"] {
                assert_eq!(old[field], new[field], "{kind} {id}: {field}: {new}");
            }
            assert_eq!(
                old["conflict"] == true,
                new["conflict"] == true,
                "{kind} {id}: conflict: {new}"
            );
            assert_eq!(
                old[kind]["started_at"], new[kind]["started_at"],
                "{kind} {id}: {new}"
            );
            if id != "gone" {
                // (That one may already have timed out.)
                assert_eq!(old["state"], new["state"], "{kind} {id}: {new}");
            }
            if new["restored"] == true {
                assert_eq!(new["available"], false, "a restored entry: {new}");
            }
        }
    }
    let workers = by_id(&after, "workers");
    assert_eq!(workers["twin"]["conflict"], true, "{}", workers["twin"]);
    assert_eq!(workers["twin"]["restarts"], 1);
    assert_eq!(workers["phoenix"]["restarts"], 1);
    assert_eq!(workers["leaver"]["state"], "left");

    queen
        .wait_all_available(&["keep-hive"], &["k1", "k2", "phoenix"], RETURN)
        .await;
    assert!(up.elapsed() <= RETURN, "back after {:?}", up.elapsed());
    queen
        .wait_entry("worker", "twin", "online again", RETURN, |e| {
            e["state"] == "online" && e["restored"] != true
        })
        .await;
    // The worker killed while the queen was away times out; by then every live sender's fresh
    // timeout has run out too.
    let offline = queen
        .wait_state(
            "worker",
            "gone",
            "offline",
            TIMEOUT + SWEEP + OBSERVE + RETURN,
        )
        .await;
    // Still as kept: it sent nothing since the start.
    assert_eq!(offline["restored"], true, "{offline}");
    assert_eq!(offline["available"], false, "{offline}");
    let snapshot = queen.api.get_ok("/v1/heartbeats/snapshot").await.unwrap();
    for list in ["workers", "hives"] {
        for (id, entry) in by_id(&snapshot, list)
            .into_iter()
            .filter(|(id, _)| id != "gone")
        {
            assert_ne!(entry["restored"], true, "{id} is still restored: {entry}");
            if live.contains(&id.as_str()) || list == "hives" {
                assert_eq!(entry["state"], "online", "{id}: {entry}");
            }
        }
    }

    let events_after = events(&queen, "limit=1000").await;
    assert!(
        events_after.len() >= events_before.len(),
        "transitions lost: {} before, {} after",
        events_before.len(),
        events_after.len()
    );
    assert_eq!(
        events_after[..events_before.len()],
        events_before[..],
        "the transitions before the stop come back as they were"
    );
    let later = &events_after[events_before.len()..];
    assert!(
        later.iter().any(|t| t["id"] == "gone"
            && t["to"] == "offline"
            && t["reason"] == "no heartbeat since queen restart"),
        "{later:#?}"
    );
    let live_offline: Vec<&Value> = later
        .iter()
        .filter(|t| t["id"] != "gone" && t["to"] == "offline")
        .collect();
    assert!(
        live_offline.is_empty(),
        "live senders went offline across the restart: {live_offline:#?}"
    );
}

#[tokio::test]
async fn a_worker_killed_while_the_queen_is_down_goes_offline_one_timeout_after_the_start() {
    let _slot = slot().await;
    let dir = TempDir::new().unwrap();
    let data = dir_arg(&dir);
    let extra = ["--data-dir", data.as_str()];
    let mut queen = Queen::start(&extra).await;
    let addr = queen.addr;
    let _alive = worker(&queen.url(), "alive").spawn();
    let _also_alive = worker(&queen.url(), "also-alive").spawn();
    let mut doomed = worker(&queen.url(), "doomed").spawn();
    queen
        .wait_all_available(&[], &["alive", "also-alive", "doomed"], STARTUP)
        .await;

    stop(&mut queen).await;
    doomed.kill().await;
    let spawned_at = Utc::now();
    let queen = Queen::start_on(addr, &extra).await;
    let listening = Instant::now();
    let opened = queen
        .daemon
        .wait_for_line("kept state opened", DEADLINE)
        .await;
    let opened_at = logged_at(&opened);
    assert!(opened.contains("entries=3"), "{opened}");

    let entry = queen
        .wait_state("worker", "doomed", "offline", TIMEOUT + SWEEP + OBSERVE)
        .await;
    let observed = listening.elapsed();
    assert!(
        observed <= TIMEOUT + SWEEP + OBSERVE,
        "offline observed {observed:?} after the queen listened"
    );
    assert_eq!(entry["available"], false);
    let transitions = events(&queen, "id=doomed&limit=1000").await;
    let transition = transitions.last().unwrap();
    assert_eq!(transition["from"], "online", "{transition}");
    assert_eq!(transition["to"], "offline", "{transition}");
    assert_eq!(
        transition["reason"], "no heartbeat since queen restart",
        "{transition}"
    );
    // On the queen's own clock, from the restore to the offline mark.
    let at = time(&transition["at"]);
    let after_spawn = (at - spawned_at).to_std().unwrap();
    assert!(
        after_spawn >= TIMEOUT - Duration::from_millis(20),
        "offline only {after_spawn:?} after the queen was started"
    );
    let after_open = (at - opened_at).to_std().unwrap_or_default();
    assert!(
        after_open <= TIMEOUT + SWEEP + Duration::from_millis(150),
        "offline {after_open:?} after the kept state was opened"
    );

    for id in ["alive", "also-alive"] {
        let entry = queen.entry("worker", id).await.unwrap();
        assert_eq!(entry["state"], "online", "{entry}");
        assert_eq!(entry["available"], true, "{entry}");
        assert_ne!(entry["restored"], true, "{entry}");
        let history = events(&queen, &format!("id={id}&limit=1000")).await;
        assert!(
            history.iter().all(|t| t["to"] != "offline"),
            "{id} went offline: {history:#?}"
        );
    }
}

#[tokio::test]
async fn a_queen_killed_twenty_times_after_bursts_keeps_every_change_older_than_a_second() {
    let _slot = slot().await;
    let dir = TempDir::new().unwrap();
    let data = dir_arg(&dir);
    let extra = ["--data-dir", data.as_str()];
    let started_at = Utc::now().to_rfc3339();
    // Ids acknowledged more than a second before a kill, and the revision a snapshot showed then.
    let mut safe: Vec<String> = Vec::new();
    let mut safe_revision = 0;
    let mut epochs = HashSet::new();
    let mut next = 0;
    for round in 0..=20 {
        let mut queen = Queen::start(&extra).await;
        queen
            .daemon
            .wait_for_line("kept state opened", DEADLINE)
            .await;
        let output = queen.daemon.output();
        assert_eq!(queen.daemon.count_containing(" ERROR "), 0, "{output}");
        if round > 0 {
            assert_eq!(
                queen.daemon.count_containing("did not stop gracefully"),
                1,
                "round {round}: the kill went unnoticed: {output}"
            );
        }
        assert_eq!(store_health(&queen).await.as_deref(), Some("ok"));
        let snapshot = queen.api.get_ok("/v1/heartbeats/snapshot").await.unwrap();
        let epoch = snapshot["epoch"].as_str().unwrap().to_owned();
        assert!(
            epochs.insert(epoch.clone()),
            "round {round}: epoch {epoch} again after a kill"
        );
        let revision = snapshot["revision"].as_u64().unwrap();
        assert!(
            revision >= safe_revision,
            "round {round}: revision {revision}, but {safe_revision} was committed before the kill"
        );
        let present = by_id(&snapshot, "workers");
        let missing: Vec<&String> = safe
            .iter()
            .filter(|id| !present.contains_key(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: lost {} of {} changes acknowledged >1 s before a kill: {missing:?}",
            missing.len(),
            safe.len()
        );
        if round == 20 {
            break;
        }

        // A burst of new entries, then more changes until the burst is over a second old.
        let mut acked: Vec<(String, Instant)> = Vec::new();
        for _ in 0..10 {
            let id = format!("kill-{next}");
            next += 1;
            ack(&queen, &beat(&id, &started_at)).await;
            acked.push((id, Instant::now()));
        }
        let burst = queen.api.get_ok("/v1/heartbeats/snapshot").await.unwrap();
        let burst_revision = burst["revision"].as_u64().unwrap();
        let burst_at = Instant::now();
        while burst_at.elapsed() < Duration::from_millis(1050) {
            let id = format!("kill-{next}");
            next += 1;
            ack(&queen, &beat(&id, &started_at)).await;
            acked.push((id, Instant::now()));
            // Pacing only.
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        // And more changes right up to the kill.
        for _ in 0..5 {
            let id = format!("kill-{next}");
            next += 1;
            ack(&queen, &beat(&id, &started_at)).await;
            acked.push((id, Instant::now()));
        }
        queen.daemon.signal(Signal::SIGKILL);
        let killed = Instant::now();
        queen.daemon.wait_exit(DEADLINE).await;
        safe.extend(
            acked
                .into_iter()
                .filter(|(_, at)| killed - *at > Duration::from_secs(1))
                .map(|(id, _)| id),
        );
        safe_revision = burst_revision;
    }
    assert!(safe.len() >= 20 * 10, "{} safe changes", safe.len());
    assert_eq!(epochs.len(), 21);
}

#[tokio::test]
async fn unusable_data_directories_stop_the_queen_at_start_with_one_line() {
    let _slot = slot().await;
    let root = TempDir::new().unwrap();

    // A second queen on a directory in use.
    let shared = root.path().join("shared");
    let shared_arg = shared.to_str().unwrap().to_owned();
    let first = Queen::start(&["--data-dir", shared_arg.as_str()]).await;
    assert_refused(&shared, &shared, "is in use by another queen-rbee").await;
    assert_eq!(
        store_health(&first).await.as_deref(),
        Some("ok"),
        "the first queen carries on"
    );
    drop(first);

    // A directory that cannot be created: its parent is a regular file.
    let file = root.path().join("plain-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let under_file = file.join("data");
    assert_refused(&under_file, &under_file, "cannot create data directory").await;

    // A database of random bytes.
    let random = root.path().join("random");
    std::fs::create_dir(&random).unwrap();
    let mut noise = Vec::new();
    File::open("/dev/urandom")
        .unwrap()
        .take(64 * 1024)
        .read_to_end(&mut noise)
        .unwrap();
    std::fs::write(random.join("queen.db"), &noise).unwrap();
    assert_refused(&random, &random.join("queen.db"), "is damaged").await;

    // A real database, written by a queen that stopped gracefully, then cut in half.
    let truncated = root.path().join("truncated");
    make_database(&truncated, 300).await;
    let db = truncated.join("queen.db");
    let len = std::fs::metadata(&db).unwrap().len();
    assert!(
        len > 64 * 1024,
        "a database of {len} bytes is too small to cut"
    );
    File::options()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_refused(&truncated, &db, "is damaged").await;

    // A database from a newer build.
    let newer = root.path().join("newer");
    make_database(&newer, 3).await;
    let db = newer.join("queen.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let version: u32 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert!(version >= 1, "the queen writes a schema version");
        conn.pragma_update(None, "user_version", version + 1000)
            .unwrap();
    }
    assert_refused(&newer, &db, "newer than this queen-rbee understands").await;
    // Refused, not rewritten: the version is still the newer one.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert!(version > 1000, "user_version {version}");
}

/// Writes a real database in `dir` with `entries` workers, stopped gracefully.
async fn make_database(dir: &Path, entries: usize) {
    let arg = dir.to_str().unwrap().to_owned();
    let mut queen = Queen::start(&["--data-dir", arg.as_str()]).await;
    let started_at = Utc::now().to_rfc3339();
    for i in 0..entries {
        ack(
            &queen,
            &beat(&format!("made-{i}-with-a-longer-id"), &started_at),
        )
        .await;
    }
    stop(&mut queen).await;
}

/// A tmpfs mounted for one test, unmounted when dropped (also when the test fails).
#[derive(Debug)]
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `3m`) on `path`; says why not if this machine does not
    /// allow it.
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if output.status.success() {
            Ok(Tmpfs {
                path: path.to_owned(),
            })
        } else {
            Err(format!(
                "mount -t tmpfs failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Writes zeros to `path` until the filesystem is full; returns how many bytes it took.
fn fill(path: &Path) -> u64 {
    let mut file = File::create(path).unwrap();
    let chunk = vec![0_u8; 64 * 1024];
    let mut written = 0_u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == ErrorKind::StorageFull => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // The last partial block too.
    loop {
        match file.write(&[0]) {
            Ok(1) => written += 1,
            Ok(_) => break,
            Err(e) if e.kind() == ErrorKind::StorageFull => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    written
}

#[tokio::test]
async fn a_full_disk_never_stops_ingest_and_the_store_catches_up_when_space_returns() {
    let _slot = slot().await;
    let dir = TempDir::new().unwrap();
    let tmpfs = match Tmpfs::mount(dir.path(), "3m") {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            #[allow(clippy::print_stderr, reason = "the only way to say why a test skips")]
            {
                eprintln!("SKIPPED a_full_disk_never_stops_ingest…: {why} (needs root)");
            }
            return;
        }
    };
    let data = dir_arg(&dir);
    let extra = ["--data-dir", data.as_str()];
    let mut queen = Queen::start(&extra).await;
    let url = queen.url();
    let _workers: Vec<Daemon> = ["disk-1", "disk-2", "disk-3"]
        .iter()
        .map(|id| worker(&url, id).spawn())
        .collect();
    queen
        .wait_all_available(&[], &["disk-1", "disk-2", "disk-3"], STARTUP)
        .await;
    assert_eq!(store_health(&queen).await.as_deref(), Some("ok"));
    assert_eq!(metric(&queen, "rbee_store_errors_total").await, 0.0);

    let filler = tmpfs.path.join("filler");
    let filled = fill(&filler);
    assert!(filled > 0, "nothing could be written to fill the disk");

    // New entries while the disk is full: every one acknowledged, until the store says failing.
    let started_at = Utc::now().to_rfc3339();
    let mut full_ids = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let id = format!("while-full-{}", full_ids.len());
        ack(&queen, &beat(&id, &started_at)).await;
        full_ids.push(id);
        if store_health(&queen).await.as_deref() == Some("failing") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the store never said failing after {} new entries on a full disk",
            full_ids.len()
        );
    }
    for _ in 0..10 {
        let id = format!("while-full-{}", full_ids.len());
        ack(&queen, &beat(&id, &started_at)).await;
        full_ids.push(id);
    }
    assert!(metric(&queen, "rbee_store_errors_total").await > 0.0);
    assert_eq!(store_health(&queen).await.as_deref(), Some("failing"));
    // Ingest, liveness and the registry carry on from memory.
    for id in &full_ids {
        let entry = queen.entry("worker", id).await;
        assert!(entry.is_some(), "{id} is not in the registry");
    }
    queen
        .wait_all_available(&[], &["disk-1", "disk-2", "disk-3"], DEADLINE)
        .await;
    queen
        .daemon
        .wait_for_line("cannot write the kept state", DEADLINE)
        .await;

    // Space again: the retries catch up.
    std::fs::remove_file(&filler).unwrap();
    wait_until("the store ok again", DEADLINE, || async {
        (store_health(&queen).await.as_deref() == Some("ok")).then_some(())
    })
    .await;
    queen
        .daemon
        .wait_for_line("writes to the kept state succeed again", DEADLINE)
        .await;
    assert_eq!(
        queen.daemon.count_containing("cannot write the kept state"),
        1,
        "the failure is logged once: {}",
        queen.daemon.output()
    );
    let errors = metric(&queen, "rbee_store_errors_total").await;
    assert!(errors >= 1.0, "{errors}");
    assert!(metric(&queen, "rbee_store_writes_total").await >= 1.0);

    stop(&mut queen).await;
    let queen = Queen::start(&extra).await;
    assert_eq!(store_health(&queen).await.as_deref(), Some("ok"));
    let snapshot = queen.api.get_ok("/v1/heartbeats/snapshot").await.unwrap();
    let present = by_id(&snapshot, "workers");
    let missing: Vec<&str> = full_ids
        .iter()
        .map(String::as_str)
        .chain(["disk-1", "disk-2", "disk-3"])
        .filter(|id| !present.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "entries made while the disk was full were lost: {missing:?}"
    );
    drop(queen);
    drop(tmpfs);
}

/// One frame of a watch stream.
#[derive(Debug)]
struct Frame {
    event: String,
    id: Option<String>,
    data: Value,
}

impl Frame {
    fn revision(&self) -> u64 {
        let id = self.id.as_deref().expect("every watch event has an id");
        id.rsplit_once(':').unwrap().1.parse().unwrap()
    }
}

/// Parses the complete frames of `text` that carry data (not `retry:` or comments).
fn frames(text: &str) -> Vec<Frame> {
    let complete = text.rfind("\n\n").map_or("", |end| &text[..end]);
    complete
        .split("\n\n")
        .filter_map(|block| {
            let mut event = "message".to_owned();
            let mut id = None;
            let mut data = Vec::new();
            for line in block.lines() {
                let field = |name: &str| {
                    line.strip_prefix(name)
                        .map(|v| v.strip_prefix(' ').unwrap_or(v).to_owned())
                };
                if let Some(v) = field("event:") {
                    event = v;
                } else if let Some(v) = field("id:") {
                    id = Some(v);
                } else if let Some(v) = field("data:") {
                    data.push(v);
                }
            }
            (!data.is_empty()).then(|| Frame {
                event,
                id,
                data: serde_json::from_str(&data.join("\n")).unwrap_or(Value::Null),
            })
        })
        .collect()
}

/// Reads `/v1/watch` resuming from `last_event_id` until a frame of `revision` or later.
async fn resume(queen: &Queen, last_event_id: &str, revision: u64) -> (Vec<Frame>, String) {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut response = client
        .get(format!("{}/v1/watch", queen.url()))
        .header("accept", "text/event-stream")
        .header("last-event-id", last_event_id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let deadline = Instant::now() + DEADLINE;
    let mut text = String::new();
    loop {
        let parsed = frames(&text);
        if parsed.iter().any(|f| f.event == "sync")
            || parsed.last().is_some_and(|f| f.revision() >= revision)
        {
            return (parsed, text);
        }
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("the resumed watch stalled; received so far:\n{text}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the resumed watch ended; received:\n{text}"));
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn a_watch_resumes_across_a_graceful_restart_with_exactly_the_later_changes() {
    let _slot = slot().await;
    let dir = TempDir::new().unwrap();
    let data = dir_arg(&dir);
    let extra = ["--data-dir", data.as_str()];
    let mut queen = Queen::start(&extra).await;
    let addr = queen.addr;
    let _senders = [
        worker(&queen.url(), "watch-a").spawn(),
        worker(&queen.url(), "watch-b").spawn(),
    ];
    queen
        .wait_all_available(&[], &["watch-a", "watch-b"], STARTUP)
        .await;
    let watch = SseRecorder::connect(&format!("{}/v1/watch", queen.url()), None).await;
    let sync = watch
        .wait_for("the sync", DEADLINE, |e| e.event == "sync")
        .await;
    let epoch = sync.json()["epoch"].as_str().unwrap().to_owned();
    let synced = sync.json()["revision"].as_u64().unwrap();
    // A change seen live before the stop: a new entry, and its timeout.
    ack(&queen, &beat("before-stop", &Utc::now().to_rfc3339())).await;
    watch
        .wait_for_json("upsert", "before-stop offline", DEADLINE, |d| {
            d["entry"]["worker"]["id"] == "before-stop" && d["entry"]["state"] == "offline"
        })
        .await;

    stop(&mut queen).await;
    wait_for("the watch to end with the queen", DEADLINE, || {
        watch.ended()
    })
    .await;
    let last_id = watch
        .events()
        .iter()
        .rev()
        .find_map(|e| e.id.clone())
        .unwrap();
    let (last_epoch, r) = last_id.rsplit_once(':').unwrap();
    assert_eq!(last_epoch, epoch);
    let r: u64 = r.parse().unwrap();
    assert!(
        r >= synced + 2,
        "the watch saw {last_id} after a sync at {synced}"
    );

    let queen = Queen::start_on(addr, &extra).await;
    const N: usize = 5;
    let started_at = Utc::now().to_rfc3339();
    for i in 0..N {
        ack(&queen, &beat(&format!("after-{i}"), &started_at)).await;
    }
    let snapshot = queen.api.get_ok("/v1/heartbeats/snapshot").await.unwrap();
    assert_eq!(
        snapshot["epoch"],
        epoch.as_str(),
        "a clean stop keeps the epoch"
    );
    let current = snapshot["revision"].as_u64().unwrap();
    // Two restored entries, each confirmed by its first beat, and N new ones.
    assert!(
        current >= r + 2 + N as u64,
        "revision {current} after resuming from {r}"
    );

    let (frames, text) = resume(&queen, &format!("{epoch}:{r}"), current).await;
    assert!(
        frames.iter().all(|f| f.event != "sync"),
        "a resume across a clean restart sent a sync:\n{text}"
    );
    let revisions: Vec<u64> = frames.iter().map(Frame::revision).collect();
    let last = *revisions.last().unwrap();
    let expected: Vec<u64> = (r + 1..=last).collect();
    assert_eq!(revisions, expected, "{text}");
    for frame in &frames {
        assert!(
            frame
                .id
                .as_deref()
                .unwrap()
                .starts_with(&format!("{epoch}:")),
            "{text}"
        );
    }
    // The restore marks each entry that was online, before anything else happens.
    let restored: Vec<&str> = frames[..2]
        .iter()
        .map(|f| {
            assert_eq!(f.event, "upsert", "{text}");
            assert_eq!(f.data["entry"]["restored"], true, "{text}");
            assert_eq!(f.data["entry"]["available"], false, "{text}");
            f.data["entry"]["worker"]["id"].as_str().unwrap()
        })
        .collect();
    let mut restored_sorted = restored.clone();
    restored_sorted.sort_unstable();
    assert_eq!(restored_sorted, ["watch-a", "watch-b"], "{text}");
    for i in 0..N {
        let id = format!("after-{i}");
        let firsts = frames
            .iter()
            .filter(|f| {
                f.data["entry"]["worker"]["id"] == id.as_str()
                    && f.data["transition"]["reason"] == "first heartbeat"
            })
            .count();
        assert_eq!(firsts, 1, "{id}: {text}");
    }
    assert!(
        frames
            .iter()
            .all(|f| f.data["entry"]["worker"]["id"] != "before-stop"),
        "an offline entry is not touched by the restore: {text}"
    );
}
