//! The one shutdown signal: SIGINT, SIGTERM, and (when asked) end of file on stdin.

use std::{fmt, future::Future, io, io::Read as _};

use tokio::{
    signal::unix::{SignalKind, signal},
    sync::oneshot,
};
use tokio_util::sync::CancellationToken;

/// Set to `1` in a program's environment to make end of file on its stdin a shutdown signal.
///
/// `rbee-keeper up` starts every child with this set and a pipe on stdin that it holds open, so
/// the children stop gracefully even when the keeper itself is killed with SIGKILL: the kernel
/// closes the pipe, the child reads end of file, and shuts down as if sent SIGTERM.
pub const EXIT_ON_STDIN_EOF_ENV: &str = "RBEE_EXIT_ON_STDIN_EOF";

/// Why a process is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownReason {
    /// SIGINT: Ctrl-C at a terminal.
    Interrupt,
    /// SIGTERM: service managers, `kill`, `rbee-keeper` stopping its fleet.
    Terminate,
    /// Stdin reached end of file while [`EXIT_ON_STDIN_EOF_ENV`] was set: the parent is gone.
    StdinClosed,
}

impl fmt::Display for ShutdownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
            Self::StdinClosed => "stdin closed",
        })
    }
}

/// Installs the SIGINT and SIGTERM handlers now, and returns a future that completes with the
/// reason when either arrives, or when stdin reaches end of file if [`EXIT_ON_STDIN_EOF_ENV`]
/// is `1`.
///
/// The handlers are in place before this returns, so a signal sent right after the program logs
/// its address is never lost to the default action. Must be called inside a tokio runtime.
pub fn shutdown_signal() -> io::Result<impl Future<Output = ShutdownReason> + Send + 'static> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let stdin = if std::env::var_os(EXIT_ON_STDIN_EOF_ENV).is_some_and(|v| v == "1") {
        Some(stdin_closed()?)
    } else {
        None
    };
    Ok(async move {
        let stdin = async move {
            match stdin {
                // An error on the channel means the reading thread is gone: end of file all the same.
                Some(closed) => {
                    let _ = closed.await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = interrupt.recv() => ShutdownReason::Interrupt,
            _ = terminate.recv() => ShutdownReason::Terminate,
            () = stdin => ShutdownReason::StdinClosed,
        }
    })
}

/// Installs the handlers of [`shutdown_signal`] now, and spawns a task that logs the reason at
/// info and cancels `token` when a shutdown signal arrives (the task ends early if the token is
/// cancelled otherwise).
pub fn cancel_on_shutdown_signal(token: CancellationToken) -> io::Result<()> {
    let signal = shutdown_signal()?;
    drop(tokio::spawn(async move {
        tokio::select! {
            reason = signal => {
                tracing::info!(signal = %reason, "shutting down");
                token.cancel();
            }
            () = token.cancelled() => {}
        }
    }));
    Ok(())
}

/// Reads stdin on a thread of its own until end of file or an error, then completes.
///
/// A plain thread rather than `tokio::io::stdin`: that one reads on the runtime's blocking pool,
/// and a read that never returns would hold up the runtime's shutdown.
fn stdin_closed() -> io::Result<oneshot::Receiver<()>> {
    let (closed, receiver) = oneshot::channel();
    std::thread::Builder::new()
        .name("stdin-eof".to_owned())
        .spawn(move || {
            let mut stdin = io::stdin().lock();
            let mut buf = [0_u8; 512];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = closed.send(());
        })?;
    Ok(receiver)
}
