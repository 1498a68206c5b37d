//! The registry handle: a map from id to entry behind one short-held lock.

use std::{borrow::Cow, collections::BTreeMap, fmt, sync::Arc};

use parking_lot::Mutex;
use shared_contract::{Entry, Heartbeat, Id, State, Target, Timestamp, Transition};
use tokio::time::Instant;

use crate::{
    Counts, Expired, Filter, Kept, RegistryConfig, RegistryError, Upsert,
    slot::{Change as SlotChange, Slot},
};

/// Why a restored entry that never sent a heartbeat since the queen started went offline.
pub const RESTORED_TIMEOUT_REASON: &str = "no heartbeat since queen restart";

/// A cheap-to-clone handle to one registry (hives or workers).
///
/// The lock is a `parking_lot::Mutex` because every heartbeat writes and every critical
/// section is a map lookup plus a few field updates; nothing awaits or serializes under it.
/// Entries are kept in a `BTreeMap` so listings come out sorted by id without a sort.
pub struct Registry<T> {
    shared: Arc<Shared<T>>,
}

struct Shared<T> {
    config: RegistryConfig,
    entries: Mutex<BTreeMap<Id, Slot<T>>>,
    sink: Sink<T>,
}

/// Receives every material change, in the order the registry applied them.
///
/// It is called while the registry's lock is held, so that the order it sees is the order of
/// the registry's states (a change log built from it never reorders two changes of one entry).
/// It must be quick: no I/O, no serializing, no waiting.
pub type Sink<T> = Arc<dyn Fn(Change<T>) + Send + Sync>;

/// One material change of one entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Change<T> {
    /// The entry's id.
    pub id: Id,
    /// The entry after the change, as listed; `None` when it was removed.
    pub entry: Option<Entry<Arc<T>>>,
    /// When the entry entered its current state on the queen's wall clock (for a removal, when
    /// it was removed): with `entry`, what the queen keeps across restarts (see [`Kept`]).
    pub since: Timestamp,
    /// The transition, when the change is one (every removal is).
    pub transition: Option<Transition>,
}

impl<T> Clone for Registry<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> fmt::Debug for Registry<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `try_lock`, so that formatting never waits on (or deadlocks with) the lock.
        let len = self.shared.entries.try_lock().map(|entries| entries.len());
        f.debug_struct("Registry")
            .field("config", &self.shared.config)
            .field("len", &len)
            .finish()
    }
}

impl<T: Heartbeat> Registry<T> {
    /// Creates an empty registry whose changes go nowhere.
    pub fn new(config: RegistryConfig) -> Self {
        Self::with_sink(config, Arc::new(|_| {}))
    }

    /// Creates an empty registry that hands every material change to `sink`.
    pub fn with_sink(config: RegistryConfig, sink: Sink<T>) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                entries: Mutex::new(BTreeMap::new()),
                sink,
            }),
        }
    }

    /// Returns the configuration the registry was created with.
    pub fn config(&self) -> RegistryConfig {
        self.shared.config
    }

    /// Records a validated heartbeat received at `now` (monotonic) and `wall` (queen clock).
    ///
    /// `sent_at` is the sender's timestamp; it only feeds `clock_skew_ms`. A new id beyond
    /// `max_entries` is refused and changes nothing; known ids always update.
    pub fn upsert(
        &self,
        payload: T,
        sent_at: Timestamp,
        now: Instant,
        wall: Timestamp,
    ) -> Result<Upsert, RegistryError> {
        let clock_skew_ms = (sent_at - wall).num_milliseconds();
        let usage_interval = self.shared.config.usage_interval;
        let mut entries = self.shared.entries.lock();
        if let Some(slot) = entries.get_mut(payload.id()) {
            let beat = slot.beat(payload, clock_skew_ms, now, wall, usage_interval);
            let transition = beat
                .change
                .map(|c| c.into_transition::<T>(slot.id.clone(), wall));
            if beat.material {
                self.emit(slot, now, transition.clone());
            }
            return Ok(Upsert {
                transition,
                changed: beat.material,
                conflict_started: beat.conflict_started,
            });
        }
        let max_entries = self.shared.config.max_entries;
        if entries.len() >= max_entries {
            return Err(RegistryError::Full { max_entries });
        }
        let id = Id::parse("id", payload.id())?;
        let (slot, change) = Slot::new(id.clone(), Arc::new(payload), clock_skew_ms, now, wall);
        let transition = change.into_transition::<T>(id.clone(), wall);
        self.emit(&slot, now, Some(transition.clone()));
        entries.insert(id, slot);
        Ok(Upsert {
            transition: Some(transition),
            changed: true,
            conflict_started: false,
        })
    }

    /// Applies the clock: online entries past the timeout go offline, offline and left entries
    /// past retention are removed, and conflict flags older than a timeout clear.
    pub fn expire(&self, now: Instant, wall: Timestamp) -> Expired {
        let RegistryConfig {
            timeout, retention, ..
        } = self.shared.config;
        let mut out = Expired::default();
        let mut entries = self.shared.entries.lock();
        entries.retain(|_, slot| {
            let mut timed_out = None;
            if slot.state == State::Online && now >= slot.last_seen_at + timeout {
                // Retention counts from the moment the timeout elapsed, not from when this
                // pass happened to run.
                slot.since = slot.last_seen_at + timeout;
                slot.since_wall = wall
                    - chrono::Duration::from_std(now.saturating_duration_since(slot.since))
                        .unwrap_or_default();
                slot.state = State::Offline;
                out.changed = true;
                let reason = if slot.restored {
                    RESTORED_TIMEOUT_REASON
                } else {
                    "heartbeat timeout"
                };
                let transition = SlotChange {
                    from: Some(State::Online),
                    to: Target::Offline,
                    reason: Cow::Borrowed(reason),
                }
                .into_transition::<T>(slot.id.clone(), wall);
                out.transitions.push(transition.clone());
                timed_out = Some(transition);
            }
            if slot.state != State::Online && now >= slot.since + retention {
                out.changed = true;
                let transition = SlotChange {
                    from: Some(slot.state),
                    to: Target::Removed,
                    reason: Cow::Borrowed("retention expired"),
                }
                .into_transition::<T>(slot.id.clone(), wall);
                out.transitions.push(transition.clone());
                // A timeout and a removal in one pass (zero retention) are two revisions.
                if let Some(transition) = timed_out {
                    self.emit(slot, now, Some(transition));
                }
                (self.shared.sink)(Change {
                    id: slot.id.clone(),
                    entry: None,
                    since: wall,
                    transition: Some(transition),
                });
                return false;
            }
            let mut material = timed_out.is_some();
            if slot.last_conflict_at.is_some_and(|at| now >= at + timeout) {
                slot.last_conflict_at = None;
                out.changed = true;
                material = true;
            }
            if material {
                self.emit(slot, now, timed_out);
            }
            let deadline = slot.deadline(timeout, retention);
            out.next_deadline = Some(out.next_deadline.map_or(deadline, |d| d.min(deadline)));
            true
        });
        out
    }

    /// Returns the earliest instant at which [`Registry::expire`] would change something.
    pub fn next_deadline(&self) -> Option<Instant> {
        let RegistryConfig {
            timeout, retention, ..
        } = self.shared.config;
        self.shared
            .entries
            .lock()
            .values()
            .map(|slot| slot.deadline(timeout, retention))
            .min()
    }

    /// Removes one entry at once, returning its `removed` transition, or `None` if unknown.
    pub fn remove(&self, id: &str, wall: Timestamp) -> Option<Transition> {
        let mut entries = self.shared.entries.lock();
        let slot = entries.remove(id)?;
        let transition = SlotChange {
            from: Some(slot.state),
            to: Target::Removed,
            reason: Cow::Borrowed("deleted"),
        }
        .into_transition::<T>(slot.id.clone(), wall);
        (self.shared.sink)(Change {
            id: slot.id,
            entry: None,
            since: wall,
            transition: Some(transition.clone()),
        });
        Some(transition)
    }

    /// Brings back entries kept across a restart, at the queen's start (`now`, `wall`), and
    /// returns how many came back. Each restored online entry is a material change (it is now
    /// `restored` and not available); an offline or left entry whose retention ran out while the
    /// queen was down is removed with a `removed` transition. Ids already present are left alone.
    pub fn restore(
        &self,
        kept: impl IntoIterator<Item = Kept<T>>,
        now: Instant,
        wall: Timestamp,
    ) -> usize {
        let retention = self.shared.config.retention;
        let mut entries = self.shared.entries.lock();
        let mut restored = 0;
        for kept in kept {
            let Ok(id) = Id::parse("id", kept.payload.id()) else {
                continue;
            };
            if entries.contains_key(&id) {
                continue;
            }
            let left_ago = (wall - kept.since).to_std().unwrap_or_default();
            if kept.state != State::Online && left_ago >= retention {
                let transition = SlotChange {
                    from: Some(kept.state),
                    to: Target::Removed,
                    reason: Cow::Borrowed("retention expired"),
                }
                .into_transition::<T>(id.clone(), wall);
                (self.shared.sink)(Change {
                    id,
                    entry: None,
                    since: wall,
                    transition: Some(transition),
                });
                continue;
            }
            let online = kept.state == State::Online;
            let slot = Slot::restore(id.clone(), kept, now, wall);
            if online {
                self.emit(&slot, now, None);
            }
            entries.insert(id, slot);
            restored += 1;
        }
        restored
    }

    /// Sets (`Some`) or removes (`None`) entry `id` exactly as another queen reported it, with no
    /// change of this registry's own: how a follower mirrors its leader. `then` runs under the
    /// registry's lock, so the caller can log the change in the same order as the registry's
    /// states. A kept form that names another id or breaks a contract rule is refused and
    /// changes nothing.
    pub fn mirror(
        &self,
        id: &str,
        kept: Option<Kept<T>>,
        now: Instant,
        wall: Timestamp,
        then: impl FnOnce(),
    ) -> Result<(), RegistryError> {
        let id = Id::parse("id", id)?;
        let mut entries = self.shared.entries.lock();
        match kept {
            Some(kept) => {
                if kept.payload.id() != id.as_str() {
                    return Err(RegistryError::InvalidId(
                        shared_contract::ValidationError::new(
                            "id",
                            "the kept entry names another id",
                        ),
                    ));
                }
                kept.payload.validate()?;
                entries.insert(id.clone(), Slot::mirror(id, kept, now, wall));
            }
            None => {
                entries.remove(&id);
            }
        }
        then();
        Ok(())
    }

    /// Forgets every entry, with no change of its own (a mirror being replaced).
    pub fn clear(&self) {
        self.shared.entries.lock().clear();
    }

    /// Returns every entry as kept across restarts, with its current volatile fields
    /// (`last_seen`, skew), for a final write at a graceful stop.
    pub fn kept(&self) -> Vec<Kept<Arc<T>>> {
        self.shared
            .entries
            .lock()
            .values()
            .map(Slot::kept)
            .collect()
    }

    /// Returns one entry as listed, aged against `now`.
    pub fn get(&self, id: &str, now: Instant) -> Option<Entry<Arc<T>>> {
        self.shared.entries.lock().get(id).map(|s| s.entry(now))
    }

    /// Returns the entries that pass `filter`, sorted by id.
    pub fn list(&self, filter: Filter, now: Instant) -> Vec<Entry<Arc<T>>> {
        let entries = self.shared.entries.lock();
        let keep = |slot: &&Slot<T>| match filter {
            Filter::All => true,
            Filter::Online => slot.state == State::Online,
            Filter::Available => slot.is_available(),
        };
        entries
            .values()
            .filter(keep)
            .map(|s| s.entry(now))
            .collect()
    }

    /// Returns every entry and the online ids, both sorted, taken under one lock so they agree.
    pub fn view(&self, now: Instant) -> View<T> {
        self.locked().view(now)
    }

    /// Holds the registry still until the returned guard is dropped, so that what the caller
    /// reads from the sink's side meanwhile (a revision, say) matches [`Locked::view`] exactly.
    /// Hold it briefly: every heartbeat of this kind waits for it.
    pub fn locked(&self) -> Locked<'_, T> {
        Locked {
            entries: self.shared.entries.lock(),
        }
    }

    /// Returns the online ids, sorted, and how many entries are available: the summary's part.
    pub fn online(&self) -> (Vec<Id>, usize) {
        let entries = self.shared.entries.lock();
        let mut ids = Vec::new();
        let mut available = 0;
        for slot in entries.values() {
            if slot.state == State::Online {
                ids.push(slot.id.clone());
                available += usize::from(slot.is_available());
            }
        }
        (ids, available)
    }

    /// Hands the slot's current entry to the sink; called with the lock held.
    fn emit(&self, slot: &Slot<T>, now: Instant, transition: Option<Transition>) {
        (self.shared.sink)(Change {
            id: slot.id.clone(),
            entry: Some(slot.entry(now)),
            since: slot.since_wall,
            transition,
        });
    }

    /// Returns how many entries are in each state.
    pub fn counts(&self) -> Counts {
        let entries = self.shared.entries.lock();
        let mut counts = Counts::default();
        for slot in entries.values() {
            match slot.state {
                State::Online => counts.online += 1,
                State::Offline => counts.offline += 1,
                State::Left => counts.left += 1,
            }
            counts.available += usize::from(slot.is_available());
        }
        counts
    }

    /// Returns the number of entries retained.
    pub fn len(&self) -> usize {
        self.shared.entries.lock().len()
    }

    /// Returns whether the registry holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A registry held still; see [`Registry::locked`].
pub struct Locked<'a, T> {
    entries: parking_lot::MutexGuard<'a, BTreeMap<Id, Slot<T>>>,
}

impl<T> fmt::Debug for Locked<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Locked")
            .field("len", &self.entries.len())
            .finish()
    }
}

impl<T: Heartbeat> Locked<'_, T> {
    /// Returns every entry and the online ids, both sorted.
    pub fn view(&self, now: Instant) -> View<T> {
        let mut view = View {
            entries: Vec::with_capacity(self.entries.len()),
            online_ids: Vec::new(),
            available: 0,
        };
        for slot in self.entries.values() {
            if slot.state == State::Online {
                view.online_ids.push(slot.id.clone());
            }
            let entry = slot.entry(now);
            view.available += usize::from(entry.available);
            view.entries.push(entry);
        }
        view
    }
}

/// Every entry of a registry plus its online ids, consistent with each other.
#[derive(Debug)]
pub struct View<T> {
    /// Every retained entry, sorted by id.
    pub entries: Vec<Entry<Arc<T>>>,
    /// Ids of online entries, sorted.
    pub online_ids: Vec<Id>,
    /// How many entries are available.
    pub available: usize,
}
