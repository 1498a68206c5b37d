//! Delivering one beat: posting it, following a follower's redirect to the leader, and moving on
//! to the next queen URL when the one in use does not answer.

use std::{error::Error as _, time::Duration};

use reqwest::{
    Client, StatusCode, Url,
    header::{CONTENT_TYPE, HeaderValue, LOCATION},
};
use shared_contract::{ApiErrorBody, HeartbeatAck};
use tracing::{debug, info, warn};

use crate::{
    QueenUrls,
    handle::SenderHandle,
    queens::{Endpoint, Targets},
};

/// How many redirects one attempt follows; more means queens pointing at each other.
const MAX_REDIRECTS: usize = 3;

/// What a beat came to.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// 2xx; the ack if the body decoded.
    Ack(Option<HeartbeatAck>),
    /// Worth retrying: connection failure, timeout, 5xx, 408, 429 or a redirect loop.
    Transient(String),
    /// A 4xx (or a redirect the sender cannot follow) that retrying will not fix.
    Rejected { status: StatusCode, message: String },
}

/// How each request goes out: the daemon's one client, the token and the time one may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Post<'a> {
    pub(crate) client: &'a Client,
    pub(crate) token: Option<&'a str>,
    pub(crate) timeout: Duration,
}

/// The queen in use and the search for another one.
///
/// `searching` is set by the first move away from a queen URL and cleared by the next accepted
/// heartbeat, so a search logs one warning when it starts and one info line when it ends, however
/// many URLs it tries and however many beats it lasts.
#[derive(Debug)]
pub(crate) struct Route {
    targets: Targets,
    searching: bool,
}

impl Route {
    /// Starts at the first of `queens`; `path` is the heartbeat route below each base.
    pub(crate) fn new(queens: &QueenUrls, path: &str) -> Self {
        Self {
            targets: Targets::new(queens, path),
            searching: false,
        }
    }

    /// Returns the endpoint heartbeats go to now.
    pub(crate) fn current(&self) -> &Endpoint {
        self.targets.current()
    }

    /// Delivers one beat: to the queen in use, then to each other configured URL in turn while
    /// they do not answer. A redirect that leads to an accepting queen makes it the one in use.
    pub(crate) async fn deliver<P>(
        &mut self,
        post: Post<'_>,
        body: &[u8],
        handle: &SenderHandle<P>,
    ) -> Outcome {
        let mut reason = String::new();
        // A queen that answered (a follower without a leader, say) is where the next beat starts:
        // it redirects as soon as it knows the leader, while one that timed out (a frozen queen)
        // would cost a whole request timeout again.
        let mut answered = None;
        // URLs that did not answer during this beat: a follower that still redirects to a
        // frozen leader is not followed there twice.
        let mut silent = Vec::new();
        for _ in 0..self.targets.attempts_per_beat() {
            let tried = self.current().url.clone();
            let (outcome, redirected, answer) =
                post_following(post, &tried, body, &mut silent).await;
            match outcome {
                Outcome::Transient(why) if answer == Answered::NoLeader => {
                    // A cluster between leaders: every other queen would say the same, or not
                    // answer. Wait here; this queen redirects once a leader is elected.
                    return Outcome::Transient(why);
                }
                Outcome::Transient(why) => {
                    if answer == Answered::Busy && answered.is_none() {
                        answered = Some(tried);
                    }
                    self.move_on(&why, handle);
                    reason = why;
                }
                Outcome::Ack(_) => {
                    if let Some(url) = redirected {
                        self.follow(url, handle);
                    }
                    self.settle(handle);
                    return outcome;
                }
                Outcome::Rejected { .. } => return outcome,
            }
        }
        if let Some(url) = answered
            && self.targets.rest_on(&url)
        {
            handle.set_queen(self.current().base.clone());
        }
        Outcome::Transient(reason)
    }

    /// Delivers the final beat to the queen in use only (following a redirect), so shutdown
    /// stays quick when the queens are gone.
    pub(crate) async fn deliver_final(&self, post: Post<'_>, body: &[u8]) -> Outcome {
        post_following(post, &self.current().url, body, &mut Vec::new())
            .await
            .0
    }

    fn move_on<P>(&mut self, reason: &str, handle: &SenderHandle<P>) {
        let from = self.targets.current().clone();
        let to = self.targets.advance();
        if *to == from {
            // One URL: retried in place, as a single queen always was.
            return;
        }
        handle.set_queen(to.base.clone());
        if self.searching {
            debug!(from = from.name(), to = to.name(), error = %reason, "trying the next queen url");
            return;
        }
        self.searching = true;
        handle.update(|_, stats| stats.moves += 1);
        warn!(
            from = from.name(),
            to = to.name(),
            error = %reason,
            "queen not answering, moving to the next queen url"
        );
    }

    fn follow<P>(&mut self, url: Url, handle: &SenderHandle<P>) {
        let from = self.targets.current().clone();
        if !self.targets.follow(url) {
            return;
        }
        let to = self.targets.current();
        handle.set_queen(to.base.clone());
        handle.update(|_, stats| stats.redirects += 1);
        info!(
            from = from.name(),
            to = to.name(),
            "queen redirected heartbeats, sending to the new queen"
        );
    }

    fn settle<P>(&mut self, handle: &SenderHandle<P>) {
        if !self.searching {
            return;
        }
        self.searching = false;
        handle.update(|_, stats| stats.settles += 1);
        info!(queen = self.current().name(), "settled on queen url");
    }
}

/// What one request came to.
enum Answer {
    Done(Outcome),
    /// The queen answered, but with a status worth retrying (5xx, 408, 429).
    Busy(Outcome, Answered),
    Redirect(Url),
}

/// Posts `body` to `url`, following up to [`MAX_REDIRECTS`] `307`/`308` redirects with the same
/// body and token. Returns the outcome, the URL that took it when a redirect was followed, and
/// whether a queen answered at all (a transient status, not a refused connection or a timeout).
///
/// `silent` collects the URLs that did not answer (refused or timed out); a redirect to one of
/// them is not followed, and the queen that gave it counts as answering.
async fn post_following(
    post: Post<'_>,
    url: &Url,
    body: &[u8],
    silent: &mut Vec<Url>,
) -> (Outcome, Option<Url>, Answered) {
    let mut at = url.clone();
    for _ in 0..=MAX_REDIRECTS {
        match post_once(post, &at, body).await {
            Answer::Done(outcome) => {
                let redirected = at != *url;
                if matches!(outcome, Outcome::Transient(_)) {
                    silent.push(at.clone());
                    // The queen that redirected did answer: it is worth asking again.
                    let answered = if redirected {
                        Answered::Busy
                    } else {
                        Answered::No
                    };
                    return (outcome, None, answered);
                }
                return (outcome, redirected.then_some(at), Answered::No);
            }
            Answer::Busy(outcome, answered) => return (outcome, None, answered),
            Answer::Redirect(next) if silent.contains(&next) => {
                let reason = format!("redirected to {next}, which did not answer");
                return (Outcome::Transient(reason), None, Answered::Busy);
            }
            Answer::Redirect(next) => at = next,
        }
    }
    let reason = format!("more than {MAX_REDIRECTS} redirects, the last to {at}");
    (Outcome::Transient(reason), None, Answered::Busy)
}

/// Whether a failed request reached a queen that answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answered {
    /// Refused, timed out, or not a transient status.
    No,
    /// A transient status (5xx, 408, 429).
    Busy,
    /// `503` from a queen of a cluster that knows no leader right now.
    NoLeader,
}

async fn post_once(post: Post<'_>, url: &Url, body: &[u8]) -> Answer {
    let mut request = post
        .client
        .post(url.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .body(body.to_vec())
        .timeout(post.timeout);
    if let Some(token) = post.token {
        request = request.bearer_auth(token);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return Answer::Done(Outcome::Transient(error_chain(&e))),
    };
    let status = response.status();
    if status.is_success() {
        return Answer::Done(Outcome::Ack(response.json::<HeartbeatAck>().await.ok()));
    }
    if status == StatusCode::TEMPORARY_REDIRECT || status == StatusCode::PERMANENT_REDIRECT {
        return match redirect_target(url, response.headers().get(LOCATION)) {
            Ok(next) => Answer::Redirect(next),
            Err(message) => Answer::Done(Outcome::Rejected { status, message }),
        };
    }
    let text = response.text().await.unwrap_or_default();
    let (code, message) = match serde_json::from_str::<ApiErrorBody>(&text) {
        Ok(body) => (body.error.code, body.error.message),
        Err(_) => (String::new(), text.chars().take(200).collect()),
    };
    if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        let answered = if status == StatusCode::SERVICE_UNAVAILABLE && code == "no_leader" {
            Answered::NoLeader
        } else {
            Answered::Busy
        };
        Answer::Busy(
            Outcome::Transient(format!("queen answered {status}: {message}")),
            answered,
        )
    } else {
        Answer::Done(Outcome::Rejected { status, message })
    }
}

/// Resolves a redirect's `Location` against the request URL; only plain `http` can be followed.
fn redirect_target(request: &Url, location: Option<&HeaderValue>) -> Result<Url, String> {
    let location = location
        .ok_or("redirect without a location")?
        .to_str()
        .map_err(|_| "redirect with an unreadable location")?;
    let next = request
        .join(location)
        .map_err(|e| format!("redirect to an invalid location {location:?}: {e}"))?;
    if next.scheme() != "http" {
        return Err(format!("redirect to {next}, which is not http"));
    }
    Ok(next)
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

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &str = "http://a:1/rbee/v1/worker-heartbeat";

    /// Resolves `location` as a redirect from [`REQUEST`].
    fn resolve(location: Option<&str>) -> Result<String, String> {
        let request: Url = REQUEST.parse().unwrap();
        let header = location.map(|s| HeaderValue::from_str(s).unwrap());
        redirect_target(&request, header.as_ref()).map(String::from)
    }

    #[test]
    fn locations_resolve_against_the_request() {
        let cases = [
            (
                "http://b:2/v1/worker-heartbeat",
                "http://b:2/v1/worker-heartbeat",
            ),
            (
                "/other/v1/worker-heartbeat",
                "http://a:1/other/v1/worker-heartbeat",
            ),
            ("v1/hive-heartbeat", "http://a:1/rbee/v1/v1/hive-heartbeat"),
        ];
        for (location, expected) in cases {
            assert_eq!(resolve(Some(location)).as_deref(), Ok(expected));
        }
    }

    #[test]
    fn unfollowable_redirects_are_named() {
        assert_eq!(resolve(None).unwrap_err(), "redirect without a location");
        let https = resolve(Some("https://b:2/v1/worker-heartbeat")).unwrap_err();
        assert!(https.contains("not http"), "{https}");
    }
}
