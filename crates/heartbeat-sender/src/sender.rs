//! The heartbeat loop: first beat at once, then every interval; backoff while the queen is away.

use std::{error::Error as _, fmt, time::Duration};

use reqwest::{Client, StatusCode, Url};
use shared_contract::{ApiErrorBody, Heartbeat, HeartbeatAck, HeartbeatBody, Kinded, join_url};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::{
    PayloadSource,
    backoff::{Backoff, jittered},
    handle::{Link, SenderHandle},
};

/// The shortest interval the sender accepts from the queen; guards against a busy loop.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// The longest interval the sender accepts from the queen.
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// How the sender reaches the queen.
#[derive(Clone)]
pub struct SenderConfig {
    /// The queen's base URL, e.g. `http://127.0.0.1:8500`.
    pub queen_url: Url,
    /// The interval until the queen asks for another one.
    pub interval: Duration,
    /// Sent as `Authorization: Bearer <token>` when set.
    pub token: Option<String>,
    /// How long the final `stopping` heartbeat may take; keeps shutdown fast when the queen is gone.
    pub final_timeout: Duration,
}

impl fmt::Debug for SenderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderConfig")
            .field("queen_url", &self.queen_url.as_str())
            .field("interval", &self.interval)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("final_timeout", &self.final_timeout)
            .finish()
    }
}

impl SenderConfig {
    /// Creates a config with the default final-heartbeat timeout (one second).
    pub fn new(queen_url: Url, interval: Duration, token: Option<String>) -> Self {
        Self {
            queen_url,
            interval,
            token,
            final_timeout: Duration::from_secs(1),
        }
    }
}

/// Builds the one HTTP client a daemon uses for all its outgoing requests.
///
/// The client holds a connection pool, so it is built once per process and cloned; the
/// timeouts keep a hung queen or backend from stalling the loop.
pub fn build_client() -> reqwest::Result<Client> {
    Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("rbee-heartbeat-sender/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Runs the heartbeat loop until `shutdown` is cancelled, then sends the final `stopping` beat.
///
/// Never returns an error: an unreachable or refusing queen is logged (once per change) and
/// retried, because a daemon must keep serving while its queen is away.
pub async fn run<S: PayloadSource>(
    config: SenderConfig,
    client: Client,
    mut source: S,
    handle: SenderHandle<<S::Body as HeartbeatBody>::Payload>,
    shutdown: CancellationToken,
) {
    let kind = <<S::Body as HeartbeatBody>::Payload as Kinded>::KIND;
    let url = join_url(&config.queen_url, &format!("v1/{kind}-heartbeat"));
    let queen = config.queen_url.as_str().trim_end_matches('/').to_owned();
    let mut interval = config.interval.clamp(MIN_INTERVAL, MAX_INTERVAL);
    let mut backoff = Backoff::default();
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
        let body = S::Body::new(payload, chrono::Utc::now());
        let request_timeout = interval.clamp(Duration::from_secs(1), Duration::from_secs(10));
        let outcome = tokio::select! {
            outcome = post(&client, &url, config.token.as_deref(), &body, request_timeout) => outcome,
            () = shutdown.cancelled() => break,
        };

        let delay = match outcome {
            Outcome::Ack(ack) => {
                backoff.reset();
                if let Some(next) = ack.and_then(|a| adopted_interval(a.next_heartbeat_ms))
                    && next != interval
                {
                    debug!(queen = %queen, interval_ms = millis(next), "adopting the queen's heartbeat interval");
                    interval = next;
                }
                handle.update(|link, stats| {
                    stats.acknowledged += 1;
                    stats.interval_ms = millis(interval);
                    match *link {
                        Link::Connecting => {
                            info!(queen = %queen, kind = %kind, "registered with queen");
                        }
                        Link::Unreachable | Link::Rejected(_) => {
                            stats.recoveries += 1;
                            info!(queen = %queen, kind = %kind, "queen reachable again, heartbeats accepted");
                        }
                        Link::Up => {}
                    }
                    *link = Link::Up;
                });
                jittered(interval)
            }
            Outcome::Transient(reason) => {
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
                            queen = %queen,
                            status = %status,
                            error = %message,
                            hint = hint(status),
                            "queen rejected heartbeat"
                        );
                    } else {
                        debug!(queen = %queen, status = %status, "heartbeat refused again");
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
    let body = S::Body::new(payload, chrono::Utc::now());
    let sent = tokio::time::timeout(
        config.final_timeout,
        post(
            &client,
            &url,
            config.token.as_deref(),
            &body,
            config.final_timeout,
        ),
    )
    .await;
    match sent {
        Ok(Outcome::Ack(_)) => info!(queen = %queen, "sent final heartbeat (stopping)"),
        Ok(Outcome::Transient(reason)) => {
            info!(queen = %queen, error = %reason, "final heartbeat not delivered");
        }
        Ok(Outcome::Rejected { status, message }) => {
            info!(queen = %queen, status = %status, error = %message, "final heartbeat refused");
        }
        Err(_) => info!(queen = %queen, "final heartbeat timed out"),
    }
}

/// What one attempt came to.
enum Outcome {
    /// 2xx; the ack if the body decoded.
    Ack(Option<HeartbeatAck>),
    /// Worth retrying: connection failure, timeout, 5xx, 408 or 429.
    Transient(String),
    /// A 4xx that retrying will not fix.
    Rejected { status: StatusCode, message: String },
}

async fn post<B: HeartbeatBody>(
    client: &Client,
    url: &Url,
    token: Option<&str>,
    body: &B,
    timeout: Duration,
) -> Outcome {
    let mut request = client.post(url.clone()).json(body).timeout(timeout);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return Outcome::Transient(error_chain(&e)),
    };
    let status = response.status();
    if status.is_success() {
        return Outcome::Ack(response.json::<HeartbeatAck>().await.ok());
    }
    let text = response.text().await.unwrap_or_default();
    let message = match serde_json::from_str::<ApiErrorBody>(&text) {
        Ok(body) => body.error.message,
        Err(_) => text.chars().take(200).collect(),
    };
    if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        Outcome::Transient(format!("queen answered {status}: {message}"))
    } else {
        Outcome::Rejected { status, message }
    }
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
        _ => "the queen does not accept this sender's heartbeat; check its version and flags",
    }
}

/// Renders an error with its causes, e.g. `error sending request: tcp connect error: Connection refused`.
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        format!("timed out: {e}")
    } else {
        e.to_string()
    };
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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
