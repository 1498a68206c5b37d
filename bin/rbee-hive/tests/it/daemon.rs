//! Startup, reporting, the hive's own API and shutdown, through the built binary.

use std::time::Duration;

use test_support::{Daemon, FakeQueen, JsonClient, Signal, wait_for};

const STARTUP: Duration = Duration::from_secs(10);
const DEADLINE: Duration = Duration::from_secs(5);

fn hive() -> test_support::DaemonBuilder {
    Daemon::builder_for(env!("CARGO_BIN_EXE_rbee-hive"))
}

#[tokio::test]
async fn bad_configuration_exits_non_zero_with_one_line() {
    for args in [
        vec!["--heartbeat-interval", "5 parsecs"],
        vec!["--queen-url", "queen:8500"],
        vec!["--hive-id", "has space"],
        vec!["--bind", "localhost"],
    ] {
        let mut daemon = hive().args(&args).spawn();
        let status = daemon.wait_exit(DEADLINE).await;
        assert_eq!(status.code(), Some(2), "{args:?}");
        // The reader threads may still be draining the pipe; wait for the one line.
        wait_for("the error line", DEADLINE, || !daemon.lines().is_empty()).await;
        let lines = daemon.lines();
        assert_eq!(lines.len(), 1, "{args:?}: {lines:?}");
        assert!(lines[0].contains("invalid value"), "{lines:?}");
    }
}

#[tokio::test]
async fn reports_the_machine_and_serves_its_info() {
    let queen = FakeQueen::start(200).await;
    let daemon = hive()
        .args([
            "--bind",
            "127.0.0.1:0",
            "--hive-id",
            "test-hive",
            "--token",
            "t0k",
        ])
        .args(["--heartbeat-interval", "200ms", "--queen-url", &queen.url()])
        .spawn();
    let addr = daemon.listening_addr(STARTUP).await;
    wait_for("three hive heartbeats", DEADLINE, || queen.count() >= 3).await;

    let beat = queen.last().expect("a beat");
    assert_eq!(beat.kind, "hive");
    assert_eq!(beat.auth.as_deref(), Some("Bearer t0k"));
    let hive = beat.payload();
    assert_eq!(hive["id"], "test-hive");
    assert_eq!(hive["port"], addr.port());
    assert_eq!(hive["status"], "ready");
    assert!(!hive["hostname"].as_str().unwrap().is_empty());
    assert!(hive["system"]["cpu_cores"].as_u64().unwrap() >= 1);
    assert!(hive["system"]["memory_total_bytes"].as_u64().unwrap() > 0);
    assert!(hive["devices"].is_array());
    let started_at = hive["started_at"].clone();
    assert!(
        queen
            .beats()
            .iter()
            .all(|b| b.payload()["started_at"] == started_at)
    );

    let api = JsonClient::new(format!("http://{addr}"));
    let (status, body) = api.get("/health").await.unwrap();
    assert_eq!(
        (status.as_u16(), body["status"].as_str()),
        (200, Some("ok"))
    );
    let info = api.get_ok("/v1/info").await.expect("info");
    assert_eq!(info["id"], "test-hive");
    assert_eq!(info["started_at"], started_at);
    assert_eq!(daemon.count_containing("registered with queen"), 1);
}

#[tokio::test]
async fn the_default_id_is_the_host_name_as_a_valid_id() {
    let queen = FakeQueen::start(200).await;
    let daemon = hive()
        .args(["--bind", "127.0.0.1:0", "--queen-url", &queen.url()])
        .spawn();
    daemon.listening_addr(STARTUP).await;
    wait_for("a hive heartbeat", DEADLINE, || queen.count() >= 1).await;
    let beat = queen.last().expect("a beat");
    let id = beat.payload()["id"].as_str().unwrap().to_owned();
    assert!(shared_contract::is_valid_id(&id), "{id}");
}

#[tokio::test]
async fn sigterm_sends_stopping_and_exits_zero_quickly() {
    let queen = FakeQueen::start(200).await;
    let mut daemon = hive()
        .args([
            "--bind",
            "127.0.0.1:0",
            "--hive-id",
            "h-term",
            "--heartbeat-interval",
            "200ms",
        ])
        .args(["--queen-url", &queen.url()])
        .spawn();
    daemon.listening_addr(STARTUP).await;
    wait_for("a hive heartbeat", DEADLINE, || queen.count() >= 1).await;

    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(2)).await;
    assert!(status.success(), "{status:?}");
    let last = queen.last().expect("a beat");
    assert_eq!(last.payload()["status"], "stopping");
}

#[tokio::test]
async fn keeps_running_quietly_without_a_queen_and_still_exits_quickly() {
    let mut queen = FakeQueen::start(200).await;
    let url = queen.url();
    queen.server().stop().await;
    let mut daemon = hive()
        .args([
            "--bind",
            "127.0.0.1:0",
            "--hive-id",
            "h-alone",
            "--heartbeat-interval",
            "100ms",
        ])
        .args(["--queen-url", &url])
        .env("RUST_LOG", "info,heartbeat_sender=debug")
        .spawn();
    let addr = daemon.listening_addr(STARTUP).await;
    let api = JsonClient::new(format!("http://{addr}"));
    daemon.wait_for_count("heartbeat failed", 3, DEADLINE).await;
    // Still serving while the queen is away.
    let info =
        test_support::wait_until("the hive's info", DEADLINE, || api.get_ok("/v1/info")).await;
    assert_eq!(info["id"], "h-alone");
    daemon.wait_for_line("queen unreachable", DEADLINE).await;

    daemon.signal(Signal::SIGINT);
    let status = daemon.wait_exit(Duration::from_secs(2)).await;
    assert!(status.success(), "{status:?}");
    assert_eq!(
        daemon.count_containing("queen unreachable"),
        1,
        "{}",
        daemon.output()
    );
}
