//! Server-Sent Events framing and the per-connection stream of shared frames.

use std::{collections::VecDeque, convert::Infallible, time::Duration};

use bytes::Bytes;
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::state::{AppState, Need, Published};

/// Reconnection delay suggested to clients, in milliseconds.
pub(crate) const RETRY_MS: u64 = 2000;

/// Idle time after which a keep-alive comment is sent.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Serializes `value` once as `event: {event}\ndata: {json}\n`.
///
/// The id line and the terminating blank line are added per connection, so one frame is shared
/// by every subscriber. JSON from serde_json never contains a raw newline, so one `data:` line
/// is always enough.
pub(crate) fn frame(event: &str, value: &impl Serialize) -> serde_json::Result<Bytes> {
    let mut buf = Vec::with_capacity(1024);
    buf.extend_from_slice(b"event: ");
    buf.extend_from_slice(event.as_bytes());
    buf.extend_from_slice(b"\ndata: ");
    serde_json::to_writer(&mut buf, value)?;
    buf.push(b'\n');
    Ok(Bytes::from(buf))
}

/// Returns the byte stream of one subscriber: the current snapshot at once, then every published
/// snapshot and transition, each with an increasing id, until the client leaves or the queen
/// shuts down.
pub(crate) fn subscribe(state: &AppState) -> impl Stream<Item = Result<Bytes, Infallible>> + use<> {
    let inner = &state.inner;
    // Subscribe before asking for a snapshot, so the publisher counts this subscriber.
    let snapshots = inner.snapshots.subscribe();
    let conn = Connection {
        snapshots,
        transitions: inner.transitions.subscribe(),
        shutdown: inner.shutdown.clone(),
        next_id: 1,
        pending: VecDeque::from([Bytes::from(format!("retry: {RETRY_MS}\n"))]),
        first: Some(state.clone()),
        _guard: SubscriberGuard::new(state.clone()),
    };
    futures_util::stream::unfold(conn, |mut conn| async move {
        let chunk = conn.next_chunk().await?;
        Some((Ok(chunk), conn))
    })
}

struct Connection {
    snapshots: watch::Receiver<Published>,
    transitions: broadcast::Receiver<Bytes>,
    shutdown: CancellationToken,
    next_id: u64,
    /// Chunks of the event being written: at most a handful, never a backlog.
    pending: VecDeque<Bytes>,
    /// Set until the first snapshot is sent: it must be current, so it may have to be built.
    first: Option<AppState>,
    _guard: SubscriberGuard,
}

impl Connection {
    fn push_event(&mut self, frame: Bytes) {
        self.pending.push_back(frame);
        self.pending
            .push_back(Bytes::from(format!("id: {}\n\n", self.next_id)));
        self.next_id += 1;
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                return Some(chunk);
            }
            if let Some(state) = self.first.take() {
                tokio::select! {
                    biased;
                    () = self.shutdown.cancelled() => return None,
                    () = state.publish(Need::Fresh) => {}
                }
                let frame = self.snapshots.borrow_and_update().frame.clone();
                if frame.is_empty() {
                    // Only when the build failed or the runtime is going away.
                    return None;
                }
                self.push_event(frame);
                continue;
            }
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return None,
                changed = self.snapshots.changed() => {
                    changed.ok()?;
                    let frame = self.snapshots.borrow_and_update().frame.clone();
                    self.push_event(frame);
                }
                received = self.transitions.recv() => match received {
                    Ok(frame) => self.push_event(frame),
                    // Too slow for the transitions: the latest snapshot sums up what was missed.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let frame = self.snapshots.borrow_and_update().frame.clone();
                        self.push_event(frame);
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                () = tokio::time::sleep(KEEP_ALIVE) => {
                    return Some(Bytes::from_static(b": keep-alive\n\n"));
                }
            }
        }
    }
}

/// Counts a subscriber for as long as its stream exists, however the stream ends.
struct SubscriberGuard(AppState);

impl SubscriberGuard {
    fn new(state: AppState) -> Self {
        state.inner.metrics.subscriber_added();
        Self(state)
    }
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0.inner.metrics.subscriber_removed();
    }
}
