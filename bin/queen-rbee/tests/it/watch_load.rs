//! The watch under load: 10,000 workers, watchers that stop reading and watchers that read.
//! Readers must stay on time, the queen's memory must stay bounded, and a stalled watcher that
//! fell off the kept history must be brought back with a fresh `sync` when it reads again.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::{StreamExt as _, stream};
use parking_lot::Mutex;
use test_support::{Daemon, JsonClient, Signal, wait_until};
use tokio::{io::AsyncReadExt as _, net::TcpStream};

use crate::{
    overload::{rss_kib, stalled_subscriber},
    support::worker,
};

const WAIT: Duration = Duration::from_secs(30);
const WORKERS: usize = 10_000;
const STALLED: usize = 500;
const READERS: usize = 50;
const CHANGES: usize = 600;
/// What the queen keeps for resuming watchers, lowered so that the stalled ones fall off it
/// while the readers, never more than a moment behind, do not.
const HISTORY: usize = 300;
const HISTORY_AGE: &str = "3s";

/// Reads a watch and records when each changed worker's upsert arrived.
async fn read_watch(
    client: reqwest::Client,
    url: String,
    seen: Arc<Mutex<HashMap<String, Instant>>>,
) {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut scanned = 0;
    while let Some(Ok(chunk)) = body.next().await {
        buf.extend_from_slice(&chunk);
        while let Some(at) = memchr::memmem::find(&buf[scanned..], b"\n\n") {
            let end = scanned + at + 2;
            if buf.starts_with(b"event: sync") || buf.starts_with(b"retry: 2000\nevent: sync") {
                seen.lock().insert(SYNCED.to_owned(), Instant::now());
            } else if buf.starts_with(b"event: upsert") {
                let text = String::from_utf8_lossy(&buf[..end]);
                if let Some(id) = changed_id(&text) {
                    seen.lock().insert(id, Instant::now());
                }
            }
            buf.drain(..end);
            scanned = 0;
        }
        scanned = buf.len().saturating_sub(1);
    }
}

/// Marks, in a reader's record, that its sync arrived.
const SYNCED: &str = "synced";

/// The id of a worker the test changed (`c…`), from an upsert's data.
fn changed_id(event: &str) -> Option<String> {
    let at = event.find("\"id\":\"c")? + 6;
    let rest = &event[at..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// Reads a stalled watcher's socket until `needle` has been seen `times` times.
async fn read_until_count(stream: &mut TcpStream, needle: &[u8], times: usize) -> usize {
    let mut buf = vec![0u8; 1 << 16];
    let mut tail: Vec<u8> = Vec::new();
    let mut seen = 0;
    let mut total = 0;
    while seen < times {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the queen closed a stalled watch");
        total += n;
        tail.extend_from_slice(&buf[..n]);
        seen += memchr::memmem::find_iter(&tail, needle).count();
        // Keep only what could begin a needle split across reads.
        let keep = tail.len().min(needle.len() - 1);
        tail.drain(..tail.len() - keep);
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_watchers_get_a_sync_and_readers_stay_on_time() {
    let history = HISTORY.to_string();
    let mut queen = Daemon::builder_for(env!("CARGO_BIN_EXE_queen-rbee"))
        .name("queen-rbee")
        .args([
            "--ephemeral",
            "--bind",
            "127.0.0.1:0",
            "--heartbeat-timeout",
            "10m",
            "--max-entries",
            "20000",
            "--watch-history",
            &history,
            "--watch-history-age",
            HISTORY_AGE,
        ])
        .spawn();
    let addr = queen.listening_addr(WAIT).await;
    let pid = queen.pid().as_raw();
    let client = JsonClient::new(format!("http://{addr}"));
    stream::iter(0..WORKERS)
        .for_each_concurrent(32, |i| {
            let client = &client;
            async move {
                let id = if i < CHANGES {
                    format!("c{i:05}")
                } else {
                    format!("w{i:05}")
                };
                let (status, _) = client
                    .post("/v1/worker-heartbeat", &worker(&id))
                    .await
                    .unwrap();
                assert_eq!(status, 200);
            }
        })
        .await;

    let mut stalled = Vec::with_capacity(STALLED);
    for _ in 0..STALLED {
        stalled.push(stalled_subscriber(addr, "/v1/watch").await);
    }
    let http = reqwest::Client::builder().build().unwrap();
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let seen = Arc::new(Mutex::new(HashMap::new()));
            let task = tokio::spawn(read_watch(
                http.clone(),
                client.url("/v1/watch"),
                seen.clone(),
            ));
            (seen, task)
        })
        .collect();
    for (seen, _) in &readers {
        wait_until("every reader's sync", WAIT, || {
            let synced = seen.lock().contains_key(SYNCED);
            async move { synced.then_some(()) }
        })
        .await;
    }
    let rss_start = rss_kib(pid);

    // About 100 changes a second: each changed worker goes busy once.
    let mut acked = HashMap::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(10));
    let mut rss_max = rss_start;
    for i in 0..CHANGES {
        ticks.tick().await;
        let id = format!("c{i:05}");
        let mut body = worker(&id);
        body["worker"]["status"] = serde_json::json!("busy");
        let (status, _) = client.post("/v1/worker-heartbeat", &body).await.unwrap();
        assert_eq!(status, 200);
        acked.insert(id, Instant::now());
        if i % 50 == 0 {
            rss_max = rss_max.max(rss_kib(pid));
        }
    }

    // Every reader receives every change, promptly.
    for (seen, _) in &readers {
        wait_until("every change at every reader", WAIT, || {
            let done = seen.lock().len() > CHANGES;
            async move { done.then_some(()) }
        })
        .await;
    }
    let mut delays: Vec<Duration> = readers
        .iter()
        .flat_map(|(seen, _)| {
            let seen = seen.lock();
            acked
                .iter()
                .map(|(id, at)| seen[id].saturating_duration_since(*at))
                .collect::<Vec<_>>()
        })
        .collect();
    delays.sort();
    let p99 = delays[delays.len() * 99 / 100];
    let max = delays[delays.len() - 1];
    rss_max = rss_max.max(rss_kib(pid));
    let measured = format!(
        "workers={WORKERS} stalled={STALLED} readers={READERS} changes={CHANGES} p99={p99:?} \
         max={max:?} rss_start={rss_start}KiB rss_max={rss_max}KiB"
    );
    // An idle machine shows a p99 of a few milliseconds; the margin absorbs a busy one.
    assert!(
        p99 < Duration::from_secs(1),
        "readers fell behind; {measured}"
    );
    // Queuing changes per stalled watcher would grow with every change they miss.
    assert!(
        rss_max.saturating_sub(rss_start) < 96 * 1024,
        "rss grew too much; {measured}"
    );

    // A stalled watcher fell off the kept history: reading again, it finishes its first sync
    // and then receives a second one instead of the changes it missed.
    for watcher in stalled.iter_mut().take(3) {
        let read = tokio::time::timeout(WAIT, read_until_count(watcher, b"event: sync", 2))
            .await
            .unwrap_or_else(|_| panic!("no second sync for a stalled watcher; {measured}"));
        assert!(read > 0);
    }
    for (_, task) in &readers {
        task.abort();
    }
    drop(stalled);
    queen.signal(Signal::SIGTERM);
    assert_eq!(queen.wait_exit(WAIT).await.code(), Some(0));
}
