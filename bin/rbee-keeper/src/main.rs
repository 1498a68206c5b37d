//! rbee-keeper entry point: parse the command line, run it, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use rbee_keeper::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Diagnostics go to stderr so that stdout carries only what the user asked for; the keeper
    // itself logs only warnings unless RUST_LOG says otherwise.
    if let Err(err) = process_kit::init_tracing(&[]) {
        return process_kit::usage_error(&format!("rbee-keeper: error: {err}"));
    }
    match rbee_keeper::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.downcast_ref::<rbee_keeper::UsageError>().is_some() => {
            process_kit::usage_error(&format!("rbee-keeper: error: {err:#}"))
        }
        Err(err) => {
            #[allow(clippy::print_stderr, reason = "the one-line error report of a CLI")]
            {
                eprintln!("rbee-keeper: error: {err:#}");
            }
            ExitCode::FAILURE
        }
    }
}
