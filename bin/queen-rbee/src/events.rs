//! The ring of recent transitions: all of `/v1/events` without a store, and with one the
//! transitions it has not committed yet.

use std::collections::VecDeque;

use fleet_store::EventQuery;
use parking_lot::Mutex;
use shared_contract::Transition;

/// How many transitions are kept in memory, and the most one answer returns.
pub(crate) const EVENTS_KEPT: usize = 1000;

#[derive(Debug, Default)]
pub(crate) struct EventLog {
    /// Transitions with the revision their change got, oldest first.
    recent: Mutex<VecDeque<(u64, Transition)>>,
}

impl EventLog {
    pub(crate) fn push(&self, revision: u64, transition: Transition) {
        let mut recent = self.recent.lock();
        if recent.len() == EVENTS_KEPT {
            recent.pop_front();
        }
        recent.push_back((revision, transition));
    }

    /// Returns the transitions after `revision` that pass `query`'s filters (not its limit),
    /// oldest first.
    pub(crate) fn matching(&self, query: &EventQuery, after: u64) -> Vec<(u64, Transition)> {
        let recent = self.recent.lock();
        recent
            .iter()
            .filter(|(revision, t)| {
                *revision > after
                    && query.matches(t.kind.as_str(), t.id.as_str(), t.at.timestamp_micros())
            })
            .cloned()
            .collect()
    }
}
