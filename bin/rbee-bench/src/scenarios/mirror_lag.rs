//! Mirror lag: a cluster leader and one follower on etcd, a fleet beating at the leader, and
//! material changes (status flips) at a steady rate. Per change: from the leader's `200` to the
//! upsert showing it on the follower's `/v1/watch` (through etcd and the follower's mirror), and
//! beside it the same on the leader's own watch, which shows a change once etcd committed it.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    sync::{Arc, atomic::AtomicUsize},
    time::Duration,
};

use serde::Serialize;
use tokio::time::Instant;

use crate::{
    Env,
    config::BenchArgs,
    metrics::{ETCD_OPS, Metrics, REVISION},
    report::Check,
    scenarios::{
        changes::{BeatFigures, CONNECT_LIMIT, FleetShape, LiveFleet},
        cluster::{self, POLL},
        store::{IDLE_FOR, settle},
        watch::{ReaderResult, read_watch, wait_for},
    },
    stats::{Summary, ratio},
};

const MIB: f64 = 1024.0 * 1024.0;
/// How long the registration may take to reach etcd and the follower.
const SETTLE_LIMIT: Duration = Duration::from_secs(90);

/// Settings of the mirror-lag scenario.
#[derive(Debug, Clone)]
pub struct MirrorOptions {
    /// The fleet.
    pub shape: FleetShape,
    /// Measured time with flips.
    pub duration: Duration,
    /// The most time after the last flip for its events to reach both watchers.
    pub drain: Duration,
}

impl MirrorOptions {
    /// Builds the options from the command line.
    pub fn from_args(args: &BenchArgs) -> Self {
        if args.quick {
            return Self {
                shape: FleetShape::quick(300, 20),
                duration: Duration::from_secs(2),
                drain: Duration::from_secs(5),
            };
        }
        Self {
            shape: FleetShape::full(args.cluster_workers, args.change_rate),
            duration: args.duration_or(Duration::from_secs(20)),
            drain: Duration::from_secs(5),
        }
    }
}

/// What one watcher saw.
#[derive(Debug, Clone, Serialize)]
pub struct WatcherFigures {
    /// Delay from a flip's answer by the leader to its arrival.
    pub delivery: Summary,
    /// Flips received.
    pub deliveries: u64,
    /// `sync` events after the first (it fell behind).
    pub resyncs: u64,
    /// Whether its stream failed.
    pub failed: bool,
}

impl WatcherFigures {
    fn new(r: &ReaderResult) -> Self {
        Self {
            delivery: r.delivery.summary(),
            deliveries: r.received,
            resyncs: r.syncs.saturating_sub(1),
            failed: r.failed,
        }
    }
}

/// Figures of the mirror-lag scenario.
#[derive(Debug, Clone, Serialize)]
pub struct MirrorFigures {
    /// Simulated workers.
    pub workers: usize,
    /// From the registration's last answer until the leader had written it all to etcd, in
    /// seconds (less the idle time that shows it).
    pub registration_written_s: f64,
    /// From the registration's last answer until the follower had mirrored it all, in seconds.
    pub registration_mirrored_s: f64,
    /// Measured seconds.
    pub seconds: f64,
    /// Flips made in the window.
    pub flips: u64,
    /// Flips the leader answered 200.
    pub acked: u64,
    /// Flips per second.
    pub flip_rate: f64,
    /// Beats and flips.
    pub beats: BeatFigures,
    /// The watcher on the follower.
    pub follower: WatcherFigures,
    /// The watcher on the leader.
    pub leader: WatcherFigures,
    /// Material changes that were no flip of the bench: should be 0.
    pub other_changes: u64,
    /// Leader CPU as a share of one core.
    pub leader_cpu_share: f64,
    /// Follower CPU as a share of one core.
    pub follower_cpu_share: f64,
    /// etcd CPU as a share of one core.
    pub etcd_cpu_share: f64,
    /// Bench CPU as a share of one core.
    pub bench_cpu_share: f64,
    /// Leader peak RSS, in bytes.
    pub leader_peak_rss_bytes: u64,
    /// Follower peak RSS, in bytes.
    pub follower_peak_rss_bytes: u64,
}

impl MirrorFigures {
    /// Writes the scenario's text report.
    pub fn write_text(&self, s: &mut String) -> std::fmt::Result {
        writeln!(
            s,
            "\n[mirror-lag] leader and follower on etcd, {} workers, {:.1} s, {} flips ({:.1}/s, {} answered)",
            self.workers, self.seconds, self.flips, self.flip_rate, self.acked
        )?;
        writeln!(
            s,
            "  registration: written to etcd {:.2} s, mirrored by the follower {:.2} s after its last answer",
            self.registration_written_s, self.registration_mirrored_s
        )?;
        self.beats.write_text(s)?;
        for (name, w) in [("follower", &self.follower), ("leader", &self.leader)] {
            writeln!(
                s,
                "  answered -> {name}'s watch p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms;  {} of {} received, resyncs {}{}",
                w.delivery.p50_ms,
                w.delivery.p99_ms,
                w.delivery.max_ms,
                w.deliveries,
                self.acked,
                w.resyncs,
                if w.failed { ", stream FAILED" } else { "" }
            )?;
        }
        writeln!(
            s,
            "  other changes {}; CPU leader {:.0}%, follower {:.0}%, etcd {:.0}%, bench {:.0}%; peak RSS leader {:.1} MiB, follower {:.1} MiB",
            self.other_changes,
            self.leader_cpu_share * 100.0,
            self.follower_cpu_share * 100.0,
            self.etcd_cpu_share * 100.0,
            self.bench_cpu_share * 100.0,
            self.leader_peak_rss_bytes as f64 / MIB,
            self.follower_peak_rss_bytes as f64 / MIB
        )
    }

    /// The scenario's targets.
    pub fn checks(&self) -> Vec<Check> {
        let complete = self.follower.deliveries == self.acked && self.acked > 0;
        vec![Check {
            name: "mirror_lag_p99_ms",
            value: self.follower.delivery.p99_ms,
            target: "<= 100 ms",
            pass: complete && self.follower.delivery.p99_ms <= 100.0,
        }]
    }
}

/// Runs the mirror-lag scenario.
pub async fn run(env: &Env, opts: &MirrorOptions) -> anyhow::Result<MirrorFigures> {
    let etcd = cluster::start_etcd(env).await?;
    let flags = opts.shape.queen_flags();
    let leader = cluster::spawn_leader(env, &etcd, &flags).await?;
    let leader_addr = leader.addr;
    let follower =
        cluster::spawn_member(env, &etcd, SocketAddr::from(([127, 0, 0, 1], 0)), &flags).await?;
    cluster::wait_for_role(&follower, |v| v.follows(leader_addr)).await?;
    let cap = (f64::from(opts.shape.change_rate) * (opts.duration.as_secs_f64() + 5.0)) as usize;
    let mut fleet = LiveFleet::start_on(leader, opts.shape, "ml-w", cap).await?;

    // The registration is a burst of changes: measure how long etcd and the follower take to
    // have all of it, and start the window only after, so that it measures the steady lag.
    let registered = Instant::now();
    let written = settle(leader_addr, ETCD_OPS, None, Instant::now() + SETTLE_LIMIT).await?;
    let registration_written_s = registered.elapsed().saturating_sub(IDLE_FOR).as_secs_f64();
    let revision = written.counter(REVISION);
    let limit = Instant::now() + SETTLE_LIMIT;
    while Metrics::fetch(follower.addr).await?.counter(REVISION) < revision {
        anyhow::ensure!(
            Instant::now() < limit,
            "the follower did not mirror revision {revision} within {SETTLE_LIMIT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
    let registration_mirrored_s = registered.elapsed().as_secs_f64();

    let limit = Instant::now() + CONNECT_LIMIT;
    let synced = Arc::new(AtomicUsize::new(0));
    let on_follower = fleet.spawn(read_watch(
        follower.addr,
        Arc::clone(&fleet.flips),
        Arc::clone(&synced),
        fleet.stop_signal(),
    ));
    let on_leader = fleet.spawn(read_watch(
        leader_addr,
        Arc::clone(&fleet.flips),
        Arc::clone(&synced),
        fleet.stop_signal(),
    ));
    wait_for(&synced, 2, limit).await;
    fleet.settle(limit).await?;

    let follower_before = follower.stats()?;
    let etcd_before = etcd.stats()?;
    let window = fleet.flip_window(opts.duration, opts.drain, 2).await?;
    let follower_cpu = follower.stats()?.cpu_seconds - follower_before.cpu_seconds;
    let etcd_cpu = etcd.stats()?.cpu_seconds - etcd_before.cpu_seconds;
    fleet.stop_readers();
    let on_follower = on_follower.await.unwrap_or_default();
    let on_leader = on_leader.await.unwrap_or_default();
    let flips = window.flips;
    let acked = fleet.flips.acked(0..flips);
    let other_changes = fleet.flips.others();
    let (changer, leader_peak) = fleet.stop().await;
    let follower_peak = follower.stats().map_or(0, |s| s.hwm_bytes);
    follower.stop().await;
    etcd.stop().await;

    Ok(MirrorFigures {
        workers: opts.shape.workers,
        registration_written_s,
        registration_mirrored_s,
        seconds: window.seconds,
        flips: flips as u64,
        acked,
        flip_rate: ratio(flips as f64, window.seconds),
        beats: BeatFigures::new(&window.beats, &changer, window.seconds),
        follower: WatcherFigures::new(&on_follower),
        leader: WatcherFigures::new(&on_leader),
        other_changes,
        leader_cpu_share: window.cpu_share,
        follower_cpu_share: ratio(follower_cpu, window.seconds),
        etcd_cpu_share: ratio(etcd_cpu, window.seconds),
        bench_cpu_share: window.bench_cpu_share,
        leader_peak_rss_bytes: leader_peak,
        follower_peak_rss_bytes: follower_peak,
    })
}
