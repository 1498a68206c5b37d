//! Liveness over real sockets with short timings: timeouts with nobody watching, graceful
//! leaving, clock skew, restarts, conflicts and retention.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use test_support::wait_until;

use crate::support::{TestQueen, config, hive, time, worker};

const WAIT: Duration = Duration::from_secs(5);

/// Returns the first recorded transition of `id` to `to`, once there is one.
async fn transition(queen: &TestQueen, id: &str, to: &str) -> Value {
    wait_until(&format!("{id} -> {to}"), WAIT, || async {
        queen
            .events()
            .await
            .into_iter()
            .find(|e| e["id"] == id && e["to"] == to)
    })
    .await
}

#[tokio::test]
async fn a_silent_worker_goes_offline_within_250ms_of_its_timeout() {
    let queen = TestQueen::start(config()).await;
    queen.post("/v1/worker-heartbeat", &worker("w1")).await;
    queen.post("/v1/hive-heartbeat", &hive("h1")).await;
    let last_seen = time(&queen.entry("worker", "w1").await.unwrap()["last_seen"]);

    // Nobody reads anything until the transition exists; its time is the queen's own.
    for (kind, id) in [("worker", "w1"), ("hive", "h1")] {
        let offline = transition(&queen, id, "offline").await;
        assert_eq!(offline["kind"], kind);
        assert_eq!(offline["from"], "online");
        assert_eq!(offline["reason"], "heartbeat timeout");
        if id == "w1" {
            let after = time(&offline["at"]) - last_seen;
            assert!(
                after >= TimeDelta::milliseconds(300),
                "offline after only {after}"
            );
            assert!(
                after < TimeDelta::milliseconds(300 + 250),
                "offline {after} after the last heartbeat"
            );
        }
        let entry = queen.entry(kind, id).await.unwrap();
        assert_eq!(entry["state"], "offline");
        assert_eq!(entry["available"], false);
    }
    let online = queen.get("/v1/workers?state=online").await;
    assert_eq!(online, json!([]));
}

#[tokio::test]
async fn steady_heartbeats_keep_a_worker_online() {
    let queen = TestQueen::start(config()).await;
    let started = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    while started.elapsed() < Duration::from_millis(1000) {
        ticker.tick().await;
        queen.post("/v1/worker-heartbeat", &worker("w1")).await;
    }
    assert_eq!(
        queen.entry("worker", "w1").await.unwrap()["state"],
        "online"
    );
    let offline = queen
        .events()
        .await
        .into_iter()
        .filter(|e| e["to"] == "offline")
        .count();
    assert_eq!(offline, 0);
}

#[tokio::test]
async fn a_stopping_heartbeat_leaves_at_once_and_never_times_out() {
    let queen = TestQueen::start(config()).await;
    queen.post("/v1/worker-heartbeat", &worker("w1")).await;
    let mut stopping = worker("w1");
    stopping["worker"]["status"] = json!("stopping");
    queen.post("/v1/worker-heartbeat", &stopping).await;
    let entry = queen.entry("worker", "w1").await.unwrap();
    assert_eq!(entry["state"], "left");
    let left = transition(&queen, "w1", "left").await;
    assert_eq!(left["reason"], "graceful shutdown");

    // Another entry that does time out proves the expiry pass ran past w1's timeout too.
    queen.post("/v1/worker-heartbeat", &worker("w2")).await;
    transition(&queen, "w2", "offline").await;
    assert_eq!(queen.entry("worker", "w1").await.unwrap()["state"], "left");
}

#[tokio::test]
async fn six_hours_of_clock_skew_either_way_changes_nothing_but_the_report() {
    let queen = TestQueen::start(config()).await;
    let six_hours = TimeDelta::hours(6);
    for (id, offset) in [
        ("correct", TimeDelta::zero()),
        ("ahead", six_hours),
        ("behind", -six_hours),
    ] {
        let mut body = worker(id);
        body["timestamp"] = json!(Utc::now() + offset);
        queen.post("/v1/worker-heartbeat", &body).await;
    }
    for (id, expected_ms) in [
        ("correct", 0_i64),
        ("ahead", 21_600_000),
        ("behind", -21_600_000),
    ] {
        let entry = queen.entry("worker", id).await.unwrap();
        assert_eq!(entry["state"], "online", "{id}");
        let skew = entry["clock_skew_ms"].as_i64().unwrap();
        assert!((skew - expected_ms).abs() < 2000, "{id}: skew {skew}");
    }
    let mut after = Vec::new();
    for id in ["correct", "ahead", "behind"] {
        let offline = transition(&queen, id, "offline").await;
        let entry = queen.entry("worker", id).await.unwrap();
        after.push((time(&offline["at"]) - time(&entry["last_seen"])).num_milliseconds());
    }
    for ms in &after {
        assert!((300..550).contains(ms), "offline after {after:?} ms");
    }
}

#[tokio::test]
async fn a_new_started_at_counts_as_a_restart() {
    let queen = TestQueen::start(config()).await;
    queen.post("/v1/worker-heartbeat", &worker("w1")).await;
    let mut restarted = worker("w1");
    restarted["worker"]["started_at"] = json!("2026-11-28T15:30:00Z");
    queen.post("/v1/worker-heartbeat", &restarted).await;
    queen.post("/v1/worker-heartbeat", &restarted).await;
    let entry = queen.entry("worker", "w1").await.unwrap();
    assert_eq!(entry["restarts"], 1);
    assert_eq!(entry["state"], "online");
    let restart = queen
        .events()
        .await
        .into_iter()
        .find(|e| e["reason"] == "restarted")
        .unwrap();
    assert_eq!(
        (restart["from"].as_str(), restart["to"].as_str()),
        (Some("online"), Some("online"))
    );
}

#[tokio::test]
async fn two_processes_under_one_id_are_flagged_until_one_stops() {
    let mut config = config();
    config.heartbeat_timeout = Duration::from_millis(400);
    let queen = TestQueen::start(config).await;
    let old = worker("twin");
    let mut new = worker("twin");
    new["worker"]["started_at"] = json!("2026-11-28T15:30:00Z");
    queen.post("/v1/worker-heartbeat", &old).await;
    queen.post("/v1/worker-heartbeat", &new).await;
    for _ in 0..3 {
        queen.post("/v1/worker-heartbeat", &old).await;
        queen.post("/v1/worker-heartbeat", &new).await;
    }
    let entry = queen.entry("worker", "twin").await.unwrap();
    assert_eq!(entry["conflict"], true);
    assert_eq!(
        entry["restarts"], 1,
        "only the first switch looks like a restart"
    );
    assert_eq!(entry["worker"]["started_at"], "2026-11-28T15:30:00Z");
    let conflicts = queen
        .events()
        .await
        .into_iter()
        .filter(|e| e["reason"].as_str().unwrap().contains("conflict"))
        .count();
    assert_eq!(conflicts, 1, "one transition per conflict episode");

    // Only the newer process keeps beating: the flag clears after a whole timeout.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    loop {
        ticker.tick().await;
        queen.post("/v1/worker-heartbeat", &new).await;
        let entry = queen.entry("worker", "twin").await.unwrap();
        if entry.get("conflict").is_none() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the conflict flag never cleared: {entry}"
        );
    }
    assert_eq!(
        queen.entry("worker", "twin").await.unwrap()["state"],
        "online"
    );
}

#[tokio::test]
async fn retention_removes_offline_and_left_entries() {
    let mut config = config();
    config.retention = Duration::from_millis(300);
    let queen = TestQueen::start(config).await;
    queen.post("/v1/worker-heartbeat", &worker("crashed")).await;
    let mut left = hive("left");
    left["hive"]["status"] = json!("stopped");
    queen.post("/v1/hive-heartbeat", &left).await;

    let last_seen = time(&queen.entry("worker", "crashed").await.unwrap()["last_seen"]);
    let removed = transition(&queen, "crashed", "removed").await;
    assert_eq!(removed["from"], "offline");
    assert_eq!(removed["reason"], "retention expired");
    transition(&queen, "crashed", "offline").await;
    // Timeout plus retention after the last heartbeat.
    let gap = time(&removed["at"]) - last_seen;
    assert!(
        gap >= TimeDelta::milliseconds(600),
        "removed {gap} after the last heartbeat"
    );
    let removed = transition(&queen, "left", "removed").await;
    assert_eq!(removed["kind"], "hive");
    assert!(queen.entry("worker", "crashed").await.is_none());
    assert!(queen.entry("hive", "left").await.is_none());
}

#[tokio::test]
async fn an_offline_worker_that_beats_again_comes_back() {
    let queen = TestQueen::start(config()).await;
    queen.post("/v1/worker-heartbeat", &worker("w1")).await;
    transition(&queen, "w1", "offline").await;
    queen.post("/v1/worker-heartbeat", &worker("w1")).await;
    let entry = queen.entry("worker", "w1").await.unwrap();
    assert_eq!(entry["state"], "online");
    let back = queen
        .events()
        .await
        .into_iter()
        .rfind(|e| e["to"] == "online")
        .unwrap();
    assert_eq!(back["from"], "offline");
    assert_eq!(back["reason"], "heartbeat resumed");
}
