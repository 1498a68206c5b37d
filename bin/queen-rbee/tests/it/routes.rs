//! Every route in-process through `oneshot`: success paths, filters, auth and CORS.

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use serde_json::{Value, json};

use crate::support::{App, TOKEN, config, hive, with_token, worker};

#[tokio::test]
async fn heartbeat_is_acknowledged_with_the_fleet_pace() {
    let app = App::new(&config());
    let (status, ack) = app
        .post("/v1/worker-heartbeat", &worker("gpu0-llama"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ack,
        json!({"status": "ok", "message": "heartbeat received from worker gpu0-llama", "next_heartbeat_ms": 100})
    );
    let (status, ack) = app.post("/v1/hive-heartbeat", &hive("studio")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ack["message"], "heartbeat received from hive studio");
}

#[tokio::test]
async fn entries_are_listed_sorted_with_every_field() {
    let app = App::new(&config());
    for id in ["w3", "w1", "w2"] {
        app.post("/v1/worker-heartbeat", &worker(id)).await;
    }
    let (status, list) = app.get("/v1/workers").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["worker"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["w1", "w2", "w3"]);
    let entry = &list[0];
    for field in [
        "state",
        "available",
        "first_seen",
        "last_seen",
        "last_seen_ms_ago",
        "clock_skew_ms",
        "restarts",
    ] {
        assert!(entry.get(field).is_some(), "missing {field} in {entry}");
    }
    assert_eq!(entry["state"], "online");
    assert_eq!(entry["available"], true);
    assert_eq!(
        entry["worker"]["model_id"],
        "meta-llama/Llama-3.2-1B-Instruct"
    );
    assert!(entry.get("conflict").is_none());
    assert!(entry["first_seen"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn state_filters_select_online_and_available() {
    let app = App::new(&config());
    app.post("/v1/worker-heartbeat", &worker("ready")).await;
    let mut busy = worker("busy");
    busy["worker"]["status"] = json!("busy");
    app.post("/v1/worker-heartbeat", &busy).await;
    let mut gone = worker("gone");
    gone["worker"]["status"] = json!("stopping");
    app.post("/v1/worker-heartbeat", &gone).await;
    let ids = |v: Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["worker"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(app.get("/v1/workers").await.1),
        ["busy", "gone", "ready"]
    );
    assert_eq!(
        ids(app.get("/v1/workers?state=all").await.1),
        ["busy", "gone", "ready"]
    );
    assert_eq!(
        ids(app.get("/v1/workers?state=online").await.1),
        ["busy", "ready"]
    );
    assert_eq!(
        ids(app.get("/v1/workers?state=available").await.1),
        ["ready"]
    );
    app.post("/v1/hive-heartbeat", &hive("h1")).await;
    assert_eq!(
        app.get("/v1/hives?state=available")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.get("/v1/workers?state=available&token=ignored").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn one_entry_is_fetched_and_deleted_by_id() {
    let app = App::new(&config());
    app.post("/v1/worker-heartbeat", &worker("w1")).await;
    app.post("/v1/hive-heartbeat", &hive("h1")).await;
    let (status, entry) = app.get("/v1/workers/w1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(entry["worker"]["id"], "w1");
    let (status, entry) = app.get("/v1/hives/h1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(entry["hive"]["hostname"], "studio.lan");

    let (status, _) = app.call("DELETE", "/v1/workers/w1", None, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get("/v1/workers/w1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, _) = app.call("DELETE", "/v1/workers/w1", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.call("DELETE", "/v1/hives/h1", None, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (_, events) = app.get("/v1/events").await;
    let removed: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["to"] == "removed")
        .collect();
    assert_eq!(removed.len(), 2);
    assert_eq!(removed[0]["id"], "w1");
    assert_eq!(removed[0]["kind"], "worker");
    assert_eq!(removed[1]["kind"], "hive");
}

#[tokio::test]
async fn snapshot_counts_and_lists_the_fleet() {
    let app = App::new(&config());
    app.post("/v1/worker-heartbeat", &worker("w2")).await;
    app.post("/v1/worker-heartbeat", &worker("w1")).await;
    let mut left = worker("w0");
    left["worker"]["status"] = json!("stopped");
    app.post("/v1/worker-heartbeat", &left).await;
    app.post("/v1/hive-heartbeat", &hive("h1")).await;
    let (status, snap) = app.get("/v1/heartbeats/snapshot").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(snap["workers_online"], 2);
    assert_eq!(snap["workers_available"], 2);
    assert_eq!(snap["hives_online"], 1);
    assert_eq!(snap["hives_available"], 1);
    assert_eq!(snap["worker_ids"], json!(["w1", "w2"]));
    assert_eq!(snap["hive_ids"], json!(["h1"]));
    assert_eq!(
        snap["workers"].as_array().unwrap().len(),
        3,
        "left entries are kept"
    );
    assert_eq!(snap["workers"][0]["state"], "left");
    assert!(snap["timestamp"].as_str().unwrap().ends_with('Z'));
    let (_, next) = app.get("/v1/heartbeats/snapshot").await;
    assert!(next["seq"].as_u64().unwrap() > snap["seq"].as_u64().unwrap());
}

#[tokio::test]
async fn events_return_the_newest_last_within_the_limit() {
    let app = App::new(&config());
    for i in 0..5 {
        app.post("/v1/worker-heartbeat", &worker(&format!("w{i}")))
            .await;
    }
    let (_, all) = app.get("/v1/events").await;
    assert_eq!(all.as_array().unwrap().len(), 5);
    assert_eq!(all[0]["from"], Value::Null);
    assert_eq!(all[0]["reason"], "first heartbeat");
    let (_, two) = app.get("/v1/events?limit=2").await;
    let ids: Vec<&str> = two
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["w3", "w4"]);
    assert_eq!(app.get("/v1/events?limit=0").await.1, json!([]));
    assert_eq!(
        app.get("/v1/events?limit=999999")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        5
    );
}

#[tokio::test]
async fn the_event_ring_keeps_the_latest_thousand() {
    let mut config = config();
    config.max_entries = 2000;
    let app = App::new(&config);
    for i in 0..1005 {
        app.post("/v1/worker-heartbeat", &worker(&format!("w{i:04}")))
            .await;
    }
    let (_, all) = app.get("/v1/events?limit=1000").await;
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 1000);
    assert_eq!(all[0]["id"], "w0005");
    assert_eq!(all[999]["id"], "w1004");
}

#[tokio::test]
async fn health_metrics_and_dashboard_answer() {
    let app = App::new(&config());
    let (status, body) = app.get("/health").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"status": "ok", "store": "none"}))
    );

    app.post("/v1/worker-heartbeat", &worker("w1")).await;
    let mut bad = worker("w2");
    bad["worker"]["port"] = json!(0);
    app.post("/v1/worker-heartbeat", &bad).await;
    let request = Request::get("/metrics").body(Body::empty()).unwrap();
    let (status, headers, body) = app.send(request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = String::from_utf8(body).unwrap();
    for line in [
        "rbee_heartbeats_received_total{kind=\"worker\"} 1",
        "rbee_heartbeats_rejected_total{kind=\"worker\",reason=\"validation_failed\"} 1",
        "rbee_entries{kind=\"worker\",state=\"online\"} 1",
        "rbee_transitions_total{kind=\"worker\",to=\"online\"} 1",
        "rbee_sse_subscribers 0",
        "# TYPE rbee_http_request_duration_seconds histogram",
        "rbee_http_request_duration_seconds_count ",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }

    let (status, headers, body) = app
        .send(Request::get("/").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        String::from_utf8(body)
            .unwrap()
            .to_lowercase()
            .contains("<html")
    );
}

#[tokio::test]
async fn the_token_guards_every_route_but_health_and_the_page() {
    let app = App::new(&with_token(config()));
    for (method, path) in [
        ("GET", "/v1/workers"),
        ("GET", "/v1/hives/h1"),
        ("DELETE", "/v1/workers/w1"),
        ("GET", "/v1/heartbeats/snapshot"),
        ("GET", "/v1/heartbeats/stream"),
        ("GET", "/v1/events"),
        ("GET", "/metrics"),
    ] {
        let (status, body) = app.call(method, path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(body["error"]["code"], "unauthorized");
        let (status, _) = app.call(method, path, None, Some("wrong")).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a wrong token"
        );
    }
    assert_eq!(app.get("/health").await.0, StatusCode::OK);
    assert_eq!(app.get("/").await.0, StatusCode::OK);
    assert_eq!(
        app.call("GET", "/v1/workers", None, Some(TOKEN)).await.0,
        StatusCode::OK
    );
    let (status, _) = app
        .call(
            "POST",
            "/v1/worker-heartbeat",
            Some(&worker("w1")),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // A query token opens only the stream routes, whose browser clients cannot send headers.
    assert_eq!(
        app.get(&format!("/v1/workers/w1?token={TOKEN}")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get(&format!("/v1/heartbeats/snapshot?token={TOKEN}"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn loopback_and_configured_origins_pass_cors() {
    let mut config = config();
    config.cors_origins = vec!["https://fleet.example.com".to_owned()];
    let app = App::new(&config);
    let origin_allowed = |origin: &'static str| {
        let request = Request::get("/health")
            .header(header::ORIGIN, origin)
            .body(Body::empty())
            .unwrap();
        let app = &app;
        async move {
            let (_, headers, _) = app.send(request).await;
            headers
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .map(|v| v.to_str().unwrap().to_owned())
        }
    };
    assert_eq!(
        origin_allowed("http://localhost:5173").await.as_deref(),
        Some("http://localhost:5173")
    );
    assert_eq!(
        origin_allowed("http://127.0.0.1:8500").await.as_deref(),
        Some("http://127.0.0.1:8500")
    );
    assert_eq!(
        origin_allowed("https://fleet.example.com").await.as_deref(),
        Some("https://fleet.example.com")
    );
    assert_eq!(origin_allowed("http://evil.example.com").await, None);
    assert_eq!(origin_allowed("http://localhost.evil.com").await, None);

    // Preflight requests are answered before the token check.
    let app = App::new(&with_token(crate::support::config()));
    let request = Request::options("/v1/worker-heartbeat")
        .header(header::ORIGIN, "http://localhost:3000")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization,content-type",
        )
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = app.send(request).await;
    assert!(status.is_success(), "{status}");
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "http://localhost:3000"
    );

    let mut any = crate::support::config();
    any.cors_origins = vec!["*".to_owned()];
    let app = App::new(&any);
    let request = Request::get("/health")
        .header(header::ORIGIN, "https://anything.example")
        .body(Body::empty())
        .unwrap();
    let (_, headers, _) = app.send(request).await;
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
}

#[tokio::test]
async fn registry_full_answers_429_but_known_ids_still_update() {
    let mut config = config();
    config.max_entries = 2;
    let app = App::new(&config);
    app.post("/v1/worker-heartbeat", &worker("a")).await;
    app.post("/v1/worker-heartbeat", &worker("b")).await;
    let (status, body) = app.post("/v1/worker-heartbeat", &worker("c")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"]["code"], "registry_full");
    assert_eq!(app.get("/v1/workers/c").await.0, StatusCode::NOT_FOUND);
    let mut busy = worker("a");
    busy["worker"]["status"] = json!("busy");
    assert_eq!(
        app.post("/v1/worker-heartbeat", &busy).await.0,
        StatusCode::OK
    );
    assert_eq!(app.get("/v1/workers/a").await.1["worker"]["status"], "busy");
    // The hive registry has its own cap.
    assert_eq!(
        app.post("/v1/hive-heartbeat", &hive("h")).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn restarts_and_conflicts_are_reported_per_entry() {
    let app = App::new(&config());
    app.post("/v1/worker-heartbeat", &worker("w1")).await;
    let mut newer = worker("w1");
    newer["worker"]["started_at"] = json!("2026-11-28T16:00:00Z");
    app.post("/v1/worker-heartbeat", &newer).await;
    let entry = app.get("/v1/workers/w1").await.1;
    assert_eq!(entry["restarts"], 1);
    // The old incarnation is still sending: a second process under the same id.
    app.post("/v1/worker-heartbeat", &worker("w1")).await;
    let entry = app.get("/v1/workers/w1").await.1;
    assert_eq!(entry["conflict"], true);
    assert_eq!(entry["restarts"], 1);
    assert_eq!(entry["worker"]["started_at"], "2026-11-28T16:00:00Z");
    let events = app.get("/v1/events").await.1;
    let reasons: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert_eq!(reasons[1], "restarted");
    assert!(reasons[2].contains("conflict"));
}

#[tokio::test]
async fn charset_in_the_content_type_is_accepted() {
    let app = App::new(&config());
    let request = Request::post("/v1/worker-heartbeat")
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(worker("w1").to_string()))
        .unwrap();
    assert_eq!(app.send(request).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_queen_that_runs_alone_answers_404_for_the_cluster() {
    let app = App::new(&config());
    let (status, body) = app.get("/v1/cluster").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    // Heartbeats are accepted as ever: no cluster, no redirect.
    let (status, _) = app.post("/v1/worker-heartbeat", &worker("alone")).await;
    assert_eq!(status, StatusCode::OK);
}
