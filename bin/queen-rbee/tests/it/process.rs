//! The real binary: the listening line, health, SIGTERM, and refusing unsafe configuration.

use std::time::Duration;

use test_support::{Daemon, JsonClient, Signal};

const WAIT: Duration = Duration::from_secs(10);

fn queen() -> test_support::DaemonBuilder {
    Daemon::builder_for(env!("CARGO_BIN_EXE_queen-rbee"))
        .name("queen-rbee")
        .arg("--ephemeral")
}

#[tokio::test]
async fn the_binary_serves_and_exits_cleanly_on_sigterm() {
    let mut daemon = queen()
        .args(["--bind", "127.0.0.1:0", "--heartbeat-interval", "250ms"])
        .spawn();
    let addr = daemon.listening_addr(WAIT).await;
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), 0, "the log names the port actually bound");
    let client = JsonClient::new(format!("http://{addr}"));
    let (status, body) = client.get("/health").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"status": "ok", "store": "none"}));

    // An open stream must not hold the shutdown up.
    let _stream =
        test_support::SseRecorder::connect(&client.url("/v1/heartbeats/stream"), None).await;
    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_exit(WAIT).await;
    assert_eq!(status.code(), Some(0), "{}", daemon.output());
}

#[tokio::test]
async fn flags_can_come_from_the_environment() {
    let mut daemon = queen()
        .env("RBEE_BIND", "127.0.0.1:0")
        .env("RBEE_TOKEN", "envtoken")
        .spawn();
    let addr = daemon.listening_addr(WAIT).await;
    let client = JsonClient::new(format!("http://{addr}"));
    assert_eq!(client.get("/v1/workers").await.unwrap().0, 401);
    assert_eq!(
        client
            .clone()
            .with_token("envtoken")
            .get("/v1/workers")
            .await
            .unwrap()
            .0,
        200
    );
    assert!(
        !daemon.output().contains("envtoken"),
        "the token was logged"
    );
    daemon.signal(Signal::SIGINT);
    assert_eq!(daemon.wait_exit(WAIT).await.code(), Some(0));
}

#[tokio::test]
async fn bad_configuration_is_refused_before_binding() {
    for args in [
        &["--bind", "0.0.0.0:0"][..],
        &["--bind", "127.0.0.1:0", "--heartbeat-timeout", "0s"],
        &["--bind", "127.0.0.1:0", "--heartbeat-interval", "soon"],
        &["--bind", "127.0.0.1:0", "--max-entries", "0"],
        &["--bind", "127.0.0.1:0", "--token", ""],
        &["--bind", "127.0.0.1:0", "--retention", "1000years"],
    ] {
        let mut daemon = queen().args(args).spawn();
        let status = daemon.wait_exit(WAIT).await;
        assert!(!status.success(), "{args:?} was accepted");
        // The output is read by background threads, so it may trail the exit a little.
        daemon
            .wait_for_line_where("a message", WAIT, |line| !line.trim().is_empty())
            .await;
        let output = daemon.output();
        assert!(
            !output.contains("listening on"),
            "{args:?} bound a port: {output}"
        );
    }
    let mut daemon = queen().args(["--bind", "0.0.0.0:0"]).spawn();
    daemon.wait_exit(WAIT).await;
    daemon.wait_for_line("refusing", WAIT).await;
    let output = daemon.output();
    assert_eq!(output.trim().lines().count(), 1, "{output}");
    assert!(output.contains("refusing"), "{output}");
    assert!(output.contains("--token"), "{output}");
}

#[tokio::test]
async fn insecure_no_auth_allows_a_wildcard_bind() {
    let mut daemon = queen()
        .args(["--bind", "0.0.0.0:0", "--insecure-no-auth"])
        .spawn();
    let addr = daemon.listening_addr(WAIT).await;
    let client = JsonClient::new(format!("http://127.0.0.1:{}", addr.port()));
    assert_eq!(client.get("/health").await.unwrap().0, 200);
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(WAIT).await.code(), Some(0));
}
