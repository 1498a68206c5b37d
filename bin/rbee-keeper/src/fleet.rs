//! The keeper's copy of the fleet: entries by kind and id, kept from `/v1/watch` events or
//! filled once from a snapshot, with the recent transitions.

use std::collections::{BTreeMap, VecDeque};

use anyhow::Context as _;
use hive_contract::HiveInfo;
use serde::Deserialize;
use shared_contract::{Entry, Health, Heartbeat, Kind, State, Timestamp, Transition};
use tokio::time::Instant;
use worker_contract::WorkerInfo;

/// How many transitions the copy remembers, newest first.
pub(crate) const RECENT_TRANSITIONS: usize = 50;

/// The whole state at one revision: a `sync` event's data, and the entries of a REST snapshot.
#[derive(Debug, Deserialize)]
pub(crate) struct Listing {
    /// Names the queen's change log; absent from queens that predate the watch.
    #[serde(default)]
    pub(crate) epoch: Option<String>,
    /// The revision this state is at.
    #[serde(default)]
    pub(crate) revision: Option<u64>,
    /// When the queen took a snapshot (snapshots only).
    #[serde(default)]
    pub(crate) timestamp: Option<Timestamp>,
    pub(crate) workers: Vec<Entry<WorkerInfo>>,
    pub(crate) hives: Vec<Entry<HiveInfo>>,
}

/// One event of `/v1/watch`, decoded.
#[derive(Debug)]
pub(crate) enum WatchEvent {
    /// Replace the whole copy.
    Sync(Listing),
    /// Insert or replace one entry.
    Upsert {
        revision: u64,
        entry: AnyEntry,
        transition: Option<Transition>,
    },
    /// Forget one entry.
    Remove {
        revision: u64,
        kind: Kind,
        id: String,
        transition: Option<Transition>,
    },
}

/// An entry of either kind (boxed: a hive entry is several times the size of the rest).
#[derive(Debug)]
pub(crate) enum AnyEntry {
    Worker(Box<Entry<WorkerInfo>>),
    Hive(Box<Entry<HiveInfo>>),
}

impl WatchEvent {
    /// Decodes an event by name; returns `None` for names this keeper does not know, so that a
    /// newer queen can add events without breaking it.
    pub(crate) fn parse(name: &str, data: &str) -> anyhow::Result<Option<WatchEvent>> {
        #[derive(Deserialize)]
        struct Upsert {
            revision: u64,
            kind: Kind,
            entry: serde_json::Value,
            #[serde(default)]
            transition: Option<Transition>,
        }
        #[derive(Deserialize)]
        struct Remove {
            revision: u64,
            kind: Kind,
            id: String,
            #[serde(default)]
            transition: Option<Transition>,
        }
        let event = match name {
            "sync" => WatchEvent::Sync(serde_json::from_str(data).context("decode a sync")?),
            "upsert" => {
                let u: Upsert = serde_json::from_str(data).context("decode an upsert")?;
                let entry = match u.kind {
                    Kind::Worker => AnyEntry::Worker(
                        serde_json::from_value(u.entry).context("decode an upserted worker")?,
                    ),
                    Kind::Hive => AnyEntry::Hive(
                        serde_json::from_value(u.entry).context("decode an upserted hive")?,
                    ),
                };
                WatchEvent::Upsert {
                    revision: u.revision,
                    entry,
                    transition: u.transition,
                }
            }
            "remove" => {
                let r: Remove = serde_json::from_str(data).context("decode a remove")?;
                WatchEvent::Remove {
                    revision: r.revision,
                    kind: r.kind,
                    id: r.id,
                    transition: r.transition,
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(event))
    }
}

/// One kept entry and when this copy of it arrived, so that ages can move on between events.
#[derive(Debug, Clone)]
pub(crate) struct Kept<T> {
    pub(crate) entry: Entry<T>,
    pub(crate) at: Instant,
}

impl<T: Heartbeat> Kept<T> {
    pub(crate) fn id(&self) -> &str {
        self.entry.payload.id()
    }

    /// Returns why this entry needs attention, if it does.
    pub(crate) fn problem(&self) -> Option<Problem> {
        if self.entry.state == State::Offline {
            Some(Problem::Offline)
        } else if matches!(self.entry.payload.health(), Health::Unhealthy { .. }) {
            Some(Problem::Unhealthy)
        } else if self.entry.conflict {
            Some(Problem::Conflict)
        } else {
            None
        }
    }

    /// Milliseconds since the last heartbeat as of `now`.
    ///
    /// Exact for a fresh snapshot and for offline and left entries (their state change carried
    /// the figure); for online entries kept from the watch it is stale by design, since beats
    /// that change nothing else send no event.
    pub(crate) fn last_seen_ms_ago(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.at).as_millis();
        self.entry
            .last_seen_ms_ago
            .saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }
}

/// Why an entry is listed among the problems, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Problem {
    Offline,
    Unhealthy,
    Conflict,
}

/// How many entries of one kind are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) known: usize,
    pub(crate) online: usize,
    pub(crate) offline: usize,
    pub(crate) left: usize,
    pub(crate) available: usize,
    pub(crate) problems: usize,
}

impl Counts {
    pub(crate) fn add<T: Heartbeat>(&mut self, kept: &Kept<T>) {
        self.known += 1;
        match kept.entry.state {
            State::Online => self.online += 1,
            State::Offline => self.offline += 1,
            State::Left => self.left += 1,
        }
        self.available += usize::from(kept.entry.available);
        self.problems += usize::from(kept.problem().is_some());
    }
}

/// The local copy.
#[derive(Debug, Default)]
pub(crate) struct Fleet {
    epoch: Option<String>,
    revision: Option<u64>,
    workers: BTreeMap<String, Kept<WorkerInfo>>,
    hives: BTreeMap<String, Kept<HiveInfo>>,
    /// Newest first.
    transitions: VecDeque<Transition>,
    synced: bool,
}

impl Fleet {
    /// Builds a copy from one listing, as `status` does with a snapshot.
    pub(crate) fn from_listing(listing: Listing, now: Instant) -> Fleet {
        let mut fleet = Fleet::default();
        fleet.replace(listing, now);
        fleet
    }

    /// Applies one watch event and returns the transition it carried, if any.
    pub(crate) fn apply(&mut self, event: WatchEvent, now: Instant) -> Option<&Transition> {
        let transition = match event {
            WatchEvent::Sync(listing) => {
                self.replace(listing, now);
                None
            }
            WatchEvent::Upsert {
                revision,
                entry,
                transition,
            } => {
                self.revision = Some(revision);
                match entry {
                    AnyEntry::Worker(entry) => {
                        let id = entry.payload.id.clone();
                        self.workers.insert(
                            id,
                            Kept {
                                entry: *entry,
                                at: now,
                            },
                        );
                    }
                    AnyEntry::Hive(entry) => {
                        let id = entry.payload.id.clone();
                        self.hives.insert(
                            id,
                            Kept {
                                entry: *entry,
                                at: now,
                            },
                        );
                    }
                }
                transition
            }
            WatchEvent::Remove {
                revision,
                kind,
                id,
                transition,
            } => {
                self.revision = Some(revision);
                // Removing an id this copy never had is harmless: the outcome is the same.
                match kind {
                    Kind::Worker => {
                        self.workers.remove(&id);
                    }
                    Kind::Hive => {
                        self.hives.remove(&id);
                    }
                }
                transition
            }
        };
        let transition = transition?;
        self.remember(transition);
        self.transitions.front()
    }

    /// Adds history fetched from `/v1/events` (oldest first) behind what the copy already has.
    pub(crate) fn seed_transitions(&mut self, oldest_first: Vec<Transition>) {
        for t in oldest_first.into_iter().rev() {
            if self.transitions.len() >= RECENT_TRANSITIONS {
                break;
            }
            if !self.transitions.contains(&t) {
                self.transitions.push_back(t);
            }
        }
    }

    /// Returns whether a `sync` (or a listing) has filled the copy.
    pub(crate) fn synced(&self) -> bool {
        self.synced
    }

    /// Returns where the copy stands as `EPOCH:REVISION`, the form `?since=` takes.
    pub(crate) fn position(&self) -> Option<String> {
        match (&self.epoch, self.revision) {
            (Some(epoch), Some(revision)) => Some(format!("{epoch}:{revision}")),
            (None, Some(revision)) => Some(revision.to_string()),
            (_, None) => None,
        }
    }

    /// Workers in id order.
    pub(crate) fn workers(&self) -> impl Iterator<Item = &Kept<WorkerInfo>> {
        self.workers.values()
    }

    /// Hives in id order.
    pub(crate) fn hives(&self) -> impl Iterator<Item = &Kept<HiveInfo>> {
        self.hives.values()
    }

    pub(crate) fn hive(&self, id: &str) -> Option<&Kept<HiveInfo>> {
        self.hives.get(id)
    }

    /// Recent transitions, newest first.
    pub(crate) fn transitions(&self) -> impl Iterator<Item = &Transition> {
        self.transitions.iter()
    }

    pub(crate) fn worker_counts(&self) -> Counts {
        let mut c = Counts::default();
        self.workers.values().for_each(|k| c.add(k));
        c
    }

    pub(crate) fn hive_counts(&self) -> Counts {
        let mut c = Counts::default();
        self.hives.values().for_each(|k| c.add(k));
        c
    }

    fn replace(&mut self, listing: Listing, now: Instant) {
        self.epoch = listing.epoch;
        self.revision = listing.revision;
        self.workers = listing
            .workers
            .into_iter()
            .map(|entry| (entry.payload.id.clone(), Kept { entry, at: now }))
            .collect();
        self.hives = listing
            .hives
            .into_iter()
            .map(|entry| (entry.payload.id.clone(), Kept { entry, at: now }))
            .collect();
        self.synced = true;
    }

    fn remember(&mut self, t: Transition) {
        self.transitions.push_front(t);
        self.transitions.truncate(RECENT_TRANSITIONS);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::{Value, json};

    use super::*;

    pub(crate) fn worker_json(id: &str, hive: &str, state: &str) -> Value {
        json!({
            "worker": {
                "id": id, "hive_id": hive, "model_id": "m", "device": "cpu", "port": 9000,
                "status": "ready", "health": {"status": "healthy"},
                "started_at": "2026-11-28T15:00:00Z"
            },
            "state": state, "available": state == "online",
            "first_seen": "2026-11-28T15:00:00Z", "last_seen": "2026-11-28T15:00:05Z",
            "last_seen_ms_ago": 1000, "clock_skew_ms": 0, "restarts": 0
        })
    }

    pub(crate) fn hive_json(id: &str, state: &str) -> Value {
        json!({
            "hive": {
                "id": id, "hostname": id, "port": 9200, "status": "ready",
                "health": {"status": "healthy"}, "started_at": "2026-11-28T15:00:00Z"
            },
            "state": state, "available": state == "online",
            "first_seen": "2026-11-28T15:00:00Z", "last_seen": "2026-11-28T15:00:05Z",
            "last_seen_ms_ago": 1000, "clock_skew_ms": 0, "restarts": 0
        })
    }

    fn event(name: &str, data: &Value) -> WatchEvent {
        WatchEvent::parse(name, &data.to_string()).unwrap().unwrap()
    }

    fn sync(revision: u64, workers: &[Value], hives: &[Value]) -> WatchEvent {
        event(
            "sync",
            &json!({"epoch": "e1", "revision": revision, "workers": workers, "hives": hives}),
        )
    }

    fn ids(fleet: &Fleet) -> Vec<&str> {
        fleet.workers().map(Kept::id).collect()
    }

    #[test]
    fn sync_then_upserts_and_removes_keep_the_copy() {
        let now = Instant::now();
        let mut fleet = Fleet::default();
        assert!(!fleet.synced());
        fleet.apply(
            sync(
                10,
                &[
                    worker_json("w1", "h1", "online"),
                    worker_json("w2", "h1", "online"),
                ],
                &[hive_json("h1", "online")],
            ),
            now,
        );
        assert!(fleet.synced());
        assert_eq!(fleet.position().as_deref(), Some("e1:10"));
        assert_eq!(ids(&fleet), ["w1", "w2"]);

        let transition = json!({"kind": "worker", "id": "w2", "from": "online", "to": "offline",
            "reason": "heartbeat timeout", "at": "2026-11-28T15:00:20Z"});
        let t = fleet.apply(
            event(
                "upsert",
                &json!({"revision": 11, "kind": "worker",
                    "entry": worker_json("w2", "h1", "offline"), "transition": transition}),
            ),
            now,
        );
        assert_eq!(t.map(|t| t.reason.as_str()), Some("heartbeat timeout"));
        fleet.apply(
            event(
                "upsert",
                &json!({"revision": 12, "kind": "worker", "entry": worker_json("w3", "h2", "online")}),
            ),
            now,
        );
        assert_eq!(ids(&fleet), ["w1", "w2", "w3"]);
        let c = fleet.worker_counts();
        assert_eq!((c.known, c.online, c.offline, c.problems), (3, 2, 1, 1));

        fleet.apply(
            event(
                "remove",
                &json!({"revision": 13, "kind": "worker", "id": "w1"}),
            ),
            now,
        );
        assert_eq!(ids(&fleet), ["w2", "w3"]);
        assert_eq!(fleet.position().as_deref(), Some("e1:13"));
        assert_eq!(fleet.transitions().count(), 1);
    }

    #[test]
    fn removing_an_unknown_id_is_harmless() {
        let now = Instant::now();
        let mut fleet = Fleet::default();
        fleet.apply(sync(1, &[worker_json("w1", "h1", "online")], &[]), now);
        fleet.apply(
            event(
                "remove",
                &json!({"revision": 2, "kind": "worker", "id": "nobody"}),
            ),
            now,
        );
        fleet.apply(
            event(
                "remove",
                &json!({"revision": 3, "kind": "hive", "id": "w1"}),
            ),
            now,
        );
        assert_eq!(ids(&fleet), ["w1"]);
        assert_eq!(fleet.position().as_deref(), Some("e1:3"));
    }

    #[test]
    fn sync_replaces_everything() {
        let now = Instant::now();
        let mut fleet = Fleet::default();
        fleet.apply(
            sync(
                5,
                &[
                    worker_json("w1", "h1", "online"),
                    worker_json("w2", "h1", "online"),
                ],
                &[hive_json("h1", "online")],
            ),
            now,
        );
        fleet.apply(
            sync(
                9,
                &[worker_json("w9", "h9", "left")],
                &[hive_json("h9", "offline")],
            ),
            now,
        );
        assert_eq!(ids(&fleet), ["w9"]);
        assert_eq!(fleet.hives().map(Kept::id).collect::<Vec<_>>(), ["h9"]);
        assert_eq!(fleet.position().as_deref(), Some("e1:9"));
        assert_eq!(fleet.hive_counts().offline, 1);
    }

    #[test]
    fn unknown_events_are_skipped_and_bad_ones_are_errors() {
        assert!(WatchEvent::parse("heartbeat", "{}").unwrap().is_none());
        assert!(WatchEvent::parse("upsert", "{\"revision\": 1}").is_err());
        let bad_entry =
            json!({"revision": 1, "kind": "hive", "entry": worker_json("w", "h", "online")});
        assert!(WatchEvent::parse("upsert", &bad_entry.to_string()).is_err());
    }

    #[test]
    fn problems_rank_offline_before_unhealthy_before_conflict() {
        let now = Instant::now();
        let mut unhealthy = worker_json("w", "h", "online");
        unhealthy["worker"]["health"] = json!({"status": "unhealthy", "reason": "backend down"});
        let mut conflict = worker_json("w", "h", "online");
        conflict["conflict"] = json!(true);
        let kept = |v: Value| Kept::<WorkerInfo> {
            entry: serde_json::from_value(v).unwrap(),
            at: now,
        };
        assert_eq!(
            kept(worker_json("w", "h", "offline")).problem(),
            Some(Problem::Offline)
        );
        assert_eq!(kept(unhealthy).problem(), Some(Problem::Unhealthy));
        assert_eq!(kept(conflict).problem(), Some(Problem::Conflict));
        assert_eq!(kept(worker_json("w", "h", "left")).problem(), None);
        assert!(Problem::Offline < Problem::Unhealthy && Problem::Unhealthy < Problem::Conflict);
    }
}
