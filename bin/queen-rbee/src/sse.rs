//! Server-Sent Events framing shared by both streams, and the response they are sent in.

use std::convert::Infallible;

use axum::{
    body::Body,
    http::header,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures_util::Stream;
use serde::Serialize;

use crate::state::AppState;

/// Reconnection delay suggested to clients, in milliseconds.
pub(crate) const RETRY_MS: u64 = 2000;

/// Idle time after which a keep-alive is sent.
pub(crate) const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// The first bytes of every stream.
pub(crate) fn retry() -> Bytes {
    Bytes::from(format!("retry: {RETRY_MS}\n"))
}

/// Serializes `value` once as `event: {event}\ndata: {json}\n`.
///
/// The summary stream adds its id line and the terminating blank line per connection, so one
/// frame is shared by every subscriber. JSON from serde_json never contains a raw newline, so
/// one `data:` line is always enough.
pub(crate) fn frame(event: &str, value: &impl Serialize) -> serde_json::Result<Bytes> {
    let mut buf = Vec::with_capacity(1024);
    buf.extend_from_slice(b"event: ");
    buf.extend_from_slice(event.as_bytes());
    buf.extend_from_slice(b"\ndata: ");
    serde_json::to_writer(&mut buf, value)?;
    buf.push(b'\n');
    Ok(Bytes::from(buf))
}

/// Starts a watch event whose id is `EPOCH:REVISION`; the caller writes the data and `\n\n`.
pub(crate) fn open_event(buf: &mut Vec<u8>, event: &str, epoch: &str, revision: u64) {
    use std::io::Write as _;
    // Writing into a Vec cannot fail.
    let _ = write!(buf, "event: {event}\nid: {epoch}:{revision}\ndata: ");
}

/// A keep-alive comment that also carries the current id, so a resume point never goes stale.
pub(crate) fn keep_alive(epoch: &str, revision: u64) -> Bytes {
    Bytes::from(format!(": keep-alive\nid: {epoch}:{revision}\n\n"))
}

/// Wraps an event stream in a `text/event-stream` response with the contract's headers.
pub(crate) fn response(
    stream: impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Which stream a subscriber reads, for the subscriber gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamKind {
    /// `/v1/heartbeats/stream`.
    Summary,
    /// `/v1/watch`.
    Watch,
}

/// Counts a subscriber for as long as its stream exists, however the stream ends.
pub(crate) struct SubscriberGuard {
    state: AppState,
    stream: StreamKind,
}

impl SubscriberGuard {
    pub(crate) fn new(state: AppState, stream: StreamKind) -> Self {
        state.metrics().subscriber_added(stream);
        Self { state, stream }
    }
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.state.metrics().subscriber_removed(self.stream);
    }
}
