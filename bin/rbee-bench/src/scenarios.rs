//! The scenarios, one module each, and what the watch and stream scenarios share.

pub mod changes;
pub mod cluster;
pub mod cluster_writes;
pub mod detect;
pub mod failover;
pub mod fleet;
pub mod ingest;
pub mod memory;
pub mod mirror_lag;
pub mod startup;
pub mod store;
pub mod stream;
pub mod watch;
pub mod watch_connect;
pub mod watch_resume;

use std::{net::SocketAddr, time::Duration};

use crate::{Env, process::Server};

/// Starts the queen with `--bind 127.0.0.1:0` and `flags`, pinned like every server.
pub(crate) async fn spawn_queen(env: &Env, flags: &[(&str, String)]) -> anyhow::Result<Server> {
    spawn_queen_on(env, SocketAddr::from(([127, 0, 0, 1], 0)), flags).await
}

/// Starts the queen with `--bind bind` and `flags`, pinned like every server.
pub(crate) async fn spawn_queen_on(
    env: &Env,
    bind: SocketAddr,
    flags: &[(&str, String)],
) -> anyhow::Result<Server> {
    let mut args = vec!["--bind".to_owned(), bind.to_string()];
    // Nothing on disk unless the scenario names a data directory (or etcd, which replaces it).
    if !flags
        .iter()
        .any(|(flag, _)| *flag == "--data-dir" || *flag == "--etcd-endpoints")
    {
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
