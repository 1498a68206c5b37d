//! The token: every documented route but `/health` and `/` refuses a missing or wrong one, and the
//! token never shows up in the queen's logs, even at trace level.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::Value;
use test_support::{Daemon, JsonClient, Signal, SseRecorder, wait_until};

use crate::support::{App, TOKEN, config, hive, with_token, worker};

const WAIT: Duration = Duration::from_secs(20);

/// Every (METHOD, path) in the queen's own OpenAPI document.
async fn documented_routes(app: &App) -> Vec<(String, String)> {
    let (status, doc) = app.call("GET", "/v1/openapi.json", None, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.push((method.to_uppercase(), path.replace("{id}", "w1")));
        }
    }
    assert!(routes.len() >= 15, "{routes:?}");
    routes
}

#[tokio::test]
async fn every_route_but_health_and_the_page_refuses_missing_and_wrong_tokens() {
    let app = App::new(&with_token(config()));
    let body = worker("w1");
    let wrong_tokens = [
        "wrong".to_owned(),
        String::new(),
        TOKEN[..TOKEN.len() - 1].to_owned(),
        format!("{TOKEN}x"),
        TOKEN.to_uppercase(),
        format!(" {TOKEN}"),
    ];
    for (method, path) in documented_routes(&app).await {
        let open = matches!(path.as_str(), "/health" | "/");
        let sent = (method == "POST").then_some(&body);
        let (status, answer) = app.call(&method, &path, sent, None).await;
        if open {
            assert_eq!(status, StatusCode::OK, "{method} {path} without a token");
            continue;
        }
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a token"
        );
        assert_eq!(answer["error"]["code"], "unauthorized", "{method} {path}");
        for wrong in &wrong_tokens {
            let (status, answer) = app.call(&method, &path, sent, Some(wrong)).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {wrong:?}"
            );
            assert_eq!(answer["error"]["code"], "unauthorized");
            let query = format!("{path}?token={}", urlencode(wrong));
            let (status, _) = app.call(&method, &query, sent, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {query}");
        }
        // Other schemes or a bare token are not a bearer token.
        for header in [
            format!("Basic {TOKEN}"),
            TOKEN.to_owned(),
            format!("Bearer{TOKEN}"),
        ] {
            let request = axum::http::Request::builder()
                .method(method.as_str())
                .uri(&path)
                .header("authorization", header.as_str())
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body.to_string()))
                .unwrap();
            let (status, _, _) = app.send(request).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {header:?}"
            );
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn the_token_never_reaches_the_logs() {
    const SECRET: &str = "Zq9-secret-token-that-must-not-be-logged";
    let mut queen = Daemon::builder_for(env!("CARGO_BIN_EXE_queen-rbee"))
        .name("queen-rbee")
        .args(["--ephemeral", "--bind", "127.0.0.1:0"])
        .args(["--snapshot-interval", "100ms"])
        .env("RBEE_TOKEN", SECRET)
        .env("RUST_LOG", "trace")
        .spawn();
    let addr = queen.listening_addr(WAIT).await;
    let base = format!("http://{addr}");
    let good = JsonClient::new(&base).with_token(SECRET);
    let bad = JsonClient::new(&base).with_token(format!("{SECRET}-wrong"));

    // Every kind of request: ingest, reads, a delete, errors, a 404, and the stream by query.
    assert_eq!(
        good.post("/v1/worker-heartbeat", &worker("w1"))
            .await
            .unwrap()
            .0,
        200
    );
    assert_eq!(
        good.post("/v1/hive-heartbeat", &hive("h1"))
            .await
            .unwrap()
            .0,
        200
    );
    let mut broken = worker("w2");
    broken["worker"]["port"] = Value::from(0);
    assert_eq!(
        good.post("/v1/worker-heartbeat", &broken).await.unwrap().0,
        422
    );
    for path in [
        "/v1/workers",
        "/v1/hives?state=online",
        "/v1/workers/w1",
        "/v1/heartbeats/snapshot",
        "/v1/events?limit=5",
        "/metrics",
        "/v1/openapi.json",
    ] {
        assert_eq!(good.get(path).await.unwrap().0, 200, "{path}");
        assert_eq!(bad.get(path).await.unwrap().0, 401, "{path}");
    }
    assert_eq!(good.delete("/v1/hives/h1").await.unwrap().0, 204);
    assert_eq!(good.get("/v1/nowhere").await.unwrap().0, 404);
    let plain = JsonClient::new(&base);
    // Only the stream routes take a query token.
    assert_eq!(
        plain
            .get(&format!("/v1/workers?token={SECRET}"))
            .await
            .unwrap()
            .0,
        401
    );
    assert_eq!(
        plain
            .get(&format!("/v1/nowhere?token={SECRET}"))
            .await
            .unwrap()
            .0,
        401
    );
    assert_eq!(
        plain
            .get(&format!("/v1/workers?token={SECRET}x"))
            .await
            .unwrap()
            .0,
        401
    );
    let stream = SseRecorder::connect(&plain.url("/v1/heartbeats/stream"), Some(SECRET)).await;
    wait_until("two snapshots on the stream", WAIT, || async {
        (stream
            .events()
            .iter()
            .filter(|e| e.event == "heartbeat")
            .count()
            >= 2)
            .then_some(())
    })
    .await;
    let by_query = SseRecorder::connect(
        &plain.url(&format!("/v1/heartbeats/stream?token={SECRET}")),
        None,
    )
    .await;
    wait_until("a snapshot on the stream opened by query", WAIT, || async {
        (!by_query.events().is_empty()).then_some(())
    })
    .await;
    drop(stream);
    drop(by_query);

    queen.signal(Signal::SIGTERM);
    assert_eq!(queen.wait_exit(WAIT).await.code(), Some(0));
    let output = queen.output();
    assert!(
        output.lines().count() > 20,
        "trace logging produced too little to be a meaningful check:\n{output}"
    );
    let leaks: Vec<&str> = output.lines().filter(|l| l.contains(SECRET)).collect();
    assert!(
        leaks.is_empty(),
        "the token was logged:\n{}",
        leaks.join("\n")
    );
}
