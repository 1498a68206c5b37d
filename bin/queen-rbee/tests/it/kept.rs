//! Kept state in-process: restore after a graceful stop, history filters from the database and
//! from memory, and the store's health and metrics.

use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use test_support::wait_until;

use crate::support::{App, TestQueen, config, hive, worker};

const DEADLINE: Duration = Duration::from_secs(10);

fn kept_config(dir: &TempDir) -> queen_rbee::Config {
    queen_rbee::Config {
        data_dir: Some(dir.path().to_owned()),
        ephemeral: false,
        // Long enough that nothing restored goes offline while a test looks at it.
        heartbeat_timeout: Duration::from_secs(30),
        ..config()
    }
}

fn ids(events: &Value) -> Vec<(String, String)> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_owned(),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_graceful_restart_brings_back_entries_transitions_epoch_and_revision() {
    let dir = TempDir::new().unwrap();
    let queen = TestQueen::start(kept_config(&dir)).await;
    queen.post("/v1/hive-heartbeat", &hive("studio")).await;
    queen.post("/v1/worker-heartbeat", &worker("w1")).await;
    let mut restarted = worker("w1");
    restarted["worker"]["started_at"] = "2026-11-28T16:00:00Z".into();
    queen.post("/v1/worker-heartbeat", &restarted).await;
    let mut stopping = worker("w2");
    queen.post("/v1/worker-heartbeat", &stopping).await;
    stopping["worker"]["status"] = "stopping".into();
    queen.post("/v1/worker-heartbeat", &stopping).await;
    let before = queen.get("/v1/heartbeats/snapshot").await;
    let events_before = queen.get("/v1/events?limit=1000").await;
    assert_eq!(queen.get("/health").await["store"], "ok");
    queen.stop().await;

    let queen = TestQueen::start(kept_config(&dir)).await;
    let after = queen.get("/v1/heartbeats/snapshot").await;
    assert_eq!(
        after["epoch"], before["epoch"],
        "a clean restart keeps the epoch"
    );
    let old_revision = before["revision"].as_u64().unwrap();
    // The online entries (hive and w1) each changed once more: they are restored now.
    assert_eq!(after["revision"].as_u64().unwrap(), old_revision + 2);
    let w1 = queen.entry("worker", "w1").await.unwrap();
    assert_eq!(w1["restarts"], 1);
    assert_eq!(w1["restored"], true);
    assert_eq!(w1["available"], false);
    assert_eq!(w1["first_seen"], before["workers"][0]["first_seen"]);
    assert_eq!(w1["last_seen"], before["workers"][0]["last_seen"]);
    assert_eq!(queen.entry("worker", "w2").await.unwrap()["state"], "left");
    assert_eq!(
        queen.entry("hive", "studio").await.unwrap()["restored"],
        true
    );
    assert_eq!(queen.get("/v1/events?limit=1000").await, events_before);

    // The first beat since the start confirms the entry.
    queen.post("/v1/worker-heartbeat", &restarted).await;
    let w1 = queen.entry("worker", "w1").await.unwrap();
    assert!(w1.get("restored").is_none(), "{w1}");
    assert_eq!(w1["available"], true);
    queen.stop().await;
}

#[tokio::test]
async fn history_filters_page_through_the_database_and_memory() {
    let dir = TempDir::new().unwrap();
    let queen = TestQueen::start(kept_config(&dir)).await;
    for i in 0..6 {
        queen
            .post("/v1/worker-heartbeat", &worker(&format!("w{i}")))
            .await;
    }
    queen.post("/v1/hive-heartbeat", &hive("studio")).await;
    // Right away, part of the answer may still be in memory only; it must be whole either way.
    let all = queen.get("/v1/events?limit=1000").await;
    assert_eq!(all.as_array().unwrap().len(), 7);
    let metrics_url = queen.url("/metrics");
    wait_until("the store to commit", DEADLINE, || {
        let url = metrics_url.clone();
        async move {
            let metrics = reqwest::get(url).await.ok()?.text().await.ok()?;
            metrics
                .lines()
                .any(|l| l.starts_with("rbee_store_writes_total") && !l.ends_with(" 0"))
                .then_some(())
        }
    })
    .await;
    assert_eq!(queen.get("/v1/events?limit=1000").await, all);

    let workers = queen.get("/v1/events?kind=worker&limit=1000").await;
    assert_eq!(workers.as_array().unwrap().len(), 6);
    let one = queen.get("/v1/events?id=w3").await;
    assert_eq!(ids(&one), [("w3".to_owned(), "first heartbeat".to_owned())]);
    // Newest `limit` without `since`; the first `limit` from `since` on, to page forward.
    let newest = queen.get("/v1/events?kind=worker&limit=2").await;
    assert_eq!(
        ids(&newest)
            .iter()
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>(),
        ["w4", "w5"]
    );
    let since = all[2]["at"].as_str().unwrap();
    let page = queen
        .get(&format!("/v1/events?since={since}&limit=2"))
        .await;
    assert_eq!(page.as_array().unwrap(), &all.as_array().unwrap()[2..4]);
    let until = all[2]["at"].as_str().unwrap();
    let before = queen.get(&format!("/v1/events?until={until}")).await;
    assert_eq!(before.as_array().unwrap(), &all.as_array().unwrap()[..2]);
    queen.stop().await;
}

#[tokio::test]
async fn history_filters_without_a_store() {
    let app = App::new(&config());
    for i in 0..4 {
        app.post("/v1/worker-heartbeat", &worker(&format!("w{i}")))
            .await;
    }
    app.post("/v1/hive-heartbeat", &hive("h1")).await;
    let (_, hives) = app.get("/v1/events?kind=hive").await;
    assert_eq!(
        ids(&hives),
        [("h1".to_owned(), "first heartbeat".to_owned())]
    );
    let (_, w2) = app.get("/v1/events?id=w2").await;
    assert_eq!(w2.as_array().unwrap().len(), 1);
    let (_, health) = app.get("/health").await;
    assert_eq!(health["store"], "none");
    for bad in [
        "/v1/events?since=yesterday",
        "/v1/events?until=2026-13-01T00:00:00Z",
        "/v1/events?kind=queen",
        "/v1/events?id=",
        "/v1/events?limit=-1",
    ] {
        let (status, body) = app.get(bad).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["error"]["code"], "invalid_query", "{bad}: {body}");
    }
}

#[tokio::test]
async fn a_data_directory_in_use_is_refused() {
    let dir = TempDir::new().unwrap();
    let queen = TestQueen::start(kept_config(&dir)).await;
    queen.get("/health").await;
    let error = queen_rbee::Storage::open(&kept_config(&dir)).unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("in use by another queen-rbee"),
        "{message}"
    );
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
    queen.stop().await;
    // Once the first queen stopped, the directory can be opened again.
    queen_rbee::Storage::open(&kept_config(&dir)).unwrap();
}
