//! Liveness through real processes: registration, crash, freeze, graceful exit, restart.

use std::time::Duration;

use test_support::{Daemon, Signal};
use tokio::time::Instant;

use crate::fleet::{DEADLINE, Queen, STARTUP, SWEEP, TIMEOUT, hive, slot, time, worker};

/// Slack for observing a change from outside on a busy machine (polling, SSE coalescing,
/// scheduling); the queen-side measurement below is held to the contract more tightly.
const OBSERVE: Duration = Duration::from_millis(750);

#[tokio::test]
async fn the_whole_fleet_comes_online_and_available() {
    let _slot = slot().await;
    let queen = Queen::start(&[]).await;
    let _hive = hive(&queen.url(), "hive-a").spawn();
    let workers: Vec<Daemon> = ["w1", "w2", "w3"]
        .iter()
        .map(|id| worker(&queen.url(), id).spawn())
        .collect();

    queen
        .wait_all_available(&["hive-a"], &["w1", "w2", "w3"], STARTUP)
        .await;

    let (_, list) = queen.api.get("/v1/workers").await.unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["worker"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["w1", "w2", "w3"], "sorted by id");
    for (daemon, id) in workers.iter().zip(["w1", "w2", "w3"]) {
        let port = daemon.listening_addr(STARTUP).await.port();
        let entry = queen.entry("worker", id).await.unwrap();
        assert_eq!(entry["worker"]["port"], port);
        assert_eq!(entry["worker"]["status"], "ready");
        assert_eq!(entry["restarts"], 0);
    }
    let hive = queen.entry("hive", "hive-a").await.unwrap();
    assert!(
        hive["hive"]["system"]["memory_total_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(hive["hive"]["devices"].is_array());
}

#[tokio::test]
async fn a_killed_worker_goes_offline_within_the_timeout() {
    let _slot = slot().await;
    let queen = Queen::start(&[]).await;
    let mut victim = worker(&queen.url(), "victim").spawn();
    let _bystander = worker(&queen.url(), "bystander").spawn();
    queen
        .wait_all_available(&[], &["victim", "bystander"], STARTUP)
        .await;
    let stream = queen.stream().await;

    victim.signal(Signal::SIGKILL);
    let killed = Instant::now();
    let event = stream
        .wait_for("transition of victim to offline", DEADLINE, |e| {
            let t = e.json();
            e.event == "transition" && t["id"] == "victim" && t["to"] == "offline"
        })
        .await;
    let observed = event.received - killed;
    let transition = event.json();
    assert_eq!(transition["kind"], "worker");
    assert_eq!(transition["from"], "online");
    assert!(
        transition["reason"]
            .as_str()
            .unwrap()
            .contains("heartbeat timeout"),
        "{transition}"
    );
    assert!(
        observed <= TIMEOUT + SWEEP + OBSERVE,
        "offline observed {observed:?} after the kill"
    );

    // On the queen's own clock: from the last heartbeat to the offline mark.
    let entry = queen
        .wait_state("worker", "victim", "offline", DEADLINE)
        .await;
    let silent = (time(&transition["at"]) - time(&entry["last_seen"]))
        .to_std()
        .unwrap();
    assert!(
        silent >= TIMEOUT - Duration::from_millis(20),
        "offline after only {silent:?}"
    );
    assert!(
        silent <= TIMEOUT + SWEEP + Duration::from_millis(100),
        "offline {silent:?} after the last heartbeat"
    );
    assert_eq!(
        queen.entry("worker", "bystander").await.unwrap()["state"],
        "online"
    );
    victim.wait_exit(DEADLINE).await;
}

#[tokio::test]
async fn a_frozen_worker_goes_offline_and_returns_without_a_restart() {
    let _slot = slot().await;
    let queen = Queen::start(&[]).await;
    let mut frozen = worker(&queen.url(), "frozen").spawn();
    let online = queen
        .wait_state("worker", "frozen", "online", STARTUP)
        .await;

    frozen.signal(Signal::SIGSTOP);
    queen
        .wait_state("worker", "frozen", "offline", DEADLINE)
        .await;

    frozen.signal(Signal::SIGCONT);
    let back = queen
        .wait_state("worker", "frozen", "online", DEADLINE)
        .await;
    assert_eq!(back["restarts"], 0);
    assert_eq!(back["worker"]["started_at"], online["worker"]["started_at"]);
    assert!(
        frozen.try_exit_status().is_none(),
        "the same process is still running"
    );
}

#[tokio::test]
async fn sigterm_makes_a_worker_leave_at_once_and_exit_cleanly() {
    let _slot = slot().await;
    let queen = Queen::start(&[]).await;
    let mut leaving = worker(&queen.url(), "leaving").spawn();
    queen
        .wait_state("worker", "leaving", "online", STARTUP)
        .await;
    let stream = queen.stream().await;

    leaving.signal(Signal::SIGTERM);
    let signalled = Instant::now();
    let event = stream
        .wait_for("transition of leaving to left", DEADLINE, |e| {
            let t = e.json();
            e.event == "transition" && t["id"] == "leaving" && t["to"] == "left"
        })
        .await;
    let left_after = event.received - signalled;
    assert!(
        left_after <= Duration::from_millis(500),
        "left after {left_after:?}"
    );
    assert!(
        event.json()["reason"]
            .as_str()
            .unwrap()
            .contains("graceful"),
        "{}",
        event.data
    );

    let status = leaving.wait_exit(Duration::from_secs(2)).await;
    assert!(
        signalled.elapsed() <= Duration::from_secs(2),
        "exit took {:?}",
        signalled.elapsed()
    );
    assert_eq!(status.code(), Some(0), "{}", leaving.output());
    let entry = queen.entry("worker", "leaving").await.unwrap();
    assert_eq!(entry["state"], "left");
    assert_eq!(entry["worker"]["status"], "stopping");
    assert_eq!(entry["available"], false);
}

#[tokio::test]
async fn a_worker_restarted_under_the_same_id_counts_one_restart() {
    let _slot = slot().await;
    let queen = Queen::start(&[]).await;
    let mut first = worker(&queen.url(), "phoenix").spawn();
    let before = queen
        .wait_state("worker", "phoenix", "online", STARTUP)
        .await;
    assert_eq!(before["restarts"], 0);
    first.kill().await;

    let _second = worker(&queen.url(), "phoenix").spawn();
    let after = queen
        .wait_entry("worker", "phoenix", "restarts = 1", STARTUP, |e| {
            e["restarts"] == 1 && e["state"] == "online"
        })
        .await;
    assert!(time(&after["worker"]["started_at"]) > time(&before["worker"]["started_at"]));
    let (_, events) = queen.api.get("/v1/events?limit=1000").await.unwrap();
    let restarted = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            t["id"] == "phoenix"
                && t["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("restarted"))
        })
        .count();
    assert_eq!(restarted, 1, "{events}");
}
