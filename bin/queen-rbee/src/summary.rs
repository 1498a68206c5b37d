//! The summary stream (`/v1/heartbeats/stream`): the seed's `heartbeat` events, now counts and
//! online ids only, plus `transition` events.
//!
//! One summary is built and serialized at a time and shared by every subscriber through a
//! `watch` channel: a subscriber that falls behind skips to the latest summary instead of
//! queueing. Transitions go through a bounded `broadcast`; a subscriber that lags behind it gets
//! the latest summary instead of the transitions it missed.

use std::{
    collections::VecDeque,
    convert::Infallible,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use bytes::Bytes;
use chrono::Utc;
use futures_util::Stream;
use serde::{Serialize, Serializer, ser::SerializeMap};
use shared_contract::{Id, Kind, Transition};
use tokio::{
    sync::{broadcast, watch},
    time::Instant,
};

use crate::{
    fleet::{Fleet, FleetView},
    sse::{self, StreamKind, SubscriberGuard},
    state::AppState,
};

/// How many transition frames a subscriber may fall behind before it skips to the summary.
const TRANSITION_BUFFER: usize = 1024;

/// The shortest and longest wait that coalesces a burst of changes into one summary. Between
/// them the wait grows with the fleet, so that a large fleet's summaries (each a list of every
/// online id) go out a few times a second rather than after every change.
const COALESCE_MIN: Duration = Duration::from_millis(30);
const COALESCE_MAX: Duration = Duration::from_millis(500);
const COALESCE_PER_ENTRY: Duration = Duration::from_micros(50);

/// The summary as sent: every kind's figures at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Figures {
    kinds: Vec<KindFigures>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct KindFigures {
    kind: Kind,
    plural: &'static str,
    online_ids: Vec<Id>,
    available: usize,
}

impl Figures {
    /// Reads the figures from the registries.
    pub(crate) fn of(fleet: &Fleet) -> Self {
        Self {
            kinds: fleet
                .online()
                .into_iter()
                .map(|(kind, plural, online_ids, available)| KindFigures {
                    kind,
                    plural,
                    online_ids,
                    available,
                })
                .collect(),
        }
    }

    /// Computes the figures of a view.
    pub(crate) fn of_view(view: &FleetView) -> Self {
        Self {
            kinds: view
                .kinds
                .iter()
                .map(|k| KindFigures {
                    kind: k.kind,
                    plural: k.plural,
                    online_ids: k.online_ids.clone(),
                    available: k.available,
                })
                .collect(),
        }
    }

    fn online(&self) -> usize {
        self.kinds.iter().map(|k| k.online_ids.len()).sum()
    }
}

/// A summary with its header fields; serialized as the contract's flat object.
pub(crate) struct Summary<'a> {
    pub(crate) seq: u64,
    pub(crate) revision: u64,
    pub(crate) figures: &'a Figures,
}

impl Summary<'_> {
    /// Writes the summary's fields into an open JSON map.
    pub(crate) fn write_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        map.serialize_entry("seq", &self.seq)?;
        map.serialize_entry("timestamp", &Utc::now())?;
        map.serialize_entry("revision", &self.revision)?;
        for k in &self.figures.kinds {
            map.serialize_entry(&format!("{}_online", k.plural), &k.online_ids.len())?;
            map.serialize_entry(&format!("{}_available", k.plural), &k.available)?;
        }
        for k in &self.figures.kinds {
            map.serialize_entry(&format!("{}_ids", k.kind), &k.online_ids)?;
        }
        Ok(())
    }
}

impl Serialize for Summary<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        self.write_fields(&mut map)?;
        map.end()
    }
}

/// The published summary.
#[derive(Debug, Clone)]
struct Published {
    /// `event: heartbeat\ndata: {json}\n`; empty before the first summary.
    frame: Bytes,
    figures: std::sync::Arc<Figures>,
    taken: Instant,
}

/// The summary stream's shared state: the latest summary and the transitions channel.
#[derive(Debug)]
pub(crate) struct Summaries {
    latest: watch::Sender<Published>,
    transitions: broadcast::Sender<Bytes>,
    seq: AtomicU64,
    /// Held while a summary is built, so that publications stay in `seq` order.
    build: tokio::sync::Mutex<()>,
}

impl Default for Summaries {
    fn default() -> Self {
        Self {
            latest: watch::Sender::new(Published {
                frame: Bytes::new(),
                figures: Default::default(),
                taken: Instant::now(),
            }),
            transitions: broadcast::channel(TRANSITION_BUFFER).0,
            seq: AtomicU64::new(0),
            build: tokio::sync::Mutex::new(()),
        }
    }
}

impl Summaries {
    /// Whether anyone subscribes to the summary stream.
    pub(crate) fn watched(&self) -> bool {
        self.latest.receiver_count() > 0
    }

    /// How long to wait after a change before publishing, given the fleet's size.
    pub(crate) fn coalesce_delay(&self) -> Duration {
        let online = self.latest.borrow().figures.online();
        COALESCE_PER_ENTRY
            .saturating_mul(u32::try_from(online).unwrap_or(u32::MAX))
            .clamp(COALESCE_MIN, COALESCE_MAX)
    }

    /// Builds a summary and publishes it if it differs from the last one, or whenever `always`
    /// (the periodic event) is set.
    pub(crate) async fn publish(&self, fleet: &Fleet, always: bool) {
        let _build = self.build.lock().await;
        // The revision first: the figures then hold at least every change up to it.
        let revision = fleet.log().revision();
        let figures = Figures::of(fleet);
        if !always
            && *self.latest.borrow().figures == figures
            && !self.latest.borrow().frame.is_empty()
        {
            return;
        }
        self.send(revision, figures);
    }

    /// Returns the current summary frame, building one if the published one is out of date.
    async fn current(&self, fleet: &Fleet) -> Bytes {
        let _build = self.build.lock().await;
        // The revision first: the figures then hold at least every change up to it.
        let revision = fleet.log().revision();
        let figures = Figures::of(fleet);
        {
            let latest = self.latest.borrow();
            if *latest.figures == figures && !latest.frame.is_empty() {
                return latest.frame.clone();
            }
        }
        self.send(revision, figures)
    }

    fn send(&self, revision: u64, figures: Figures) -> Bytes {
        let summary = Summary {
            seq: self.next_seq(),
            revision,
            figures: &figures,
        };
        let frame = match sse::frame("heartbeat", &summary) {
            Ok(frame) => frame,
            Err(error) => {
                tracing::error!(%error, "cannot serialize a summary");
                return Bytes::new();
            }
        };
        self.latest.send_replace(Published {
            frame: frame.clone(),
            figures: std::sync::Arc::new(figures),
            taken: Instant::now(),
        });
        frame
    }

    /// Returns the next summary sequence number.
    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Sends a transition to the stream's subscribers; serialized only when someone listens.
    pub(crate) fn transition(&self, transition: &Transition) {
        if self.transitions.receiver_count() == 0 {
            return;
        }
        match sse::frame("transition", transition) {
            // An error only means the last subscriber just left.
            Ok(frame) => drop(self.transitions.send(frame)),
            Err(error) => tracing::error!(%error, "cannot serialize a transition"),
        }
    }

    /// How old the published summary is.
    pub(crate) fn age(&self) -> Duration {
        self.latest.borrow().taken.elapsed()
    }
}

/// Returns the byte stream of one subscriber: the current summary at once, then every
/// published summary and transition, each with an increasing id, until the client leaves or
/// the queen shuts down.
pub(crate) fn subscribe(state: &AppState) -> impl Stream<Item = Result<Bytes, Infallible>> + use<> {
    let summaries = state.streams().summaries();
    let conn = Connection {
        latest: summaries.latest.subscribe(),
        transitions: summaries.transitions.subscribe(),
        next_id: 1,
        pending: VecDeque::from([sse::retry()]),
        first: true,
        _guard: SubscriberGuard::new(state.clone(), StreamKind::Summary),
        state: state.clone(),
    };
    futures_util::stream::unfold(conn, |mut conn| async move {
        let chunk = conn.next_chunk().await?;
        Some((Ok(chunk), conn))
    })
}

struct Connection {
    state: AppState,
    latest: watch::Receiver<Published>,
    transitions: broadcast::Receiver<Bytes>,
    next_id: u64,
    /// Chunks of the event being written: at most a handful, never a backlog.
    pending: VecDeque<Bytes>,
    /// Set until the first summary is sent.
    first: bool,
    _guard: SubscriberGuard,
}

impl Connection {
    fn push_event(&mut self, frame: Bytes) {
        if frame.is_empty() {
            return;
        }
        self.pending.push_back(frame);
        self.pending
            .push_back(Bytes::from(format!("id: {}\n\n", self.next_id)));
        self.next_id += 1;
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        let shutdown = self.state.shutdown().clone();
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                return Some(chunk);
            }
            if std::mem::take(&mut self.first) {
                let frame = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return None,
                    frame = self.state.streams().summaries().current(self.state.fleet()) => frame,
                };
                self.latest.borrow_and_update();
                self.push_event(frame);
                continue;
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return None,
                changed = self.latest.changed() => {
                    changed.ok()?;
                    let frame = self.latest.borrow_and_update().frame.clone();
                    self.push_event(frame);
                }
                received = self.transitions.recv() => match received {
                    Ok(frame) => self.push_event(frame),
                    // Too slow for the transitions: the latest summary sums up what was missed.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let frame = self.latest.borrow_and_update().frame.clone();
                        self.push_event(frame);
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                () = tokio::time::sleep(sse::KEEP_ALIVE) => {
                    return Some(Bytes::from_static(b": keep-alive\n\n"));
                }
            }
        }
    }
}
