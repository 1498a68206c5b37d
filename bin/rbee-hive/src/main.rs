//! `rbee-hive` entry point: parse the config, start logging, bind, run until SIGINT/SIGTERM.

use std::process::ExitCode;

use rbee_hive::Config;
use sender_daemon::daemon;

#[tokio::main]
async fn main() -> ExitCode {
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
    match rbee_hive::run(config, listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
