//! rbee-bench entry point: parses the command line and runs the bench or the ceiling server.

use std::{io::Write, process::ExitCode};

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = rbee_bench::config::Cli::parse();
    // Fleet scenarios open thousands of connections, hence the raised open-files limit.
    if let Err(code) = process_kit::init_process(&[env!("CARGO_CRATE_NAME")]) {
        return code;
    }
    match rbee_bench::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A failed write to stderr leaves nothing better to do than exit non-zero.
            let _ = writeln!(std::io::stderr(), "rbee-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
