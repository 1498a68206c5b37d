//! Ingest: the same closed-loop load against the ceiling server and the queen, in alternating rounds.
//!
//! Measured like `../shared/bench/ingest-vs-ceiling.sh`: a fresh server per round, odd rounds run the
//! ceiling first and even rounds the queen first (so neither always meets the warmer machine), and the
//! ratio is the median queen rate over the median ceiling rate. Single rounds swing by ±20 % on a
//! shared machine; medians of alternating rounds do not.
//!
//! `ingest-store` runs the same rounds with the queen keeping its state in a fresh data directory:
//! the store is written behind the heartbeat path, so the ratio should not move.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use serde::Serialize;

use crate::{
    Env,
    config::BenchArgs,
    loadgen::{LoadResult, closed_loop},
    metrics::{Metrics, STORE_ERRORS, STORE_ROWS},
    payload::heartbeat_requests,
    process::Server,
    scenarios::{own_cpu_seconds, spawn_queen},
    stats::{Summary, median, ratio},
};

/// Distinct worker ids the load is spread over.
const IDS: usize = 1000;

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
    /// Whether the queen keeps its state in a data directory (a fresh one per round).
    pub store: bool,
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
                store: false,
            };
        }
        Self {
            rounds: args.rounds.max(1),
            round: args.round_duration,
            warmup: Duration::from_secs(1),
            connections: args.connections,
            store: false,
        }
    }

    /// The `ingest-store` variant: the same rounds, the queen with a data directory.
    pub fn with_store(args: &BenchArgs) -> Self {
        Self {
            store: true,
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
        store: opts.store,
        store_rows: rounds.iter().filter_map(|r| r.store_rows).sum(),
        store_errors: rounds.iter().filter_map(|r| r.store_errors).sum(),
        rounds,
    })
}

async fn run_round(
    env: &Env,
    opts: &IngestOptions,
    target: Target,
) -> anyhow::Result<(LoadResult, Round)> {
    // A fresh process per round: no state or heap carries over between rounds; with the store,
    // a fresh data directory too, removed after the round.
    let data_dir = match (target, opts.store) {
        (Target::Queen, true) => Some(
            tempfile::Builder::new()
                .prefix("rbee-bench-ingest-")
                .tempdir()
                .context("create a data directory")?,
        ),
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
        Target::Queen => match &data_dir {
            Some(dir) => {
                spawn_queen(env, &[("--data-dir", dir.path().display().to_string())]).await?
            }
            None => spawn_queen(env, &[]).await?,
        },
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
    let store = match data_dir {
        Some(_) => Some(Metrics::fetch(server.addr).await?),
        None => None,
    };
    server.stop().await;
    drop(data_dir);
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
        store_rows: store.as_ref().map(|m| m.counter(STORE_ROWS)),
        store_errors: store.as_ref().map(|m| m.counter(STORE_ERRORS)),
    };
    Ok((result, round))
}
