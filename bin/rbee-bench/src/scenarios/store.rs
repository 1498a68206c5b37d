//! Store: the queen keeping its state in a data directory at fleet scale. A phase of beats that
//! change nothing must write nothing; a window of material changes (status flips) measures the
//! commit lag, the write rates and the size on disk, from the queen's own `/metrics`.

use std::{fmt::Write as _, path::Path, time::Duration};

use anyhow::Context as _;
use serde::Serialize;
use tokio::time::Instant;

use crate::{
    Env,
    config::BenchArgs,
    http,
    loadgen::PacedResult,
    metrics::{BucketFigures, COMMIT_LAG, Metrics, STORE_ERRORS, STORE_ROWS, STORE_WRITES},
    process::proc_stats,
    report::Check,
    scenarios::changes::{BeatFigures, FleetShape, LiveFleet, Window},
    stats::{Summary, ratio},
};

const MIB: f64 = 1024.0 * 1024.0;
/// How long the queen may take to write what the registration produced.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);
/// The store counts as idle once its row counter has not moved for this long (many batch windows).
pub(crate) const IDLE_FOR: Duration = Duration::from_millis(500);

/// Settings of the store scenario.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The fleet.
    pub shape: FleetShape,
    /// The window of material changes.
    pub duration: Duration,
    /// The phase of beats without material changes.
    pub steady: Duration,
}

impl StoreOptions {
    /// Builds the options from the command line.
    pub fn from_args(args: &BenchArgs) -> Self {
        Self::quick(args).unwrap_or_else(|| Self {
            shape: FleetShape::full(args.store_workers, args.change_rate),
            duration: args.duration_or(Duration::from_secs(60)),
            steady: args.steady_duration,
        })
    }

    /// The `cluster-writes` scenario's settings: the same phases at a cluster leader, both
    /// windows `--duration` long (default 20 s).
    pub fn cluster_from_args(args: &BenchArgs) -> Self {
        Self::quick(args).unwrap_or_else(|| {
            let window = args.duration_or(Duration::from_secs(20));
            Self {
                shape: FleetShape::full(args.cluster_workers, args.change_rate),
                duration: window,
                steady: window,
            }
        })
    }

    fn quick(args: &BenchArgs) -> Option<Self> {
        args.quick.then(|| Self {
            shape: FleetShape::quick(300, 20),
            duration: Duration::from_secs(2),
            // Three beats of every worker (1 s interval in quick form).
            steady: Duration::from_secs(3),
        })
    }
}

/// Figures of the store scenario.
#[derive(Debug, Clone, Serialize)]
pub struct StoreFigures {
    /// Simulated workers.
    pub workers: usize,
    /// Rows the store wrote for the registration of the fleet.
    pub registration_rows: u64,
    /// Seconds the registration took to be written, counted from its last answer.
    pub registration_settle_s: f64,
    /// Length of the steady phase, in seconds.
    pub steady_seconds: f64,
    /// Heartbeats answered in the steady phase.
    pub steady_beats: u64,
    /// Rows written during the steady phase: should be 0.
    pub steady_rows: u64,
    /// Transactions committed during the steady phase.
    pub steady_commits: u64,
    /// Heartbeat latency in the steady phase.
    pub steady_hb_latency: Summary,
    /// Length of the window of changes, in seconds.
    pub seconds: f64,
    /// Flips made in the window.
    pub flips: u64,
    /// Flips per second.
    pub flip_rate: f64,
    /// Beats and flips in the window.
    pub beats: BeatFigures,
    /// Commit lag of the batches committed in the window and right after it.
    pub commit_lag: BucketFigures,
    /// Transactions committed in the window.
    pub commits: u64,
    /// Transactions per second in the window.
    pub commit_rate: f64,
    /// Rows written in the window.
    pub rows: u64,
    /// Rows per second in the window.
    pub rows_per_s: f64,
    /// Rows per flip (an entry row and a transition row each).
    pub rows_per_flip: f64,
    /// Material changes the observer saw that were no flip of the bench (should be 0).
    pub other_changes: u64,
    /// `rbee_store_errors_total` at the end: must be 0.
    pub store_errors: u64,
    /// What `/health` said about the store at the end.
    pub health_store: String,
    /// `queen.db` at the end, in bytes.
    pub db_bytes: u64,
    /// `queen.db-wal` at the end, in bytes.
    pub wal_bytes: u64,
    /// Queen CPU as a share of one core in the window.
    pub cpu_share: f64,
    /// Bench CPU as a share of one core in the window.
    pub bench_cpu_share: f64,
    /// Queen peak RSS over the run, in bytes.
    pub peak_rss_bytes: u64,
}

impl StoreFigures {
    /// Writes the scenario's text report.
    pub fn write_text(&self, s: &mut String) -> std::fmt::Result {
        writeln!(
            s,
            "\n[store] {} workers, data directory on; registration wrote {} rows (settled {:.2} s after the last answer)",
            self.workers, self.registration_rows, self.registration_settle_s
        )?;
        writeln!(
            s,
            "  steady phase {:.1} s, {} beats, no change: {} rows written, {} commits; heartbeat p50 {:.2} ms  p99 {:.2} ms",
            self.steady_seconds,
            self.steady_beats,
            self.steady_rows,
            self.steady_commits,
            self.steady_hb_latency.p50_ms,
            self.steady_hb_latency.p99_ms
        )?;
        self.beats
            .write_window_text(s, self.seconds, self.flips, self.other_changes)?;
        writeln!(
            s,
            "  commit lag (bucket bounds) p50 <= {:.0} ms  p99 <= {:.0} ms  max <= {:.0} ms  mean {:.1} ms over {} commits",
            self.commit_lag.p50_le_ms,
            self.commit_lag.p99_le_ms,
            self.commit_lag.max_le_ms,
            self.commit_lag.mean_ms,
            self.commit_lag.count
        )?;
        writeln!(
            s,
            "  {:.1} commits/s, {:.1} rows/s ({:.2} rows per flip); store errors {}, /health store {:?}",
            self.commit_rate,
            self.rows_per_s,
            self.rows_per_flip,
            self.store_errors,
            self.health_store
        )?;
        writeln!(
            s,
            "  on disk queen.db {:.1} MiB + queen.db-wal {:.1} MiB; queen CPU {:.0}% of a core, peak RSS {:.1} MiB; bench CPU {:.0}%",
            self.db_bytes as f64 / MIB,
            self.wal_bytes as f64 / MIB,
            self.cpu_share * 100.0,
            self.peak_rss_bytes as f64 / MIB,
            self.bench_cpu_share * 100.0
        )
    }

    /// The scenario's targets.
    pub fn checks(&self) -> Vec<Check> {
        vec![
            Check {
                name: "store_commit_lag_p99_ms",
                value: self.commit_lag.p99_le_ms,
                target: "<= 200 ms",
                pass: self.commit_lag.p99_within(200.0),
            },
            Check {
                name: "store_hb_p99_ms",
                value: self.beats.hb_latency.p99_ms,
                target: "< 10 ms",
                pass: self.beats.hb_latency.count > 0 && self.beats.hb_latency.p99_ms < 10.0,
            },
            Check {
                name: "store_steady_rows",
                value: self.steady_rows as f64,
                target: "= 0",
                pass: self.steady_rows == 0 && self.steady_beats > 0,
            },
            Check {
                name: "store_errors",
                value: self.store_errors as f64,
                target: "= 0",
                pass: self.store_errors == 0 && self.health_store == "ok",
            },
        ]
    }
}

/// Runs the store scenario.
pub async fn run(env: &Env, opts: &StoreOptions) -> anyhow::Result<StoreFigures> {
    let dir = tempfile::Builder::new()
        .prefix("rbee-bench-store-")
        .tempdir()
        .context("create a data directory")?;
    let flags = [("--data-dir", dir.path().display().to_string())];
    let cap = (f64::from(opts.shape.change_rate) * (opts.duration.as_secs_f64() + 5.0)) as usize;
    let mut fleet = LiveFleet::start_with(env, opts.shape, "store-w", cap, &flags).await?;
    let addr = fleet.addr;
    let p = WritePhases::run(&mut fleet, opts, STORE_ROWS, Some(dir.path()), None).await?;
    let (_, health) = http::get(addr, "/health").await.context("GET /health")?;
    let health: serde_json::Value = serde_json::from_slice(&health).unwrap_or_default();
    let (db_bytes, wal_bytes) = db_size(dir.path());
    let other_changes = fleet.flips.others();
    let (changer, peak) = fleet.stop().await;

    let lag = p
        .settled
        .histogram(COMMIT_LAG)
        .since(&p.before.histogram(COMMIT_LAG));
    let commits = p
        .at_end
        .counter(STORE_WRITES)
        .saturating_sub(p.before.counter(STORE_WRITES));
    let rows = p
        .at_end
        .counter(STORE_ROWS)
        .saturating_sub(p.before.counter(STORE_ROWS));
    let all_rows = p
        .settled
        .counter(STORE_ROWS)
        .saturating_sub(p.before.counter(STORE_ROWS));
    let flips = p.window.flips as u64;
    Ok(StoreFigures {
        workers: opts.shape.workers,
        registration_rows: p.registration.counter(STORE_ROWS),
        registration_settle_s: p.registration_settle_s,
        steady_seconds: p.steady_seconds,
        steady_beats: p.steady.load.ok,
        steady_rows: p
            .after_steady
            .counter(STORE_ROWS)
            .saturating_sub(p.registration.counter(STORE_ROWS)),
        steady_commits: p
            .after_steady
            .counter(STORE_WRITES)
            .saturating_sub(p.registration.counter(STORE_WRITES)),
        steady_hb_latency: p.steady.load.latency.summary(),
        seconds: p.window.seconds,
        flips,
        flip_rate: ratio(flips as f64, p.window.seconds),
        beats: BeatFigures::new(&p.window.beats, &changer, p.window.seconds),
        commit_lag: lag.figures(),
        commits,
        commit_rate: ratio(commits as f64, p.window.seconds),
        rows,
        rows_per_s: ratio(rows as f64, p.window.seconds),
        rows_per_flip: ratio(all_rows as f64, flips as f64),
        other_changes,
        store_errors: p.settled.counter(STORE_ERRORS),
        health_store: health["store"].as_str().unwrap_or("?").to_owned(),
        db_bytes,
        wal_bytes,
        cpu_share: p.window.cpu_share,
        bench_cpu_share: p.window.bench_cpu_share,
        peak_rss_bytes: peak,
    })
}

/// What the store and cluster-writes scenarios read on a live fleet, phase by phase: the
/// registration written, a steady phase of beats that change nothing, and a window of changes.
#[derive(Debug)]
pub(crate) struct WritePhases {
    /// `/metrics` once the registration was written.
    pub registration: Metrics,
    /// Seconds the registration took to be written, counted from its last answer.
    pub registration_settle_s: f64,
    /// The beats of the steady phase.
    pub steady: PacedResult,
    /// Length of the steady phase, in seconds.
    pub steady_seconds: f64,
    /// `/metrics` after the steady phase.
    pub after_steady: Metrics,
    /// `/metrics` before the window of changes.
    pub before: Metrics,
    /// The window of changes.
    pub window: Window,
    /// `/metrics` right after the window.
    pub at_end: Metrics,
    /// `/metrics` once the window's writes were done.
    pub settled: Metrics,
    /// CPU seconds the other process (etcd) used in the steady phase and in the window.
    pub other_cpu: [f64; 2],
}

impl WritePhases {
    /// Runs the phases on `fleet`, waiting for the queen's `counter` (with `dir`, its WAL too) to
    /// settle after the registration and after the window; `other` is a process whose CPU is
    /// read at the phases' ends.
    pub(crate) async fn run(
        fleet: &mut LiveFleet,
        opts: &StoreOptions,
        counter: &str,
        dir: Option<&Path>,
        other: Option<u32>,
    ) -> anyhow::Result<Self> {
        let addr = fleet.addr;
        let other_cpu = || {
            other
                .and_then(|pid| proc_stats(pid).ok())
                .map_or(0.0, |s| s.cpu_seconds)
        };
        // The registration: every worker's first heartbeat is a change; let it all be written.
        let registered_at = Instant::now();
        let registration = settle(addr, counter, dir, Instant::now() + SETTLE_LIMIT).await?;
        let registration_settle_s = registered_at
            .elapsed()
            .saturating_sub(IDLE_FOR)
            .as_secs_f64();

        // Steady beats: nothing material changes, so nothing may be written.
        let cpu_before = other_cpu();
        let steady_start = Instant::now();
        fleet.beat(steady_start, None);
        tokio::time::sleep(opts.steady).await;
        let steady = fleet.stop_beats().await;
        let steady_seconds = steady_start.elapsed().as_secs_f64();
        let after_steady = Metrics::fetch(addr).await?;
        let steady_cpu = other_cpu() - cpu_before;
        fleet.beat(Instant::now() + Duration::from_secs(24 * 3600), None);

        // Material changes at the change rate.
        let before = Metrics::fetch(addr).await?;
        let cpu_before = other_cpu();
        let window = fleet.flip_window(opts.duration, Duration::ZERO, 0).await?;
        let window_cpu = other_cpu() - cpu_before;
        let at_end = Metrics::fetch(addr).await?;
        // The last batches are written within a window or two.
        let settled = settle(addr, counter, dir, Instant::now() + SETTLE_LIMIT).await?;
        Ok(Self {
            registration,
            registration_settle_s,
            steady,
            steady_seconds,
            after_steady,
            before,
            window,
            at_end,
            settled,
            other_cpu: [steady_cpu, window_cpu],
        })
    }
}

/// Waits until the queen's `counter` (the store's rows, the etcd keys a leader wrote) has not
/// moved for [`IDLE_FOR`], and returns that reading. With `dir`, the WAL must not grow meanwhile
/// either: a large transaction writes for a long time before its rows are counted.
pub(crate) async fn settle(
    addr: std::net::SocketAddr,
    counter: &str,
    dir: Option<&Path>,
    limit: Instant,
) -> anyhow::Result<Metrics> {
    let wal = || dir.map_or(0, |d| db_size(d).1);
    let mut last = (Metrics::fetch(addr).await?.counter(counter), wal());
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let reading = Metrics::fetch(addr).await?;
        let now = (reading.counter(counter), wal());
        if now != last {
            since = Instant::now();
        } else if since.elapsed() >= IDLE_FOR {
            return Ok(reading);
        }
        anyhow::ensure!(
            Instant::now() < limit,
            "{counter} kept growing until the bench gave up"
        );
        last = now;
    }
}

/// The sizes of `queen.db` and `queen.db-wal` in `dir` (0 for a missing file).
pub(crate) fn db_size(dir: &Path) -> (u64, u64) {
    let size = |name: &str| std::fs::metadata(dir.join(name)).map_or(0, |m| m.len());
    (size("queen.db"), size("queen.db-wal"))
}
