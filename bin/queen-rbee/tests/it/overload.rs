//! Slow and hostile clients: stalled SSE subscribers, slowloris headers and an id flood must not
//! slow the well-behaved clients down, grow the queen's memory or knock it over.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::{StreamExt as _, stream};
use parking_lot::Mutex;
use serde_json::Value;
use test_support::{Daemon, JsonClient, Signal, wait_until};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpSocket, TcpStream},
};

use crate::support::{TestQueen, config, worker};

const WAIT: Duration = Duration::from_secs(20);

/// Resident memory of a process in KiB, from `/proc/PID/status`.
pub(crate) fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Opens a subscription to `path` and never reads from it; a tiny receive buffer makes the
/// queen's writes stall after a few frames, as they would for a frozen client on a slow link.
pub(crate) async fn stalled_subscriber(addr: std::net::SocketAddr, path: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: queen\r\nAccept: text/event-stream\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// Reads `heartbeat` events from the stream and records when each seq arrived.
async fn read_snapshots(
    client: reqwest::Client,
    url: String,
    seen: Arc<Mutex<Vec<(Instant, u64)>>>,
) {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    // Where the search for the end of the current event resumes, so bytes are scanned once.
    let mut scanned = 0;
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else { return };
        buf.extend_from_slice(&chunk);
        while let Some(at) = memchr::memmem::find(&buf[scanned..], b"\n\n") {
            let end = scanned + at + 2;
            let head = String::from_utf8_lossy(&buf[..end.min(128)]);
            if head.starts_with("event: heartbeat") || head.contains("\nevent: heartbeat") {
                seen.lock().push((Instant::now(), seq_of(&head)));
            }
            buf.drain(..end);
            scanned = 0;
        }
        scanned = buf.len().saturating_sub(1);
    }
}

/// Pulls `"seq":N` out of a snapshot frame without parsing the whole (large) document.
fn seq_of(frame: &str) -> u64 {
    let at = frame.find("\"seq\":").unwrap() + 6;
    frame[at..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0, |n, b| n * 10 + u64::from(b - b'0'))
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_subscribers_neither_delay_readers_nor_grow_memory() {
    const STALLED: usize = 500;
    const READERS: usize = 50;
    const WINDOW: Duration = Duration::from_secs(8);
    const INTERVAL_MS: u64 = 100;

    let mut queen = Daemon::builder_for(env!("CARGO_BIN_EXE_queen-rbee"))
        .name("queen-rbee")
        .args([
            "--ephemeral",
            "--bind",
            "127.0.0.1:0",
            "--snapshot-interval",
            "100ms",
            "--heartbeat-timeout",
            "10m",
        ])
        .spawn();
    let addr = queen.listening_addr(WAIT).await;
    let pid = queen.pid().as_raw();
    let client = JsonClient::new(format!("http://{addr}"));
    // Sixty workers make each snapshot about 25 KiB, so a stalled socket's kernel buffers (about
    // 1 MiB on loopback) fill within a few seconds and the queen's writes to it block.
    for i in 0..60 {
        let (status, _) = client
            .post("/v1/worker-heartbeat", &worker(&format!("w{i:03}")))
            .await
            .unwrap();
        assert_eq!(status, 200);
    }

    let mut stalled = Vec::with_capacity(STALLED);
    for _ in 0..STALLED {
        stalled.push(stalled_subscriber(addr, "/v1/heartbeats/stream").await);
    }
    let http = reqwest::Client::builder().build().unwrap();
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let task = tokio::spawn(read_snapshots(
                http.clone(),
                client.url("/v1/heartbeats/stream"),
                seen.clone(),
            ));
            (seen, task)
        })
        .collect();
    let subscribers = (STALLED + READERS) as f64;
    wait_until("every subscriber to be counted", WAIT, || async {
        let text = client
            .client()
            .get(client.url("/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (metric(&text, "rbee_sse_subscribers")? >= subscribers).then_some(())
    })
    .await;

    // Measure over a window that starts once everyone is connected and the first frames are out.
    let start = Instant::now();
    let rss_start = rss_kib(pid);
    let mut rss_max = rss_start;
    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    while start.elapsed() < WINDOW {
        ticks.tick().await;
        rss_max = rss_max.max(rss_kib(pid));
    }
    let end = Instant::now();
    let (status, _) = client.get("/health").await.unwrap();
    assert_eq!(status, 200, "the queen still answers");

    let expected = (WINDOW.as_millis() as u64) / INTERVAL_MS;
    let mut worst_gap = Duration::ZERO;
    let mut worst_count = u64::MAX;
    let mut skipped = 0;
    for (seen, task) in &readers {
        let seen: Vec<(Instant, u64)> = seen
            .lock()
            .iter()
            .copied()
            .filter(|(at, _)| *at >= start && *at <= end)
            .collect();
        worst_count = worst_count.min(seen.len() as u64);
        for pair in seen.windows(2) {
            let ((t0, s0), (t1, s1)) = (pair[0], pair[1]);
            assert!(s1 > s0, "seq went backwards: {s0} then {s1}");
            skipped += s1 - s0 - 1;
            worst_gap = worst_gap.max(t1 - t0);
        }
        assert!(!task.is_finished(), "a reader's stream ended early");
    }
    for (_, task) in &readers {
        task.abort();
    }
    drop(stalled);
    let rss_growth = rss_max.saturating_sub(rss_start);
    let measured = format!(
        "stalled={STALLED} readers={READERS} window={WINDOW:?} expected~{expected} per reader: \
         fewest={worst_count} worst_gap={worst_gap:?} skipped_total={skipped} \
         rss_start={rss_start}KiB rss_max={rss_max}KiB"
    );
    // Snapshots come every 100 ms. A publisher held up by stalled sockets would starve every
    // reader for the rest of the window; the margins below only absorb a busy machine (an idle
    // one shows gaps near 300 ms and a few percent skipped).
    assert!(
        worst_gap < Duration::from_millis(2500),
        "a reader waited too long; {measured}"
    );
    assert!(
        worst_count * 5 >= expected * 2,
        "a reader missed too many; {measured}"
    );
    assert!(
        skipped * 4 <= expected * READERS as u64,
        "too many skipped; {measured}"
    );
    // Queuing frames per stalled subscriber would grow by megabytes every second.
    assert!(
        rss_growth < 64 * 1024,
        "rss grew by {rss_growth} KiB; {measured}"
    );
    queen.signal(Signal::SIGTERM);
    assert_eq!(queen.wait_exit(WAIT).await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_cut_off_and_others_are_served() {
    const SLOW: usize = 100;
    // The queen's header read timeout is 10 s; allow the busy box a generous margin.
    const CUT_OFF_WITHIN: Duration = Duration::from_secs(20);

    let queen = TestQueen::start(config()).await;
    let addr = queen.addr;
    let started = Instant::now();
    let slow: Vec<_> = (0..SLOW)
        .map(|_| {
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                let request = b"GET /health HTTP/1.1\r\nHost: queen\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
                let mut ticks = tokio::time::interval(Duration::from_secs(1));
                let mut sent = 0;
                let mut buf = [0u8; 256];
                loop {
                    tokio::select! {
                        read = stream.read(&mut buf) => {
                            // Closed (0 bytes or reset) or answered: either way the server is done.
                            let answered = matches!(read, Ok(n) if n > 0);
                            return (started.elapsed(), sent, answered);
                        }
                        _ = ticks.tick() => {
                            if sent == request.len() {
                                continue;
                            }
                            if stream.write_all(&request[sent..=sent]).await.is_err() {
                                return (started.elapsed(), sent, false);
                            }
                            sent += 1;
                        }
                    }
                }
            })
        })
        .collect();

    // While they trickle, ordinary requests are served promptly.
    let mut worst = Duration::ZERO;
    let mut ticks = tokio::time::interval(Duration::from_millis(200));
    while started.elapsed() < Duration::from_secs(5) {
        ticks.tick().await;
        let t = Instant::now();
        let (status, body) = queen.client.get("/health").await.unwrap();
        assert_eq!(
            (status.as_u16(), body["status"].as_str()),
            (200, Some("ok"))
        );
        worst = worst.max(t.elapsed());
    }
    assert!(worst < Duration::from_secs(1), "/health took {worst:?}");

    let outcomes = tokio::time::timeout(CUT_OFF_WITHIN + Duration::from_secs(5), async {
        let mut out = Vec::new();
        for task in slow {
            out.push(task.await.unwrap());
        }
        out
    })
    .await
    .expect("the slowloris connections were never closed");
    for (after, sent, answered) in outcomes {
        assert!(after < CUT_OFF_WITHIN, "a slow connection lived {after:?}");
        assert!(
            after >= Duration::from_secs(5),
            "cut off too early: {after:?}"
        );
        assert!(
            !answered,
            "a trickled request was served after {sent} bytes"
        );
    }
    let (status, _) = queen.client.get("/health").await.unwrap();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_id_flood_hits_the_cap_with_429_and_the_queen_stays_responsive() {
    const IDS: usize = 10_000;
    const CAP: usize = 1000;
    let mut config = config();
    config.max_entries = CAP;
    // Entries must stay online for the whole flood so the cap is what refuses them.
    config.heartbeat_timeout = Duration::from_secs(600);
    let queen = TestQueen::start(config).await;

    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = {
        let client = queen.client.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut ticks = tokio::time::interval(Duration::from_millis(50));
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                ticks.tick().await;
                let t = Instant::now();
                let (status, _) = client.get("/health").await.unwrap();
                assert_eq!(status, 200);
                latencies.push(t.elapsed());
            }
            latencies
        })
    };

    let outcomes: Vec<(String, u16, Value)> = stream::iter(0..IDS)
        .map(|i| {
            let client = queen.client.clone();
            async move {
                let id = format!("flood-{i:05}");
                let (status, body) = client
                    .post("/v1/worker-heartbeat", &worker(&id))
                    .await
                    .unwrap();
                (id, status.as_u16(), body)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut latencies = probe.await.unwrap();

    let accepted: Vec<&str> = outcomes
        .iter()
        .filter(|(_, s, _)| *s == 200)
        .map(|(id, _, _)| id.as_str())
        .collect();
    let refused: Vec<&Value> = outcomes
        .iter()
        .filter(|(_, s, _)| *s == 429)
        .map(|(_, _, b)| b)
        .collect();
    assert_eq!(accepted.len(), CAP);
    assert_eq!(refused.len(), IDS - CAP, "every other answer is 429");
    for body in refused {
        assert_eq!(body["error"]["code"], "registry_full");
        assert!(body["error"]["message"].is_string());
    }
    let listed = queen.get("/v1/workers").await;
    assert_eq!(listed.as_array().unwrap().len(), CAP);
    // A known id still updates; a new one is still refused.
    queen
        .post("/v1/worker-heartbeat", &worker(accepted[0]))
        .await;
    let (status, body) = queen
        .client
        .post("/v1/worker-heartbeat", &worker("one-too-many"))
        .await
        .unwrap();
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "registry_full");

    latencies.sort_unstable();
    assert!(latencies.len() >= 5, "too few probes: {}", latencies.len());
    let median = latencies[latencies.len() / 2];
    let worst = latencies[latencies.len() - 1];
    let measured = format!(
        "health during flood: probes={} median={median:?} worst={worst:?}",
        latencies.len()
    );
    assert!(median < Duration::from_millis(100), "{measured}");
    assert!(worst < Duration::from_secs(1), "{measured}");
}
