//! rbee-keeper entry point: parse the command line, run it, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use rbee_keeper::Cli;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Diagnostics go to stderr so that stdout carries only what the user asked for.
    // A closed stderr must not panic the logger (and with it the task that handles signals).
    tracing_subscriber::fmt()
        .log_internal_errors(false)
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(format!("{}=warn", env!("CARGO_CRATE_NAME")))),
        )
        .with_writer(std::io::stderr)
        .init();
    match rbee_keeper::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            #[allow(clippy::print_stderr, reason = "the one-line error report of a CLI")]
            {
                eprintln!("rbee-keeper: error: {err:#}");
            }
            ExitCode::FAILURE
        }
    }
}
