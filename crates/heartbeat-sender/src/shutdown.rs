//! Turns SIGINT and SIGTERM into a cancelled token.

use tokio_util::sync::CancellationToken;

/// Waits for SIGINT or SIGTERM, then cancels `token`; returns early if the token is cancelled.
///
/// SIGINT is what Ctrl-C sends in a terminal; SIGTERM is what service managers and
/// `rbee-keeper` send. Both mean the same here: announce the exit to the queen, then stop.
pub async fn shutdown_signal(token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};

    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot install signal handlers; the daemon stops only when killed");
        token.cancelled().await;
        return;
    };
    tokio::select! {
        _ = int.recv() => tracing::info!(signal = "SIGINT", "shutting down"),
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
        () = token.cancelled() => return,
    }
    token.cancel();
}
