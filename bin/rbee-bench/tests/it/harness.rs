//! The ceiling server as a child process, and each load generator against it for about a second.

use std::{path::Path, sync::Arc, time::Duration};

use rbee_bench::{
    loadgen::{BeatControl, Pace, closed_loop, paced, send_each},
    payload::heartbeat_requests,
    process::Server,
    stats::Summary,
};
use tokio::time::Instant;

async fn ceiling() -> Server {
    let exe = Path::new(env!("CARGO_BIN_EXE_rbee-bench"));
    let args = [
        "ceiling-server".to_owned(),
        "--bind".to_owned(),
        "127.0.0.1:0".to_owned(),
    ];
    Server::spawn("ceiling", exe, &args, None).await.unwrap()
}

#[tokio::test]
async fn closed_loop_against_ceiling_counts_only_successes() {
    let server = ceiling().await;
    let requests: Arc<[_]> = heartbeat_requests(server.addr, "it-w", 50).into();
    let r = closed_loop(
        server.addr,
        requests,
        4,
        Duration::from_millis(100),
        Duration::from_secs(1),
    )
    .await;
    assert!(r.ok > 0, "{r:?}");
    assert_eq!(r.failed, 0);
    assert!(r.rps() > 0.0);
    let s = r.latency.summary();
    assert_eq!(s.count, r.ok);
    assert!(s.p50_ms <= s.p99_ms && s.p99_ms <= s.max_ms, "{s:?}");
    let stats = server.stats().unwrap();
    assert!(stats.rss_bytes > 0 && stats.cpu_seconds >= 0.0);
    server.stop().await;
}

#[tokio::test]
async fn send_each_sends_every_request_once() {
    let server = ceiling().await;
    let requests: Arc<[_]> = heartbeat_requests(server.addr, "it-w", 300).into();
    let r = send_each(server.addr, requests, 8, Duration::from_secs(20)).await;
    assert_eq!((r.ok, r.failed), (300, 0));
    server.stop().await;
}

#[tokio::test]
async fn paced_beats_stop_per_worker_and_remember_last_ack() {
    let server = ceiling().await;
    let n = 20;
    let requests: Arc<[_]> = heartbeat_requests(server.addr, "it-w", n).into();
    let control = BeatControl::new(n);
    let start = Instant::now();
    let pace = Pace {
        interval: Duration::from_millis(100),
        connections: 4,
        record_from: start,
        deadline: start + Duration::from_secs(10),
    };
    let run = tokio::spawn(paced(server.addr, requests, pace, Arc::clone(&control)));

    // Wait (bounded) until worker 3 has been acknowledged, then stop it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while control.last_ack_sent(3).is_none() {
        assert!(Instant::now() < deadline, "worker 3 never acknowledged");
        tokio::time::sleep_until(Instant::now() + Duration::from_millis(20)).await;
    }
    control.stop(3);
    let stopped_at = Instant::now();
    // Others keep beating: wait until worker 4 is acknowledged after the stop.
    while control
        .last_ack_sent(4)
        .is_none_or(|t| t <= stopped_at + Duration::from_millis(150))
    {
        assert!(Instant::now() < deadline, "worker 4 stopped beating");
        tokio::time::sleep_until(Instant::now() + Duration::from_millis(20)).await;
    }
    let last3 = control.last_ack_sent(3).unwrap();
    // A beat already in flight at the stop may still be acknowledged, but none is sent after it.
    assert!(last3 <= stopped_at, "worker 3 beat after it was stopped");
    control.halt();
    let result = run.await.unwrap();
    assert!(result.load.ok >= n as u64, "{:?}", result.load);
    assert_eq!(result.load.failed, 0);
    server.stop().await;
}

#[test]
fn exact_percentiles_of_detection_delays() {
    let delays: Vec<f64> = (0..100).map(|i| f64::from(i) * 2.0).collect();
    let s = Summary::exact(&delays);
    assert_eq!(
        (s.count, s.p50_ms, s.p99_ms, s.max_ms),
        (100, 98.0, 196.0, 198.0)
    );
}
