//! The two background tasks: the snapshot publisher and the expiry clock.

use std::time::Duration;

use chrono::Utc;
use tokio::time::{Instant, sleep, sleep_until};

use crate::state::{AppState, Need};

/// How long the publisher waits after a change before publishing, so a burst of changes
/// becomes one snapshot; well inside the 100 ms the contract allows. Costly snapshots stretch
/// it (see `AppState::coalesce_delay`).
const COALESCE: Duration = Duration::from_millis(30);

/// The longest the expiry task sleeps without looking, as a safety net.
const EXPIRY_MAX_SLEEP: Duration = Duration::from_secs(1);

/// The shortest gap between two expiry passes, so that many entries with nearby deadlines cost
/// a few scans per second instead of one scan each; well inside the 250 ms the contract allows.
const EXPIRY_MIN_GAP: Duration = Duration::from_millis(50);

/// Publishes a snapshot every snapshot interval and shortly after every change, but only while
/// someone subscribes: a new subscriber asks for a current snapshot itself.
pub(crate) async fn publish_snapshots(state: AppState) {
    let shutdown = state.inner.shutdown.clone();
    let interval = state.inner.snapshot_interval;
    loop {
        let next_periodic = Instant::now() + interval;
        let need = tokio::select! {
            () = shutdown.cancelled() => return,
            () = sleep_until(next_periodic) => Need::New,
            () = state.inner.changed.notified() => {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = sleep(state.coalesce_delay(COALESCE)) => {}
                }
                Need::Current
            }
        };
        if state.inner.snapshots.receiver_count() == 0 {
            state.release_if_unwatched().await;
            continue;
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = state.publish(need) => {}
        }
    }
}

/// Applies the clock to both registries exactly when the next entry is due, with nobody polling.
pub(crate) async fn expire_entries(state: AppState) {
    let shutdown = state.inner.shutdown.clone();
    loop {
        let now = Instant::now();
        let wall = Utc::now();
        let workers = state.inner.workers.expire(now, wall);
        let hives = state.inner.hives.expire(now, wall);
        let changed = workers.changed || hives.changed;
        for transition in workers.transitions.into_iter().chain(hives.transitions) {
            state.record(transition);
        }
        if changed {
            state.notify_changed();
        }
        let next = [workers.next_deadline, hives.next_deadline]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + EXPIRY_MAX_SLEEP)
            .clamp(now + EXPIRY_MIN_GAP, now + EXPIRY_MAX_SLEEP);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = sleep_until(next) => {}
            () = state.inner.expiry_wake.notified() => {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = sleep_until(now + EXPIRY_MIN_GAP) => {}
                }
            }
        }
    }
}
