//! The heartbeat loop: first beat at once, then every interval; backoff while no queen answers.

use std::{fmt, time::Duration};

use reqwest::{Client, StatusCode, redirect::Policy};
use shared_contract::{Heartbeat, HeartbeatBody, Kinded};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::{
    PayloadSource, QueenUrls,
    backoff::{Backoff, jittered},
    handle::{Link, SenderHandle},
    route::{Outcome, Post, Route},
};

/// The shortest interval the sender accepts from the queen; guards against a busy loop.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// The longest interval the sender accepts from the queen.
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// How the sender reaches the queen.
#[derive(Clone)]
pub struct SenderConfig {
    /// The queens' base URLs, e.g. `http://127.0.0.1:8500`; several for a cluster.
    pub queens: QueenUrls,
    /// The interval until the queen asks for another one.
    pub interval: Duration,
    /// Sent as `Authorization: Bearer <token>` when set, also after a redirect.
    pub token: Option<String>,
    /// How long the final `stopping` heartbeat may take; keeps shutdown fast when the queen is gone.
    pub final_timeout: Duration,
}

impl fmt::Debug for SenderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderConfig")
            .field("queens", &self.queens)
            .field("interval", &self.interval)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("final_timeout", &self.final_timeout)
            .finish()
    }
}

impl SenderConfig {
    /// Creates a config with the default final-heartbeat timeout (one second); `queens` is one
    /// [`Url`](reqwest::Url) or a [`QueenUrls`] list.
    pub fn new(queens: impl Into<QueenUrls>, interval: Duration, token: Option<String>) -> Self {
        Self {
            queens: queens.into(),
            interval,
            token,
            final_timeout: Duration::from_secs(1),
        }
    }
}

/// Builds the one HTTP client a daemon uses for all its outgoing requests.
///
/// The client holds a connection pool, so it is built once per process and cloned; the
/// timeouts keep a hung queen or backend from stalling the loop. It follows no redirects: the
/// sender follows a follower queen's `307` itself, to remember the leader and to keep sending
/// the token, which an automatic redirect to another host drops. Other users see a `3xx` as is.
pub fn build_client() -> reqwest::Result<Client> {
    Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .redirect(Policy::none())
        .user_agent(concat!("rbee-heartbeat-sender/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Runs the heartbeat loop until `shutdown` is cancelled, then sends the final `stopping` beat.
///
/// Heartbeats go to one queen at a time, starting with the first URL. A `307`/`308` redirect
/// (a follower pointing at the leader) is followed at once with the same body, and the queen it
/// leads to is used from then on. A queen URL that does not answer (connection failure, timeout,
/// 5xx such as a follower's `503` while it knows no leader) is left for the next one in the list;
/// only when every URL failed does the beat count as failed and back off. Expects a client from
/// [`build_client`], which leaves redirects to the loop.
///
/// Never returns an error: unreachable or refusing queens are logged (once per change) and
/// retried, because a daemon must keep serving while its queen is away.
pub async fn run<S: PayloadSource>(
    config: SenderConfig,
    client: Client,
    mut source: S,
    handle: SenderHandle<<S::Body as HeartbeatBody>::Payload>,
    shutdown: CancellationToken,
) {
    let kind = <<S::Body as HeartbeatBody>::Payload as Kinded>::KIND;
    let mut route = Route::new(&config.queens, &format!("v1/{kind}-heartbeat"));
    let token = config.token.as_deref();
    let mut interval = config.interval.clamp(MIN_INTERVAL, MAX_INTERVAL);
    let mut backoff = Backoff::default();
    handle.set_queen(route.current().base.clone());
    handle.update(|_, stats| stats.interval_ms = millis(interval));

    loop {
        let payload = tokio::select! {
            payload = source.current(interval) => payload,
            () = shutdown.cancelled() => break,
        };
        if let Err(e) = payload.validate() {
            // A payload the queen would refuse with 422 is a bug or a bad flag; say so plainly.
            warn!(%e, "heartbeat payload is invalid; the queen will refuse it");
        }
        handle.set_last(payload.clone());
        let body = encode(&S::Body::new(payload, chrono::Utc::now()));
        let post = Post {
            client: &client,
            token,
            timeout: attempt_timeout(interval, config.queens.as_slice().len()),
        };
        let outcome = tokio::select! {
            outcome = route.deliver(post, &body, &handle) => outcome,
            () = shutdown.cancelled() => break,
        };
        let queen = route.current().name();

        let delay = match outcome {
            Outcome::Ack(ack) => {
                backoff.reset();
                if let Some(next) = ack.and_then(|a| adopted_interval(a.next_heartbeat_ms))
                    && next != interval
                {
                    debug!(
                        queen,
                        interval_ms = millis(next),
                        "adopting the queen's heartbeat interval"
                    );
                    interval = next;
                }
                handle.update(|link, stats| {
                    stats.acknowledged += 1;
                    stats.interval_ms = millis(interval);
                    match *link {
                        Link::Connecting => {
                            info!(queen, kind = %kind, "registered with queen");
                        }
                        Link::Unreachable | Link::Rejected(_) => {
                            stats.recoveries += 1;
                            info!(queen, kind = %kind, "queen reachable again, heartbeats accepted");
                        }
                        Link::Up => {}
                    }
                    *link = Link::Up;
                });
                jittered(interval)
            }
            Outcome::Transient(reason) => {
                // Every URL was tried, so name them all.
                let queen = &config.queens;
                handle.update(|link, stats| {
                    stats.failed += 1;
                    if *link != Link::Unreachable {
                        stats.outages += 1;
                        warn!(queen = %queen, error = %reason, "queen unreachable, retrying with backoff");
                    } else {
                        debug!(queen = %queen, error = %reason, "heartbeat failed");
                    }
                    *link = Link::Unreachable;
                });
                backoff.next_delay(interval)
            }
            Outcome::Rejected { status, message } => {
                handle.update(|link, stats| {
                    stats.rejected += 1;
                    if *link != Link::Rejected(status.as_u16()) {
                        stats.refusals += 1;
                        error!(
                            queen,
                            status = %status,
                            error = %message,
                            hint = hint(status),
                            "queen rejected heartbeat"
                        );
                    } else {
                        debug!(queen, status = %status, "heartbeat refused again");
                    }
                    *link = Link::Rejected(status.as_u16());
                });
                // A refusal is not fixed by retrying sooner; keep the normal pace so a fix on
                // the queen's side is picked up.
                backoff.reset();
                jittered(interval)
            }
        };

        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => break,
        }
    }

    let payload = source.stopping();
    handle.set_last(payload.clone());
    let body = encode(&S::Body::new(payload, chrono::Utc::now()));
    let post = Post {
        client: &client,
        token,
        timeout: config.final_timeout,
    };
    let sent = tokio::time::timeout(config.final_timeout, route.deliver_final(post, &body)).await;
    let queen = route.current().name();
    match sent {
        Ok(Outcome::Ack(_)) => info!(queen, "sent final heartbeat (stopping)"),
        Ok(Outcome::Transient(reason)) => {
            info!(queen, error = %reason, "final heartbeat not delivered");
        }
        Ok(Outcome::Rejected { status, message }) => {
            info!(queen, status = %status, error = %message, "final heartbeat refused");
        }
        Err(_) => info!(queen, "final heartbeat timed out"),
    }
}

/// Serializes a beat once, so a redirect or the next queen URL gets the very same bytes.
fn encode<B: HeartbeatBody>(body: &B) -> Vec<u8> {
    serde_json::to_vec(body).expect("heartbeat bodies are plain data and always serialize")
}

fn adopted_interval(next_heartbeat_ms: u64) -> Option<Duration> {
    (next_heartbeat_ms > 0)
        .then(|| Duration::from_millis(next_heartbeat_ms).clamp(MIN_INTERVAL, MAX_INTERVAL))
}

fn hint(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            "check --token (RBEE_TOKEN) against the queen's token"
        }
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
            "check --queen-url: it does not point at a queen"
        }
        StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT => {
            "a queen redirected where the sender cannot follow; check the queens' --advertise-url"
        }
        _ => "the queen does not accept this sender's heartbeat; check its version and flags",
    }
}

/// How long one attempt may take. A queen answers a heartbeat in milliseconds; with several
/// queens a shorter limit keeps a frozen one (its socket accepts, nothing answers) from eating
/// the time in which the others could take the beat.
fn attempt_timeout(interval: Duration, queens: usize) -> Duration {
    if queens > 1 {
        (interval / 2).clamp(Duration::from_millis(250), Duration::from_secs(2))
    } else {
        interval.clamp(Duration::from_secs(1), Duration::from_secs(10))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queen_intervals_are_clamped_and_zero_ignored() {
        assert_eq!(adopted_interval(0), None);
        assert_eq!(adopted_interval(1), Some(MIN_INTERVAL));
        assert_eq!(adopted_interval(250), Some(Duration::from_millis(250)));
        assert_eq!(adopted_interval(u64::MAX), Some(MAX_INTERVAL));
    }
}
