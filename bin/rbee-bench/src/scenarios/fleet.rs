//! Fleet: thousands of workers beating at their normal pace while a thousand subscribers read the summary
//! stream. With no material change, its events are the periodic summaries (counts and online ids); their
//! delivery is measured from the `timestamp` each carries.

use std::{
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
    loadgen::{BeatControl, Pace, paced, send_each},
    payload::heartbeat_requests,
    scenarios::{flag_duration, own_cpu_seconds, spawn_queen},
    sse::{snapshot_timestamp, subscribe},
    stats::{Latency, Summary, ratio},
};

/// The stream route.
pub const STREAM_PATH: &str = "/v1/heartbeats/stream";
/// How long all subscribers may take to connect.
const CONNECT_LIMIT: Duration = Duration::from_secs(30);

/// Settings of the fleet scenario.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Simulated workers.
    pub workers: usize,
    /// Stream subscribers.
    pub subscribers: usize,
    /// Measured time.
    pub duration: Duration,
    /// The queen's `--heartbeat-interval`, which is also the pace of every worker.
    pub interval: Duration,
    /// The queen's `--heartbeat-timeout`.
    pub timeout: Duration,
    /// The queen's `--snapshot-interval`.
    pub snapshot_interval: Duration,
    /// Connections the beats share.
    pub connections: usize,
}

impl FleetOptions {
    /// Builds the options from the command line.
    pub fn from_args(args: &BenchArgs) -> Self {
        if args.quick {
            return Self {
                workers: 500,
                subscribers: 20,
                duration: Duration::from_secs(3),
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(3),
                snapshot_interval: Duration::from_secs(1),
                connections: 8,
            };
        }
        Self {
            workers: args.fleet_workers,
            subscribers: args.fleet_subscribers,
            duration: args.duration_or(Duration::from_secs(30)),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            snapshot_interval: args.fleet_snapshot_interval,
            // Each connection carries 40 workers, 8 beats/s: a slow answer delays few others.
            connections: 256,
        }
    }
}

/// Figures of the fleet scenario.
#[derive(Debug, Clone, Serialize)]
pub struct FleetFigures {
    /// Simulated workers.
    pub workers: usize,
    /// Subscribers that connected and read their first summary.
    pub subscribers: usize,
    /// Measured seconds.
    pub seconds: f64,
    /// The queen's snapshot interval (the period of the summary event), in seconds.
    pub snapshot_interval_s: f64,
    /// Heartbeats per second answered 200.
    pub hb_rps: f64,
    /// Heartbeat latency.
    pub hb_latency: Summary,
    /// Heartbeats that failed.
    pub hb_failed: u64,
    /// How late beats left compared with their schedule (the bench's own lag).
    pub hb_send_lag: Summary,
    /// Delay from a summary's `timestamp` to the whole event having arrived, over all subscribers.
    pub delivery: Summary,
    /// Delay from a summary's `timestamp` to its first byte arriving.
    pub delivery_first_byte: Summary,
    /// Summary events received by all subscribers in the window (the one sent on connect excluded).
    pub snapshots_received: u64,
    /// Approximate size of one summary event, in bytes.
    pub snapshot_bytes: u64,
    /// Subscribers whose stream failed.
    pub subscriber_errors: usize,
    /// Queen peak resident memory (VmHWM) over the whole scenario.
    pub peak_rss_bytes: u64,
    /// Queen CPU seconds in the measured window.
    pub cpu_seconds: f64,
    /// Queen CPU as a share of one core.
    pub cpu_share: f64,
    /// Bench CPU as a share of one core.
    pub bench_cpu_share: f64,
}

#[derive(Debug, Default)]
struct SubscriberResult {
    delivery: Latency,
    first_byte: Latency,
    snapshots: u64,
    snapshot_bytes: u64,
    failed: bool,
}

/// Runs the fleet scenario.
pub async fn run(env: &Env, opts: &FleetOptions) -> anyhow::Result<FleetFigures> {
    let queen = spawn_queen(
        env,
        &[
            ("--heartbeat-interval", flag_duration(opts.interval)),
            ("--heartbeat-timeout", flag_duration(opts.timeout)),
            ("--snapshot-interval", flag_duration(opts.snapshot_interval)),
        ],
    )
    .await?;
    let addr = queen.addr;
    let requests: Arc<[_]> = heartbeat_requests(addr, "fleet-w", opts.workers).into();
    // Register everyone first, so that the measured window is the steady state of a running fleet.
    let registered = send_each(
        addr,
        Arc::clone(&requests),
        opts.connections,
        Duration::from_secs(120),
    )
    .await;
    anyhow::ensure!(
        registered.ok == opts.workers as u64,
        "only {} of {} workers registered:\n{}",
        registered.ok,
        opts.workers,
        queen.log_tail()
    );

    // The stream window ends with the beats; the margin lets the last summary arrive.
    let connected = Arc::new(AtomicUsize::new(0));
    let hard_end = Instant::now() + CONNECT_LIMIT + opts.duration + Duration::from_secs(2);
    let end = Arc::new(tokio::sync::OnceCell::new());
    // The subscribers read gigabytes; on a runtime thread of their own, that reading cannot hold
    // back the beats' timing and latency clocks, which would charge bench delays to the queen.
    let reader = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-subscribers")
        .enable_all()
        .build()?;
    let mut subscribers = JoinSet::new();
    for _ in 0..opts.subscribers {
        let connected = Arc::clone(&connected);
        let end = Arc::clone(&end);
        subscribers.spawn_on(subscriber(addr, connected, end, hard_end), reader.handle());
    }
    let connect_deadline = Instant::now() + CONNECT_LIMIT;
    while connected.load(Ordering::SeqCst) < opts.subscribers && Instant::now() < connect_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let control = BeatControl::new(opts.workers);
    let start = Instant::now();
    let queen_before = queen.stats()?;
    let bench_before = own_cpu_seconds();
    let pace = Pace {
        interval: opts.interval,
        connections: opts.connections,
        record_from: start,
        deadline: start + opts.duration,
    };
    let beats = paced(addr, requests, pace, control).await;
    let seconds = start.elapsed().as_secs_f64();
    let queen_after = queen.stats()?;
    let bench_after = own_cpu_seconds();
    // Stop reading once the beats have ended and the last summary had time to arrive.
    let _ = end.set(Instant::now() + Duration::from_millis(500));

    let mut total = SubscriberResult::default();
    let mut errors = 0;
    while let Some(joined) = subscribers.join_next().await {
        let r = joined.unwrap_or_default();
        errors += usize::from(r.failed);
        total.delivery.merge(&r.delivery);
        total.first_byte.merge(&r.first_byte);
        total.snapshots += r.snapshots;
        total.snapshot_bytes = total.snapshot_bytes.max(r.snapshot_bytes);
    }
    reader.shutdown_background();
    let peak = queen.stats()?.hwm_bytes;
    queen.stop().await;
    let cpu = queen_after.cpu_seconds - queen_before.cpu_seconds;
    Ok(FleetFigures {
        workers: opts.workers,
        subscribers: connected.load(Ordering::SeqCst),
        seconds,
        snapshot_interval_s: opts.snapshot_interval.as_secs_f64(),
        hb_rps: ratio(beats.load.ok as f64, seconds),
        hb_latency: beats.load.latency.summary(),
        hb_failed: beats.load.failed,
        hb_send_lag: beats.lag.summary(),
        delivery: total.delivery.summary(),
        delivery_first_byte: total.first_byte.summary(),
        snapshots_received: total.snapshots,
        snapshot_bytes: total.snapshot_bytes,
        subscriber_errors: errors,
        peak_rss_bytes: peak,
        cpu_seconds: cpu,
        cpu_share: ratio(cpu, seconds),
        bench_cpu_share: ratio(bench_after - bench_before, seconds),
    })
}

async fn subscriber(
    addr: SocketAddr,
    connected: Arc<AtomicUsize>,
    end: Arc<tokio::sync::OnceCell<Instant>>,
    hard_end: Instant,
) -> SubscriberResult {
    let mut out = SubscriberResult::default();
    let Ok(Ok(mut stream)) = tokio::time::timeout_at(hard_end, subscribe(addr, STREAM_PATH)).await
    else {
        out.failed = true;
        return out;
    };
    let mut first = true;
    let mut bytes_seen = 0u64;
    loop {
        // The end is only known once the beats stop; until then wake up now and then to check.
        let until = end
            .get()
            .copied()
            .unwrap_or_else(|| (Instant::now() + Duration::from_millis(200)).min(hard_end));
        match tokio::time::timeout_at(until, stream.next()).await {
            Ok(Ok(Some(ev))) => {
                if ev.event != "heartbeat" {
                    continue;
                }
                if std::mem::take(&mut first) {
                    // The summary sent on connect can be old by design; only pushed ones count. A subscriber
                    // is ready once it has read it, so the window does not start with the initial burst.
                    connected.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let Some(ts) = snapshot_timestamp(&ev.data) else {
                    continue;
                };
                let complete_ms = (ev.at_wall - ts).num_microseconds().unwrap_or(0) as f64 / 1000.0;
                let first_ms = complete_ms - (ev.at - ev.first_byte).as_secs_f64() * 1000.0;
                out.delivery.record_ms(complete_ms);
                out.first_byte.record_ms(first_ms);
                out.snapshots += 1;
                bytes_seen = bytes_seen.max(ev.bytes);
            }
            Ok(Ok(None)) | Ok(Err(_)) => {
                out.failed = end.get().is_none();
                break;
            }
            Err(_) => {
                if end.get().is_some_and(|e| Instant::now() >= *e) || Instant::now() >= hard_end {
                    break;
                }
            }
        }
    }
    out.snapshot_bytes = bytes_seen;
    out
}
