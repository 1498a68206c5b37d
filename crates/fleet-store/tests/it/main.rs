//! The store against real SQLite files in temporary directories.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a test failure"
)]

use std::{
    fs,
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use fleet_store::{
    EventQuery, Health, Kept, Observer, OpenError, Record, Store, StoreConfig, TransitionRecord,
};
use tempfile::TempDir;

/// Counts the writer's commits and failures, and wakes [`wait_for`] on each.
#[derive(Default)]
struct Counting {
    commits: AtomicUsize,
    failures: AtomicUsize,
    events: Mutex<u64>,
    woken: Condvar,
}

impl Counting {
    fn event(&self) {
        *self.events.lock().unwrap() += 1;
        self.woken.notify_all();
    }
}

impl Observer for Counting {
    fn committed(&self, _rows: usize, _lag: Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.event();
    }

    fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.event();
    }
}

fn config(dir: &TempDir) -> StoreConfig {
    StoreConfig {
        dir: dir.path().join("data"),
        history_retention: Duration::from_secs(7 * 24 * 3600),
    }
}

fn open(dir: &TempDir) -> (Store, Kept, Arc<Counting>) {
    let observer = Arc::new(Counting::default());
    let (store, kept) = Store::open(&config(dir), Arc::clone(&observer) as _).unwrap();
    (store, kept, observer)
}

fn record(revision: u64, id: &str, body: Option<&str>, at_us: Option<i64>) -> Record {
    Record {
        revision,
        kind: "worker",
        id: id.to_owned(),
        entry: body.map(str::to_owned),
        transition: at_us.map(|at_us| TransitionRecord {
            at_us,
            body: format!(r#"{{"id":"{id}","revision":{revision}}}"#),
        }),
        appended: Instant::now(),
    }
}

fn now_us() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since_epoch.as_micros()).unwrap()
}

/// Waits until `done` holds, looking again after each of the writer's commits or failures (and
/// every 20 ms, for what the writer does without telling, like pruning); fails after 10 s.
fn wait_for(observer: &Counting, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut events = observer.events.lock().unwrap();
    while !done() {
        let now = Instant::now();
        assert!(now < deadline, "timed out waiting for {what}");
        let slice = (deadline - now).min(Duration::from_millis(20));
        events = observer.woken.wait_timeout(events, slice).unwrap().0;
    }
}

#[test]
fn a_new_directory_is_created_empty() {
    let dir = TempDir::new().unwrap();
    let (store, kept, _) = open(&dir);
    assert_eq!(kept, Kept::default());
    assert!(store.path().ends_with("data/queen.db"));
    assert!(store.path().exists());
}

#[test]
fn what_was_recorded_comes_back_after_a_clean_close() {
    let dir = TempDir::new().unwrap();
    let (store, _, observer) = open(&dir);
    store.begin("epoch-a", 0).unwrap();
    store.record([
        record(1, "w1", Some("one"), Some(1_000)),
        record(2, "w2", Some("two"), Some(2_000)),
        record(3, "w1", Some("one again"), None),
        record(4, "w3", Some("three"), Some(3_000)),
        record(5, "w3", None, Some(4_000)),
    ]);
    wait_for(&observer, "the batch to commit", || store.committed() == 5);
    assert_eq!(store.health(), Health::Ok);
    // Several changes of one entry within a batch are one commit, not one each.
    assert_eq!(observer.commits.load(Ordering::Relaxed), 1);
    assert!(store.close(
        vec![("worker", "w2".to_owned(), "two, last seen later".to_owned())],
        Duration::from_secs(1),
    ));
    drop(store);

    let (_store, kept, _) = open(&dir);
    assert_eq!(kept.epoch.as_deref(), Some("epoch-a"));
    assert_eq!(kept.revision, 5);
    assert!(kept.clean);
    let entries: Vec<_> = kept
        .entries
        .iter()
        .map(|e| (e.kind.as_str(), e.id.as_str(), e.body.as_str()))
        .collect();
    assert_eq!(
        entries,
        [
            ("worker", "w1", "one again"),
            ("worker", "w2", "two, last seen later"),
        ]
    );
}

#[test]
fn a_store_dropped_without_close_is_not_clean_but_keeps_its_commits() {
    let dir = TempDir::new().unwrap();
    let (store, _, observer) = open(&dir);
    store.begin("epoch-a", 0).unwrap();
    store.record([record(1, "w1", Some("one"), Some(1_000))]);
    wait_for(&observer, "the commit", || store.committed() == 1);
    drop(store);

    let (_store, kept, _) = open(&dir);
    assert!(!kept.clean);
    assert_eq!(kept.revision, 1);
    assert_eq!(kept.entries.len(), 1);
}

#[test]
fn history_answers_filters_oldest_first() {
    let dir = TempDir::new().unwrap();
    let (store, _, observer) = open(&dir);
    store.begin("e", 0).unwrap();
    // Times within the history retention, or the writer's pruning would take them.
    let base = now_us() - 60_000_000;
    let mut records = Vec::new();
    for revision in 1..=10 {
        let id = if revision % 2 == 0 { "even" } else { "odd" };
        records.push(record(
            revision,
            id,
            Some("x"),
            Some(base + revision as i64 * 100),
        ));
    }
    store.record(records);
    wait_for(&observer, "the commit", || store.committed() == 10);
    let revisions = |query: EventQuery| -> Vec<u64> {
        store
            .events(&query)
            .unwrap()
            .into_iter()
            .map(|(r, _)| r)
            .collect()
    };
    // Without `since`: the newest `limit`, oldest first.
    assert_eq!(
        revisions(EventQuery {
            limit: 3,
            ..EventQuery::default()
        }),
        [8, 9, 10]
    );
    // With `since`: the first `limit` from then on; `until` is exclusive.
    assert_eq!(
        revisions(EventQuery {
            since_us: Some(base + 300),
            until_us: Some(base + 800),
            limit: 3,
            ..EventQuery::default()
        }),
        [3, 4, 5]
    );
    assert_eq!(
        revisions(EventQuery {
            id: Some("even".to_owned()),
            until_us: Some(base + 700),
            limit: 100,
            ..EventQuery::default()
        }),
        [2, 4, 6]
    );
    assert_eq!(
        revisions(EventQuery {
            kind: Some("hive"),
            limit: 100,
            ..EventQuery::default()
        }),
        Vec::<u64>::new()
    );
    let body = &store
        .events(&EventQuery {
            limit: 1,
            ..EventQuery::default()
        })
        .unwrap()[0]
        .1;
    assert_eq!(body, r#"{"id":"even","revision":10}"#);
}

#[test]
fn history_older_than_the_retention_is_pruned() {
    let dir = TempDir::new().unwrap();
    let observer = Arc::new(Counting::default());
    let config = StoreConfig {
        history_retention: Duration::from_secs(3600),
        ..config(&dir)
    };
    {
        let (store, _) = Store::open(&config, Arc::clone(&observer) as _).unwrap();
        store.begin("e", 0).unwrap();
        let now_us = now_us();
        store.record([
            record(1, "old", Some("x"), Some(now_us - 7_200_000_000)),
            record(2, "new", Some("x"), Some(now_us - 60_000_000)),
        ]);
        wait_for(&observer, "the commit", || store.committed() == 2);
        assert!(store.close(Vec::new(), Duration::from_secs(1)));
    }
    // Pruning runs when a writer starts, and then every minute.
    let (store, _) = Store::open(&config, Arc::clone(&observer) as _).unwrap();
    store.begin("e", 2).unwrap();
    let ids = || -> Vec<String> {
        store
            .events(&EventQuery {
                limit: 10,
                ..EventQuery::default()
            })
            .unwrap()
            .into_iter()
            .map(|(_, body)| body)
            .collect()
    };
    wait_for(&observer, "the old transition to be pruned", || {
        ids().len() == 1
    });
    assert!(ids()[0].contains(r#""id":"new""#));
}

#[test]
fn a_failing_write_is_retried_and_nothing_is_lost() {
    let dir = TempDir::new().unwrap();
    let (store, _, observer) = open(&dir);
    store.begin("e", 0).unwrap();
    // Another connection holding the write lock makes every commit fail with "database is
    // locked", as a real second writer would.
    let blocker = rusqlite::Connection::open(store.path()).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    store.record([record(1, "w1", Some("one"), Some(1_000))]);
    wait_for(&observer, "the store to fail", || {
        store.health() == Health::Failing
    });
    assert!(observer.failures.load(Ordering::Relaxed) >= 1);
    store.record([record(2, "w2", Some("two"), Some(2_000))]);
    assert_eq!(store.committed(), 0);

    blocker.execute_batch("ROLLBACK").unwrap();
    wait_for(&observer, "the store to recover", || {
        store.health() == Health::Ok && store.committed() == 2
    });
    assert!(store.close(Vec::new(), Duration::from_secs(1)));
    drop(store);
    let (_store, kept, _) = open(&dir);
    assert_eq!(kept.entries.len(), 2);
    assert_eq!(kept.revision, 2);
}

#[test]
fn a_second_store_on_one_directory_is_refused() {
    let dir = TempDir::new().unwrap();
    let (_first, _, _) = open(&dir);
    let error = Store::open(&config(&dir), Arc::new(Counting::default()) as _).unwrap_err();
    assert!(matches!(error, OpenError::InUse { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("in use by another queen-rbee"),
        "{message}"
    );
    assert!(
        message.contains(&dir.path().join("data").display().to_string()),
        "{message}"
    );
}

#[test]
fn unusable_directories_and_files_are_refused_with_their_path() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, "not a directory").unwrap();
    let under_file = StoreConfig {
        dir: file.join("data"),
        history_retention: Duration::from_secs(60),
    };
    let error = Store::open(&under_file, Arc::new(Counting::default()) as _).unwrap_err();
    assert!(matches!(error, OpenError::CreateDir { .. }), "{error}");
    assert!(error.to_string().contains("a-file/data"), "{error}");

    let garbage = TempDir::new().unwrap();
    fs::create_dir_all(garbage.path().join("data")).unwrap();
    let bytes: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(garbage.path().join("data/queen.db"), bytes).unwrap();
    let error = Store::open(&config(&garbage), Arc::new(Counting::default()) as _).unwrap_err();
    assert!(matches!(error, OpenError::Damaged { .. }), "{error}");
    assert!(error.to_string().contains("queen.db"), "{error}");
    assert!(!error.to_string().contains('\n'), "one line: {error}");
}

#[test]
fn a_truncated_database_is_refused() {
    let dir = TempDir::new().unwrap();
    {
        let (store, _, observer) = open(&dir);
        store.begin("e", 0).unwrap();
        let body = "x".repeat(2_000);
        store.record((1..=400).map(|r| record(r, &format!("w{r}"), Some(&body), Some(r as i64))));
        wait_for(&observer, "the commit", || store.committed() == 400);
        assert!(store.close(Vec::new(), Duration::from_secs(1)));
    }
    let path = dir.path().join("data/queen.db");
    let len = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let error = Store::open(&config(&dir), Arc::new(Counting::default()) as _).unwrap_err();
    assert!(matches!(error, OpenError::Damaged { .. }), "{error}");
}

#[test]
fn a_database_of_a_newer_schema_is_refused() {
    let dir = TempDir::new().unwrap();
    drop(open(&dir));
    let conn = rusqlite::Connection::open(dir.path().join("data/queen.db")).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let error = Store::open(&config(&dir), Arc::new(Counting::default()) as _).unwrap_err();
    assert!(
        matches!(error, OpenError::Newer { found: 99, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("schema version 99"), "{error}");
}
