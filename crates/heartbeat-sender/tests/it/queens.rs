//! Several queen URLs: moving on when one does not answer, following a follower's redirect to the
//! leader, and the final beat going to the queen in use.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{OriginalUri, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use heartbeat_sender::{Link, QueenUrls, SenderConfig, SenderStats};
use parking_lot::Mutex;
use reqwest::Url;
use serde_json::json;
use test_support::{FakeQueen, TestServer, wait_for};

use crate::double::{Running, start_sender_with};

const BEAT: Duration = Duration::from_millis(100);
const LONG: Duration = Duration::from_secs(60);
const DEADLINE: Duration = Duration::from_secs(5);

#[tokio::test]
async fn beats_land_on_the_next_url_when_the_first_refuses() {
    let gone = stopped().await;
    beats_move_to_the_second_url(&gone).await;
}

#[tokio::test]
async fn a_redirect_is_followed_and_the_leader_then_used_directly() {
    let leader = FakeQueen::start(100).await;
    let follower = Follower::start(Some(leader.url())).await;
    let running = start_with_token(&[&follower.url()], BEAT, "s3cret");

    wait_for("beats on the leader", DEADLINE, || leader.count() >= 4).await;
    assert_eq!(
        follower.hits(),
        1,
        "only the first beat went to the follower"
    );
    assert_eq!(running.handle.queen(), Some(base(&leader.url())));
    let beats = leader.beats();
    assert!(
        beats
            .iter()
            .all(|b| b.auth.as_deref() == Some("Bearer s3cret")),
        "the token follows the redirect"
    );
    assert_eq!(beats[0].body["worker"]["id"], "w1");
    let stats = running.handle.stats();
    assert_eq!(stats.redirects, 1);
    assert_eq!((stats.failed, stats.rejected, stats.moves), (0, 0, 0));
    assert_eq!(running.handle.link(), Link::Up);
    running.token.cancel();
}

#[tokio::test]
async fn a_queen_without_a_leader_is_left_for_the_next_url() {
    // A follower that knows no leader answers 503 with a JSON error.
    let follower = answering(StatusCode::SERVICE_UNAVAILABLE, 100).await;
    beats_move_to_the_second_url(&follower).await;
    assert_eq!(
        follower.count(),
        1,
        "later beats go to the second url directly"
    );
}

#[tokio::test]
async fn a_single_url_is_retried_in_place() {
    let queen = answering(StatusCode::SERVICE_UNAVAILABLE, 100).await;
    let running = start(&[&queen.url()], BEAT);

    until(&running, "several failed beats", |s| s.failed >= 3).await;
    assert_eq!(running.handle.link(), Link::Unreachable);
    // One attempt per beat, as before there were lists.
    assert!(queen.count() as u64 <= running.handle.stats().failed + 1);

    queen.answer_with(StatusCode::OK);
    wait_for("link up", DEADLINE, || running.handle.link() == Link::Up).await;
    let stats = running.handle.stats();
    assert_eq!((stats.outages, stats.recoveries), (1, 1));
    assert_eq!((stats.moves, stats.settles, stats.redirects), (0, 0, 0));
    assert_eq!(running.handle.queen(), Some(base(&queen.url())));
    running.token.cancel();
}

#[tokio::test]
async fn moves_on_when_the_queen_in_use_goes_away() {
    let mut first = FakeQueen::start(100).await;
    let second = FakeQueen::start(100).await;
    let running = start(&[&first.url(), &second.url()], BEAT);
    wait_for("beats on the first url", DEADLINE, || first.count() >= 2).await;
    assert_eq!(second.count(), 0);

    first.server().stop().await;
    wait_for("beats on the second url", DEADLINE, || second.count() >= 2).await;
    assert_eq!(running.handle.queen(), Some(base(&second.url())));
    let stats = running.handle.stats();
    assert_eq!((stats.moves, stats.settles), (1, 1));
    running.token.cancel();
}

#[tokio::test]
async fn with_every_url_down_it_backs_off_and_settles_on_the_first_back() {
    let first = stopped().await;
    let mut second = stopped().await;
    let running = start(&[&first.url(), &second.url()], BEAT);

    until(&running, "several failed beats", |s| s.failed >= 3).await;
    assert_eq!(running.handle.link(), Link::Unreachable);
    let stats = running.handle.stats();
    assert_eq!(stats.moves, 1, "one warning for the whole search");
    assert_eq!(stats.outages, 1, "one warning when every url failed");

    second.server().restart().await;
    wait_for("link up", DEADLINE, || running.handle.link() == Link::Up).await;
    assert_eq!(running.handle.queen(), Some(base(&second.url())));
    let stats = running.handle.stats();
    assert_eq!((stats.moves, stats.settles, stats.recoveries), (1, 1, 1));
    running.token.cancel();
}

#[tokio::test]
async fn a_redirect_loop_is_cut_after_a_few_hops() {
    let follower = Follower::start(None).await;
    follower.redirect_to(Some(follower.url()));
    let running = start(&[&follower.url()], BEAT);

    until(&running, "several failed beats", |s| s.failed >= 2).await;
    let failed = running.handle.stats().failed;
    // The first request and three hops per beat; the beat in flight may have begun.
    assert!(
        follower.hits() as u64 <= (failed + 1) * 4,
        "{} hits",
        follower.hits()
    );
    assert_eq!(running.handle.link(), Link::Unreachable);
    assert_eq!(running.handle.stats().redirects, 0);
    running.token.cancel();
}

#[tokio::test]
async fn a_refusal_does_not_move_to_the_next_url() {
    let refusing = answering(StatusCode::UNAUTHORIZED, 100).await;
    let other = FakeQueen::start(100).await;
    let running = start(&[&refusing.url(), &other.url()], BEAT);

    until(&running, "several refusals", |s| s.rejected >= 3).await;
    assert_eq!(running.handle.link(), Link::Rejected(401));
    assert_eq!(
        other.count(),
        0,
        "a 4xx is a configuration error, not an outage"
    );
    assert_eq!(running.handle.stats().moves, 0);
    running.token.cancel();
}

#[tokio::test]
async fn the_final_heartbeat_goes_to_the_queen_in_use() {
    let follower = answering(StatusCode::SERVICE_UNAVAILABLE, 60_000).await;
    let queen = FakeQueen::start(60_000).await;
    let running = start(&[&follower.url(), &queen.url()], LONG);
    wait_for("the first beat on the second url", DEADLINE, || {
        running.handle.link() == Link::Up
    })
    .await;

    stop(running).await;
    let beats = queen.beats();
    assert_eq!(beats.len(), 2, "the first beat and the final one");
    assert_eq!(beats[1].body["worker"]["status"], "stopping");
    assert_eq!(follower.count(), 1);
}

#[tokio::test]
async fn the_final_heartbeat_follows_a_redirect() {
    let queen = Follower::start(None).await;
    let leader = FakeQueen::start(60_000).await;
    let running = start(&[&queen.url()], LONG);
    wait_for("link up", DEADLINE, || running.handle.link() == Link::Up).await;

    // The queen in use lost the leadership before shutdown.
    queen.redirect_to(Some(leader.url()));
    stop(running).await;
    assert_eq!(queen.hits(), 2);
    let beats = leader.beats();
    assert_eq!(beats.len(), 1, "only the final beat reached the leader");
    assert_eq!(beats[0].body["worker"]["status"], "stopping");
}

/// A queen that redirects heartbeats to its leader's base URL (same path) while it knows one,
/// as a follower does, and accepts them itself otherwise.
struct Follower {
    state: Arc<Mutex<FollowerState>>,
    server: TestServer,
}

#[derive(Debug)]
struct FollowerState {
    hits: usize,
    leader: Option<String>,
}

impl Follower {
    async fn start(leader: Option<String>) -> Self {
        let state = Arc::new(Mutex::new(FollowerState { hits: 0, leader }));
        let router = Router::new()
            .route("/v1/worker-heartbeat", post(answer))
            .with_state(Arc::clone(&state));
        let server = TestServer::start(router).await;
        Self { state, server }
    }

    fn url(&self) -> String {
        self.server.url()
    }

    fn redirect_to(&self, leader: Option<String>) {
        self.state.lock().leader = leader;
    }

    fn hits(&self) -> usize {
        self.state.lock().hits
    }
}

async fn answer(
    State(state): State<Arc<Mutex<FollowerState>>>,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let mut state = state.lock();
    state.hits += 1;
    match &state.leader {
        Some(leader) => {
            let mut headers = HeaderMap::new();
            let location = format!("{leader}{}", uri.path());
            headers.insert(header::LOCATION, location.parse().expect("a header value"));
            (StatusCode::TEMPORARY_REDIRECT, headers).into_response()
        }
        None => Json(json!({"status": "ok", "message": "accepted", "next_heartbeat_ms": 0}))
            .into_response(),
    }
}

/// Sends to `first` and a working queen, in that order, and checks that the first beat moved on
/// to the second URL with one warning and one info line and never took the link down.
async fn beats_move_to_the_second_url(first: &FakeQueen) {
    let queen = FakeQueen::start(100).await;
    let running = start(&[&first.url(), &queen.url()], BEAT);

    wait_for("beats on the second url", DEADLINE, || queen.count() >= 3).await;
    assert_eq!(running.handle.link(), Link::Up);
    assert_eq!(running.handle.queen(), Some(base(&queen.url())));
    let stats = running.handle.stats();
    assert_eq!((stats.moves, stats.settles), (1, 1));
    assert_eq!((stats.outages, stats.failed), (0, 0));
    running.token.cancel();
}

/// A fake queen that answers every heartbeat with `status`.
async fn answering(status: StatusCode, next_heartbeat_ms: u64) -> FakeQueen {
    let queen = FakeQueen::start(next_heartbeat_ms).await;
    queen.answer_with(status);
    queen
}

/// A fake queen whose port refuses connections until it is restarted.
async fn stopped() -> FakeQueen {
    let mut queen = FakeQueen::start(100).await;
    queen.server().stop().await;
    queen
}

/// Waits until the sender's counters satisfy `condition`.
async fn until(running: &Running, what: &str, condition: impl Fn(SenderStats) -> bool) {
    wait_for(what, DEADLINE, || condition(running.handle.stats())).await;
}

fn start(urls: &[&str], interval: Duration) -> Running {
    start_sender_with(SenderConfig::new(queens(urls), interval, None))
}

fn start_with_token(urls: &[&str], interval: Duration, token: &str) -> Running {
    start_sender_with(SenderConfig::new(
        queens(urls),
        interval,
        Some(token.to_owned()),
    ))
}

fn queens(urls: &[&str]) -> QueenUrls {
    QueenUrls::new(urls.iter().map(|u| base(u)).collect()).expect("at least one url")
}

fn base(url: &str) -> Url {
    url.parse().expect("a valid url")
}

async fn stop(running: Running) {
    running.token.cancel();
    tokio::time::timeout(Duration::from_secs(2), running.task)
        .await
        .expect("the sender stops within 2 s")
        .expect("the sender task does not panic");
}
