//! rbee-bench entry point: parses the command line and runs the bench or the ceiling server.

use std::{io::Write, process::ExitCode};

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = rbee_bench::config::Cli::parse();
    if let Err(e) = process_kit::init_tracing(&[env!("CARGO_CRATE_NAME")]) {
        return process_kit::usage_error(&e.to_string());
    }
    // Fleet scenarios open thousands of connections; a failure is logged and the bench runs on.
    let _ = process_kit::raise_open_files_limit();
    match rbee_bench::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A failed write to stderr leaves nothing better to do than exit non-zero.
            let _ = writeln!(std::io::stderr(), "rbee-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
