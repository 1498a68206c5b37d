//! The leader's gate: whether this queen may accept heartbeats and judge liveness right now.
//!
//! Two conditions, both read without a lock on every heartbeat: the queen holds an active term
//! (it took over and nothing ended the term since), and its etcd lease is certainly still
//! alive by its own monotonic clock. The lease deadline is counted from when the last
//! successful keep-alive was *sent*, minus a margin, so etcd (which counts from when it
//! received it) always expires the lease later than the gate closes: two queens never judge
//! at once, even when one of them is frozen and wakes up after a follower took over.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

/// How long before the lease could expire the gate closes.
pub(crate) const MARGIN: Duration = Duration::from_millis(500);

/// See the module documentation.
#[derive(Debug)]
pub struct Gate {
    base: Instant,
    /// `term << 1 | open`: a term is opened by the queen once it took over, and closing it
    /// moves to the next term, so a stale activation can never reopen a closed one.
    state: AtomicU64,
    /// Nanoseconds after `base` until which the lease is certainly alive.
    until: AtomicU64,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            state: AtomicU64::new(0),
            until: AtomicU64::new(0),
        }
    }
}

impl Gate {
    /// Whether this queen leads right now: heartbeats may be accepted and entries judged.
    pub fn is_open(&self) -> bool {
        self.state.load(Ordering::Acquire) & 1 == 1 && self.lease_alive(Instant::now())
    }

    /// Opens `term` once the queen has taken over; false when the term already ended.
    pub fn activate(&self, term: u64) -> bool {
        self.state
            .compare_exchange(
                term << 1,
                term << 1 | 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Whether the lease is certainly alive at `now`.
    pub(crate) fn lease_alive(&self, now: Instant) -> bool {
        self.nanos(now) < self.until.load(Ordering::Acquire)
    }

    /// Starts a new term, closed until the queen activates it; returns its number.
    pub(crate) fn begin_term(&self) -> u64 {
        let term = (self.state.load(Ordering::Acquire) >> 1) + 1;
        self.state.store(term << 1, Ordering::Release);
        term
    }

    /// Ends the current term, open or not.
    pub(crate) fn close(&self) {
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some(((s >> 1) + 1) << 1)
            });
    }

    /// Whether `term` is still the current term (open or waiting for the queen).
    pub(crate) fn term_alive(&self, term: u64) -> bool {
        self.state.load(Ordering::Acquire) >> 1 == term
    }

    /// Records a keep-alive that was sent at `sent` and answered with `ttl`. A term whose
    /// deadline passed before this renewal ends first: a lapse is never papered over.
    pub(crate) fn renewed(&self, sent: Instant, ttl: Duration) {
        if !self.lease_alive(Instant::now()) {
            self.close();
        }
        let until =
            self.nanos(sent) + u64::try_from(ttl.saturating_sub(MARGIN).as_nanos()).unwrap_or(0);
        self.until.fetch_max(until, Ordering::AcqRel);
    }

    /// Forgets the lease (a new session starts with none).
    pub(crate) fn lease_lost(&self) {
        self.close();
        self.until.store(0, Ordering::Release);
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gate whose clock started a minute ago, so that renewals can be placed in the past.
    fn gate() -> Gate {
        let now = Instant::now();
        Gate {
            base: now.checked_sub(Duration::from_secs(60)).unwrap_or(now),
            state: AtomicU64::new(0),
            until: AtomicU64::new(0),
        }
    }

    fn ago(seconds: u64) -> Instant {
        let now = Instant::now();
        now.checked_sub(Duration::from_secs(seconds)).unwrap_or(now)
    }

    #[test]
    fn a_term_opens_once_activated_and_only_while_the_lease_is_alive() {
        let gate = gate();
        gate.renewed(Instant::now(), Duration::from_secs(5));
        let term = gate.begin_term();
        assert!(!gate.is_open(), "waits for the queen");
        assert!(gate.activate(term));
        assert!(gate.is_open());
        gate.close();
        assert!(!gate.is_open());
        assert!(!gate.activate(term), "a closed term never reopens");
        assert!(!gate.term_alive(term));
    }

    #[test]
    fn a_renewal_after_the_deadline_ends_the_term() {
        let gate = gate();
        // Renewed 10 s ago with a 5 s lease: the deadline passed.
        gate.renewed(ago(10), Duration::from_secs(5));
        let term = gate.begin_term();
        assert!(gate.activate(term));
        assert!(!gate.is_open(), "the lease may have expired");
        gate.renewed(Instant::now(), Duration::from_secs(5));
        assert!(!gate.term_alive(term), "the lapse ended the term");
        assert!(!gate.is_open());
    }

    #[test]
    fn the_gate_closes_a_margin_before_the_lease_could_expire() {
        let gate = gate();
        gate.renewed(Instant::now(), Duration::from_secs(5));
        let term = gate.begin_term();
        assert!(gate.activate(term));
        assert!(gate.lease_alive(Instant::now() + Duration::from_millis(4_400)));
        assert!(!gate.lease_alive(Instant::now() + Duration::from_secs(5) - MARGIN));
    }
}
