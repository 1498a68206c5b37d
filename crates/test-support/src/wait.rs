//! Waiting on conditions with deadlines, never sleeping and then asserting.

use std::{future::Future, time::Duration};

use tokio::time::Instant;

/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `probe` every [`POLL`] until it returns `Some`, and returns that value; panics naming
/// `what` once `timeout` has passed.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match try_wait_until(timeout, probe).await {
        Some(value) => value,
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// Polls `probe` every [`POLL`] until it returns `Some`; returns `None` once `timeout` has passed.
///
/// The probe runs at least once, and once more at the deadline, so a condition that holds at the
/// deadline is never missed.
pub async fn try_wait_until<T, F, Fut>(timeout: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        tokio::time::sleep(POLL.min(deadline - now)).await;
    }
}

/// Polls a synchronous condition every [`POLL`]; panics naming `what` once `timeout` has passed.
pub async fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    wait_until(what, timeout, || {
        let ok = condition();
        async move { ok.then_some(()) }
    })
    .await;
}
