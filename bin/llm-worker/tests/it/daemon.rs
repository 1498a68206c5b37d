//! Startup, reporting, backend probing and shutdown, through the built binary.

use std::time::Duration;

use axum::{Router, routing::get};
use test_support::{Daemon, DaemonBuilder, FakeQueen, JsonClient, Signal, TestServer, wait_for};

const STARTUP: Duration = Duration::from_secs(10);
const DEADLINE: Duration = Duration::from_secs(5);

fn worker(queen: &FakeQueen) -> DaemonBuilder {
    Daemon::builder_for(env!("CARGO_BIN_EXE_llm-worker")).args([
        "--queen-url",
        &queen.url(),
        "--heartbeat-interval",
        "100ms",
        "--model-id",
        "tiny/model",
    ])
}

fn last_worker(queen: &FakeQueen) -> serde_json::Value {
    queen.last().expect("a beat").payload().clone()
}

#[tokio::test]
async fn bad_configuration_exits_non_zero_with_one_line() {
    let bin = env!("CARGO_BIN_EXE_llm-worker");
    for args in [
        vec![],
        vec!["--model-id", ""],
        vec!["--model-id", "m", "--worker-id", "a/b"],
        vec!["--model-id", "m", "--backend-url", "ftp://x"],
        vec!["--model-id", "m", "--heartbeat-interval", "0s"],
    ] {
        let mut daemon = Daemon::builder_for(bin).args(&args).spawn();
        let status = daemon.wait_exit(DEADLINE).await;
        assert_eq!(status.code(), Some(2), "{args:?}");
        wait_for("the error line", DEADLINE, || !daemon.lines().is_empty()).await;
        assert_eq!(daemon.lines().len(), 1, "{args:?}: {:?}", daemon.lines());
    }
}

#[tokio::test]
async fn without_a_backend_it_is_ready_and_named_after_hive_and_port() {
    let queen = FakeQueen::start(100).await;
    let daemon = worker(&queen)
        .args(["--hive-id", "studio", "--device", "cuda:1"])
        .spawn();
    let addr = daemon.listening_addr(STARTUP).await;
    wait_for("two heartbeats", DEADLINE, || queen.count() >= 2).await;

    let beat = queen.last().expect("a beat");
    assert_eq!(beat.kind, "worker");
    assert_eq!(beat.auth, None);
    let w = beat.payload();
    assert_eq!(w["id"], format!("studio-{}", addr.port()));
    assert_eq!(w["hive_id"], "studio");
    assert_eq!(w["model_id"], "tiny/model");
    assert_eq!(w["device"], "cuda:1");
    assert_eq!(w["port"], addr.port());
    assert_eq!(w["status"], "ready");
    assert_eq!(w["health"]["status"], "healthy");
    assert_eq!(w["implementation"], "llm-worker");
    assert_eq!(w["version"], env!("CARGO_PKG_VERSION"));

    let api = JsonClient::new(format!("http://{addr}"));
    assert_eq!(api.get_ok("/health").await.expect("health")["status"], "ok");
    let info = api.get_ok("/v1/info").await.expect("info");
    assert_eq!(info["id"], w["id"]);
    assert_eq!(info["started_at"], w["started_at"]);
}

fn backend(health: bool) -> Router {
    let router = Router::new().route("/v1/models", get(|| async { "{\"data\":[]}" }));
    if health {
        router.route("/health", get(|| async { "ok" }))
    } else {
        router
    }
}

#[tokio::test]
async fn follows_its_backend_from_starting_to_ready_to_unhealthy_and_back() {
    let queen = FakeQueen::start(100).await;
    let mut backend = TestServer::start(backend(true)).await;
    backend.stop().await;
    let daemon = worker(&queen)
        .args(["--worker-id", "w-backend", "--backend-url", &backend.url()])
        .spawn();
    daemon.listening_addr(STARTUP).await;
    wait_for("a few heartbeats", DEADLINE, || queen.count() >= 3).await;
    assert_eq!(last_worker(&queen)["status"], "starting");

    backend.restart().await;
    wait_for("ready", DEADLINE, || {
        last_worker(&queen)["status"] == "ready"
    })
    .await;
    assert_eq!(last_worker(&queen)["health"]["status"], "healthy");

    backend.stop().await;
    wait_for("unhealthy", DEADLINE, || {
        last_worker(&queen)["health"]["status"] == "unhealthy"
    })
    .await;
    let w = last_worker(&queen);
    assert_eq!(
        w["status"], "ready",
        "status stays ready after the first success"
    );
    let reason = w["health"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(reason.contains("connection"), "{reason}");

    backend.restart().await;
    wait_for("healthy again", DEADLINE, || {
        last_worker(&queen)["health"]["status"] == "healthy"
    })
    .await;
    // One warning while starting and one for the outage, not one per probe.
    assert_eq!(daemon.count_containing("backend not answering"), 2);
    assert_eq!(daemon.count_containing("backend answering"), 2);
}

#[tokio::test]
async fn falls_back_to_the_models_route() {
    let queen = FakeQueen::start(100).await;
    let backend = TestServer::start(backend(false)).await;
    let _daemon = worker(&queen)
        .args(["--worker-id", "w-models", "--backend-url", &backend.url()])
        .spawn();
    wait_for("ready", DEADLINE, || {
        queen
            .last()
            .is_some_and(|b| b.payload()["status"] == "ready")
    })
    .await;
}

#[tokio::test]
async fn sigterm_sends_stopping_and_exits_zero_quickly() {
    let queen = FakeQueen::start(100).await;
    let mut daemon = worker(&queen).args(["--worker-id", "w-term"]).spawn();
    daemon.listening_addr(STARTUP).await;
    wait_for("a heartbeat", DEADLINE, || queen.count() >= 1).await;

    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(2)).await;
    assert!(status.success(), "{status:?}");
    assert_eq!(last_worker(&queen)["status"], "stopping");
}
