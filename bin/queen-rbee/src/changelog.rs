//! The revisioned change log: every material change of the fleet, in order, each serialized once.
//!
//! Registries append under their own lock (see `heartbeat_registry::Sink`), so the log's order
//! is the order in which the fleet changed. Appending only stores the change; the publisher
//! task serializes what was appended, off the ingest path, and then advances the published
//! revision that watchers wait on. Watchers read frames by revision from a ring that keeps at
//! least the last [`History::revisions`] revisions or those of the last [`History::age`],
//! whichever is more, bounded by [`MAX_KEPT`].

use std::{collections::VecDeque, fmt, time::Duration};

use bytes::Bytes;
use parking_lot::Mutex;
use shared_contract::{Kind, Transition};
use tokio::{
    sync::{Notify, watch},
    time::Instant,
};

/// The most revisions kept, so that a burst of changes cannot grow memory without bound.
pub(crate) const MAX_KEPT: usize = 200_000;

/// What the ring keeps for resuming watchers: the contract asks for at least the last 10,000
/// revisions or the last 5 minutes, whichever is more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct History {
    /// Revisions always kept.
    pub(crate) revisions: usize,
    /// How long revisions are kept, however many there are.
    pub(crate) age: Duration,
}

/// A change waiting to be serialized.
pub(crate) trait Pending: Send {
    /// Serializes the change as a complete watch event (`event:`, `id:`, `data:` lines).
    fn frame(&self, epoch: &str, revision: u64) -> serde_json::Result<Bytes>;
    /// The transition the change carries, if it is one.
    fn transition(&self) -> Option<&Transition>;
    /// The change as the store keeps it.
    fn keep(&self, revision: u64, appended: std::time::Instant) -> fleet_store::Record;
}

/// One published change, as the publisher hands it on.
pub(crate) struct Published {
    pub(crate) revision: u64,
    /// The change's watch event.
    pub(crate) frame: Bytes,
    pub(crate) transition: Option<Transition>,
    /// The change for the store, when [`ChangeLog::publish`] was asked to keep it.
    pub(crate) kept: Option<fleet_store::Record>,
}

/// What a watcher reads after its cursor.
#[derive(Debug)]
pub(crate) enum Read {
    /// Frames of the revisions after the cursor, and the revision the cursor moves to.
    Frames { frames: Vec<Bytes>, last: u64 },
    /// Nothing published after the cursor yet.
    UpToDate,
    /// The ring no longer holds every revision after the cursor: the watcher needs a `sync`.
    Behind,
}

/// The log: an epoch, the current revision and the ring of recent changes.
pub(crate) struct ChangeLog {
    epoch: String,
    history: History,
    ring: Mutex<Ring>,
    /// Wakes the publisher after an append.
    appended: Notify,
    /// The highest revision whose frame exists; watchers wait on it.
    published: watch::Sender<u64>,
}

struct Ring {
    /// The revision of the newest change appended.
    revision: u64,
    /// Changes in revision order; the first holds `revision - records.len() + 1`.
    records: VecDeque<Record>,
}

struct Record {
    revision: u64,
    kind: Kind,
    at: Instant,
    body: Body,
}

enum Body {
    Pending(Box<dyn Pending>),
    /// Taken by the publisher, being serialized.
    Taken,
    Frame(Bytes),
}

impl fmt::Debug for ChangeLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeLog")
            .field("epoch", &self.epoch)
            .field("published", &*self.published.borrow())
            .finish_non_exhaustive()
    }
}

impl ChangeLog {
    /// Starts an empty log of `epoch` at `revision`.
    pub(crate) fn new(epoch: String, revision: u64, history: History) -> Self {
        Self {
            epoch,
            history,
            ring: Mutex::new(Ring {
                revision,
                records: VecDeque::new(),
            }),
            appended: Notify::new(),
            published: watch::Sender::new(revision),
        }
    }

    /// Names this log: it changes when the queen starts with new state.
    pub(crate) fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Appends one change with the next revision and returns that revision; quick, so that it
    /// can run under a registry lock.
    pub(crate) fn append(&self, kind: Kind, change: Box<dyn Pending>) -> u64 {
        let mut ring = self.ring.lock();
        ring.revision += 1;
        let record = Record {
            revision: ring.revision,
            kind,
            at: Instant::now(),
            body: Body::Pending(change),
        };
        let revision = ring.revision;
        ring.records.push_back(record);
        drop(ring);
        self.appended.notify_one();
        revision
    }

    /// Appends a change that already has its revision (a follower mirroring its leader);
    /// false, appending nothing, unless `revision` is the next one.
    pub(crate) fn append_at(&self, revision: u64, kind: Kind, change: Box<dyn Pending>) -> bool {
        let mut ring = self.ring.lock();
        if revision != ring.revision + 1 {
            return false;
        }
        ring.revision = revision;
        ring.records.push_back(Record {
            revision,
            kind,
            at: Instant::now(),
            body: Body::Pending(change),
        });
        drop(ring);
        self.appended.notify_one();
        true
    }

    /// Empties the ring and continues at `revision`: the state was replaced, so every watcher
    /// behind `revision` gets a fresh `sync`.
    pub(crate) fn reset(&self, revision: u64) {
        let mut ring = self.ring.lock();
        ring.records.clear();
        ring.revision = revision;
        drop(ring);
        self.published.send_replace(revision);
    }

    /// Publishes up to `revision` what [`ChangeLog::publish`] serialized but held back (a
    /// leader's changes once etcd committed them).
    pub(crate) fn release(&self, revision: u64) {
        let target = revision.min(self.ring.lock().revision);
        self.published.send_if_modified(|published| {
            if target > *published {
                *published = target;
                true
            } else {
                false
            }
        });
    }

    /// Returns the revision of the newest change appended.
    pub(crate) fn revision(&self) -> u64 {
        self.ring.lock().revision
    }

    /// Returns the newest revision whose frame can be read.
    pub(crate) fn published(&self) -> u64 {
        *self.published.borrow()
    }

    /// Returns a receiver that sees every advance of the published revision.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// Completes when something was appended since the last call.
    pub(crate) async fn appended(&self) {
        self.appended.notified().await;
    }

    /// Serializes every appended change, then publishes them; returns what was published, with
    /// each change's kept form when `keep` (the store is on). With `hold` the frames are made
    /// but watchers see them only after [`ChangeLog::release`]: a cluster's leader shows only
    /// what etcd committed, so no queen ever serves a revision that a failover could reuse.
    ///
    /// Only the publisher task calls it, so pending records are taken by one caller at a time.
    pub(crate) fn publish(&self, keep: bool, hold: bool) -> Vec<Published> {
        let mut taken = Vec::new();
        {
            let mut ring = self.ring.lock();
            let published = *self.published.borrow();
            let first = ring.records.front().map_or(0, |r| r.revision);
            let start = usize::try_from(published.saturating_add(1).saturating_sub(first))
                .unwrap_or(usize::MAX);
            for record in ring.records.iter_mut().skip(start) {
                // Frames held for a cluster's commit stay as they are; only pending changes
                // are taken.
                if !matches!(record.body, Body::Pending(_)) {
                    continue;
                }
                if let Body::Pending(change) = std::mem::replace(&mut record.body, Body::Taken) {
                    taken.push((record.revision, record.at, change));
                }
            }
        }
        if taken.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(taken.len());
        let mut frames = Vec::with_capacity(taken.len());
        for (revision, at, change) in &taken {
            let frame = change
                .frame(&self.epoch, *revision)
                .unwrap_or_else(|error| {
                    // Serializing our own types cannot fail; if it ever does, keep the revision
                    // sequence whole with a comment line rather than a gap.
                    tracing::error!(%error, revision, "cannot serialize a change");
                    Bytes::from(format!(
                        ": revision {revision} unavailable\nid: {}:{revision}\n\n",
                        self.epoch
                    ))
                });
            frames.push(frame.clone());
            out.push(Published {
                revision: *revision,
                frame,
                transition: change.transition().cloned(),
                kept: keep.then(|| change.keep(*revision, at.into_std())),
            });
        }
        let last = out.last().map_or(0, |p| p.revision);
        {
            let mut ring = self.ring.lock();
            let first = ring.records.front().map_or(0, |r| r.revision);
            for ((revision, _, _), frame) in taken.iter().zip(frames) {
                let Some(index) = revision
                    .checked_sub(first)
                    .and_then(|i| usize::try_from(i).ok())
                else {
                    continue;
                };
                if let Some(record) = ring.records.get_mut(index) {
                    record.body = Body::Frame(frame);
                }
            }
            ring.trim(Instant::now(), self.history);
        }
        if !hold {
            self.published.send_replace(last);
        }
        out
    }

    /// Whether the ring still holds every revision after `revision`, so a watcher at
    /// `revision` can resume without a `sync`.
    pub(crate) fn can_resume_from(&self, revision: u64) -> bool {
        let ring = self.ring.lock();
        revision <= ring.revision && revision.saturating_add(1) >= ring.first_revision()
    }

    /// Reads the frames after `cursor` (up to the published revision), of `kind` only when
    /// given, at most about `max_bytes` of them.
    pub(crate) fn read(&self, cursor: u64, kind: Option<Kind>, max_bytes: usize) -> Read {
        let published = *self.published.borrow();
        if cursor >= published {
            return Read::UpToDate;
        }
        let ring = self.ring.lock();
        let first = ring.first_revision();
        if cursor.saturating_add(1) < first {
            return Read::Behind;
        }
        let start = usize::try_from(cursor + 1 - first).unwrap_or(usize::MAX);
        let mut frames = Vec::new();
        let mut bytes = 0;
        let mut last = cursor;
        for record in ring.records.iter().skip(start) {
            if record.revision > published || bytes >= max_bytes {
                break;
            }
            last = record.revision;
            if kind.is_some_and(|k| k != record.kind) {
                continue;
            }
            if let Body::Frame(frame) = &record.body {
                bytes += frame.len();
                frames.push(frame.clone());
            }
        }
        Read::Frames { frames, last }
    }
}

impl Ring {
    /// The oldest revision still held (one past the newest when empty).
    fn first_revision(&self) -> u64 {
        self.records
            .front()
            .map_or(self.revision + 1, |r| r.revision)
    }

    /// Drops published records beyond what resuming watchers are promised.
    fn trim(&mut self, now: Instant, history: History) {
        while let Some(oldest) = self.records.front() {
            let published = matches!(oldest.body, Body::Frame(_));
            let over_count = self.records.len() > history.revisions;
            let too_old = now.saturating_duration_since(oldest.at) > history.age;
            let over_cap = self.records.len() > MAX_KEPT;
            if published && ((over_count && too_old) || over_cap) {
                self.records.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Numbered;

    impl Pending for Numbered {
        fn frame(&self, epoch: &str, revision: u64) -> serde_json::Result<Bytes> {
            Ok(Bytes::from(format!("id: {epoch}:{revision}\n\n")))
        }

        fn transition(&self) -> Option<&Transition> {
            None
        }

        fn keep(&self, revision: u64, appended: std::time::Instant) -> fleet_store::Record {
            fleet_store::Record {
                revision,
                kind: "worker",
                id: format!("w{revision}"),
                entry: None,
                transition: None,
                appended,
            }
        }
    }

    fn frames(log: &ChangeLog, cursor: u64) -> Vec<Bytes> {
        match log.read(cursor, None, usize::MAX) {
            Read::Frames { frames, .. } => frames,
            other => panic!("expected frames, got {other:?}"),
        }
    }

    #[test]
    fn held_frames_survive_later_publishes_and_show_once_released() {
        let history = History {
            revisions: 100,
            age: Duration::from_secs(60),
        };
        let log = ChangeLog::new("e".to_owned(), 0, history);
        for _ in 0..3 {
            log.append(Kind::Worker, Box::new(Numbered));
        }
        assert_eq!(log.publish(true, true).len(), 3);
        assert!(matches!(log.read(0, None, usize::MAX), Read::UpToDate));
        for _ in 0..2 {
            log.append(Kind::Worker, Box::new(Numbered));
        }
        // The second publish takes only what is new, and leaves the held frames alone.
        assert_eq!(log.publish(true, true).len(), 2);
        log.release(3);
        assert_eq!(frames(&log, 0).len(), 3);
        log.release(5);
        let all = frames(&log, 0);
        let ids: Vec<&[u8]> = all.iter().map(|f| &f[..]).collect();
        assert_eq!(
            ids,
            [
                &b"id: e:1\n\n"[..],
                b"id: e:2\n\n",
                b"id: e:3\n\n",
                b"id: e:4\n\n",
                b"id: e:5\n\n"
            ]
        );
    }

    #[test]
    fn a_mirrored_change_must_be_the_next_revision() {
        let history = History {
            revisions: 100,
            age: Duration::from_secs(60),
        };
        let log = ChangeLog::new("e".to_owned(), 7, history);
        assert!(!log.append_at(9, Kind::Worker, Box::new(Numbered)));
        assert!(log.append_at(8, Kind::Worker, Box::new(Numbered)));
        log.publish(false, false);
        assert_eq!(frames(&log, 7).len(), 1);
        log.reset(20);
        assert!(matches!(log.read(8, None, usize::MAX), Read::Behind));
    }
}
