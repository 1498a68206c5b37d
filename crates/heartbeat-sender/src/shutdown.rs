//! Turns SIGINT and SIGTERM into a cancelled token.

use std::future::Future;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Installs SIGINT and SIGTERM handlers now, and returns a future that cancels `token` when
/// either arrives (or ends when the token is cancelled otherwise).
///
/// The handlers are installed before this returns, so a signal sent right after the daemon
/// logs its address is never lost to the default action. SIGINT is what Ctrl-C sends;
/// SIGTERM is what service managers and `rbee-keeper` send. Both mean the same here: announce
/// the exit to the queen, then stop.
pub fn shutdown_signal(
    token: CancellationToken,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => tracing::info!(signal = "SIGINT", "shutting down"),
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
            () = token.cancelled() => return,
        }
        token.cancel();
    })
}
