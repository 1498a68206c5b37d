//! What the running sender shares with its daemon: the last payload, the link state, the queen
//! in use, counters.

use std::sync::Arc;

use parking_lot::Mutex;
use reqwest::Url;

/// The sender's view of its connection to the queen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// No heartbeat has been answered yet.
    Connecting,
    /// The last heartbeat was acknowledged.
    Up,
    /// No queen URL answered: each refused, timed out or answered 5xx; retrying with backoff.
    Unreachable,
    /// The queen refused the last heartbeat with this 4xx status: a configuration error.
    Rejected(u16),
}

/// Counters for observing the loop; each log line the sender writes matches one increment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// Heartbeats the queen acknowledged.
    pub acknowledged: u64,
    /// Beats that failed for a transient reason (connection, timeout, 5xx) at every queen URL.
    pub failed: u64,
    /// Attempts the queen refused with a 4xx.
    pub rejected: u64,
    /// Times the link went to [`Link::Unreachable`] (one warning each).
    pub outages: u64,
    /// Times the link came back to [`Link::Up`] after an outage or refusal (one info line each).
    pub recoveries: u64,
    /// Times the link went to a new [`Link::Rejected`] status (one error line each).
    pub refusals: u64,
    /// Times the sender moved away from the queen URL in use because it stopped answering (one
    /// warning each); the further URLs tried before one answers again are not counted.
    pub moves: u64,
    /// Times a heartbeat was accepted after such a move (one info line each).
    pub settles: u64,
    /// Times a queen's `307`/`308` redirect changed the queen in use (one info line each).
    pub redirects: u64,
    /// The interval in force, in milliseconds.
    pub interval_ms: u64,
}

/// A cheap, cloneable view of a running sender, e.g. for a daemon's `GET /v1/info`.
#[derive(Debug)]
pub struct SenderHandle<P> {
    inner: Arc<Mutex<Inner<P>>>,
}

#[derive(Debug)]
struct Inner<P> {
    last: Option<P>,
    link: Link,
    queen: Option<Url>,
    stats: SenderStats,
}

impl<P> Clone for SenderHandle<P> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<P> Default for SenderHandle<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P> SenderHandle<P> {
    /// Creates a handle for a sender that has not run yet.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                last: None,
                link: Link::Connecting,
                queen: None,
                stats: SenderStats::default(),
            })),
        }
    }

    /// Returns the current link state.
    pub fn link(&self) -> Link {
        self.inner.lock().link
    }

    /// Returns a copy of the counters.
    pub fn stats(&self) -> SenderStats {
        self.inner.lock().stats
    }

    /// Returns the base URL of the queen heartbeats go to now: a configured one, or the one a
    /// redirect led to. `None` until the loop starts.
    pub fn queen(&self) -> Option<Url> {
        self.inner.lock().queen.clone()
    }

    pub(crate) fn set_queen(&self, queen: Url) {
        self.inner.lock().queen = Some(queen);
    }

    pub(crate) fn set_last(&self, payload: P) {
        self.inner.lock().last = Some(payload);
    }

    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut Link, &mut SenderStats) -> R) -> R {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        f(&mut inner.link, &mut inner.stats)
    }
}

impl<P: Clone> SenderHandle<P> {
    /// Returns the payload of the latest heartbeat attempt, if any has been made.
    pub fn last_payload(&self) -> Option<P> {
        self.inner.lock().last.clone()
    }
}
