//! The ring of recent transitions served by `/v1/events`.

use std::collections::VecDeque;

use parking_lot::Mutex;
use shared_contract::Transition;

/// How many transitions are kept.
pub(crate) const EVENTS_KEPT: usize = 1000;

#[derive(Debug, Default)]
pub(crate) struct EventLog {
    recent: Mutex<VecDeque<Transition>>,
}

impl EventLog {
    pub(crate) fn push(&self, transition: Transition) {
        let mut recent = self.recent.lock();
        if recent.len() == EVENTS_KEPT {
            recent.pop_front();
        }
        recent.push_back(transition);
    }

    /// Returns up to `limit` of the most recent transitions, newest last.
    pub(crate) fn recent(&self, limit: usize) -> Vec<Transition> {
        let recent = self.recent.lock();
        let skip = recent.len().saturating_sub(limit);
        recent.iter().skip(skip).cloned().collect()
    }
}
