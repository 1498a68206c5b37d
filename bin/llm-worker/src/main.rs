//! `llm-worker` entry point: parse the config, start logging, bind, run until SIGINT/SIGTERM.

use std::{io::IsTerminal as _, process::ExitCode};

use heartbeat_sender::cli::{exit_with_config_error, parse_or_exit};
use llm_worker::Config;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    // The incarnation: taken first, so a restarted process always reports a newer one.
    let started_at = chrono::Utc::now();
    let config: Config = parse_or_exit();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{}=info,heartbeat_sender=info",
            env!("CARGO_CRATE_NAME")
        ))
    });
    // A closed stderr must not panic the logger (and with it the task that handles signals).
    tracing_subscriber::fmt()
        .log_internal_errors(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let listener = match tokio::net::TcpListener::bind(config.bind).await {
        Ok(listener) => listener,
        Err(e) => exit_with_config_error(&format!("failed to bind {}: {e}", config.bind)),
    };
    let shutdown = CancellationToken::new();
    match heartbeat_sender::shutdown_signal(shutdown.clone()) {
        Ok(signals) => drop(tokio::spawn(signals)),
        Err(e) => exit_with_config_error(&format!("failed to install signal handlers: {e}")),
    }
    match listener.local_addr() {
        Ok(addr) => tracing::info!("listening on http://{addr}"),
        Err(e) => exit_with_config_error(&format!("failed to read the bound address: {e}")),
    }

    match llm_worker::run(config, listener, started_at, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
