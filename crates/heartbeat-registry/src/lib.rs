//! The generic liveness registry the queen keeps, once for hives and once for workers.
//!
//! A [`Registry`] judges liveness only on the monotonic clock it is handed (`now`, taken by the
//! caller at receipt); wall-clock times (`wall`) are recorded for display and never decide
//! anything. Time is always a parameter, so the rules are tested without sleeping.

#![warn(missing_docs)]

mod registry;
mod slot;

pub use registry::{Change, Locked, RESTORED_TIMEOUT_REASON, Registry, Sink, View};

use std::{str::FromStr, time::Duration};

use serde::{Deserialize, Serialize};
use shared_contract::{Entry, State, Status, Timestamp, Transition, ValidationError};
use tokio::time::Instant;

/// An entry as the queen keeps it across restarts (SPEC section 10): its last material state,
/// with wall-clock times only, since monotonic instants mean nothing to another process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kept<P> {
    /// The last payload of the newest incarnation seen.
    pub payload: P,
    /// Liveness when it was kept.
    pub state: State,
    /// Queen wall-clock time of the first heartbeat.
    pub first_seen: Timestamp,
    /// Queen wall-clock time of the last heartbeat kept.
    pub last_seen: Timestamp,
    /// When the entry entered `state`; retention of offline and left entries counts from here.
    pub since: Timestamp,
    /// The last clock skew observed.
    pub clock_skew_ms: i64,
    /// Restarts counted so far.
    pub restarts: u32,
    /// Whether a conflict episode was going on.
    pub conflict: bool,
    /// Whether it was still unconfirmed since an earlier restore.
    #[serde(default)]
    pub restored: bool,
}

impl<P: Clone> Kept<P> {
    /// The kept form of an entry as listed, which entered its state at `since`.
    pub fn from_entry(entry: &Entry<P>, since: Timestamp) -> Self {
        Self {
            payload: entry.payload.clone(),
            state: entry.state,
            first_seen: entry.first_seen,
            last_seen: entry.last_seen,
            since,
            clock_skew_ms: entry.clock_skew_ms,
            restarts: entry.restarts,
            conflict: entry.conflict,
            restored: entry.restored,
        }
    }
}

/// Limits and timings of one registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryConfig {
    /// An entry without a heartbeat for this long goes offline.
    pub timeout: Duration,
    /// Offline and left entries are removed this long after they went offline or left.
    pub retention: Duration,
    /// The most entries kept; a heartbeat from a new id beyond it is refused.
    pub max_entries: usize,
    /// Usage figures alone make a material change at most once per this interval.
    pub usage_interval: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            retention: Duration::from_secs(600),
            max_entries: 100_000,
            usage_interval: Duration::from_secs(5),
        }
    }
}

/// Which entries a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    /// Every retained entry: online, offline and left.
    #[default]
    All,
    /// Entries in state `online`.
    Online,
    /// Online entries able to take new work (see [`is_available`]).
    Available,
}

impl FromStr for Filter {
    type Err = UnknownFilter;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(Filter::All),
            "online" => Ok(Filter::Online),
            "available" => Ok(Filter::Available),
            _ => Err(UnknownFilter),
        }
    }
}

/// A `state` filter other than `all`, `online` or `available`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("state must be one of all, online, available")]
pub struct UnknownFilter;

/// Why a heartbeat was not stored; the registry is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The registry holds `max_entries` entries and the id is new.
    #[error("registry full: at most {max_entries} entries")]
    Full {
        /// The configured cap.
        max_entries: usize,
    },
    /// The payload's id breaks the id rule (callers validate first, so this is a defence).
    #[error(transparent)]
    InvalidId(#[from] ValidationError),
}

/// What one heartbeat changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Upsert {
    /// The transition this heartbeat caused, if any (first heartbeat, restart, resume, status
    /// change, graceful shutdown, conflict).
    pub transition: Option<Transition>,
    /// Whether the entry changed materially (anything but `last_seen`, the skew and usage
    /// figures within their interval): the sink was handed the change.
    pub changed: bool,
    /// Whether this heartbeat started a conflict episode (log it once).
    pub conflict_started: bool,
}

/// What one [`Registry::expire`] pass changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expired {
    /// Timeouts (`offline`) and removals after retention, in id order.
    pub transitions: Vec<Transition>,
    /// Whether anything changed, including a conflict flag clearing; each change went to the sink.
    pub changed: bool,
    /// The earliest instant at which another pass would change something.
    pub next_deadline: Option<Instant>,
}

/// How many entries are in each state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Entries in state `online`.
    pub online: usize,
    /// Entries in state `offline`.
    pub offline: usize,
    /// Entries in state `left`.
    pub left: usize,
    /// Online entries able to take new work.
    pub available: usize,
}

impl Counts {
    /// Returns the number of entries in `state`.
    pub fn in_state(&self, state: State) -> usize {
        match state {
            State::Online => self.online,
            State::Offline => self.offline,
            State::Left => self.left,
        }
    }

    /// Returns the number of entries retained.
    pub fn total(&self) -> usize {
        self.online + self.offline + self.left
    }
}

/// Returns whether an entry can take new work: online, `ready`, and health not `unhealthy`.
pub fn is_available(state: State, status: Status, health: shared_contract::HealthStatus) -> bool {
    state == State::Online
        && status == Status::Ready
        && health != shared_contract::HealthStatus::Unhealthy
}

#[cfg(test)]
mod tests;
