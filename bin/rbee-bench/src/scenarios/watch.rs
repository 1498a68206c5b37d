//! Watch: material changes at a steady rate reaching every `/v1/watch` subscriber, at fleet scale;
//! and the same with stalled watchers beside the readers, compared with a run without them.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde::Serialize;
use tokio::{task::JoinSet, time::Instant};

use crate::{
    Env,
    config::BenchArgs,
    report::Check,
    scenarios::changes::{
        BeatFigures, CONNECT_LIMIT, FleetShape, FlipLog, LiveFleet, Stop, WATCH_PATH, next_or_stop,
        resolve_event, stopped,
    },
    sse::{subscribe, subscribe_opts},
    stats::{Latency, Summary, ratio},
};

const MIB: f64 = 1024.0 * 1024.0;
/// How much of the `sync` a partially reading stalled watcher takes before it stops.
const PARTIAL_SYNC: usize = 64 * 1024;

/// Settings of one watch run.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// The fleet.
    pub shape: FleetShape,
    /// Reading subscribers.
    pub subscribers: usize,
    /// Watchers that stop reading after (part of) their `sync`.
    pub stalled: usize,
    /// Receive buffer of each stalled watcher's socket, in bytes; `None` for the system's.
    pub stalled_rcvbuf: Option<u32>,
    /// Measured time with flips.
    pub duration: Duration,
    /// The most time after the last flip for its events to reach every subscriber.
    pub drain: Duration,
}

impl WatchOptions {
    /// The `watch` scenario's settings.
    pub fn from_args(args: &BenchArgs) -> Self {
        if args.quick {
            return Self {
                shape: FleetShape::quick(300, 20),
                subscribers: 20,
                stalled: 0,
                stalled_rcvbuf: None,
                duration: Duration::from_secs(2),
                drain: Duration::from_secs(5),
            };
        }
        Self {
            shape: FleetShape::full(args.watch_workers, args.change_rate),
            subscribers: args.watch_subscribers,
            stalled: 0,
            stalled_rcvbuf: None,
            duration: args.duration_or(Duration::from_secs(30)),
            drain: Duration::from_secs(5),
        }
    }

    /// The `watch-stalled` scenario's settings (its stalled run; the baseline has none).
    pub fn stalled_from_args(args: &BenchArgs) -> Self {
        let mut opts = Self::from_args(args);
        opts.stalled_rcvbuf = (args.stalled_rcvbuf > 0).then_some(args.stalled_rcvbuf);
        if args.quick {
            opts.subscribers = 5;
            opts.stalled = 20;
        } else {
            opts.subscribers = args.stalled_readers;
            opts.stalled = args.stalled_watchers;
            // Until its socket buffers fill (about 2 s at 100 changes a second), a watcher that
            // stopped reading still takes every change like a reader. A p99 over 30 s would
            // measure that fill (7 % of the window), not the stall; 60 s keeps it near 3 %.
            opts.duration = args.duration_or(Duration::from_secs(60));
        }
        opts
    }
}

/// Figures of one watch run.
#[derive(Debug, Clone, Serialize)]
pub struct WatchFigures {
    /// Simulated workers.
    pub workers: usize,
    /// Reading subscribers that got their `sync`.
    pub subscribers: usize,
    /// Stalled watchers that got as far as they read.
    pub stalled: usize,
    /// Receive buffer of their sockets, in bytes (0: the system's).
    pub stalled_rcvbuf: u32,
    /// Measured seconds.
    pub seconds: f64,
    /// Flips made in the window.
    pub flips: u64,
    /// Flips per second.
    pub flip_rate: f64,
    /// Beats and flips.
    pub beats: BeatFigures,
    /// Delay from a flip's answer to one subscriber receiving it, over every (flip, subscriber).
    pub delivery: Summary,
    /// Delay from a flip's answer until every subscriber had it.
    pub delivery_all: Summary,
    /// Deliveries received out of flips times subscribers.
    pub deliveries: u64,
    /// Deliveries expected.
    pub deliveries_expected: u64,
    /// Flips that some subscriber did not receive.
    pub flips_incomplete: u64,
    /// `sync` events after the first, over all subscribers (a subscriber fell behind).
    pub resyncs: u64,
    /// Material changes that were no flip of the bench (a worker timing out, say): should be 0.
    pub other_changes: u64,
    /// Subscribers whose stream failed.
    pub subscriber_errors: usize,
    /// Size of the `sync` event, in bytes.
    pub sync_bytes: u64,
    /// Queen RSS when the window started, in bytes.
    pub rss_start_bytes: u64,
    /// Queen RSS when the window ended, in bytes.
    pub rss_end_bytes: u64,
    /// Queen peak RSS over the whole run, in bytes.
    pub peak_rss_bytes: u64,
    /// Queen CPU as a share of one core in the window.
    pub cpu_share: f64,
    /// Bench CPU as a share of one core in the window.
    pub bench_cpu_share: f64,
}

impl WatchFigures {
    /// Writes the run's lines of the text report.
    pub fn write_text(&self, s: &mut String) -> std::fmt::Result {
        let buffer = match (self.stalled, self.stalled_rcvbuf) {
            (0, _) => String::new(),
            (_, 0) => " (system receive buffer)".to_owned(),
            (_, bytes) => format!(" (receive buffer {bytes} B)"),
        };
        writeln!(
            s,
            "  {} workers, {} subscribers, {} stalled{buffer}, {:.1} s, {} flips ({:.1}/s)",
            self.workers, self.subscribers, self.stalled, self.seconds, self.flips, self.flip_rate
        )?;
        self.beats.write_text(s)?;
        writeln!(
            s,
            "  change answered -> one subscriber p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms;  -> every subscriber p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            self.delivery.p50_ms,
            self.delivery.p99_ms,
            self.delivery.max_ms,
            self.delivery_all.p50_ms,
            self.delivery_all.p99_ms,
            self.delivery_all.max_ms
        )?;
        writeln!(
            s,
            "  deliveries {} of {}, flips incomplete {}, resyncs {}, other changes {}, subscriber errors {}, sync {:.1} MiB",
            self.deliveries,
            self.deliveries_expected,
            self.flips_incomplete,
            self.resyncs,
            self.other_changes,
            self.subscriber_errors,
            self.sync_bytes as f64 / MIB
        )?;
        writeln!(
            s,
            "  queen RSS start {:.1} MiB, end {:.1} MiB, peak {:.1} MiB; CPU {:.0}% of a core; bench CPU {:.0}%",
            self.rss_start_bytes as f64 / MIB,
            self.rss_end_bytes as f64 / MIB,
            self.peak_rss_bytes as f64 / MIB,
            self.cpu_share * 100.0,
            self.bench_cpu_share * 100.0
        )
    }

    /// The `watch` scenario's targets.
    pub fn checks(&self) -> Vec<Check> {
        let complete = self.deliveries == self.deliveries_expected && self.deliveries > 0;
        vec![
            Check {
                name: "watch_delivery_all_p99_ms",
                value: self.delivery_all.p99_ms,
                target: "<= 100 ms",
                pass: complete && self.delivery_all.p99_ms <= 100.0,
            },
            Check {
                name: "watch_hb_p99_ms",
                value: self.beats.hb_latency.p99_ms,
                target: "< 10 ms",
                pass: self.beats.hb_latency.p99_ms < 10.0,
            },
            Check {
                name: "watch_peak_rss_bytes",
                value: self.peak_rss_bytes as f64,
                target: "< 128 MiB",
                pass: (self.peak_rss_bytes as f64) < 128.0 * MIB,
            },
        ]
    }
}

/// Figures of the `watch-stalled` scenario: the same load without and with stalled watchers.
#[derive(Debug, Clone, Serialize)]
pub struct StalledFigures {
    /// Readers only.
    pub baseline: WatchFigures,
    /// Readers and stalled watchers.
    pub stalled: WatchFigures,
    /// Readers' per-delivery p99 with stalled watchers over without.
    pub p99_ratio: f64,
}

impl StalledFigures {
    /// Writes the scenario's text report.
    pub fn write_text(&self, s: &mut String) -> std::fmt::Result {
        writeln!(s, "\n[watch-stalled] without stalled watchers")?;
        self.baseline.write_text(s)?;
        writeln!(s, "  with stalled watchers")?;
        self.stalled.write_text(s)?;
        writeln!(
            s,
            "  readers' p99 ratio (stalled / baseline) {:.2}",
            self.p99_ratio
        )
    }

    /// The scenario's targets.
    pub fn checks(&self) -> Vec<Check> {
        let complete = self.stalled.deliveries == self.stalled.deliveries_expected
            && self.stalled.deliveries > 0;
        vec![
            Check {
                name: "stalled_p99_ratio",
                value: self.p99_ratio,
                target: "<= 2",
                pass: complete && self.p99_ratio <= 2.0,
            },
            Check {
                name: "stalled_peak_rss_bytes",
                value: self.stalled.peak_rss_bytes as f64,
                target: "< 128 MiB",
                pass: (self.stalled.peak_rss_bytes as f64) < 128.0 * MIB,
            },
        ]
    }
}

/// Runs the `watch-stalled` scenario: a baseline run, then the run with stalled watchers.
pub async fn run_stalled(env: &Env, opts: &WatchOptions) -> anyhow::Result<StalledFigures> {
    let mut baseline_opts = opts.clone();
    baseline_opts.stalled = 0;
    let baseline = run(env, &baseline_opts).await?;
    let stalled = run(env, opts).await?;
    Ok(StalledFigures {
        p99_ratio: ratio(stalled.delivery.p99_ms, baseline.delivery.p99_ms),
        baseline,
        stalled,
    })
}

/// What one reading subscriber saw.
#[derive(Debug, Default)]
pub(crate) struct ReaderResult {
    /// Delay from each flip's answer to its arrival.
    pub(crate) delivery: Latency,
    /// Flips received.
    pub(crate) received: u64,
    /// `sync` events, the first included.
    pub(crate) syncs: u64,
    /// The largest `sync`, in bytes.
    pub(crate) sync_bytes: u64,
    /// Whether its stream failed.
    pub(crate) failed: bool,
}

/// Runs one watch run.
pub async fn run(env: &Env, opts: &WatchOptions) -> anyhow::Result<WatchFigures> {
    let cap = (f64::from(opts.shape.change_rate) * (opts.duration.as_secs_f64() + 5.0)) as usize;
    let mut fleet = LiveFleet::start(env, opts.shape, "watch-w", cap).await?;
    let addr = fleet.addr;
    let limit = Instant::now() + CONNECT_LIMIT;
    let synced = Arc::new(AtomicUsize::new(0));
    let mut readers = JoinSet::new();
    for _ in 0..opts.subscribers {
        let flips = Arc::clone(&fleet.flips);
        let task = read_watch(addr, flips, Arc::clone(&synced), fleet.stop_signal());
        fleet.spawn_into(&mut readers, task);
    }
    wait_for(&synced, opts.subscribers, limit).await;
    let stalled_ready = Arc::new(AtomicUsize::new(0));
    let mut stalled = JoinSet::new();
    for i in 0..opts.stalled {
        let task = stall(
            addr,
            i % 2 == 0,
            opts.stalled_rcvbuf,
            Arc::clone(&stalled_ready),
            fleet.stop_signal(),
        );
        fleet.spawn_into(&mut stalled, task);
    }
    wait_for(&stalled_ready, opts.stalled, limit).await;
    fleet.settle(limit).await?;

    let subscribers = synced.load(Ordering::SeqCst);
    let window = fleet
        .flip_window(opts.duration, opts.drain, subscribers)
        .await?;
    fleet.stop_readers();
    let mut total = ReaderResult::default();
    let mut errors = 0;
    while let Some(joined) = readers.join_next().await {
        let r = joined.unwrap_or_default();
        errors += usize::from(r.failed);
        total.delivery.merge(&r.delivery);
        total.received += r.received;
        total.syncs += r.syncs.saturating_sub(1);
        total.sync_bytes = total.sync_bytes.max(r.sync_bytes);
    }
    while stalled.join_next().await.is_some() {}
    let flips = window.flips;
    let other_changes = fleet.flips.others();
    let (delivery_all, incomplete) = fleet
        .flips
        .all_delivered(0..flips, u32::try_from(subscribers).unwrap_or(u32::MAX));
    let acked = fleet.flips.acked(0..flips);
    let (changer, peak) = fleet.stop().await;
    Ok(WatchFigures {
        workers: opts.shape.workers,
        subscribers,
        stalled: stalled_ready.load(Ordering::SeqCst),
        stalled_rcvbuf: opts.stalled_rcvbuf.unwrap_or(0),
        seconds: window.seconds,
        flips: flips as u64,
        flip_rate: ratio(flips as f64, window.seconds),
        beats: BeatFigures::new(&window.beats, &changer, window.seconds),
        delivery: total.delivery.summary(),
        delivery_all,
        deliveries: total.received,
        deliveries_expected: acked * subscribers as u64,
        flips_incomplete: incomplete,
        resyncs: total.syncs,
        other_changes,
        subscriber_errors: errors,
        sync_bytes: total.sync_bytes,
        rss_start_bytes: window.rss_start_bytes,
        rss_end_bytes: window.rss_end_bytes,
        peak_rss_bytes: peak,
        cpu_share: window.cpu_share,
        bench_cpu_share: window.bench_cpu_share,
    })
}

/// Waits until `counter` reaches `n` or `limit` passes.
pub(crate) async fn wait_for(counter: &AtomicUsize, n: usize, limit: Instant) {
    while counter.load(Ordering::SeqCst) < n && Instant::now() < limit {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One reading subscriber: records the delay of every flip it receives.
pub(crate) async fn read_watch(
    addr: SocketAddr,
    flips: Arc<FlipLog>,
    synced: Arc<AtomicUsize>,
    mut stop: Stop,
) -> ReaderResult {
    let mut out = ReaderResult::default();
    let Ok(mut stream) = subscribe(addr, WATCH_PATH).await else {
        out.failed = true;
        return out;
    };
    while let Some(ev) = next_or_stop(&mut stream, &mut stop, &mut out.failed).await {
        match ev.event.as_str() {
            "upsert" => {
                let Some(k) = resolve_event(&flips, &ev.data) else {
                    continue;
                };
                out.delivery.record(flips.deliver(k, ev.at));
                out.received += 1;
            }
            "sync" => {
                out.syncs += 1;
                out.sync_bytes = out.sync_bytes.max(ev.bytes);
                if out.syncs == 1 {
                    synced.fetch_add(1, Ordering::SeqCst);
                }
            }
            _ => {}
        }
    }
    out
}

/// One stalled watcher: reads all of its `sync` or only its start, then holds the connection
/// without reading until the end.
async fn stall(
    addr: SocketAddr,
    whole_sync: bool,
    rcvbuf: Option<u32>,
    ready: Arc<AtomicUsize>,
    mut stop: Stop,
) {
    let Ok(mut stream) = subscribe_opts(addr, WATCH_PATH, None, rcvbuf).await else {
        return;
    };
    if whole_sync {
        let mut failed = false;
        while let Some(ev) = next_or_stop(&mut stream, &mut stop, &mut failed).await {
            if ev.event == "sync" {
                break;
            }
        }
    } else {
        let mut read = 0;
        while read < PARTIAL_SYNC {
            match stream.read_some().await {
                Ok(0) | Err(_) => return,
                Ok(n) => read += n,
            }
        }
    }
    ready.fetch_add(1, Ordering::SeqCst);
    stopped(&mut stop).await;
    drop(stream);
}
