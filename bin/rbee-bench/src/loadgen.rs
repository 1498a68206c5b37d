//! Load generators: closed loop (fixed connections, as fast as answered), send-each-once, and paced
//! (each simulated worker beats once per interval, evenly staggered).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tokio::{task::JoinSet, time::Instant};

use crate::{http::HttpConn, stats::Latency};

/// The pause after a failed request, so that a dead server does not turn the loop into a spin.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// What a load run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    /// Requests answered 200 within the measured window.
    pub ok: u64,
    /// Requests answered otherwise, or failed.
    pub failed: u64,
    /// The measured window.
    pub elapsed: Duration,
    /// Latency of the successful requests.
    pub latency: Latency,
}

impl LoadResult {
    /// Returns successful requests per second.
    pub fn rps(&self) -> f64 {
        crate::stats::ratio(self.ok as f64, self.elapsed.as_secs_f64())
    }

    fn merge(&mut self, other: &LoadResult) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.latency.merge(&other.latency);
    }
}

/// Runs `connections` keep-alive connections, each sending the next of `requests` as soon as the previous
/// one is answered; counts only what completes within `duration` after `warmup`.
pub async fn closed_loop(
    addr: SocketAddr,
    requests: Arc<[Bytes]>,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> LoadResult {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut set = JoinSet::new();
    for c in 0..connections.max(1) {
        let requests = Arc::clone(&requests);
        set.spawn(async move {
            let mut conn = HttpConn::new(addr);
            let mut out = LoadResult::default();
            let mut i = c * requests.len() / connections.max(1);
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let result = conn.request(&requests[i % requests.len()]).await;
                let done = Instant::now();
                let counted = sent >= measure_from && done <= end;
                match result {
                    Ok(200) if counted => {
                        out.ok += 1;
                        out.latency.record(done - sent);
                    }
                    Ok(200) => {}
                    Ok(_) => out.failed += u64::from(counted),
                    Err(_) => {
                        out.failed += u64::from(counted);
                        tokio::time::sleep(ERROR_PAUSE).await;
                    }
                }
                i += 1;
            }
            out
        });
    }
    collect(set, duration).await
}

/// Sends every request of `requests` once, over `connections` connections, giving up at `limit`.
pub async fn send_each(
    addr: SocketAddr,
    requests: Arc<[Bytes]>,
    connections: usize,
    limit: Duration,
) -> LoadResult {
    let start = Instant::now();
    let deadline = start + limit;
    let next = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..connections.max(1) {
        let requests = Arc::clone(&requests);
        let next = Arc::clone(&next);
        set.spawn(async move {
            let mut conn = HttpConn::new(addr);
            let mut out = LoadResult::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                if i >= requests.len() || sent >= deadline {
                    break;
                }
                match conn.request(&requests[i]).await {
                    Ok(200) => {
                        out.ok += 1;
                        out.latency.record(sent.elapsed());
                    }
                    Ok(_) => out.failed += 1,
                    Err(_) => {
                        out.failed += 1;
                        tokio::time::sleep(ERROR_PAUSE).await;
                    }
                }
            }
            out
        });
    }
    let mut result = collect(set, Duration::ZERO).await;
    result.elapsed = start.elapsed();
    result
}

/// Shared control of a paced run: stop it, stop single workers, and see their last acknowledged beat.
#[derive(Debug)]
pub struct BeatControl {
    halt: AtomicBool,
    stopped: Vec<AtomicBool>,
    /// Per worker: send time of the last beat answered 200, in ns after `base`, plus one (0 = none).
    last_ack: Vec<AtomicU64>,
    base: Instant,
}

impl BeatControl {
    /// Creates the control for `workers` simulated workers.
    pub fn new(workers: usize) -> Arc<Self> {
        Arc::new(Self {
            halt: AtomicBool::new(false),
            stopped: (0..workers).map(|_| AtomicBool::new(false)).collect(),
            last_ack: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            base: Instant::now(),
        })
    }

    /// Ends the whole run at the next scheduled beat.
    pub fn halt(&self) {
        self.halt.store(true, Ordering::SeqCst);
    }

    /// Stops worker `i` from beating again.
    pub fn stop(&self, i: usize) {
        self.stopped[i].store(true, Ordering::SeqCst);
    }

    /// Returns when worker `i`'s last acknowledged beat was sent.
    pub fn last_ack_sent(&self, i: usize) -> Option<Instant> {
        match self.last_ack[i].load(Ordering::SeqCst) {
            0 => None,
            ns => Some(self.base + Duration::from_nanos(ns - 1)),
        }
    }

    fn acked(&self, i: usize, sent: Instant) {
        let ns = u64::try_from((sent - self.base).as_nanos()).unwrap_or(u64::MAX - 1) + 1;
        self.last_ack[i].fetch_max(ns, Ordering::SeqCst);
    }
}

/// How a paced run is laid out in time.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Each worker beats once per interval.
    pub interval: Duration,
    /// Connections sharing the workers (worker `i` uses connection `i % connections`).
    pub connections: usize,
    /// Beats sent before this are not recorded.
    pub record_from: Instant,
    /// No beat is sent after this.
    pub deadline: Instant,
}

/// What a paced run measured.
#[derive(Debug, Clone, Default)]
pub struct PacedResult {
    /// Latency and counts of the recorded beats.
    pub load: LoadResult,
    /// How late each recorded beat left compared with its schedule (the bench's own lag).
    pub lag: Latency,
}

/// Sends one beat per worker per interval, worker `i` at offset `i / n` of the interval, until halted or
/// the deadline.
pub async fn paced(
    addr: SocketAddr,
    requests: Arc<[Bytes]>,
    pace: Pace,
    control: Arc<BeatControl>,
) -> PacedResult {
    let n = requests.len();
    let connections = pace.connections.clamp(1, n.max(1));
    let start = Instant::now();
    let mut set = JoinSet::new();
    for c in 0..connections {
        let requests = Arc::clone(&requests);
        let control = Arc::clone(&control);
        set.spawn(async move {
            let mut conn = HttpConn::new(addr);
            let mut out = PacedResult::default();
            'run: for cycle in 0u32.. {
                for i in (c..n).step_by(connections) {
                    let due =
                        start + pace.interval * cycle + pace.interval.mul_f64(i as f64 / n as f64);
                    if due >= pace.deadline {
                        break 'run;
                    }
                    tokio::time::sleep_until(due).await;
                    if control.halt.load(Ordering::SeqCst) || Instant::now() >= pace.deadline {
                        break 'run;
                    }
                    // Taken before the check, so a beat that passes it was sent before any later stop.
                    let sent = Instant::now();
                    if control.stopped[i].load(Ordering::SeqCst) {
                        continue;
                    }
                    let result = conn.request(&requests[i]).await;
                    let recorded = sent >= pace.record_from;
                    match result {
                        Ok(200) => {
                            control.acked(i, sent);
                            if recorded {
                                out.load.ok += 1;
                                out.load.latency.record(sent.elapsed());
                                out.lag.record(sent - due);
                            }
                        }
                        _ => out.load.failed += u64::from(recorded),
                    }
                }
            }
            out
        });
    }
    let mut total = PacedResult::default();
    while let Some(joined) = set.join_next().await {
        if let Ok(part) = joined {
            total.load.merge(&part.load);
            total.lag.merge(&part.lag);
        }
    }
    total.load.elapsed = start.elapsed();
    total
}

async fn collect(mut set: JoinSet<LoadResult>, elapsed: Duration) -> LoadResult {
    let mut total = LoadResult {
        elapsed,
        ..LoadResult::default()
    };
    while let Some(joined) = set.join_next().await {
        if let Ok(part) = joined {
            total.merge(&part);
        }
    }
    total
}
