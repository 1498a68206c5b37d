//! Watch-connect: a thousand `/v1/watch` subscribers connecting at once to a large fleet, and the
//! time until all have their `sync`, while the fleet keeps beating.

use std::{fmt::Write as _, net::SocketAddr, time::Duration};

use serde::Serialize;
use tokio::{task::JoinSet, time::Instant};

use crate::{
    Env,
    config::BenchArgs,
    report::Check,
    scenarios::{
        changes::{
            BeatFigures, CONNECT_LIMIT, FleetShape, LiveFleet, Stop, WATCH_PATH, next_or_stop,
            stopped,
        },
        own_cpu_seconds,
    },
    sse::subscribe,
    stats::{Summary, ratio},
};

const MIB: f64 = 1024.0 * 1024.0;

/// Settings of the watch-connect scenario.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The fleet (no flips).
    pub shape: FleetShape,
    /// Subscribers connecting at once.
    pub subscribers: usize,
    /// Beats before the subscribers connect, so that the queen is in its steady state.
    pub settle: Duration,
}

impl ConnectOptions {
    /// Builds the options from the command line.
    pub fn from_args(args: &BenchArgs) -> Self {
        if args.quick {
            return Self {
                shape: FleetShape::quick(300, 0),
                subscribers: 20,
                settle: Duration::from_millis(300),
            };
        }
        Self {
            shape: FleetShape::full(args.watch_workers, 0),
            subscribers: args.watch_subscribers,
            settle: Duration::from_secs(1),
        }
    }
}

/// Figures of the watch-connect scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectFigures {
    /// Simulated workers.
    pub workers: usize,
    /// Subscribers that connected.
    pub subscribers: usize,
    /// Subscribers that got their `sync`.
    pub synced: usize,
    /// Seconds from the connects until the last `sync` was complete.
    pub all_synced_s: f64,
    /// Per subscriber: time from the connects to its whole `sync`.
    pub sync_time: Summary,
    /// Per subscriber: time from the connects to the first byte of its `sync`.
    pub sync_first_byte: Summary,
    /// Size of the `sync` event, in bytes.
    pub sync_bytes: u64,
    /// Beats while the subscribers connected.
    pub beats: BeatFigures,
    /// Queen peak RSS over the whole run, in bytes.
    pub peak_rss_bytes: u64,
    /// Queen CPU as a share of one core until all had synced.
    pub cpu_share: f64,
    /// Bench CPU as a share of one core until all had synced.
    pub bench_cpu_share: f64,
}

impl ConnectFigures {
    /// Writes the scenario's text report.
    pub fn write_text(&self, s: &mut String) -> std::fmt::Result {
        writeln!(
            s,
            "\n[watch-connect] {} workers, {} subscribers connecting at once",
            self.workers, self.subscribers
        )?;
        writeln!(
            s,
            "  all {} synced after {:.2} s;  per subscriber p50 {:.0} ms  p99 {:.0} ms (first byte p50 {:.0} ms  p99 {:.0} ms);  sync {:.1} MiB",
            self.synced,
            self.all_synced_s,
            self.sync_time.p50_ms,
            self.sync_time.p99_ms,
            self.sync_first_byte.p50_ms,
            self.sync_first_byte.p99_ms,
            self.sync_bytes as f64 / MIB
        )?;
        self.beats.write_text(s)?;
        writeln!(
            s,
            "  queen peak RSS {:.1} MiB, CPU {:.0}% of a core; bench CPU {:.0}%",
            self.peak_rss_bytes as f64 / MIB,
            self.cpu_share * 100.0,
            self.bench_cpu_share * 100.0
        )
    }

    /// The scenario's targets.
    pub fn checks(&self) -> Vec<Check> {
        let all = self.synced == self.subscribers && self.synced > 0;
        vec![
            Check {
                name: "connect_all_synced_s",
                value: self.all_synced_s,
                target: "<= 10 s",
                pass: all && self.all_synced_s <= 10.0,
            },
            Check {
                name: "connect_hb_p99_ms",
                value: self.beats.hb_latency.p99_ms,
                target: "< 10 ms",
                pass: self.beats.hb_latency.p99_ms < 10.0,
            },
        ]
    }
}

/// When one subscriber's `sync` started and ended, after the connects.
#[derive(Debug, Default, Clone, Copy)]
struct SyncTimes {
    first_byte: Option<Duration>,
    complete: Option<Duration>,
    bytes: u64,
}

/// Runs the watch-connect scenario.
pub async fn run(env: &Env, opts: &ConnectOptions) -> anyhow::Result<ConnectFigures> {
    let mut fleet = LiveFleet::start(env, opts.shape, "connect-w", 0).await?;
    let addr = fleet.addr;
    let start = Instant::now() + opts.settle;
    fleet.beat(start, None);
    tokio::time::sleep_until(start).await;
    let queen_before = fleet.queen()?.stats()?;
    let bench_before = own_cpu_seconds();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut subscribers = JoinSet::new();
    for _ in 0..opts.subscribers {
        let task = connect(addr, start, done_tx.clone(), fleet.stop_signal());
        fleet.spawn_into(&mut subscribers, task);
    }
    drop(done_tx);
    let limit = start + CONNECT_LIMIT;
    let mut times = Vec::with_capacity(opts.subscribers);
    while times.len() < opts.subscribers {
        match tokio::time::timeout_at(limit, done_rx.recv()).await {
            Ok(Some(t)) => times.push(t),
            Ok(None) | Err(_) => break,
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let queen_after = fleet.queen()?.stats()?;
    let bench_after = own_cpu_seconds();
    let beats = fleet.stop_beats().await;
    fleet.stop_readers();
    while subscribers.join_next().await.is_some() {}
    let (changer, peak) = fleet.stop().await;

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let complete: Vec<f64> = times.iter().filter_map(|t| t.complete.map(ms)).collect();
    let first: Vec<f64> = times.iter().filter_map(|t| t.first_byte.map(ms)).collect();
    let sync_time = Summary::exact(&complete);
    Ok(ConnectFigures {
        workers: opts.shape.workers,
        subscribers: times.len(),
        synced: complete.len(),
        all_synced_s: sync_time.max_ms / 1000.0,
        sync_time,
        sync_first_byte: Summary::exact(&first),
        sync_bytes: times.iter().map(|t| t.bytes).max().unwrap_or(0),
        beats: BeatFigures::new(&beats, &changer, seconds),
        peak_rss_bytes: peak,
        cpu_share: ratio(queen_after.cpu_seconds - queen_before.cpu_seconds, seconds),
        bench_cpu_share: ratio(bench_after - bench_before, seconds),
    })
}

/// Connects, reports when its `sync` arrived, then holds the connection until the end.
async fn connect(
    addr: SocketAddr,
    start: Instant,
    done: tokio::sync::mpsc::UnboundedSender<SyncTimes>,
    mut stop: Stop,
) {
    let mut times = SyncTimes::default();
    if let Ok(mut stream) = subscribe(addr, WATCH_PATH).await {
        let mut failed = false;
        while let Some(ev) = next_or_stop(&mut stream, &mut stop, &mut failed).await {
            if ev.event == "sync" {
                times.first_byte = Some(ev.first_byte.saturating_duration_since(start));
                times.complete = Some(ev.at.saturating_duration_since(start));
                times.bytes = ev.bytes;
                break;
            }
        }
        let _ = done.send(times);
        stopped(&mut stop).await;
        drop(stream);
    } else {
        let _ = done.send(times);
    }
}
