//! The background tasks: the change log's publisher, the summary publisher and the expiry clock.

use std::time::Duration;

use shared_contract::Transition;
use tokio::time::{Instant, sleep, sleep_until};
use tracing::{debug, info};

use crate::{changelog::Published, state::AppState};

/// The longest the expiry task sleeps without looking, as a safety net.
const EXPIRY_MAX_SLEEP: Duration = Duration::from_secs(1);

/// The shortest gap between two expiry passes, so that many entries with nearby deadlines cost
/// a few scans per second instead of one scan each; well inside the 250 ms the contract allows.
const EXPIRY_MIN_GAP: Duration = Duration::from_millis(50);

/// Serializes what the registries appended to the change log and publishes it to watchers;
/// logs each transition and hands it to the summary stream.
pub(crate) async fn publish_changes(state: AppState) {
    let shutdown = state.shutdown().clone();
    let log = state.fleet().log();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = log.appended() => {}
        }
        let published = publish(&state);
        state.metrics().revision(log.published());
        for change in published {
            if let Some(transition) = &change.transition {
                log_transition(transition);
                state.streams().summaries().transition(transition);
            }
        }
    }
    // Publish what was appended before the stop, for streams that are still being drained.
    publish(&state);
}

/// Publishes what was appended to the change log and hands it to the store, if there is one.
/// A cluster's leader hands it to etcd instead, and watchers see it once etcd committed it.
pub(crate) fn publish(state: &AppState) -> Vec<Published> {
    if let Some(clustered) = state.cluster() {
        let log = state.fleet().log();
        return match clustered.term() {
            Some(term) => {
                let published = log.publish(true, true);
                clustered.record(term, &published);
                published
            }
            None => log.publish(false, false),
        };
    }
    let store = state.store();
    let mut published = state.fleet().log().publish(store.is_some(), false);
    if let Some(store) = store {
        store.record(published.iter_mut().filter_map(|p| p.kept.take()));
    }
    published
}

/// Publishes a summary every snapshot interval and shortly after every change that alters it,
/// but only while someone subscribes.
pub(crate) async fn publish_summaries(state: AppState) {
    let shutdown = state.shutdown().clone();
    let interval = state.snapshot_interval();
    let summaries = state.streams().summaries();
    let mut published = state.fleet().log().subscribe();
    loop {
        let next_periodic = Instant::now() + interval.saturating_sub(summaries.age());
        let always = tokio::select! {
            () = shutdown.cancelled() => return,
            () = sleep_until(next_periodic) => true,
            changed = published.changed() => {
                if changed.is_err() {
                    return;
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = sleep(summaries.coalesce_delay()) => {}
                }
                published.borrow_and_update();
                false
            }
        };
        if summaries.watched() {
            summaries.publish(state.fleet(), always).await;
        }
    }
}

/// Applies the clock to every registry exactly when the next entry is due, with nobody polling.
pub(crate) async fn expire_entries(state: AppState) {
    let shutdown = state.shutdown().clone();
    let fleet = state.fleet();
    loop {
        let now = Instant::now();
        // A follower (or a leader that cannot renew its lease) judges nothing.
        let next = state
            .judges()
            .then(|| fleet.expire())
            .flatten()
            .unwrap_or(now + EXPIRY_MAX_SLEEP)
            .clamp(now + EXPIRY_MIN_GAP, now + EXPIRY_MAX_SLEEP);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = sleep_until(next) => {}
            () = fleet.deadline_moved() => {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = sleep_until(now + EXPIRY_MIN_GAP) => {}
                }
            }
        }
    }
}

fn log_transition(transition: &Transition) {
    if transition.from.map(Into::into) == Some(transition.to) {
        debug!(kind = %transition.kind, id = %transition.id, reason = %transition.reason, "transition");
    } else {
        info!(
            kind = %transition.kind,
            id = %transition.id,
            from = transition.from.map_or("none", |s| s.as_str()),
            to = %transition.to,
            reason = %transition.reason,
            "transition"
        );
    }
}
