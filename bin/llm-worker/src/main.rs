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
    let logged = [
        env!("CARGO_CRATE_NAME"),
        "sender_daemon",
        "heartbeat_sender",
    ];
    if let Err(code) = process_kit::init_process(&logged) {
        return code;
    }
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
