//! The watch stream (`/v1/watch`): a `sync` of the whole state at a revision, then every change
//! after it from the change log, with ids that let a client resume where it left off.
//!
//! Each subscriber is a cursor into the log's ring; it holds no queue of its own. One that
//! falls behind the ring (it stopped reading for long) gets a fresh `sync` when it reads again.
//! A `sync` is built once and shared by everyone who connects within [`SYNC_REUSE`]; they catch
//! up from its revision through the ring like any other subscriber.

use std::{collections::VecDeque, convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::Stream;
use shared_contract::Kind;
use tokio::{sync::watch, time::Instant};

use crate::{
    changelog::Read,
    fleet::{Fleet, FleetView},
    sse::{self, StreamKind, SubscriberGuard},
    state::AppState,
};

/// How long a built `sync` is handed to new subscribers before a fresh one is built.
const SYNC_REUSE: Duration = Duration::from_secs(1);

/// How many bytes of changes a subscriber takes from the ring in one read.
const READ_BYTES: usize = 256 * 1024;

/// A resume point: `EPOCH:REVISION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventId {
    pub(crate) epoch: String,
    pub(crate) revision: u64,
}

impl std::str::FromStr for EventId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (epoch, revision) = s
            .rsplit_once(':')
            .ok_or_else(|| "expected EPOCH:REVISION".to_owned())?;
        if epoch.is_empty() {
            return Err("expected EPOCH:REVISION".to_owned());
        }
        let revision = revision
            .parse()
            .map_err(|_| "the revision must be a non-negative integer".to_owned())?;
        Ok(Self {
            epoch: epoch.to_owned(),
            revision,
        })
    }
}

/// A built `sync` event.
#[derive(Debug, Clone)]
struct BuiltSync {
    kind: Option<Kind>,
    revision: u64,
    built: Instant,
    frame: Bytes,
}

/// The `sync` events built lately, one per `?kind=` filter.
#[derive(Debug, Default)]
pub(crate) struct Syncs {
    built: tokio::sync::Mutex<Vec<BuiltSync>>,
}

impl Syncs {
    /// Returns a `sync` event of `kind` (every kind when `None`) and its revision.
    ///
    /// Reuses one built within [`SYNC_REUSE`] while the ring still holds every change after it;
    /// otherwise builds one off the runtime threads. Builds run one at a time, so a thousand
    /// subscribers connecting at once cost one build.
    async fn get(&self, state: &AppState, kind: Option<Kind>) -> Option<(u64, Bytes)> {
        let mut built = self.built.lock().await;
        let log = state.fleet().log();
        if let Some(sync) = built.iter().find(|s| {
            s.kind == kind && s.built.elapsed() < SYNC_REUSE && log.can_resume_from(s.revision)
        }) {
            return Some((sync.revision, sync.frame.clone()));
        }
        let fleet_state = state.clone();
        let sync = tokio::task::spawn_blocking(move || {
            let fleet = fleet_state.fleet();
            let view = fleet.view();
            match sync_frame(fleet, &view, kind) {
                Ok(frame) => Some(BuiltSync {
                    kind,
                    revision: view.revision,
                    built: Instant::now(),
                    frame,
                }),
                Err(error) => {
                    tracing::error!(%error, "cannot serialize a sync");
                    None
                }
            }
        })
        .await
        .ok()
        .flatten()?;
        let out = (sync.revision, sync.frame.clone());
        built.retain(|s| s.kind != kind);
        built.push(sync);
        Some(out)
    }
}

/// Serializes `view` as one `sync` event, with only `kind`'s entries when given.
fn sync_frame(fleet: &Fleet, view: &FleetView, kind: Option<Kind>) -> serde_json::Result<Bytes> {
    let epoch = fleet.log().epoch();
    let mut buf = Vec::with_capacity(4096);
    sse::open_event(&mut buf, "sync", epoch, view.revision);
    buf.extend_from_slice(b"{\"epoch\":");
    serde_json::to_writer(&mut buf, epoch)?;
    buf.extend_from_slice(b",\"revision\":");
    serde_json::to_writer(&mut buf, &view.revision)?;
    for k in &view.kinds {
        buf.extend_from_slice(b",\"");
        buf.extend_from_slice(k.plural.as_bytes());
        buf.extend_from_slice(b"\":");
        if kind.is_none_or(|wanted| wanted == k.kind) {
            k.write_entries(&mut buf)?;
        } else {
            buf.extend_from_slice(b"[]");
        }
    }
    buf.extend_from_slice(b"}\n\n");
    Ok(Bytes::from(buf))
}

/// Where a new subscriber starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// With a `sync` of the current state.
    Sync,
    /// After this revision, without a `sync`.
    After(u64),
}

/// Decides where a subscriber that presents `resume` (if any) starts.
pub(crate) fn start_for(fleet: &Fleet, resume: Option<&EventId>) -> Start {
    let log = fleet.log();
    match resume {
        Some(id) if id.epoch == log.epoch() && log.can_resume_from(id.revision) => {
            Start::After(id.revision)
        }
        _ => Start::Sync,
    }
}

/// Returns the byte stream of one watch subscriber.
pub(crate) fn subscribe(
    state: &AppState,
    kind: Option<Kind>,
    start: Start,
) -> impl Stream<Item = Result<Bytes, Infallible>> + use<> {
    let log = state.fleet().log();
    let (cursor, needs_sync) = match start {
        Start::Sync => (0, true),
        Start::After(revision) => (revision, false),
    };
    let watcher = Watcher {
        published: log.subscribe(),
        epoch: Arc::from(log.epoch()),
        state: state.clone(),
        kind,
        cursor,
        needs_sync,
        pending: VecDeque::from([sse::retry()]),
        _guard: SubscriberGuard::new(state.clone(), StreamKind::Watch),
    };
    futures_util::stream::unfold(watcher, |mut watcher| async move {
        let chunk = watcher.next_chunk().await?;
        Some((Ok(chunk), watcher))
    })
}

struct Watcher {
    state: AppState,
    epoch: Arc<str>,
    kind: Option<Kind>,
    /// The revision this subscriber has received everything up to.
    cursor: u64,
    needs_sync: bool,
    published: watch::Receiver<u64>,
    /// Frames taken from the ring and not yet written: at most one read's worth.
    pending: VecDeque<Bytes>,
    _guard: SubscriberGuard,
}

impl Watcher {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        let shutdown = self.state.shutdown().clone();
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                return Some(chunk);
            }
            if self.needs_sync {
                let (revision, frame) = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return None,
                    sync = self.state.streams().syncs().get(&self.state, self.kind) => sync?,
                };
                self.cursor = revision;
                self.needs_sync = false;
                self.pending.push_back(frame);
                continue;
            }
            self.published.borrow_and_update();
            match self
                .state
                .fleet()
                .log()
                .read(self.cursor, self.kind, READ_BYTES)
            {
                Read::Frames { frames, last } => {
                    self.cursor = last;
                    self.pending.extend(frames);
                }
                Read::Behind => self.needs_sync = true,
                Read::UpToDate => tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return None,
                    changed = self.published.changed() => changed.ok()?,
                    () = tokio::time::sleep(sse::KEEP_ALIVE) => {
                        return Some(sse::keep_alive(&self.epoch, self.cursor));
                    }
                },
            }
        }
    }
}
