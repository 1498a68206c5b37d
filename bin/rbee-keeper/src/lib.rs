//! rbee-keeper: the user's CLI. Starts a local fleet (`up`), prints its status (`status`) and
//! shows it live in the terminal (`watch`).

// Printing tables, URLs and live views to stdout is what this program is for.
#![allow(clippy::print_stdout, reason = "a CLI reports to the user on stdout")]

/// Writes a line to stdout and ignores a closed stdout: losing the report must not stop a
/// fleet half-way (`println!` would panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod api;
mod config;
mod fleet;
mod format;
mod status;
mod up;
mod view;
mod watch;

pub use config::{Cli, Command, QueenArgs, StateFilter, StatusArgs, UpArgs, ViewArgs, WatchArgs};

/// Runs one subcommand to completion.
///
/// Errors are meant for the user: `main` prints them as one `error: …` line and exits non-zero.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = api::http_client()?;
    match cli.command {
        Command::Up(args) => up::run(args, client).await,
        Command::Status(args) => status::run(args, client).await,
        Command::Watch(args) => watch::run(args, client).await,
    }
}
