//! `GET /v1/watch` over real sockets: sync, upserts and removes with revisions, kind filters,
//! resuming by event id, and the REST snapshot's epoch and revision.

use std::time::Duration;

use serde_json::{Value, json};
use test_support::{SseEvent, SseRecorder};

use crate::support::{TestQueen, config, hive, worker};

const WAIT: Duration = Duration::from_secs(5);

/// The revision of an event id `EPOCH:REVISION`.
fn revision_of(event: &SseEvent) -> u64 {
    let id = event.id.as_deref().expect("every watch event has an id");
    id.rsplit_once(':').unwrap().1.parse().unwrap()
}

fn epoch_of(event: &SseEvent) -> String {
    let id = event.id.as_deref().unwrap();
    id.rsplit_once(':').unwrap().0.to_owned()
}

/// A queen whose entries stay online for the whole test.
async fn steady_queen() -> TestQueen {
    let mut config = config();
    config.heartbeat_timeout = Duration::from_secs(60);
    TestQueen::start(config).await
}

fn with_status(mut body: Value, status: &str) -> Value {
    body["worker"]["status"] = json!(status);
    body
}

/// Reads the raw stream of `url` (with an optional `Last-Event-ID`) until `enough` holds for
/// the text received, and returns it.
async fn raw_stream(
    queen: &TestQueen,
    path: &str,
    last_event_id: Option<&str>,
    enough: impl Fn(&str) -> bool,
) -> String {
    let mut request = queen.client.client().get(queen.url(path));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let mut response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !enough(&text) {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("stream {path} stalled; received so far:\n{text}"))
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    text
}

#[tokio::test]
async fn the_watch_starts_with_a_sync_then_sends_each_change_once() {
    let queen = steady_queen().await;
    queen.post("/v1/worker-heartbeat", &worker("w1")).await;
    queen.post("/v1/hive-heartbeat", &hive("h1")).await;

    let watch = SseRecorder::connect(&queen.url("/v1/watch"), None).await;
    let sync = watch
        .wait_for("the sync", WAIT, |e| e.event == "sync")
        .await;
    let data = sync.json();
    assert_eq!(data["revision"], 2);
    assert_eq!(revision_of(&sync), 2);
    assert_eq!(data["epoch"].as_str().unwrap(), epoch_of(&sync));
    assert_eq!(data["workers"][0]["worker"]["id"], "w1");
    assert_eq!(data["hives"][0]["hive"]["id"], "h1");

    // Beats that change only last_seen and the skew make no event; the next change is 3.
    for _ in 0..5 {
        queen.post("/v1/worker-heartbeat", &worker("w1")).await;
    }
    queen
        .post("/v1/worker-heartbeat", &with_status(worker("w1"), "busy"))
        .await;
    let busy = watch
        .wait_for("the status change", WAIT, |e| e.event == "upsert")
        .await;
    let data = busy.json();
    assert_eq!(revision_of(&busy), 3, "volatile beats made revisions");
    assert_eq!(data["revision"], 3);
    assert_eq!(data["kind"], "worker");
    assert_eq!(data["entry"]["worker"]["status"], "busy");
    assert_eq!(data["entry"]["available"], false);
    assert_eq!(data["transition"]["reason"], "status ready -> busy");
    let events: Vec<String> = watch.events().iter().map(|e| e.event.clone()).collect();
    assert_eq!(events, ["sync", "upsert"]);
}

#[tokio::test]
async fn revisions_increase_by_one_across_both_kinds_and_transitions_ride_on_upserts() {
    let queen = steady_queen().await;
    let watch = SseRecorder::connect(&queen.url("/v1/watch"), None).await;
    watch
        .wait_for("the sync", WAIT, |e| e.event == "sync")
        .await;

    queen.post("/v1/worker-heartbeat", &worker("w1")).await;
    queen.post("/v1/hive-heartbeat", &hive("h1")).await;
    let mut unhealthy = worker("w1");
    unhealthy["worker"]["health"] = json!({"status": "unhealthy", "reason": "backend down"});
    queen.post("/v1/worker-heartbeat", &unhealthy).await;
    let mut renamed = hive("h1");
    renamed["hive"]["hostname"] = json!("studio-2.lan");
    queen.post("/v1/hive-heartbeat", &renamed).await;
    let (status, _) = queen.client.delete("/v1/workers/w1").await.unwrap();
    assert_eq!(status, 204);

    watch
        .wait_for("the removal", WAIT, |e| e.event == "remove")
        .await;
    let changes: Vec<SseEvent> = watch
        .events()
        .into_iter()
        .filter(|e| e.event != "sync")
        .collect();
    let revisions: Vec<u64> = changes.iter().map(revision_of).collect();
    assert_eq!(revisions, [1, 2, 3, 4, 5]);
    let data: Vec<Value> = changes.iter().map(SseEvent::json).collect();
    assert_eq!(data[0]["kind"], "worker");
    assert_eq!(data[0]["transition"]["reason"], "first heartbeat");
    assert_eq!(data[1]["kind"], "hive");
    assert_eq!(data[1]["entry"]["hive"]["id"], "h1");
    // A health change and a hostname change are changes, not transitions.
    assert_eq!(data[2]["entry"]["worker"]["health"]["status"], "unhealthy");
    assert!(data[2].get("transition").is_none(), "{}", data[2]);
    assert_eq!(data[3]["entry"]["hive"]["hostname"], "studio-2.lan");
    assert!(data[3].get("transition").is_none(), "{}", data[3]);
    assert_eq!(changes[4].event, "remove");
    assert_eq!(data[4]["id"], "w1");
    assert_eq!(data[4]["kind"], "worker");
    assert_eq!(data[4]["transition"]["to"], "removed");
}

#[tokio::test]
async fn a_timeout_is_an_upsert_with_its_transition() {
    let queen = TestQueen::start(config()).await;
    let watch = SseRecorder::connect(&queen.url("/v1/watch"), None).await;
    watch
        .wait_for("the sync", WAIT, |e| e.event == "sync")
        .await;
    queen.post("/v1/worker-heartbeat", &worker("w1")).await;
    let offline = watch
        .wait_for_json("upsert", "the timeout", WAIT, |d| {
            d["entry"]["state"] == "offline"
        })
        .await;
    assert_eq!(offline["transition"]["reason"], "heartbeat timeout");
    assert_eq!(offline["transition"]["from"], "online");
}

#[tokio::test]
async fn a_kind_filter_sends_only_that_kind() {
    let queen = steady_queen().await;
    queen.post("/v1/worker-heartbeat", &worker("w1")).await;
    queen.post("/v1/hive-heartbeat", &hive("h1")).await;
    let watch = SseRecorder::connect(&queen.url("/v1/watch?kind=hive"), None).await;
    let sync = watch
        .wait_for_json("sync", "the sync", WAIT, |_| true)
        .await;
    assert_eq!(sync["workers"], json!([]));
    assert_eq!(sync["hives"][0]["hive"]["id"], "h1");

    queen.post("/v1/worker-heartbeat", &worker("w2")).await;
    queen.post("/v1/hive-heartbeat", &hive("h2")).await;
    let h2 = watch
        .wait_for("the new hive", WAIT, |e| e.event == "upsert")
        .await;
    assert_eq!(h2.json()["entry"]["hive"]["id"], "h2");
    // The hive is revision 4: the worker's revision 3 was skipped, not renumbered.
    assert_eq!(revision_of(&h2), 4);
    assert_eq!(watch.count(|e| e.event == "upsert"), 1);
}

#[tokio::test]
async fn malformed_query_parameters_are_a_400_with_the_json_error() {
    let queen = steady_queen().await;
    for path in [
        "/v1/watch?kind=robot",
        "/v1/watch?since=nonsense",
        "/v1/watch?since=abc:-1",
        "/v1/watch?since=:5",
    ] {
        let (status, body) = queen.client.get(path).await.unwrap();
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_query", "{path}");
    }
}

#[tokio::test]
async fn resuming_with_last_event_id_sends_exactly_the_missed_changes() {
    let queen = steady_queen().await;
    queen.post("/v1/worker-heartbeat", &worker("w1")).await;
    let first = SseRecorder::connect(&queen.url("/v1/watch"), None).await;
    let sync = first
        .wait_for("the sync", WAIT, |e| e.event == "sync")
        .await;
    let last_id = sync.id.clone().unwrap();
    drop(first);

    // Changes made while disconnected, one entry several times.
    for status in ["busy", "ready", "busy"] {
        queen
            .post("/v1/worker-heartbeat", &with_status(worker("w1"), status))
            .await;
    }
    queen.post("/v1/worker-heartbeat", &worker("w2")).await;
    let text = raw_stream(&queen, "/v1/watch", Some(&last_id), |t| t.contains(":5\n")).await;
    assert!(
        !text.contains("event: sync"),
        "a resume sent a sync:\n{text}"
    );
    let epoch = last_id.rsplit_once(':').unwrap().0;
    let ids: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .collect();
    let expected: Vec<String> = (2..=5).map(|r| format!("{epoch}:{r}")).collect();
    assert_eq!(ids, expected, "{text}");
}

#[tokio::test]
async fn an_unusable_resume_point_gives_a_sync() {
    let queen = steady_queen().await;
    queen.post("/v1/worker-heartbeat", &worker("w1")).await;
    let snapshot = queen.get("/v1/heartbeats/snapshot").await;
    let epoch = snapshot["epoch"].as_str().unwrap().to_owned();
    for id in [
        "another-epoch:1".to_owned(),
        format!("{epoch}:999"),
        "garbage".to_owned(),
        format!("{epoch}:-3"),
    ] {
        let text = raw_stream(&queen, "/v1/watch", Some(&id), |t| t.contains("\n\n")).await;
        assert!(
            text.contains("event: sync\n"),
            "Last-Event-ID {id} gave no sync:\n{text}"
        );
        assert!(text.contains(&format!("id: {epoch}:1\n")), "{text}");
    }
}

#[tokio::test]
async fn list_then_watch_from_the_snapshot_revision() {
    let queen = steady_queen().await;
    queen.post("/v1/worker-heartbeat", &worker("w1")).await;
    queen.post("/v1/hive-heartbeat", &hive("h1")).await;
    let snapshot = queen.get("/v1/heartbeats/snapshot").await;
    assert_eq!(snapshot["revision"], 2);
    assert_eq!(snapshot["workers"][0]["worker"]["id"], "w1");
    assert_eq!(snapshot["worker_ids"], json!(["w1"]));
    let since = format!(
        "{}:{}",
        snapshot["epoch"].as_str().unwrap(),
        snapshot["revision"]
    );
    queen
        .post("/v1/worker-heartbeat", &with_status(worker("w1"), "busy"))
        .await;
    let watch = SseRecorder::connect(&queen.url(&format!("/v1/watch?since={since}")), None).await;
    let busy = watch
        .wait_for("the change after the snapshot", WAIT, |e| {
            e.event == "upsert"
        })
        .await;
    assert_eq!(revision_of(&busy), 3);
    assert_eq!(watch.count(|e| e.event == "sync"), 0);

    // The header wins over ?since= (a browser reconnecting to its original URL).
    queen.post("/v1/worker-heartbeat", &worker("w2")).await;
    let text = raw_stream(
        &queen,
        &format!("/v1/watch?since={since}"),
        Some(busy.id.as_deref().unwrap()),
        |t| t.contains(":4\n"),
    )
    .await;
    let ids: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .collect();
    assert_eq!(ids.len(), 1, "{text}");
    assert!(ids[0].ends_with(":4"), "{text}");
}

#[tokio::test]
async fn an_idle_watch_sends_a_keep_alive_with_the_current_id() {
    let queen = steady_queen().await;
    queen.post("/v1/hive-heartbeat", &hive("h1")).await;
    // The shared test client's request timeout is shorter than the keep-alive interval.
    let client = reqwest::Client::builder().build().unwrap();
    let mut response = client
        .get(queen.url("/v1/watch?kind=hive"))
        .send()
        .await
        .unwrap();
    // A worker change moves the revision without an event on this filtered watch.
    queen.post("/v1/worker-heartbeat", &worker("w1")).await;
    let mut text = String::new();
    // The keep-alive comes after 15 s without events.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    while !text.contains(": keep-alive\n") {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no keep-alive; received:\n{text}"))
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let after = text.split(": keep-alive\n").nth(1).unwrap();
    let id = after.lines().next().unwrap();
    assert!(id.starts_with("id: ") && id.ends_with(":2"), "{text}");
}
