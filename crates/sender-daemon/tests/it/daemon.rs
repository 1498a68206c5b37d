//! The daemons' own API: `/health` always answers, `/v1/info` waits for the first payload.

use std::time::Duration;

use axum::{
    body::{Body, to_bytes},
    http::{Request, StatusCode},
};
use heartbeat_sender::SenderHandle;
use sender_daemon::daemon;
use serde_json::json;
use test_support::{FakeQueen, wait_for};
use tower::ServiceExt as _;

use crate::double::{FakeWorker, start_sender};

async fn get_json(app: axum::Router, path: &str) -> (StatusCode, serde_json::Value) {
    let response = app
        .oneshot(
            Request::get(path)
                .body(Body::empty())
                .expect("a valid request"),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a readable body");
    (status, serde_json::from_slice(&bytes).expect("a json body"))
}

#[tokio::test]
async fn health_is_ok_and_info_serves_the_last_payload() {
    let sender = SenderHandle::new();
    let app = daemon::router::<FakeWorker>(sender.clone());

    let (status, body) = get_json(app.clone(), "/health").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));

    let (status, body) = get_json(app.clone(), "/v1/info").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "starting");
}

#[tokio::test]
async fn info_serves_the_payload_last_sent() {
    let queen = FakeQueen::start(60_000).await;
    let running = start_sender(&queen.url(), Duration::from_secs(60), None);
    let app = daemon::router::<FakeWorker>(running.handle.clone());

    wait_for("the first heartbeat", Duration::from_secs(5), || {
        running.handle.last_payload().is_some()
    })
    .await;
    let (status, body) = get_json(app, "/v1/info").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], "w1");
    assert_eq!(body["status"], "ready");
    running.token.cancel();
}
