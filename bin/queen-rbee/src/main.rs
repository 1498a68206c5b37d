//! queen-rbee entry point: parse flags, start logging, bind, serve until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Parser as _;
use process_kit::{Listening, ShutdownReason};
use queen_rbee::{Config, Storage, run_with};
use tokio_util::sync::CancellationToken;

/// How long the senders the keeper started get to deliver their final heartbeats when the keeper
/// dies; they promise to stop within 2 s.
const SENDERS_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(error) = config.validate() {
        #[allow(
            clippy::print_stderr,
            reason = "a bad configuration is reported before logging starts"
        )]
        {
            eprintln!("queen-rbee: {error}");
        }
        return ExitCode::from(2);
    }
    if let Err(code) = process_kit::init_process(&[env!("CARGO_CRATE_NAME"), "fleet_cluster"]) {
        return code;
    }

    match serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    use anyhow::Context as _;
    // The kept state first: a data directory that cannot be used stops the queen before it binds.
    let storage = Storage::open(&config)?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("failed to bind {}", config.bind))?;
    let signal = process_kit::shutdown_signal().context("install signal handlers")?;
    tracing::info!("{}", Listening(listener.local_addr()?));
    let shutdown = CancellationToken::new();
    let server = run_with(config, storage, listener, shutdown.clone());
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result,
        reason = signal => {
            tracing::info!(signal = %reason, "shutting down");
            if reason == ShutdownReason::StdinClosed {
                // The keeper that started us is gone, and its hive and workers were told at the
                // same moment: keep serving while they send their final heartbeats.
                if let Ok(result) = tokio::time::timeout(SENDERS_GRACE, &mut server).await {
                    return result;
                }
            }
            shutdown.cancel();
            server.await
        }
    }
}
