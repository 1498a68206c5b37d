//! rbee-bench: measures queen-rbee against a ceiling server (ingest), at fleet scale, for detection delay,
//! for memory per entry, for its watch and summary streams, with its kept state (store, startup,
//! ingest-store), and in a cluster on etcd (failover, cluster-writes, mirror-lag, ingest-cluster),
//! all on 127.0.0.1 and bounded in time.
//!
//! Every scenario starts its own server processes (etcd included) and kills them when it ends.

pub mod ceiling;
pub mod config;
pub mod etcd;
pub mod http;
pub mod loadgen;
pub mod metrics;
pub mod payload;
pub mod pin;
pub mod process;
pub mod report;
pub mod scenarios;
pub mod sse;
pub mod stats;

use std::{io::Write, path::PathBuf};

use anyhow::Context as _;

use crate::{
    config::{BenchArgs, Cli, Command, Scenario},
    pin::Pinning,
    report::Report,
    scenarios::ingest::QueenMode,
};

/// What every scenario needs to start its servers.
#[derive(Debug, Clone)]
pub struct Env {
    /// The queen binary.
    pub queen_bin: PathBuf,
    /// This executable, re-run as the ceiling server.
    pub self_exe: PathBuf,
    /// The etcd binary the cluster scenarios start.
    pub etcd_bin: PathBuf,
    /// CPU layout.
    pub pinning: Pinning,
    /// CPUs usable by this process before pinning.
    pub cpus: usize,
}

/// Runs the command line: the ceiling server, or the bench with its report.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::CeilingServer { bind }) => ceiling::serve(bind).await,
        Some(Command::Load {
            addr,
            duration,
            connections,
        }) => load(addr, duration, connections).await,
        None => bench(cli.bench).await,
    }
}

async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let self_exe = std::env::current_exe().context("find own executable")?;
    let queen_bin = match args.queen_bin.clone() {
        Some(path) => {
            anyhow::ensure!(
                path.is_file(),
                "queen binary not found at {}",
                path.display()
            );
            path
        }
        None => process_kit::sibling_binary("queen-rbee").map_err(|e| {
            anyhow::anyhow!("{e} (build it: cargo build --release --workspace --bins)")
        })?,
    };
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let pinning = Pinning::plan(!args.no_pin);
    pinning.pin_self().context("pin the bench")?;
    let env = Env {
        queen_bin,
        self_exe,
        etcd_bin: etcd::binary(args.etcd_bin.as_deref()),
        pinning,
        cpus,
    };
    // Returning early drops the scenario, and with it every child server (kill on drop).
    let interrupted = process_kit::shutdown_signal().context("install signal handlers")?;
    let report = tokio::select! {
        r = run_scenarios(&env, &args) => r?,
        reason = interrupted => anyhow::bail!("interrupted ({reason})"),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", report.to_json()).context("write report")?;
    } else {
        write!(out, "{}", report.to_text()).context("write report")?;
    }
    Ok(())
}

async fn load(
    addr: std::net::SocketAddr,
    duration: std::time::Duration,
    connections: usize,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "the bench only talks to loopback addresses"
    );
    let requests: std::sync::Arc<[_]> = payload::heartbeat_requests(addr, "bench-w", 1000).into();
    let r = loadgen::closed_loop(
        addr,
        requests,
        connections,
        std::time::Duration::ZERO,
        duration,
    )
    .await;
    let s = r.latency.summary();
    writeln!(
        std::io::stdout().lock(),
        "{:.0} req/s  p50 {:.2} ms  p99 {:.2} ms  failed {}",
        r.rps(),
        s.p50_ms,
        s.p99_ms,
        r.failed
    )
    .context("write result")
}

async fn run_scenarios(env: &Env, args: &BenchArgs) -> anyhow::Result<Report> {
    let mut report = Report::new(env, args);
    if args.runs(Scenario::Ingest) {
        let opts = scenarios::ingest::IngestOptions::from_args(args);
        report.ingest = Some(
            scenarios::ingest::run(env, &opts)
                .await
                .context("ingest scenario")?,
        );
    }
    if args.runs(Scenario::Fleet) {
        let opts = scenarios::fleet::FleetOptions::from_args(args);
        report.fleet = Some(
            scenarios::fleet::run(env, &opts)
                .await
                .context("fleet scenario")?,
        );
    }
    if args.runs(Scenario::Detect) {
        let opts = scenarios::detect::DetectOptions::from_args(args);
        report.detect = Some(
            scenarios::detect::run(env, &opts)
                .await
                .context("detect scenario")?,
        );
    }
    if args.runs(Scenario::Memory) {
        let opts = scenarios::memory::MemoryOptions::from_args(args);
        report.memory = Some(
            scenarios::memory::run(env, &opts)
                .await
                .context("memory scenario")?,
        );
    }
    if args.runs(Scenario::Watch) {
        let opts = scenarios::watch::WatchOptions::from_args(args);
        report.watch = Some(
            scenarios::watch::run(env, &opts)
                .await
                .context("watch scenario")?,
        );
    }
    if args.runs(Scenario::WatchConnect) {
        let opts = scenarios::watch_connect::ConnectOptions::from_args(args);
        report.watch_connect = Some(
            scenarios::watch_connect::run(env, &opts)
                .await
                .context("watch-connect scenario")?,
        );
    }
    if args.runs(Scenario::WatchResume) {
        let opts = scenarios::watch_resume::ResumeOptions::from_args(args);
        report.watch_resume = Some(
            scenarios::watch_resume::run(env, &opts)
                .await
                .context("watch-resume scenario")?,
        );
    }
    if args.runs(Scenario::Stream) {
        let opts = scenarios::stream::StreamOptions::from_args(args);
        report.stream = Some(
            scenarios::stream::run(env, &opts)
                .await
                .context("stream scenario")?,
        );
    }
    if args.runs(Scenario::WatchStalled) {
        let opts = scenarios::watch::WatchOptions::stalled_from_args(args);
        report.watch_stalled = Some(
            scenarios::watch::run_stalled(env, &opts)
                .await
                .context("watch-stalled scenario")?,
        );
    }
    if args.runs(Scenario::Store) {
        let opts = scenarios::store::StoreOptions::from_args(args);
        report.store = Some(
            scenarios::store::run(env, &opts)
                .await
                .context("store scenario")?,
        );
    }
    if args.runs(Scenario::Startup) {
        let opts = scenarios::startup::StartupOptions::from_args(args);
        report.startup = Some(
            scenarios::startup::run(env, &opts)
                .await
                .context("startup scenario")?,
        );
    }
    if args.runs(Scenario::IngestStore) {
        let opts = scenarios::ingest::IngestOptions::with_queen(args, QueenMode::Store);
        report.ingest_store = Some(
            scenarios::ingest::run(env, &opts)
                .await
                .context("ingest-store scenario")?,
        );
    }
    run_cluster_scenarios(env, args, &mut report).await?;
    Ok(report)
}

async fn run_cluster_scenarios(
    env: &Env,
    args: &BenchArgs,
    report: &mut Report,
) -> anyhow::Result<()> {
    if args.runs(Scenario::Failover) {
        let opts = scenarios::failover::FailoverOptions::from_args(args);
        report.failover = Some(
            scenarios::failover::run(env, &opts)
                .await
                .context("failover scenario")?,
        );
    }
    if args.runs(Scenario::ClusterWrites) {
        let opts = scenarios::store::StoreOptions::cluster_from_args(args);
        report.cluster_writes = Some(
            scenarios::cluster_writes::run(env, &opts)
                .await
                .context("cluster-writes scenario")?,
        );
    }
    if args.runs(Scenario::MirrorLag) {
        let opts = scenarios::mirror_lag::MirrorOptions::from_args(args);
        report.mirror_lag = Some(
            scenarios::mirror_lag::run(env, &opts)
                .await
                .context("mirror-lag scenario")?,
        );
    }
    if args.runs(Scenario::IngestCluster) {
        let opts = scenarios::ingest::IngestOptions::with_queen(args, QueenMode::Cluster);
        report.ingest_cluster = Some(
            scenarios::ingest::run(env, &opts)
                .await
                .context("ingest-cluster scenario")?,
        );
    }
    Ok(())
}
