//! The fleet: one registry per kind, the change log they feed, and the transitions kept for
//! `/v1/events`. Handlers and tasks use its verbs; nothing reaches into its fields.

use std::{fmt, sync::Arc};

use bytes::Bytes;
use chrono::Utc;
use fleet_store::{EventQuery, KeptEntry, Record, TransitionRecord};
use heartbeat_registry::{
    Change, Counts, Filter, Kept, Locked, RegistryConfig, RegistryError, Sink, View,
};
use serde::{Serialize, Serializer, ser::SerializeMap};
use shared_contract::{Entry, Id, Kind, Timestamp, Transition};
use tokio::{sync::Notify, time::Instant};
use tracing::warn;

use crate::{
    changelog::{ChangeLog, History, Pending},
    events::EventLog,
    kinds::{EachKind, MakeSink, Registered, Registries, for_each_kind},
    metrics::Metrics,
};

/// Why a heartbeat was refused by the fleet (after decoding and validation).
pub(crate) type Refused = RegistryError;

/// A kept entry that cannot be brought back.
#[derive(Debug, thiserror::Error)]
#[error("kept {kind} {id} does not decode: {detail}")]
pub(crate) struct RestoreError {
    kind: Kind,
    id: String,
    detail: String,
}

/// The registries and what they feed.
pub(crate) struct Fleet {
    registries: Registries,
    log: Arc<ChangeLog>,
    events: Arc<EventLog>,
    metrics: Arc<Metrics>,
    /// Wakes the expiry task when an entry's deadline may now come earlier than it planned for.
    expiry_wake: Notify,
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("registries", &self.registries)
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

/// Builds each registry's sink: every change goes to the change log, every transition to the
/// `/v1/events` ring and the metrics, all under the registry's lock and without I/O.
struct Sinks {
    log: Arc<ChangeLog>,
    events: Arc<EventLog>,
    metrics: Arc<Metrics>,
}

impl MakeSink for Sinks {
    fn sink<T: Registered>(&self) -> Sink<T> {
        let log = Arc::clone(&self.log);
        let events = Arc::clone(&self.events);
        let metrics = Arc::clone(&self.metrics);
        Arc::new(move |change: Change<T>| {
            let transition = change.transition.clone();
            let revision = log.append(T::KIND, Box::new(change));
            if let Some(transition) = transition {
                metrics.transition(transition.kind, transition.to);
                events.push(revision, transition);
            }
        })
    }
}

impl<T: Registered> Pending for Change<T> {
    fn frame(&self, epoch: &str, revision: u64) -> serde_json::Result<Bytes> {
        let mut buf = Vec::with_capacity(768);
        let event = if self.entry.is_some() {
            "upsert"
        } else {
            "remove"
        };
        crate::sse::open_event(&mut buf, event, epoch, revision);
        serde_json::to_writer(
            &mut buf,
            &ChangeEvent {
                revision,
                change: self,
            },
        )?;
        buf.extend_from_slice(b"\n\n");
        Ok(Bytes::from(buf))
    }

    fn transition(&self) -> Option<&Transition> {
        self.transition.as_ref()
    }

    fn keep(&self, revision: u64, appended: std::time::Instant) -> Record {
        Record {
            revision,
            kind: T::KIND.as_str(),
            id: self.id.to_string(),
            entry: self
                .entry
                .as_ref()
                .and_then(|entry| kept_json(&Kept::from_entry(entry, self.since))),
            transition: self.transition.as_ref().and_then(transition_record),
            appended,
        }
    }
}

/// The kept form of an entry as stored; our own types always serialize.
fn kept_json<P: Serialize>(kept: &Kept<P>) -> Option<String> {
    serde_json::to_string(kept)
        .inspect_err(|error| tracing::error!(%error, "cannot serialize an entry to keep"))
        .ok()
}

/// A transition as stored for `/v1/events`.
fn transition_record(transition: &Transition) -> Option<TransitionRecord> {
    Some(TransitionRecord {
        at_us: transition.at.timestamp_micros(),
        body: serde_json::to_string(transition)
            .inspect_err(|error| tracing::error!(%error, "cannot serialize a transition to keep"))
            .ok()?,
    })
}

/// A change mirrored from a cluster's leader: its watch event exists already.
struct Mirrored {
    change: fleet_cluster::Change,
    transition: Option<Transition>,
}

impl Pending for Mirrored {
    fn frame(&self, _epoch: &str, _revision: u64) -> serde_json::Result<Bytes> {
        Ok(self.change.frame.clone())
    }

    fn transition(&self) -> Option<&Transition> {
        self.transition.as_ref()
    }

    fn keep(&self, revision: u64, appended: std::time::Instant) -> Record {
        Record {
            revision,
            kind: Kind::ALL
                .iter()
                .find(|k| k.as_str() == self.change.kind)
                .map_or("unknown", |k| k.as_str()),
            id: self.change.id.clone(),
            entry: self.change.kept.clone(),
            transition: self.transition.as_ref().and_then(transition_record),
            appended,
        }
    }
}

/// `{"revision", "kind", "entry"|"id", "transition"?}`: the data of an upsert or remove event.
struct ChangeEvent<'a, T> {
    revision: u64,
    change: &'a Change<T>,
}

impl<T: Registered> Serialize for ChangeEvent<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("revision", &self.revision)?;
        map.serialize_entry("kind", &T::KIND)?;
        match &self.change.entry {
            Some(entry) => map.serialize_entry("entry", entry)?,
            None => map.serialize_entry("id", &self.change.id)?,
        }
        if let Some(transition) = &self.change.transition {
            map.serialize_entry("transition", transition)?;
        }
        map.end()
    }
}

/// Every kind's entries at one revision, as `sync` events and the REST snapshot show them.
#[derive(Debug)]
pub(crate) struct FleetView {
    pub(crate) revision: u64,
    pub(crate) kinds: Vec<KindView>,
}

/// One kind's part of a [`FleetView`].
pub(crate) struct KindView {
    pub(crate) kind: Kind,
    pub(crate) plural: &'static str,
    pub(crate) online_ids: Vec<Id>,
    pub(crate) available: usize,
    entries: Box<dyn Entries>,
}

impl fmt::Debug for KindView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KindView")
            .field("kind", &self.kind)
            .field("online", &self.online_ids.len())
            .finish_non_exhaustive()
    }
}

impl KindView {
    fn new<T: Registered>(view: View<T>) -> Self {
        Self {
            kind: T::KIND,
            plural: T::PLURAL,
            online_ids: view.online_ids,
            available: view.available,
            entries: Box::new(view.entries),
        }
    }

    /// Writes the entries as a JSON array.
    pub(crate) fn write_entries(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        self.entries.write_json(out)
    }
}

/// A kind's entries with the concrete type erased, so that the views of all kinds sit in one list.
trait Entries: Send + Sync {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()>;
}

impl<T: Registered> Entries for Vec<Entry<Arc<T>>> {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, self)
    }
}

/// A registry held still while a [`FleetView`] is taken.
trait HeldKind {
    fn view(&self, now: Instant) -> KindView;
}

impl<T: Registered> HeldKind for Locked<'_, T> {
    fn view(&self, now: Instant) -> KindView {
        KindView::new(Locked::view(self, now))
    }
}

impl Fleet {
    /// Creates empty registries feeding a change log of `epoch` that continues after `revision`.
    pub(crate) fn new(
        config: RegistryConfig,
        history: History,
        epoch: String,
        revision: u64,
        metrics: Arc<Metrics>,
    ) -> Self {
        let log = Arc::new(ChangeLog::new(epoch, revision, history));
        let events = Arc::new(EventLog::default());
        let sinks = Sinks {
            log: Arc::clone(&log),
            events: Arc::clone(&events),
            metrics: Arc::clone(&metrics),
        };
        Self {
            registries: Registries::new(config, &sinks),
            log,
            events,
            metrics,
            expiry_wake: Notify::new(),
        }
    }

    /// The change log every consumer reads.
    pub(crate) fn log(&self) -> &ChangeLog {
        &self.log
    }

    /// Records one validated heartbeat received now.
    pub(crate) fn ingest<T: Registered>(
        &self,
        payload: T,
        sent_at: Timestamp,
    ) -> Result<(), Refused> {
        let upsert =
            self.registries
                .get::<T>()
                .upsert(payload, sent_at, Instant::now(), Utc::now())?;
        if let Some(transition) = &upsert.transition {
            if upsert.conflict_started {
                warn!(kind = %T::KIND, id = %transition.id, "id conflict: heartbeats from two incarnations under one id");
            }
            // The entry may now be due earlier than the expiry task planned for.
            self.expiry_wake.notify_one();
        }
        Ok(())
    }

    /// Removes one entry at once; `None` if unknown.
    pub(crate) fn remove<T: Registered>(&self, id: &str) -> Option<Transition> {
        self.registries.get::<T>().remove(id, Utc::now())
    }

    /// Returns one entry as listed.
    pub(crate) fn get<T: Registered>(&self, id: &str) -> Option<Entry<Arc<T>>> {
        self.registries.get::<T>().get(id, Instant::now())
    }

    /// Returns the entries of kind `T` that pass `filter`, sorted by id.
    pub(crate) fn list<T: Registered>(&self, filter: Filter) -> Vec<Entry<Arc<T>>> {
        self.registries.get::<T>().list(filter, Instant::now())
    }

    /// Returns the transitions held in memory after `revision` that pass `query`'s filters,
    /// oldest first, with their revisions.
    pub(crate) fn transitions_after(
        &self,
        query: &EventQuery,
        revision: u64,
    ) -> Vec<(u64, Transition)> {
        self.events.matching(query, revision)
    }

    /// Brings back the entries a store kept (SPEC section 10) and returns how many came back.
    /// Rows of a kind this queen does not know are skipped; a row that does not decode is an
    /// error, as the database is then damaged.
    pub(crate) fn restore(&self, kept: &[KeptEntry]) -> Result<usize, RestoreError> {
        struct Restore<'a> {
            registries: &'a Registries,
            kept: &'a [KeptEntry],
            now: Instant,
            wall: Timestamp,
            restored: usize,
            error: Option<RestoreError>,
        }
        impl EachKind for Restore<'_> {
            fn kind<T: Registered>(&mut self) {
                let mut entries = Vec::new();
                for row in self.kept.iter().filter(|r| r.kind == T::KIND.as_str()) {
                    match serde_json::from_str::<Kept<T>>(&row.body) {
                        Ok(kept)
                            if kept.payload.id() == row.id && kept.payload.validate().is_ok() =>
                        {
                            entries.push(kept);
                        }
                        Ok(_) => {
                            self.error.get_or_insert(RestoreError {
                                kind: T::KIND,
                                id: row.id.clone(),
                                detail: "the kept entry names another id or breaks a contract rule"
                                    .to_owned(),
                            });
                        }
                        Err(error) => {
                            self.error.get_or_insert(RestoreError {
                                kind: T::KIND,
                                id: row.id.clone(),
                                detail: error.to_string(),
                            });
                        }
                    }
                }
                self.restored += self
                    .registries
                    .get::<T>()
                    .restore(entries, self.now, self.wall);
            }
        }
        let mut restore = Restore {
            registries: &self.registries,
            kept,
            now: Instant::now(),
            wall: Utc::now(),
            restored: 0,
            error: None,
        };
        for_each_kind(&mut restore);
        let unknown = kept
            .iter()
            .filter(|r| !Kind::ALL.iter().any(|k| k.as_str() == r.kind))
            .count();
        if unknown > 0 {
            warn!(
                rows = unknown,
                "kept entries of an unknown kind were skipped"
            );
        }
        match restore.error {
            Some(error) => Err(error),
            None => {
                self.expiry_wake.notify_one();
                Ok(restore.restored)
            }
        }
    }

    /// Applies one change a cluster's leader committed, with the leader's revision and its
    /// watch event, without judging anything (a follower's mirror). False when the change does
    /// not fit: not the next revision, or a kept form that does not decode.
    pub(crate) fn mirror(&self, change: &fleet_cluster::Change) -> bool {
        struct Mirror<'a> {
            fleet: &'a Fleet,
            change: &'a fleet_cluster::Change,
            transition: Option<Transition>,
            now: Instant,
            wall: Timestamp,
            applied: Option<bool>,
        }
        impl EachKind for Mirror<'_> {
            fn kind<T: Registered>(&mut self) {
                if self.change.kind != T::KIND.as_str() {
                    return;
                }
                let kept = match self
                    .change
                    .kept
                    .as_deref()
                    .map(serde_json::from_str::<Kept<T>>)
                {
                    None => None,
                    Some(Ok(kept)) => Some(kept),
                    Some(Err(_)) => {
                        self.applied = Some(false);
                        return;
                    }
                };
                let mut appended = false;
                let mirrored = self.fleet.registries.get::<T>().mirror(
                    &self.change.id,
                    kept,
                    self.now,
                    self.wall,
                    || {
                        appended = self.fleet.append_mirrored(
                            T::KIND,
                            self.change,
                            self.transition.clone(),
                        )
                    },
                );
                self.applied = Some(mirrored.is_ok() && appended);
            }
        }
        let transition = change
            .transition
            .as_deref()
            .and_then(|json| serde_json::from_str::<Transition>(json).ok());
        let mut mirror = Mirror {
            fleet: self,
            change,
            transition: transition.clone(),
            now: Instant::now(),
            wall: Utc::now(),
            applied: None,
        };
        for_each_kind(&mut mirror);
        let applied = mirror.applied.unwrap_or(false);
        // An entry the registry refused still takes its revision in the log, with the leader's
        // event: the revisions stay whole, and every later change still fits.
        if !applied
            && self.log.revision() + 1 == change.revision
            && let Some(kind) = Kind::ALL.into_iter().find(|k| k.as_str() == change.kind)
        {
            self.append_mirrored(kind, change, None);
        }
        if applied && let Some(transition) = transition {
            self.metrics.transition(transition.kind, transition.to);
            self.events.push(change.revision, transition);
        }
        applied
    }

    fn append_mirrored(
        &self,
        kind: Kind,
        change: &fleet_cluster::Change,
        transition: Option<Transition>,
    ) -> bool {
        self.log.append_at(
            change.revision,
            kind,
            Box::new(Mirrored {
                change: change.clone(),
                transition,
            }),
        )
    }

    /// Replaces everything with a cluster's committed state (a follower starting to mirror, or
    /// one whose mirror fell behind): entries exactly as kept, the log continuing at its revision.
    pub(crate) fn reset(&self, loaded: &fleet_cluster::Loaded) -> Result<usize, RestoreError> {
        struct Reset<'a> {
            registries: &'a Registries,
            loaded: &'a fleet_cluster::Loaded,
            now: Instant,
            wall: Timestamp,
            count: usize,
            error: Option<RestoreError>,
        }
        impl EachKind for Reset<'_> {
            fn kind<T: Registered>(&mut self) {
                let registry = self.registries.get::<T>();
                registry.clear();
                for row in self
                    .loaded
                    .entries
                    .iter()
                    .filter(|r| r.kind == T::KIND.as_str())
                {
                    let put = serde_json::from_str::<Kept<T>>(&row.body)
                        .map_err(|e| e.to_string())
                        .and_then(|kept| {
                            registry
                                .mirror(&row.id, Some(kept), self.now, self.wall, || {})
                                .map_err(|e| e.to_string())
                        });
                    match put {
                        Ok(()) => self.count += 1,
                        Err(detail) => {
                            self.error.get_or_insert(RestoreError {
                                kind: T::KIND,
                                id: row.id.clone(),
                                detail,
                            });
                        }
                    }
                }
            }
        }
        let mut reset = Reset {
            registries: &self.registries,
            loaded,
            now: Instant::now(),
            wall: Utc::now(),
            count: 0,
            error: None,
        };
        for_each_kind(&mut reset);
        self.log.reset(loaded.revision);
        match reset.error {
            Some(error) => Err(error),
            None => Ok(reset.count),
        }
    }

    /// Takes over as a cluster's new leader: every entry is brought back by the restore rule
    /// (SPEC section 10), so online entries get a fresh timeout and no live worker goes offline
    /// because of the failover. Returns how many entries came back.
    pub(crate) fn take_over(&self) -> Result<usize, RestoreError> {
        let rows: Vec<KeptEntry> = self
            .kept_rows()
            .into_iter()
            .map(|(kind, id, body)| KeptEntry {
                kind: kind.to_owned(),
                id,
                body,
            })
            .collect();
        struct Clear<'a>(&'a Registries);
        impl EachKind for Clear<'_> {
            fn kind<T: Registered>(&mut self) {
                self.0.get::<T>().clear();
            }
        }
        for_each_kind(&mut Clear(&self.registries));
        self.restore(&rows)
    }

    /// Returns every entry's kept form with its current volatile fields: `(kind, id, json)`.
    pub(crate) fn kept_rows(&self) -> Vec<(&'static str, String, String)> {
        struct Collect<'a>(&'a Registries, Vec<(&'static str, String, String)>);
        impl EachKind for Collect<'_> {
            fn kind<T: Registered>(&mut self) {
                for kept in self.0.get::<T>().kept() {
                    if let Some(json) = kept_json(&kept) {
                        self.1
                            .push((T::KIND.as_str(), kept.payload.id().to_owned(), json));
                    }
                }
            }
        }
        let mut collect = Collect(&self.registries, Vec::new());
        for_each_kind(&mut collect);
        collect.1
    }

    /// Returns each kind's entry counts.
    pub(crate) fn counts(&self) -> Vec<(Kind, Counts)> {
        struct Collect<'a>(&'a Registries, Vec<(Kind, Counts)>);
        impl EachKind for Collect<'_> {
            fn kind<T: Registered>(&mut self) {
                self.1.push((T::KIND, self.0.get::<T>().counts()));
            }
        }
        let mut collect = Collect(&self.registries, Vec::new());
        for_each_kind(&mut collect);
        collect.1
    }

    /// Returns the online ids and available count of every kind (the summary's figures).
    pub(crate) fn online(&self) -> Vec<(Kind, &'static str, Vec<Id>, usize)> {
        struct Collect<'a>(&'a Registries, Vec<(Kind, &'static str, Vec<Id>, usize)>);
        impl EachKind for Collect<'_> {
            fn kind<T: Registered>(&mut self) {
                let (ids, available) = self.0.get::<T>().online();
                self.1.push((T::KIND, T::PLURAL, ids, available));
            }
        }
        let mut collect = Collect(&self.registries, Vec::new());
        for_each_kind(&mut collect);
        collect.1
    }

    /// Returns every entry of every kind and the revision they show, consistently: every
    /// registry is held (in [`for_each_kind`] order) while the revision is read. The views are
    /// copied under the locks (shared payloads, a few fields each); serializing happens later.
    pub(crate) fn view(&self) -> FleetView {
        struct Hold<'a>(&'a Registries, Vec<Box<dyn HeldKind + 'a>>);
        impl<'a> EachKind for Hold<'a> {
            fn kind<T: Registered>(&mut self) {
                self.1.push(Box::new(self.0.get::<T>().locked()));
            }
        }
        let now = Instant::now();
        let mut hold = Hold(&self.registries, Vec::with_capacity(Kind::ALL.len()));
        for_each_kind(&mut hold);
        let revision = self.log.revision();
        let kinds = hold.1.iter().map(|held| held.view(now)).collect();
        FleetView { revision, kinds }
    }

    /// Applies the clock to every registry; returns when it next needs to run.
    pub(crate) fn expire(&self) -> Option<Instant> {
        struct Expire<'a>(&'a Registries, Instant, Timestamp, Option<Instant>);
        impl EachKind for Expire<'_> {
            fn kind<T: Registered>(&mut self) {
                let expired = self.0.get::<T>().expire(self.1, self.2);
                self.3 = match (self.3, expired.next_deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        let mut expire = Expire(&self.registries, Instant::now(), Utc::now(), None);
        for_each_kind(&mut expire);
        expire.3
    }

    /// Makes the expiry task look now.
    pub(crate) fn wake_expiry(&self) {
        self.expiry_wake.notify_one();
    }

    /// Completes when an entry's deadline may have moved earlier.
    pub(crate) async fn deadline_moved(&self) {
        self.expiry_wake.notified().await;
    }
}

#[cfg(test)]
mod tests;
