//! Ingest: the same closed-loop load against the ceiling server and the queen, in alternating rounds.
//!
//! Measured like `../shared/bench/ingest-vs-ceiling.sh`: a fresh server per round, odd rounds run the
//! ceiling first and even rounds the queen first (so neither always meets the warmer machine), and the
//! ratio is the median queen rate over the median ceiling rate. Single rounds swing by ±20 % on a
//! shared machine; medians of alternating rounds do not.
//!
//! `ingest-store` runs the same rounds with the queen keeping its state in a fresh data directory:
//! the store is written behind the heartbeat path, so the ratio should not move. `ingest-cluster`
//! runs them with the queen leading a cluster on a fresh etcd of its own each round, measured once
//! the warm-up's registrations are in etcd: beats that change nothing never reach etcd, so again
//! the ratio should not move.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use serde::Serialize;
use tokio::time::Instant;

use crate::{
    Env,
    config::BenchArgs,
    etcd::Etcd,
    loadgen::{LoadResult, closed_loop},
    metrics::{ETCD_OPS, Metrics, STORE_ERRORS, STORE_ROWS},
    payload::heartbeat_requests,
    process::Server,
    scenarios::{
        cluster::{self, Writes},
        own_cpu_seconds, spawn_queen,
        store::settle,
    },
    stats::{Summary, median, ratio},
};

/// Distinct worker ids the load is spread over.
const IDS: usize = 1000;
/// How long a cluster leader may take to write the warm-up's registrations to etcd.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// Settings of the ingest scenario.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Rounds per target.
    pub rounds: u32,
    /// Measured time per round.
    pub round: Duration,
    /// Unmeasured warm-up per round (connections, registration of the ids).
    pub warmup: Duration,
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Where the queen keeps its state.
    pub queen: QueenMode,
}

/// Where the queen of the ingest rounds keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueenMode {
    /// Nowhere (`--ephemeral`).
    Ephemeral,
    /// In a fresh data directory per round.
    Store,
    /// In etcd, as the leader of a cluster of one, on a fresh etcd per round.
    Cluster,
}

impl IngestOptions {
    /// Builds the options from the command line.
    pub fn from_args(args: &BenchArgs) -> Self {
        if args.quick {
            return Self {
                rounds: 1,
                round: Duration::from_secs(1),
                warmup: Duration::from_millis(300),
                connections: args.connections.min(8),
                queen: QueenMode::Ephemeral,
            };
        }
        Self {
            rounds: args.rounds.max(1),
            round: args.round_duration,
            warmup: Duration::from_secs(1),
            connections: args.connections,
            queen: QueenMode::Ephemeral,
        }
    }

    /// The same rounds with the queen keeping its state as `queen` says (`ingest-store`,
    /// `ingest-cluster`).
    pub fn with_queen(args: &BenchArgs, queen: QueenMode) -> Self {
        Self {
            queen,
            ..Self::from_args(args)
        }
    }
}

/// One measured round.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// `ceiling` or `queen`.
    pub target: &'static str,
    /// Successful requests per second.
    pub rps: f64,
    /// Latency of this round.
    pub latency: Summary,
    /// Failed requests.
    pub failed: u64,
    /// CPU used by the server, as a share of one core.
    pub server_cpu: f64,
    /// Server CPU time per successful request, in microseconds.
    pub server_us_per_req: f64,
    /// CPU used by the bench, as a share of one core.
    pub bench_cpu: f64,
    /// Rows the queen's store wrote in the round (with a data directory only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_rows: Option<u64>,
    /// Failed writes of the queen's store in the round (with a data directory only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_errors: Option<u64>,
    /// etcd transactions the queen committed over the round, the warm-up's registrations
    /// included (cluster only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_txns: Option<u64>,
    /// Keys those transactions wrote (cluster only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_ops: Option<u64>,
    /// etcd transactions committed in the measured window only (cluster only): should be 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_txns_measured: Option<u64>,
}

/// Figures of the ingest scenario.
#[derive(Debug, Clone, Serialize)]
pub struct IngestFigures {
    /// Median of the ceiling's per-round requests per second.
    pub ceiling_rps: f64,
    /// Median of the queen's per-round requests per second.
    pub queen_rps: f64,
    /// `queen_rps / ceiling_rps`: the ratio of the medians.
    pub ingest_ratio: f64,
    /// Ceiling latency.
    pub ceiling_latency: Summary,
    /// Queen latency.
    pub queen_latency: Summary,
    /// Failed requests against the queen.
    pub queen_failed: u64,
    /// Ceiling CPU time per request, in microseconds, over all its rounds.
    pub ceiling_us_per_req: f64,
    /// Queen CPU time per request, in microseconds, over all its rounds.
    pub queen_us_per_req: f64,
    /// `ceiling_us_per_req / queen_us_per_req`: the throughput ratio both would reach on a core of their
    /// own; far less sensitive than `ingest_ratio` to other load on a shared machine.
    pub cpu_ratio: f64,
    /// Every round in order.
    pub rounds: Vec<Round>,
    /// Connections used.
    pub connections: usize,
    /// Whether the queen kept its state in a data directory.
    pub store: bool,
    /// Rows its store wrote, over all queen rounds.
    pub store_rows: u64,
    /// Failed writes of its store, over all queen rounds.
    pub store_errors: u64,
    /// Whether the queen led a cluster on etcd.
    pub cluster: bool,
    /// etcd transactions its queen rounds committed, warm-up (registration) included.
    pub etcd_txns: u64,
    /// Keys they wrote.
    pub etcd_ops: u64,
    /// etcd transactions committed in the measured windows: should be 0.
    pub etcd_txns_measured: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Ceiling,
    Queen,
}

/// Runs the alternating rounds.
pub async fn run(env: &Env, opts: &IngestOptions) -> anyhow::Result<IngestFigures> {
    let mut totals = [LoadResult::default(), LoadResult::default()];
    let mut cpu = [0.0_f64; 2];
    let mut rounds = Vec::new();
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for n in 1..=opts.rounds {
        let order = if n % 2 == 1 {
            [Target::Ceiling, Target::Queen]
        } else {
            [Target::Queen, Target::Ceiling]
        };
        for target in order {
            let (result, round) = run_round(env, opts, target).await?;
            rates[target as usize].push(round.rps);
            let total = &mut totals[target as usize];
            total.ok += result.ok;
            total.failed += result.failed;
            total.elapsed += result.elapsed;
            total.latency.merge(&result.latency);
            cpu[target as usize] += round.server_us_per_req * result.ok as f64 / 1e6;
            rounds.push(round);
        }
    }
    let [ceiling, queen] = totals;
    let [ceiling_rps, queen_rps] = rates.map(|r| median(&r));
    let ceiling_us = ratio(cpu[0] * 1e6, ceiling.ok as f64);
    let queen_us = ratio(cpu[1] * 1e6, queen.ok as f64);
    Ok(IngestFigures {
        ceiling_us_per_req: ceiling_us,
        queen_us_per_req: queen_us,
        cpu_ratio: ratio(ceiling_us, queen_us),
        ceiling_rps,
        queen_rps,
        ingest_ratio: ratio(queen_rps, ceiling_rps),
        ceiling_latency: ceiling.latency.summary(),
        queen_latency: queen.latency.summary(),
        queen_failed: queen.failed,
        connections: opts.connections,
        store: opts.queen == QueenMode::Store,
        store_rows: rounds.iter().filter_map(|r| r.store_rows).sum(),
        store_errors: rounds.iter().filter_map(|r| r.store_errors).sum(),
        cluster: opts.queen == QueenMode::Cluster,
        etcd_txns: rounds.iter().filter_map(|r| r.etcd_txns).sum(),
        etcd_ops: rounds.iter().filter_map(|r| r.etcd_ops).sum(),
        etcd_txns_measured: rounds.iter().filter_map(|r| r.etcd_txns_measured).sum(),
        rounds,
    })
}

async fn run_round(
    env: &Env,
    opts: &IngestOptions,
    target: Target,
) -> anyhow::Result<(LoadResult, Round)> {
    // A fresh process per round: no state or heap carries over between rounds; with the store,
    // a fresh data directory too, removed after the round; in a cluster, a fresh etcd.
    let data_dir = match (target, opts.queen) {
        (Target::Queen, QueenMode::Store) => Some(
            tempfile::Builder::new()
                .prefix("rbee-bench-ingest-")
                .tempdir()
                .context("create a data directory")?,
        ),
        _ => None,
    };
    let etcd = match (target, opts.queen) {
        (Target::Queen, QueenMode::Cluster) => Some(cluster::start_etcd(env).await?),
        _ => None,
    };
    let server = match target {
        Target::Ceiling => {
            let args = [
                "ceiling-server".to_owned(),
                "--bind".to_owned(),
                "127.0.0.1:0".to_owned(),
            ];
            Server::spawn("ceiling", &env.self_exe, &args, env.pinning.server_cpu).await?
        }
        Target::Queen => spawn_round_queen(env, data_dir.as_ref(), etcd.as_ref()).await?,
    };
    let requests: Arc<[_]> = heartbeat_requests(server.addr, "bench-w", IDS).into();
    closed_loop(
        server.addr,
        Arc::clone(&requests),
        opts.connections,
        Duration::ZERO,
        opts.warmup,
    )
    .await;
    // The warm-up registered the ids: in a cluster, let the leader finish writing them to etcd,
    // so that the window measures steady beats (which write nothing) as in the other modes.
    let writes_before = match &etcd {
        Some(_) => {
            let settled =
                settle(server.addr, ETCD_OPS, None, Instant::now() + SETTLE_LIMIT).await?;
            Some(Writes::of(&settled))
        }
        None => None,
    };
    let server_before = server.stats()?;
    let bench_before = own_cpu_seconds();
    let result = closed_loop(
        server.addr,
        requests,
        opts.connections,
        Duration::ZERO,
        opts.round,
    )
    .await;
    let server_after = server.stats()?;
    let bench_after = own_cpu_seconds();
    if result.ok == 0 {
        anyhow::bail!(
            "no request succeeded against {target:?}:\n{}",
            server.log_tail()
        );
    }
    let after = match (&data_dir, &etcd) {
        (None, None) => None,
        _ => Some(Metrics::fetch(server.addr).await?),
    };
    let store = after.as_ref().filter(|_| data_dir.is_some());
    let writes = after.as_ref().filter(|_| etcd.is_some()).map(Writes::of);
    server.stop().await;
    drop(data_dir);
    if let Some(etcd) = etcd {
        etcd.stop().await;
    }
    let secs = result.elapsed.as_secs_f64();
    let round = Round {
        target: match target {
            Target::Ceiling => "ceiling",
            Target::Queen => "queen",
        },
        rps: result.rps(),
        latency: result.latency.summary(),
        failed: result.failed,
        server_cpu: ratio(server_after.cpu_seconds - server_before.cpu_seconds, secs),
        server_us_per_req: ratio(
            (server_after.cpu_seconds - server_before.cpu_seconds) * 1e6,
            result.ok as f64,
        ),
        bench_cpu: ratio(bench_after - bench_before, secs),
        store_rows: store.map(|m| m.counter(STORE_ROWS)),
        store_errors: store.map(|m| m.counter(STORE_ERRORS)),
        etcd_txns: writes.map(|w| w.txns),
        etcd_ops: writes.map(|w| w.ops),
        etcd_txns_measured: writes
            .zip(writes_before)
            .map(|(after, before)| after.since(before).txns),
    };
    Ok((result, round))
}

/// Starts the round's queen: ephemeral, on `data_dir`, or as the leader of a cluster on `etcd`.
async fn spawn_round_queen(
    env: &Env,
    data_dir: Option<&tempfile::TempDir>,
    etcd: Option<&Etcd>,
) -> anyhow::Result<Server> {
    match (data_dir, etcd) {
        (_, Some(etcd)) => cluster::spawn_leader(env, etcd, &[]).await,
        (Some(dir), None) => {
            spawn_queen(env, &[("--data-dir", dir.path().display().to_string())]).await
        }
        (None, None) => spawn_queen(env, &[]).await,
    }
}
