//! The loop's behaviour: pace, backoff, state-change logging, refusals, final beat.

use std::time::Duration;

use axum::http::StatusCode;
use heartbeat_sender::Link;
use test_support::{FakeQueen, wait_for, wait_until};
use tokio::time::Instant;

use crate::double::start_sender;

const LONG: Duration = Duration::from_secs(60);
const DEADLINE: Duration = Duration::from_secs(5);

#[tokio::test]
async fn first_heartbeat_goes_out_at_start_with_the_token() {
    let queen = FakeQueen::start(60_000).await;
    let started = Instant::now();
    let running = start_sender(&queen.url(), LONG, Some("s3cret"));

    wait_for("the first heartbeat", DEADLINE, || queen.count() >= 1).await;
    let beat = &queen.beats()[0];
    assert!(
        beat.at - started < Duration::from_secs(2),
        "first beat was late"
    );
    assert_eq!(beat.auth.as_deref(), Some("Bearer s3cret"));
    assert_eq!(beat.body["worker"]["id"], "w1");
    assert_eq!(beat.body["worker"]["status"], "ready");
    assert!(beat.body["timestamp"].is_string());
    wait_for("link up", DEADLINE, || running.handle.link() == Link::Up).await;
    assert_eq!(
        running.handle.last_payload().map(|p| p.id),
        Some("w1".to_owned())
    );
    running.token.cancel();
}

#[tokio::test]
async fn no_token_means_no_authorization_header() {
    let queen = FakeQueen::start(60_000).await;
    let running = start_sender(&queen.url(), LONG, None);
    wait_for("the first heartbeat", DEADLINE, || queen.count() >= 1).await;
    assert_eq!(queen.beats()[0].auth, None);
    running.token.cancel();
}

#[tokio::test]
async fn adopts_the_interval_the_queen_asks_for() {
    // The sender starts at one minute; the queen asks for 100 ms.
    let queen = FakeQueen::start(100).await;
    let running = start_sender(&queen.url(), LONG, None);

    wait_for("six heartbeats at the queen's pace", DEADLINE, || {
        queen.count() >= 6
    })
    .await;
    assert_eq!(running.handle.stats().interval_ms, 100);
    let beats = queen.beats();
    for pair in beats.windows(2).skip(1) {
        let gap = pair[1].at - pair[0].at;
        // ±10% jitter, plus scheduling slack on a busy machine.
        assert!(gap >= Duration::from_millis(85), "beats too close: {gap:?}");
    }
    running.token.cancel();
}

#[tokio::test]
async fn backs_off_while_the_queen_is_away_and_recovers_within_an_interval() {
    let mut queen = FakeQueen::start(200).await;
    let running = start_sender(&queen.url(), Duration::from_millis(200), None);
    wait_for("link up", DEADLINE, || running.handle.link() == Link::Up).await;

    queen.server().stop().await;
    wait_for("several failed attempts", DEADLINE, || {
        running.handle.stats().failed >= 4
    })
    .await;
    let stats = running.handle.stats();
    assert_eq!(running.handle.link(), Link::Unreachable);
    assert_eq!(stats.outages, 1, "one warning per outage, not per attempt");
    assert_eq!(stats.recoveries, 0);

    let before = queen.count();
    queen.server().restart().await;
    let back = Instant::now();
    wait_for("a heartbeat after the queen's return", DEADLINE, || {
        queen.count() > before
    })
    .await;
    let first_after = queen.beats()[before].at;
    // Backoff is capped at the interval (200 ms); allow scheduling slack.
    assert!(
        first_after - back < Duration::from_millis(200 + 400),
        "recovery took {:?}",
        first_after - back
    );
    wait_for("link up again", DEADLINE, || {
        running.handle.link() == Link::Up
    })
    .await;
    let stats = running.handle.stats();
    assert_eq!(stats.outages, 1);
    assert_eq!(stats.recoveries, 1, "one info line when the queen is back");
    running.token.cancel();
}

#[tokio::test]
async fn server_errors_are_retried_like_an_outage() {
    let queen = FakeQueen::start(100).await;
    queen.answer_with(StatusCode::SERVICE_UNAVAILABLE);
    let running = start_sender(&queen.url(), Duration::from_millis(100), None);

    wait_for("several 503s", DEADLINE, || {
        running.handle.stats().failed >= 4
    })
    .await;
    assert_eq!(running.handle.link(), Link::Unreachable);
    assert_eq!(running.handle.stats().outages, 1);

    queen.answer_with(StatusCode::OK);
    wait_for("link up", DEADLINE, || running.handle.link() == Link::Up).await;
    let stats = running.handle.stats();
    assert_eq!((stats.outages, stats.recoveries), (1, 1));
    running.token.cancel();
}

#[tokio::test]
async fn a_refusal_is_reported_once_and_retried_at_the_normal_pace() {
    let queen = FakeQueen::start(100).await;
    queen.answer_with(StatusCode::UNAUTHORIZED);
    let running = start_sender(&queen.url(), Duration::from_millis(100), Some("wrong"));

    wait_for("several refusals", DEADLINE, || {
        running.handle.stats().rejected >= 3
    })
    .await;
    assert_eq!(running.handle.link(), Link::Rejected(401));
    let stats = running.handle.stats();
    assert_eq!(stats.refusals, 1, "one error line per refusal state");
    assert_eq!(stats.outages, 0);

    queen.answer_with(StatusCode::OK);
    wait_for("link up", DEADLINE, || running.handle.link() == Link::Up).await;
    assert_eq!(running.handle.stats().recoveries, 1);
    running.token.cancel();
}

#[tokio::test]
async fn cancelling_sends_a_final_stopping_heartbeat() {
    let queen = FakeQueen::start(60_000).await;
    let running = start_sender(&queen.url(), LONG, None);
    wait_for("the first heartbeat", DEADLINE, || queen.count() >= 1).await;

    running.token.cancel();
    let finished = Instant::now();
    tokio::time::timeout(Duration::from_secs(2), running.task)
        .await
        .expect("the sender stops within 2 s")
        .expect("the sender task does not panic");
    assert!(finished.elapsed() < Duration::from_secs(2));
    let beats = queen.beats();
    assert_eq!(beats.len(), 2, "the first beat and the final one");
    assert_eq!(beats[1].body["worker"]["status"], "stopping");
    assert_eq!(
        running.handle.last_payload().map(|p| p.status),
        Some(shared_contract::Status::Stopping)
    );
}

#[tokio::test]
async fn shutdown_is_quick_when_the_queen_is_gone() {
    let mut queen = FakeQueen::start(100).await;
    let running = start_sender(&queen.url(), Duration::from_millis(100), None);
    wait_for("link up", DEADLINE, || running.handle.link() == Link::Up).await;
    queen.server().stop().await;
    wait_until("the outage to be noticed", DEADLINE, || {
        let down = running.handle.link() == Link::Unreachable;
        async move { down.then_some(()) }
    })
    .await;

    running.token.cancel();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(2), running.task)
        .await
        .expect("the sender stops within 2 s")
        .expect("the sender task does not panic");
    assert!(started.elapsed() < Duration::from_millis(1500));
}
