//! `rbee-hive` entry point: parse the config, start logging, bind, run until SIGINT/SIGTERM.

use std::process::ExitCode;

use heartbeat_sender::{cli::parse_or_exit, daemon};
use rbee_hive::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let config: Config = parse_or_exit();
    daemon::init_tracing(env!("CARGO_CRATE_NAME"));
    let (listener, shutdown) = daemon::bind_or_exit(config.bind).await;
    match rbee_hive::run(config, listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
