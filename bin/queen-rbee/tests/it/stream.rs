//! The Server-Sent Events stream over real sockets: first event, change-driven and periodic
//! snapshots, transitions, ids, slow subscribers, auth and shutdown.

use std::time::Duration;

use chrono::TimeDelta;
use serde_json::json;
use test_support::{SseEvent, SseRecorder, wait_for, wait_until};
use tokio::{io::AsyncWriteExt as _, net::TcpSocket, time::Instant};

use crate::support::{TOKEN, TestQueen, config, time, with_token, worker};

const WAIT: Duration = Duration::from_secs(5);

fn has_worker(event: &SseEvent, id: &str) -> bool {
    event.event == "heartbeat" && event.data.contains(&format!("\"{id}\""))
}

async fn subscribers(queen: &TestQueen) -> Option<u64> {
    let text = queen
        .client
        .client()
        .get(queen.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("rbee_sse_subscribers "))
        .and_then(|n| n.parse().ok())
}

#[tokio::test]
async fn the_stream_starts_with_headers_retry_and_the_current_snapshot() {
    let queen = TestQueen::start(config()).await;
    queen.post("/v1/worker-heartbeat", &worker("w1")).await;

    let response = queen
        .client
        .client()
        .get(queen.url("/v1/heartbeats/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-accel-buffering"], "no");
    let mut body = response;
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(WAIT, body.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.starts_with("retry: "), "{text}");
    assert!(text.contains("event: heartbeat\n"), "{text}");
    assert!(text.contains("\nid: 1\n"), "{text}");

    let recorder = SseRecorder::connect(&queen.url("/v1/heartbeats/stream"), None).await;
    let first = recorder.wait_for("a first event", WAIT, |_| true).await;
    assert_eq!(first.event, "heartbeat");
    let snapshot = first.json();
    assert_eq!(snapshot["worker_ids"], json!(["w1"]));
    for field in [
        "seq",
        "timestamp",
        "revision",
        "workers_online",
        "workers_available",
        "hives_online",
        "hives_available",
        "hive_ids",
    ] {
        assert!(snapshot.get(field).is_some(), "missing {field}");
    }
    // The summary stream carries counts and ids only; entries travel on /v1/watch.
    assert!(snapshot.get("workers").is_none(), "{snapshot}");
    assert!(snapshot.get("hives").is_none(), "{snapshot}");
}

#[tokio::test]
async fn a_change_is_streamed_within_100ms() {
    // The periodic snapshot is far away, so only the change can explain the event.
    let queen = TestQueen::start(config()).await;
    let recorder = SseRecorder::connect(&queen.url("/v1/heartbeats/stream"), None).await;
    recorder
        .wait_for("the first snapshot", WAIT, |e| e.event == "heartbeat")
        .await;

    let posted = Instant::now();
    queen.post("/v1/worker-heartbeat", &worker("fresh")).await;
    let event = recorder
        .wait_for("a snapshot with the new worker", WAIT, |e| {
            has_worker(e, "fresh")
        })
        .await;
    let snapshot = event.json();
    // Measured on the queen's clock: from receipt (the entry's last_seen) to the summary.
    let entry = queen.entry("worker", "fresh").await.unwrap();
    let delay = time(&snapshot["timestamp"]) - time(&entry["last_seen"]);
    assert!(
        delay <= TimeDelta::milliseconds(100),
        "snapshot taken {delay} after the change"
    );
    assert!(
        event.received - posted < Duration::from_secs(1),
        "delivered after {:?}",
        event.received - posted
    );

    // A status change is a change too.
    let mut busy = worker("fresh");
    busy["worker"]["status"] = json!("busy");
    queen.post("/v1/worker-heartbeat", &busy).await;
    recorder
        .wait_for("a summary without the busy worker available", WAIT, |e| {
            e.event == "heartbeat"
                && e.json()["workers_online"] == 1
                && e.json()["workers_available"] == 0
        })
        .await;
}

#[tokio::test]
async fn transitions_are_streamed_with_increasing_ids() {
    let queen = TestQueen::start(config()).await;
    let recorder = SseRecorder::connect(&queen.url("/v1/heartbeats/stream"), None).await;
    recorder
        .wait_for("the first snapshot", WAIT, |_| true)
        .await;
    queen.post("/v1/worker-heartbeat", &worker("w1")).await;
    let first = recorder
        .wait_for_json("transition", "first heartbeat", WAIT, |t| {
            t["id"] == "w1" && t["to"] == "online"
        })
        .await;
    assert_eq!(first["kind"], "worker");
    assert_eq!(first["from"], serde_json::Value::Null);
    assert_eq!(first["reason"], "first heartbeat");
    assert!(first["at"].is_string());

    let mut busy = worker("w1");
    busy["worker"]["status"] = json!("busy");
    queen.post("/v1/worker-heartbeat", &busy).await;
    recorder
        .wait_for_json("transition", "status change", WAIT, |t| {
            t["reason"] == "status ready -> busy"
        })
        .await;
    let offline = recorder
        .wait_for_json("transition", "timeout", WAIT, |t| t["to"] == "offline")
        .await;
    assert_eq!(offline["reason"], "heartbeat timeout");
    recorder
        .wait_for("a snapshot without online workers", WAIT, |e| {
            e.event == "heartbeat"
                && e.json()["workers_online"] == 0
                && e.json()["worker_ids"] == json!([])
        })
        .await;

    let ids: Vec<u64> = recorder
        .events()
        .iter()
        .map(|e| e.id.as_deref().unwrap().parse().unwrap())
        .collect();
    assert!(ids.len() >= 5, "{ids:?}");
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids not increasing: {ids:?}"
    );
}

#[tokio::test]
async fn snapshots_repeat_every_snapshot_interval() {
    let mut config = config();
    config.snapshot_interval = Duration::from_millis(150);
    let queen = TestQueen::start(config).await;
    let recorder = SseRecorder::connect(&queen.url("/v1/heartbeats/stream"), None).await;
    wait_for("four snapshots", WAIT, || {
        recorder.count(|e| e.event == "heartbeat") >= 4
    })
    .await;
    let seqs: Vec<u64> = recorder
        .events()
        .iter()
        .filter(|e| e.event == "heartbeat")
        .map(|e| e.json()["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[tokio::test]
async fn subscribers_that_never_read_do_not_delay_the_others() {
    let mut config = config();
    config.snapshot_interval = Duration::from_millis(20);
    config.heartbeat_timeout = Duration::from_secs(30);
    let queen = TestQueen::start(config).await;
    // Sizeable snapshots, so the stalled connections' buffers fill within a fraction of a second.
    for i in 0..40 {
        let mut body = worker(&format!("bulk-{i:03}"));
        body["worker"]["model_id"] = json!(format!("org/{}", "m".repeat(240)));
        queen.post("/v1/worker-heartbeat", &body).await;
    }

    let mut stalled = Vec::new();
    for _ in 0..4 {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(queen.addr).await.unwrap();
        stream
            .write_all(b"GET /v1/heartbeats/stream HTTP/1.1\r\nhost: queen\r\naccept: text/event-stream\r\n\r\n")
            .await
            .unwrap();
        stalled.push(stream);
    }
    wait_until("the stalled subscribers to be counted", WAIT, || async {
        (subscribers(&queen).await? >= 4).then_some(())
    })
    .await;

    let recorder = SseRecorder::connect(&queen.url("/v1/heartbeats/stream"), None).await;
    // About a megabyte has been offered to each stalled connection by now.
    let flowing = Instant::now();
    wait_for("50 snapshots to the reading subscriber", WAIT, || {
        recorder.count(|e| e.event == "heartbeat") >= 50
    })
    .await;
    assert!(
        flowing.elapsed() < Duration::from_secs(4),
        "50 snapshots took {:?}",
        flowing.elapsed()
    );

    let posted = Instant::now();
    queen.post("/v1/worker-heartbeat", &worker("probe")).await;
    let event = recorder
        .wait_for("the probe worker", WAIT, |e| has_worker(e, "probe"))
        .await;
    assert!(
        event.received - posted < Duration::from_secs(1),
        "delivered after {:?}",
        event.received - posted
    );
    assert_eq!(
        subscribers(&queen).await,
        Some(5),
        "stalled subscribers are still connected"
    );
    drop(stalled);
}

#[tokio::test]
async fn the_subscriber_gauge_drops_when_a_client_leaves() {
    let queen = TestQueen::start(config()).await;
    let recorder = SseRecorder::connect(&queen.url("/v1/heartbeats/stream"), None).await;
    recorder
        .wait_for("the first snapshot", WAIT, |_| true)
        .await;
    assert_eq!(subscribers(&queen).await, Some(1));
    drop(recorder);
    wait_until("the gauge to drop", WAIT, || async {
        (subscribers(&queen).await? == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_stream_takes_the_token_as_a_query_parameter() {
    let queen = TestQueen::start(with_token(config())).await;
    let stream = queen.url("/v1/heartbeats/stream");
    let response = queen.client.client().get(&stream).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let response = queen
        .client
        .client()
        .get(format!("{stream}?token=wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let by_query = SseRecorder::connect(&format!("{stream}?token={TOKEN}"), None).await;
    by_query
        .wait_for("a snapshot via ?token=", WAIT, |e| e.event == "heartbeat")
        .await;
    let by_header = SseRecorder::connect(&stream, Some(TOKEN)).await;
    by_header
        .wait_for("a snapshot via the header", WAIT, |e| {
            e.event == "heartbeat"
        })
        .await;
}

#[tokio::test]
async fn shutdown_ends_open_streams_promptly() {
    let mut queen = TestQueen::start(config()).await;
    let recorders = [
        SseRecorder::connect(&queen.url("/v1/heartbeats/stream"), None).await,
        SseRecorder::connect(&queen.url("/v1/heartbeats/stream"), None).await,
    ];
    for recorder in &recorders {
        recorder
            .wait_for("the first snapshot", WAIT, |_| true)
            .await;
    }
    let cancelled = Instant::now();
    queen.shutdown.cancel();
    let task = queen.task.take().unwrap();
    let result = tokio::time::timeout(Duration::from_secs(2), task).await;
    assert!(
        matches!(result, Ok(Ok(Ok(())))),
        "run did not return cleanly: {result:?}"
    );
    assert!(cancelled.elapsed() < Duration::from_secs(2));
    for recorder in &recorders {
        wait_for("the stream to end", WAIT, || recorder.ended()).await;
    }
}

#[tokio::test]
async fn a_subscriber_after_everyone_left_gets_a_current_snapshot() {
    // A short interval wakes the publisher often, so it drops the frame nobody watches.
    let mut config = config();
    config.snapshot_interval = Duration::from_millis(100);
    let queen = TestQueen::start(config).await;
    queen.post("/v1/worker-heartbeat", &worker("early")).await;
    let recorder = SseRecorder::connect(&queen.url("/v1/heartbeats/stream"), None).await;
    recorder
        .wait_for("a snapshot with the first worker", WAIT, |e| {
            has_worker(e, "early")
        })
        .await;
    drop(recorder);
    wait_until("the subscriber to leave", WAIT, || async {
        (subscribers(&queen).await? == 0).then_some(())
    })
    .await;

    queen.post("/v1/worker-heartbeat", &worker("late")).await;
    let recorder = SseRecorder::connect(&queen.url("/v1/heartbeats/stream"), None).await;
    let first = recorder
        .wait_for("the first snapshot", WAIT, |e| e.event == "heartbeat")
        .await;
    assert!(
        has_worker(&first, "early") && has_worker(&first, "late"),
        "{}",
        first.data
    );
}

#[tokio::test]
async fn the_rest_snapshot_includes_a_change_made_just_before_it() {
    // With a subscriber the publisher holds a frame; the REST answer must not be that older frame.
    let queen = TestQueen::start(config()).await;
    let recorder = SseRecorder::connect(&queen.url("/v1/heartbeats/stream"), None).await;
    recorder
        .wait_for("the first snapshot", WAIT, |e| e.event == "heartbeat")
        .await;
    for id in ["r1", "r2", "r3"] {
        queen.post("/v1/worker-heartbeat", &worker(id)).await;
        let snapshot = queen.get("/v1/heartbeats/snapshot").await;
        let ids = snapshot["worker_ids"].as_array().unwrap();
        assert!(ids.iter().any(|v| v == id), "{id} missing from {snapshot}");
    }
    let first = queen.get("/v1/heartbeats/snapshot").await;
    let second = queen.get("/v1/heartbeats/snapshot").await;
    assert!(second["seq"].as_u64().unwrap() > first["seq"].as_u64().unwrap());
}
