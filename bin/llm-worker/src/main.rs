//! `llm-worker` entry point: parse the config, start logging, bind, run until SIGINT/SIGTERM.

use std::process::ExitCode;

use llm_worker::Config;
use sender_daemon::daemon;

#[tokio::main]
async fn main() -> ExitCode {
    // The incarnation: taken first, so a restarted process always reports a newer one.
    let started_at = chrono::Utc::now();
    let config: Config = match process_kit::parse_args() {
        Ok(config) => config,
        Err(code) => return code,
    };
    if let Err(e) = process_kit::init_tracing(&[
        env!("CARGO_CRATE_NAME"),
        "sender_daemon",
        "heartbeat_sender",
    ]) {
        return process_kit::usage_error(&e.to_string());
    }
    // A failure is logged; the worker runs on with the limit it has.
    let _ = process_kit::raise_open_files_limit();
    let (listener, shutdown) = match daemon::bind(config.bind).await {
        Ok(bound) => bound,
        Err(e) => return process_kit::usage_error(&e.to_string()),
    };
    match llm_worker::run(config, listener, started_at, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
