//! Stream: material changes reaching `/v1/heartbeats/stream` subscribers as summaries, at two
//! fleet sizes. A summary reflects every change up to its `revision`.

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
    scenarios::{
        changes::{BeatFigures, CONNECT_LIMIT, FleetShape, FlipLog, LiveFleet, Stop, next_or_stop},
        fleet::STREAM_PATH,
        watch::wait_for,
    },
    sse::{json_u64, subscribe},
    stats::{Latency, Summary},
};

const MIB: f64 = 1024.0 * 1024.0;

/// Settings of one stream run.
#[derive(Debug, Clone)]
pub struct StreamRun {
    /// The fleet.
    pub shape: FleetShape,
    /// Summary-stream subscribers.
    pub subscribers: usize,
    /// Measured time with flips.
    pub duration: Duration,
    /// The most time after the last flip for a summary showing it to reach every subscriber.
    pub drain: Duration,
    /// The delivery p99 goal, in milliseconds.
    pub goal_ms: f64,
}

/// Settings of the stream scenario: a large and a small run.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// The runs, large first.
    pub runs: Vec<StreamRun>,
}

impl StreamOptions {
    /// Builds the options from the command line.
    pub fn from_args(args: &BenchArgs) -> Self {
        if args.quick {
            let run = |workers, subscribers, goal_ms| StreamRun {
                shape: FleetShape::quick(workers, 20),
                subscribers,
                duration: Duration::from_secs(2),
                drain: Duration::from_secs(5),
                goal_ms,
            };
            return Self {
                runs: vec![run(300, 20, 1000.0), run(100, 5, 100.0)],
            };
        }
        let run = |workers, subscribers, goal_ms| StreamRun {
            shape: FleetShape::full(workers, args.change_rate),
            subscribers,
            duration: args.duration_or(Duration::from_secs(30)),
            drain: Duration::from_secs(5),
            goal_ms,
        };
        Self {
            runs: vec![
                run(args.watch_workers, args.watch_subscribers, 1000.0),
                run(args.watch_workers / 10, args.watch_subscribers / 10, 100.0),
            ],
        }
    }
}

/// Figures of one stream run.
#[derive(Debug, Clone, Serialize)]
pub struct StreamFigures {
    /// Simulated workers.
    pub workers: usize,
    /// Subscribers that got their first summary.
    pub subscribers: usize,
    /// Measured seconds.
    pub seconds: f64,
    /// Flips made in the window.
    pub flips: u64,
    /// Beats and flips.
    pub beats: BeatFigures,
    /// Delay from a flip's answer to one subscriber receiving a summary that reflects it.
    pub delivery: Summary,
    /// Delay from a flip's answer until every subscriber had such a summary.
    pub delivery_all: Summary,
    /// The goal for `delivery_all`'s p99, in milliseconds.
    pub goal_ms: f64,
    /// Flips some subscriber never saw reflected.
    pub flips_incomplete: u64,
    /// Summaries received in the window, over all subscribers.
    pub summaries: u64,
    /// Size of one summary event, in bytes.
    pub summary_bytes: u64,
    /// Material changes that were no flip of the bench (a worker timing out, say): should be 0.
    pub other_changes: u64,
    /// Subscribers whose stream failed.
    pub subscriber_errors: usize,
    /// Queen peak RSS over the whole run, in bytes.
    pub peak_rss_bytes: u64,
    /// Queen CPU as a share of one core in the window.
    pub cpu_share: f64,
    /// Bench CPU as a share of one core in the window.
    pub bench_cpu_share: f64,
}

impl StreamFigures {
    fn write_text(&self, s: &mut String) -> std::fmt::Result {
        writeln!(
            s,
            "  {} workers x {} subscribers, {:.1} s, {} flips",
            self.workers, self.subscribers, self.seconds, self.flips
        )?;
        self.beats.write_text(s)?;
        writeln!(
            s,
            "    change answered -> summary at one subscriber p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms;  at every subscriber p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  (goal p99 <= {:.0} ms)",
            self.delivery.p50_ms,
            self.delivery.p99_ms,
            self.delivery.max_ms,
            self.delivery_all.p50_ms,
            self.delivery_all.p99_ms,
            self.delivery_all.max_ms,
            self.goal_ms
        )?;
        writeln!(
            s,
            "    summaries {} of ~{:.1} KiB, flips incomplete {}, other changes {}, subscriber errors {};  queen peak RSS {:.1} MiB, CPU {:.0}%; bench CPU {:.0}%",
            self.summaries,
            self.summary_bytes as f64 / 1024.0,
            self.flips_incomplete,
            self.other_changes,
            self.subscriber_errors,
            self.peak_rss_bytes as f64 / MIB,
            self.cpu_share * 100.0,
            self.bench_cpu_share * 100.0
        )
    }
}

/// Figures of the stream scenario.
#[derive(Debug, Clone, Serialize)]
pub struct StreamScenario {
    /// One per run, large first.
    pub runs: Vec<StreamFigures>,
}

impl StreamScenario {
    /// Writes the scenario's text report.
    pub fn write_text(&self, s: &mut String) -> std::fmt::Result {
        writeln!(s, "\n[stream] summary stream")?;
        for run in &self.runs {
            run.write_text(s)?;
        }
        Ok(())
    }

    /// The scenario's targets.
    pub fn checks(&self) -> Vec<Check> {
        const NAMES: [&str; 2] = ["stream_large_p99_ms", "stream_small_p99_ms"];
        const TARGETS: [&str; 2] = ["<= 1000 ms", "<= 100 ms"];
        self.runs
            .iter()
            .zip(NAMES.into_iter().zip(TARGETS))
            .map(|(r, (name, target))| Check {
                name,
                value: r.delivery_all.p99_ms,
                target,
                pass: r.flips_incomplete == 0
                    && r.delivery_all.count > 0
                    && r.delivery_all.p99_ms <= r.goal_ms,
            })
            .collect()
    }
}

/// Runs the stream scenario.
pub async fn run(env: &Env, opts: &StreamOptions) -> anyhow::Result<StreamScenario> {
    let mut runs = Vec::with_capacity(opts.runs.len());
    for r in &opts.runs {
        runs.push(run_one(env, r).await?);
    }
    Ok(StreamScenario { runs })
}

#[derive(Debug, Default)]
struct SubscriberResult {
    delivery: Latency,
    summaries: u64,
    summary_bytes: u64,
    failed: bool,
}

async fn run_one(env: &Env, opts: &StreamRun) -> anyhow::Result<StreamFigures> {
    let cap = (f64::from(opts.shape.change_rate) * (opts.duration.as_secs_f64() + 5.0)) as usize;
    let mut fleet = LiveFleet::start(env, opts.shape, "stream-w", cap).await?;
    let addr = fleet.addr;
    let limit = Instant::now() + CONNECT_LIMIT;
    let connected = Arc::new(AtomicUsize::new(0));
    let mut subscribers = JoinSet::new();
    for _ in 0..opts.subscribers {
        let flips = Arc::clone(&fleet.flips);
        let task = summaries(addr, flips, Arc::clone(&connected), fleet.stop_signal());
        fleet.spawn_into(&mut subscribers, task);
    }
    wait_for(&connected, opts.subscribers, limit).await;
    fleet.settle(limit).await?;

    let n = connected.load(Ordering::SeqCst);
    let window = fleet.flip_window(opts.duration, opts.drain, n).await?;
    fleet.stop_readers();
    let mut total = SubscriberResult::default();
    let mut errors = 0;
    while let Some(joined) = subscribers.join_next().await {
        let r = joined.unwrap_or_default();
        errors += usize::from(r.failed);
        total.delivery.merge(&r.delivery);
        total.summaries += r.summaries;
        total.summary_bytes = total.summary_bytes.max(r.summary_bytes);
    }
    let (delivery_all, incomplete) = fleet
        .flips
        .all_delivered(0..window.flips, u32::try_from(n).unwrap_or(u32::MAX));
    let other_changes = fleet.flips.others();
    let (changer, peak) = fleet.stop().await;
    Ok(StreamFigures {
        workers: opts.shape.workers,
        subscribers: n,
        seconds: window.seconds,
        flips: window.flips as u64,
        beats: BeatFigures::new(&window.beats, &changer, window.seconds),
        delivery: total.delivery.summary(),
        delivery_all,
        goal_ms: opts.goal_ms,
        flips_incomplete: incomplete,
        summaries: total.summaries,
        summary_bytes: total.summary_bytes,
        other_changes,
        subscriber_errors: errors,
        peak_rss_bytes: peak,
        cpu_share: window.cpu_share,
        bench_cpu_share: window.bench_cpu_share,
    })
}

/// One summary-stream subscriber: each summary delivers every flip up to its revision.
async fn summaries(
    addr: SocketAddr,
    flips: Arc<FlipLog>,
    connected: Arc<AtomicUsize>,
    mut stop: Stop,
) -> SubscriberResult {
    let mut out = SubscriberResult::default();
    let Ok(mut stream) = subscribe(addr, STREAM_PATH).await else {
        out.failed = true;
        return out;
    };
    let mut first = true;
    // The next flip this subscriber has not yet seen reflected.
    let mut next_flip = 0usize;
    while let Some(ev) = next_or_stop(&mut stream, &mut stop, &mut out.failed).await {
        if ev.event != "heartbeat" {
            continue;
        }
        if std::mem::take(&mut first) {
            connected.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        let Some(revision) = json_u64(&ev.data, "revision") else {
            continue;
        };
        out.summaries += 1;
        out.summary_bytes = out.summary_bytes.max(ev.bytes);
        // Flips are made one after another, so their revisions rise with their number. A flip
        // whose revision the observer has not learnt yet waits for the next summary (which can
        // only overstate its delay).
        while next_flip < flips.count()
            && flips.revision_of(next_flip).is_some_and(|r| r <= revision)
        {
            out.delivery.record(flips.deliver(next_flip, ev.at));
            next_flip += 1;
        }
    }
    out
}
