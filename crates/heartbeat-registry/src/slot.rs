//! One registry entry and the liveness rules that apply to it (SPEC section 3).

use std::{borrow::Cow, sync::Arc, time::Duration};

use shared_contract::{Difference, Entry, Heartbeat, Id, State, Target, Timestamp, Transition};
use tokio::time::Instant;

use crate::{Kept, is_available};

/// What the registry remembers about one id.
#[derive(Debug)]
pub(crate) struct Slot<T> {
    pub(crate) id: Id,
    /// The last payload of the newest incarnation seen; its `started_at` is the newest seen.
    pub(crate) payload: Arc<T>,
    pub(crate) state: State,
    pub(crate) first_seen: Timestamp,
    pub(crate) last_seen: Timestamp,
    /// Monotonic receipt time of the last heartbeat: the only clock liveness uses.
    pub(crate) last_seen_at: Instant,
    /// When the entry entered its current state; retention counts from here.
    pub(crate) since: Instant,
    /// The same moment on the queen's wall clock, kept so that retention survives a restart.
    pub(crate) since_wall: Timestamp,
    pub(crate) clock_skew_ms: i64,
    pub(crate) restarts: u32,
    /// The last heartbeat from an older incarnation, while a conflict episode lasts.
    pub(crate) last_conflict_at: Option<Instant>,
    /// When usage figures last made a revision; they may make another one interval later.
    pub(crate) usage_counted_at: Instant,
    /// Whether the payload holds usage figures that no revision has carried yet.
    pub(crate) usage_pending: bool,
    /// Brought back from kept state and not heard from since the queen started.
    pub(crate) restored: bool,
}

/// A transition before it is given its id and wall time.
pub(crate) struct Change {
    pub(crate) from: Option<State>,
    pub(crate) to: Target,
    pub(crate) reason: Cow<'static, str>,
}

impl Change {
    pub(crate) fn into_transition<T: Heartbeat>(self, id: Id, at: Timestamp) -> Transition {
        Transition {
            kind: T::KIND,
            id,
            from: self.from,
            to: self.to,
            reason: self.reason.into_owned(),
            at,
        }
    }
}

/// The outcome of one heartbeat for an existing slot.
pub(crate) struct Beat {
    pub(crate) change: Option<Change>,
    /// Whether anything but volatile fields changed: the change log gets a revision.
    pub(crate) material: bool,
    pub(crate) conflict_started: bool,
}

/// The reason recorded when an older incarnation shows up.
pub(crate) const CONFLICT_REASON: &str = "id conflict: heartbeat from an older started_at, a second process may be sending under this id";

impl<T: Heartbeat> Slot<T> {
    pub(crate) fn new(
        id: Id,
        payload: Arc<T>,
        clock_skew_ms: i64,
        now: Instant,
        wall: Timestamp,
    ) -> (Self, Change) {
        let state = state_for(&*payload);
        let slot = Self {
            id,
            payload,
            state,
            first_seen: wall,
            last_seen: wall,
            last_seen_at: now,
            since: now,
            since_wall: wall,
            clock_skew_ms,
            restarts: 0,
            last_conflict_at: None,
            usage_counted_at: now,
            usage_pending: false,
            restored: false,
        };
        let change = Change {
            from: None,
            to: state.into(),
            reason: Cow::Borrowed("first heartbeat"),
        };
        (slot, change)
    }

    /// Applies a heartbeat received at `now` (monotonic) and `wall`; usage figures count as a
    /// material change at most once per `usage_interval`.
    ///
    /// A payload equal to the kept one is dropped rather than stored: most beats repeat the
    /// last one, and keeping the old allocation spares an allocation and the freeing of memory
    /// that is cold by now (the registry lookup was a measurable part of ingest).
    pub(crate) fn beat(
        &mut self,
        payload: T,
        clock_skew_ms: i64,
        now: Instant,
        wall: Timestamp,
        usage_interval: Duration,
    ) -> Beat {
        let incoming = payload.started_at();
        let current = self.payload.started_at();
        if incoming < current {
            // An older incarnation cannot follow a newer one: two processes share the id. The
            // entry keeps following the newest incarnation; the older one only raises the flag.
            let started = self.last_conflict_at.is_none();
            self.last_conflict_at = Some(now);
            return Beat {
                change: started.then(|| Change {
                    from: Some(self.state),
                    to: self.state.into(),
                    reason: Cow::Borrowed(CONFLICT_REASON),
                }),
                material: started,
                conflict_started: started,
            };
        }

        let old_state = self.state;
        let old_status = self.payload.status();
        let new_state = state_for(&payload);
        let new_status = payload.status();
        let difference = payload.difference(&self.payload);

        let reason: Option<Cow<'static, str>> = if incoming > current {
            self.restarts = self.restarts.saturating_add(1);
            Some(Cow::Borrowed("restarted"))
        } else if old_state != new_state {
            Some(Cow::Borrowed(match (old_state, new_state) {
                (_, State::Left) => "graceful shutdown",
                (State::Left, _) => "rejoined",
                _ => "heartbeat resumed",
            }))
        } else if old_status != new_status {
            Some(Cow::Owned(format!("status {old_status} -> {new_status}")))
        } else {
            None
        };

        if new_state != old_state {
            self.since = now;
            self.since_wall = wall;
        }
        // The first beat since a restart confirms the entry: that alone is a material change.
        let confirmed = std::mem::take(&mut self.restored);
        self.state = new_state;
        if difference != Difference::None {
            self.payload = Arc::new(payload);
        }
        self.last_seen = wall;
        self.last_seen_at = now;
        self.clock_skew_ms = clock_skew_ms;

        if difference == Difference::Usage {
            self.usage_pending = true;
        }
        let usage_due = self.usage_pending && now >= self.usage_counted_at + usage_interval;
        let material =
            reason.is_some() || confirmed || difference == Difference::Material || usage_due;
        if material {
            // The revision carries the latest usage figures whatever made it.
            self.usage_pending = false;
            self.usage_counted_at = now;
        }
        Beat {
            change: reason.map(|reason| Change {
                from: Some(old_state),
                to: new_state.into(),
                reason,
            }),
            material,
            conflict_started: false,
        }
    }

    /// Returns the instant at which this entry times out, leaves retention or clears its conflict.
    pub(crate) fn deadline(&self, timeout: Duration, retention: Duration) -> Instant {
        let state_deadline = match self.state {
            State::Online => self.last_seen_at + timeout,
            State::Offline | State::Left => self.since + retention,
        };
        match self.last_conflict_at {
            Some(at) => state_deadline.min(at + timeout),
            None => state_deadline,
        }
    }

    pub(crate) fn is_available(&self) -> bool {
        !self.restored
            && is_available(
                self.state,
                self.payload.status(),
                self.payload.health().status(),
            )
    }

    /// Returns the entry as listed, aged against `now`.
    pub(crate) fn entry(&self, now: Instant) -> Entry<Arc<T>> {
        Entry {
            payload: Arc::clone(&self.payload),
            state: self.state,
            available: self.is_available(),
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            last_seen_ms_ago: u64::try_from(
                now.saturating_duration_since(self.last_seen_at).as_millis(),
            )
            .unwrap_or(u64::MAX),
            clock_skew_ms: self.clock_skew_ms,
            restarts: self.restarts,
            conflict: self.last_conflict_at.is_some(),
            restored: self.restored,
        }
    }

    /// Returns the entry as kept across restarts.
    pub(crate) fn kept(&self) -> Kept<Arc<T>> {
        Kept {
            payload: Arc::clone(&self.payload),
            state: self.state,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            since: self.since_wall,
            clock_skew_ms: self.clock_skew_ms,
            restarts: self.restarts,
            conflict: self.last_conflict_at.is_some(),
            restored: self.restored,
        }
    }

    /// Rebuilds a slot from its kept form at the queen's start (`now`, `wall`), per SPEC
    /// section 10: an online entry gets a fresh timeout and is marked restored; offline and left
    /// entries keep their retention clock. Monotonic instants are placed as far in the past as
    /// the wall clock says, bounded by what the monotonic clock can represent.
    pub(crate) fn restore(id: Id, kept: Kept<T>, now: Instant, wall: Timestamp) -> Self {
        let online = kept.state == State::Online;
        let mut slot = Self::mirror(id, kept, now, wall);
        if online {
            slot.last_seen_at = now;
            slot.since = now;
            slot.restored = true;
        }
        slot
    }

    /// Rebuilds a slot exactly as another queen kept it (a follower's mirror of its leader):
    /// the same state and flags, with monotonic instants as far in the past as the wall clock
    /// says. A mirror never judges, so its deadlines are only for display.
    pub(crate) fn mirror(id: Id, kept: Kept<T>, now: Instant, wall: Timestamp) -> Self {
        let ago = |at: Timestamp| {
            let elapsed = (wall - at).to_std().unwrap_or_default();
            now.checked_sub(elapsed).unwrap_or(now)
        };
        Self {
            id,
            payload: Arc::new(kept.payload),
            state: kept.state,
            first_seen: kept.first_seen,
            last_seen: kept.last_seen,
            last_seen_at: ago(kept.last_seen),
            since: ago(kept.since),
            since_wall: kept.since,
            clock_skew_ms: kept.clock_skew_ms,
            restarts: kept.restarts,
            last_conflict_at: kept.conflict.then_some(now),
            usage_counted_at: now,
            usage_pending: false,
            restored: kept.restored,
        }
    }
}

/// Returns the state a heartbeat with this payload puts its entry in.
fn state_for<T: Heartbeat>(payload: &T) -> State {
    if payload.status().is_leaving() {
        State::Left
    } else {
        State::Online
    }
}
