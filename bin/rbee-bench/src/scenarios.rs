//! The scenarios, one module each, and what the watch and stream scenarios share.

pub mod changes;
pub mod detect;
pub mod fleet;
pub mod ingest;
pub mod memory;
pub mod startup;
pub mod store;
pub mod stream;
pub mod watch;
pub mod watch_connect;
pub mod watch_resume;

use std::time::Duration;

use crate::{Env, process::Server};

/// Starts the queen with `--bind 127.0.0.1:0` and `flags`, pinned like every server.
pub(crate) async fn spawn_queen(env: &Env, flags: &[(&str, String)]) -> anyhow::Result<Server> {
    let mut args = vec!["--bind".to_owned(), "127.0.0.1:0".to_owned()];
    // Nothing on disk unless the scenario names a data directory.
    if !flags.iter().any(|(flag, _)| *flag == "--data-dir") {
        args.push("--ephemeral".to_owned());
    }
    for (flag, value) in flags {
        args.push((*flag).to_owned());
        args.push(value.clone());
    }
    Server::spawn("queen", &env.queen_bin, &args, env.pinning.server_cpu).await
}

/// Formats a duration the way the queen's flags take it.
pub(crate) fn flag_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Returns the CPU time of this process, in seconds.
pub(crate) fn own_cpu_seconds() -> f64 {
    crate::process::proc_stats(std::process::id()).map_or(0.0, |s| s.cpu_seconds)
}
