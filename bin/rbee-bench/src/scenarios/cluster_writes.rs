//! Cluster writes: a cluster leader at fleet scale. Once the fleet is registered, a window of
//! beats that change nothing must write nothing to etcd; a window of material changes (status
//! flips) measures the transactions and keys written per second and per change, from the
//! leader's own `/metrics`.

use std::fmt::Write as _;

use serde::Serialize;

use crate::{
    Env,
    metrics::ETCD_OPS,
    report::Check,
    scenarios::{
        changes::{BeatFigures, LiveFleet},
        cluster::{self, Writes},
        store::{StoreOptions, WritePhases},
    },
    stats::{Summary, ratio},
};

const MIB: f64 = 1024.0 * 1024.0;

/// Figures of the cluster-writes scenario.
#[derive(Debug, Clone, Serialize)]
pub struct WritesFigures {
    /// Simulated workers.
    pub workers: usize,
    /// Transactions the registration of the fleet took.
    pub registration_txns: u64,
    /// Keys the registration wrote.
    pub registration_ops: u64,
    /// Seconds the registration took to be written, counted from its last answer.
    pub registration_settle_s: f64,
    /// Length of the steady window, in seconds.
    pub steady_seconds: f64,
    /// Heartbeats answered in the steady window.
    pub steady_beats: u64,
    /// Heartbeat latency in the steady window.
    pub steady_hb_latency: Summary,
    /// Transactions committed in the steady window: should be 0.
    pub steady_txns: u64,
    /// Keys written in the steady window: should be 0.
    pub steady_ops: u64,
    /// Transactions per second in the steady window.
    pub steady_txns_per_s: f64,
    /// Keys per second in the steady window.
    pub steady_ops_per_s: f64,
    /// Length of the window of changes, in seconds.
    pub seconds: f64,
    /// Flips made in the window.
    pub flips: u64,
    /// Flips per second.
    pub flip_rate: f64,
    /// Beats and flips in the window.
    pub beats: BeatFigures,
    /// Transactions committed in the window.
    pub txns: u64,
    /// Keys written in the window.
    pub ops: u64,
    /// Transactions per second in the window.
    pub txns_per_s: f64,
    /// Keys per second in the window.
    pub ops_per_s: f64,
    /// Keys per flip, counting what the window's flips wrote after it too.
    pub ops_per_change: f64,
    /// Flips per transaction (the batching), likewise.
    pub changes_per_txn: f64,
    /// Material changes the observer saw that were no flip of the bench (should be 0).
    pub other_changes: u64,
    /// Leader CPU as a share of one core in the window of changes.
    pub cpu_share: f64,
    /// etcd CPU as a share of one core in the steady window.
    pub etcd_steady_cpu_share: f64,
    /// etcd CPU as a share of one core in the window of changes.
    pub etcd_cpu_share: f64,
    /// Bench CPU as a share of one core in the window of changes.
    pub bench_cpu_share: f64,
    /// Leader peak RSS over the run, in bytes.
    pub peak_rss_bytes: u64,
    /// etcd's data directory at the end, in bytes.
    pub etcd_data_bytes: u64,
}

impl WritesFigures {
    /// Writes the scenario's text report.
    pub fn write_text(&self, s: &mut String) -> std::fmt::Result {
        writeln!(
            s,
            "\n[cluster-writes] {} workers at a cluster leader; registration took {} etcd txns, {} keys (settled {:.2} s after the last answer)",
            self.workers, self.registration_txns, self.registration_ops, self.registration_settle_s
        )?;
        writeln!(
            s,
            "  steady window {:.1} s, {} beats, no change: {} txns ({:.2}/s), {} keys ({:.2}/s); heartbeat p50 {:.2} ms  p99 {:.2} ms; etcd CPU {:.1}%",
            self.steady_seconds,
            self.steady_beats,
            self.steady_txns,
            self.steady_txns_per_s,
            self.steady_ops,
            self.steady_ops_per_s,
            self.steady_hb_latency.p50_ms,
            self.steady_hb_latency.p99_ms,
            self.etcd_steady_cpu_share * 100.0
        )?;
        self.beats
            .write_window_text(s, self.seconds, self.flips, self.other_changes)?;
        writeln!(
            s,
            "  {} txns ({:.1}/s), {} keys ({:.1}/s): {:.2} keys per change, {:.2} changes per txn",
            self.txns,
            self.txns_per_s,
            self.ops,
            self.ops_per_s,
            self.ops_per_change,
            self.changes_per_txn
        )?;
        writeln!(
            s,
            "  leader CPU {:.0}% of a core, peak RSS {:.1} MiB; etcd CPU {:.0}%, data {:.1} MiB; bench CPU {:.0}%",
            self.cpu_share * 100.0,
            self.peak_rss_bytes as f64 / MIB,
            self.etcd_cpu_share * 100.0,
            self.etcd_data_bytes as f64 / MIB,
            self.bench_cpu_share * 100.0
        )
    }

    /// The scenario's targets.
    pub fn checks(&self) -> Vec<Check> {
        vec![Check {
            name: "cluster_steady_etcd_ops",
            value: self.steady_ops as f64,
            target: "= 0",
            pass: self.steady_ops == 0 && self.steady_txns == 0 && self.steady_beats > 0,
        }]
    }
}

/// Runs the cluster-writes scenario.
pub async fn run(env: &Env, opts: &StoreOptions) -> anyhow::Result<WritesFigures> {
    let etcd = cluster::start_etcd(env).await?;
    let leader = cluster::spawn_leader(env, &etcd, &opts.shape.queen_flags()).await?;
    let cap = (f64::from(opts.shape.change_rate) * (opts.duration.as_secs_f64() + 5.0)) as usize;
    let mut fleet = LiveFleet::start_on(leader, opts.shape, "cw-w", cap).await?;
    let p = WritePhases::run(&mut fleet, opts, ETCD_OPS, None, Some(etcd.pid)).await?;
    let other_changes = fleet.flips.others();
    let (changer, peak) = fleet.stop().await;
    let etcd_data_bytes = etcd.data_bytes();
    etcd.stop().await;

    let registered = Writes::of(&p.registration);
    let steady = Writes::of(&p.after_steady).since(registered);
    let before = Writes::of(&p.before);
    let in_window = Writes::of(&p.at_end).since(before);
    let all = Writes::of(&p.settled).since(before);
    let (seconds, flips) = (p.window.seconds, p.window.flips as u64);
    Ok(WritesFigures {
        workers: opts.shape.workers,
        registration_txns: registered.txns,
        registration_ops: registered.ops,
        registration_settle_s: p.registration_settle_s,
        steady_seconds: p.steady_seconds,
        steady_beats: p.steady.load.ok,
        steady_hb_latency: p.steady.load.latency.summary(),
        steady_txns: steady.txns,
        steady_ops: steady.ops,
        steady_txns_per_s: ratio(steady.txns as f64, p.steady_seconds),
        steady_ops_per_s: ratio(steady.ops as f64, p.steady_seconds),
        seconds,
        flips,
        flip_rate: ratio(flips as f64, seconds),
        beats: BeatFigures::new(&p.window.beats, &changer, seconds),
        txns: in_window.txns,
        ops: in_window.ops,
        txns_per_s: ratio(in_window.txns as f64, seconds),
        ops_per_s: ratio(in_window.ops as f64, seconds),
        ops_per_change: ratio(all.ops as f64, flips as f64),
        changes_per_txn: ratio(flips as f64, all.txns as f64),
        other_changes,
        cpu_share: p.window.cpu_share,
        etcd_steady_cpu_share: ratio(p.other_cpu[0], p.steady_seconds),
        etcd_cpu_share: ratio(p.other_cpu[1], seconds),
        bench_cpu_share: p.window.bench_cpu_share,
        peak_rss_bytes: peak,
        etcd_data_bytes,
    })
}
