//! Memory: the queen's resident memory empty and with many registered workers.

use std::{sync::Arc, time::Duration};

use serde::Serialize;

use crate::{
    Env,
    config::BenchArgs,
    loadgen::send_each,
    payload::heartbeat_requests,
    scenarios::{flag_duration, spawn_queen},
};

/// How long the queen gets to settle before each reading (startup, then the last snapshot after the load).
const SETTLE: Duration = Duration::from_secs(1);

/// Settings of the memory scenario.
#[derive(Debug, Clone)]
pub struct MemoryOptions {
    /// Distinct workers registered.
    pub workers: usize,
    /// Connections used to register them.
    pub connections: usize,
}

impl MemoryOptions {
    /// Builds the options from the command line.
    pub fn from_args(args: &BenchArgs) -> Self {
        Self {
            workers: if args.quick {
                2000
            } else {
                args.memory_workers
            },
            connections: 32,
        }
    }
}

/// Figures of the memory scenario.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryFigures {
    /// Workers the queen accepted.
    pub registered: u64,
    /// Heartbeats it refused or that failed.
    pub rejected: u64,
    /// Resident memory with no entry.
    pub rss_empty_bytes: u64,
    /// Resident memory with every entry registered.
    pub rss_full_bytes: u64,
    /// Peak resident memory.
    pub peak_rss_bytes: u64,
    /// `(rss_full - rss_empty) / registered`.
    pub bytes_per_worker: f64,
    /// Registrations per second while loading.
    pub register_rps: f64,
}

/// Runs the memory scenario.
pub async fn run(env: &Env, opts: &MemoryOptions) -> anyhow::Result<MemoryFigures> {
    // A long timeout keeps every entry online during the reading; state does not change an entry's size.
    let queen = spawn_queen(
        env,
        &[(
            "--heartbeat-timeout",
            flag_duration(Duration::from_secs(600)),
        )],
    )
    .await?;
    let requests: Arc<[_]> = heartbeat_requests(queen.addr, "mem-w", opts.workers).into();
    tokio::time::sleep(SETTLE).await;
    let empty = queen.stats()?;
    let load = send_each(
        queen.addr,
        requests,
        opts.connections,
        Duration::from_secs(300),
    )
    .await;
    tokio::time::sleep(SETTLE).await;
    let full = queen.stats()?;
    anyhow::ensure!(load.ok > 0, "no worker registered:\n{}", queen.log_tail());
    queen.stop().await;
    Ok(MemoryFigures {
        registered: load.ok,
        rejected: load.failed,
        rss_empty_bytes: empty.rss_bytes,
        rss_full_bytes: full.rss_bytes,
        peak_rss_bytes: full.hwm_bytes,
        bytes_per_worker: full.rss_bytes.saturating_sub(empty.rss_bytes) as f64 / load.ok as f64,
        register_rps: load.rps(),
    })
}
