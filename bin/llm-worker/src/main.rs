//! `llm-worker` entry point: parse the config, start logging, bind, run until SIGINT/SIGTERM.

use std::process::ExitCode;

use heartbeat_sender::{cli::parse_or_exit, daemon};
use llm_worker::Config;

#[tokio::main]
async fn main() -> ExitCode {
    // The incarnation: taken first, so a restarted process always reports a newer one.
    let started_at = chrono::Utc::now();
    let config: Config = parse_or_exit();
    daemon::init_tracing(env!("CARGO_CRATE_NAME"));
    let (listener, shutdown) = daemon::bind_or_exit(config.bind).await;
    match llm_worker::run(config, listener, started_at, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
