//! Delay arithmetic: jittered intervals and capped exponential backoff.

use std::time::Duration;

use rand::Rng;

/// The first retry delay after a failure, unless the interval is shorter.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);

/// Returns `interval` moved randomly by up to ±10%, so a fleet started together spreads out.
pub(crate) fn jittered(interval: Duration) -> Duration {
    let factor = rand::thread_rng().gen_range(0.9..=1.1);
    interval.mul_f64(factor)
}

/// Exponential backoff whose delay never exceeds the current interval, so a sender notices the
/// queen's return no later than one interval after it happens.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    /// Returns the delay before the next retry and doubles the one after it.
    ///
    /// Uses "equal jitter": half the delay is fixed, half random, which spreads retries
    /// without ever exceeding the cap.
    pub(crate) fn next_delay(&mut self, cap: Duration) -> Duration {
        let base = self.next.unwrap_or(INITIAL_BACKOFF).min(cap);
        self.next = Some(base.saturating_mul(2).min(cap));
        let half = base / 2;
        half + half.mul_f64(rand::thread_rng().gen_range(0.0..=1.0))
    }

    /// Starts over after a success.
    pub(crate) fn reset(&mut self) {
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped_by_the_interval() {
        let cap = Duration::from_millis(1000);
        let mut b = Backoff::default();
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay(cap)).collect();
        assert!(delays[0] <= Duration::from_millis(100));
        assert!(delays[0] >= Duration::from_millis(50));
        for d in &delays {
            assert!(*d <= cap, "{d:?} exceeds the cap");
        }
        // Once capped, every delay lies in [cap/2, cap].
        assert!(delays[7] >= cap / 2);
        b.reset();
        assert!(b.next_delay(cap) <= Duration::from_millis(100));
    }

    #[test]
    fn a_short_interval_caps_even_the_first_retry() {
        let cap = Duration::from_millis(40);
        let mut b = Backoff::default();
        for _ in 0..5 {
            assert!(b.next_delay(cap) <= cap);
        }
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let interval = Duration::from_millis(1000);
        for _ in 0..100 {
            let d = jittered(interval);
            assert!(d >= Duration::from_millis(900) && d <= Duration::from_millis(1100));
        }
    }
}
