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
mod cluster;
mod config;
mod fleet;
mod format;
mod guard;
mod status;
mod up;
mod view;
mod watch;

pub use config::{
    Cli, Command, GuardArgs, QueenArgs, StateFilter, StatusArgs, UpArgs, ViewArgs, WatchArgs,
};

/// Something the user must set right before the command can run, such as a program missing
/// from this machine: `main` exits with code 2 for it, as for a bad flag.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Runs one subcommand to completion.
///
/// Errors are meant for the user: `main` prints them as one `error: …` line and exits non-zero.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => up::run(args, api::http_client()?).await,
        Command::Status(args) => status::run(args, api::http_client()?).await,
        Command::Watch(args) => watch::run(args, api::http_client()?).await,
        Command::Guard(args) => guard::run(args).await,
    }
}
