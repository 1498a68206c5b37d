//! A worker in front of a real (small) backend server that goes away and comes back.

use axum::{Router, routing::get};
use test_support::TestServer;

use crate::fleet::{DEADLINE, Queen, STARTUP, slot, worker};

#[tokio::test]
async fn a_worker_follows_its_backend_health() {
    let _slot = slot().await;
    let backend = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/v1/models",
            get(|| async { r#"{"object":"list","data":[]}"# }),
        );
    let mut backend = TestServer::start(backend).await;
    let queen = Queen::start(&[]).await;
    let _worker = worker(&queen.url(), "backed")
        .args(["--backend-url", &backend.url()])
        .spawn();

    queen
        .wait_entry(
            "worker",
            "backed",
            "ready, healthy, available",
            STARTUP,
            |e| {
                e["worker"]["status"] == "ready"
                    && e["worker"]["health"]["status"] == "healthy"
                    && e["available"] == true
            },
        )
        .await;

    backend.stop().await;
    let sick = queen
        .wait_entry(
            "worker",
            "backed",
            "unhealthy and unavailable",
            DEADLINE,
            |e| e["worker"]["health"]["status"] == "unhealthy" && e["available"] == false,
        )
        .await;
    assert_eq!(sick["state"], "online", "a sick worker is still alive");
    assert_eq!(sick["worker"]["status"], "ready");
    assert!(
        !sick["worker"]["health"]["reason"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{sick}"
    );

    backend.restart().await;
    queen
        .wait_entry(
            "worker",
            "backed",
            "healthy and available again",
            DEADLINE,
            |e| e["worker"]["health"]["status"] == "healthy" && e["available"] == true,
        )
        .await;
}
