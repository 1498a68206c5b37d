//! Detection: how long after a worker's timeout elapses its `offline` transition reaches a subscriber.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use serde::Serialize;
use shared_contract::{Target, Transition};
use tokio::{sync::mpsc, time::Instant};

use crate::{
    Env,
    config::BenchArgs,
    loadgen::{BeatControl, Pace, paced},
    payload::{heartbeat_requests, worker_id},
    scenarios::{flag_duration, fleet::STREAM_PATH, spawn_queen},
    sse::subscribe,
    stats::Summary,
};

const PREFIX: &str = "detect-w";
/// The hard bound on the whole scenario.
const LIMIT: Duration = Duration::from_secs(60);

/// Settings of the detection scenario.
#[derive(Debug, Clone)]
pub struct DetectOptions {
    /// Simulated workers.
    pub workers: usize,
    /// Share of them that stop at once.
    pub fraction: f64,
    /// The queen's `--heartbeat-timeout`.
    pub timeout: Duration,
    /// The queen's `--heartbeat-interval`, which is also the pace of every worker.
    pub interval: Duration,
    /// Connections the beats share.
    pub connections: usize,
}

impl DetectOptions {
    /// Builds the options from the command line.
    pub fn from_args(args: &BenchArgs) -> Self {
        Self {
            workers: if args.quick { 100 } else { args.detect_workers },
            fraction: 0.1,
            timeout: Duration::from_secs(1),
            interval: Duration::from_millis(250),
            connections: if args.quick { 8 } else { 32 },
        }
    }
}

/// Figures of the detection scenario.
#[derive(Debug, Clone, Serialize)]
pub struct DetectFigures {
    /// Simulated workers.
    pub workers: usize,
    /// Workers stopped.
    pub stopped: usize,
    /// Stopped workers whose `offline` transition arrived.
    pub detected: usize,
    /// Delay from (send time of the last acknowledged beat + timeout) to the transition's arrival.
    pub delay: Summary,
    /// The smallest delay; negative means reported before the timeout could have elapsed.
    pub delay_min_ms: f64,
    /// Workers still beating that were reported offline.
    pub false_positives: usize,
    /// Heartbeats that failed.
    pub hb_failed: u64,
    /// How late beats left compared with their schedule (the bench's own lag).
    pub hb_send_lag: Summary,
}

/// Runs the detection scenario.
pub async fn run(env: &Env, opts: &DetectOptions) -> anyhow::Result<DetectFigures> {
    let queen = spawn_queen(
        env,
        &[
            ("--heartbeat-interval", flag_duration(opts.interval)),
            ("--heartbeat-timeout", flag_duration(opts.timeout)),
        ],
    )
    .await?;
    let addr = queen.addr;
    let hard_end = Instant::now() + LIMIT;
    let index: HashMap<String, usize> = (0..opts.workers)
        .map(|i| (worker_id(PREFIX, i), i))
        .collect();

    let mut stream = subscribe(addr, STREAM_PATH).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<(Transition, Instant)>();
    let reader = tokio::spawn(async move {
        while let Ok(Ok(Some(ev))) = tokio::time::timeout_at(hard_end, stream.next()).await {
            if ev.event != "transition" {
                continue;
            }
            if let Ok(t) = serde_json::from_slice::<Transition>(&ev.data)
                && tx.send((t, ev.at)).is_err()
            {
                break;
            }
        }
    });

    let control = BeatControl::new(opts.workers);
    let requests: Arc<[_]> = heartbeat_requests(addr, PREFIX, opts.workers).into();
    let pace = Pace {
        interval: opts.interval,
        connections: opts.connections,
        record_from: Instant::now(),
        deadline: hard_end,
    };
    let beater = tokio::spawn(paced(addr, requests, pace, Arc::clone(&control)));

    let mut watch = Watch {
        index: &index,
        stopped: HashSet::new(),
        online: HashSet::new(),
        offline_at: HashMap::new(),
        false_positives: HashSet::new(),
    };
    // Everyone online, then a steady stretch of two timeouts in which nobody may go offline.
    let online_deadline = (Instant::now() + Duration::from_secs(15)).min(hard_end);
    while watch.online.len() < opts.workers {
        if !watch.next(&mut rx, online_deadline).await {
            anyhow::bail!(
                "only {} of {} workers came online:\n{}",
                watch.online.len(),
                opts.workers,
                queen.log_tail()
            );
        }
    }
    let steady_end = Instant::now() + opts.timeout * 2;
    while watch.next(&mut rx, steady_end).await {}

    let n_stop = ((opts.workers as f64 * opts.fraction).round() as usize).max(1);
    let chosen = rand::seq::index::sample(&mut rand::thread_rng(), opts.workers, n_stop).into_vec();
    for &i in &chosen {
        control.stop(i);
    }
    watch.stopped.extend(chosen.iter().copied());
    // Wait for every stopped worker (bounded), then one more timeout to catch late false positives.
    let detect_deadline = (Instant::now() + opts.timeout + Duration::from_secs(3)).min(hard_end);
    while watch.offline_at.len() < n_stop && watch.next(&mut rx, detect_deadline).await {}
    let tail_end = (Instant::now() + opts.timeout).min(hard_end);
    while watch.next(&mut rx, tail_end).await {}

    control.halt();
    let beats = beater.await.unwrap_or_default();
    reader.abort();
    queen.stop().await;

    let delays: Vec<f64> = chosen
        .iter()
        .filter_map(|&i| {
            let arrived = *watch.offline_at.get(&i)?;
            let due = control.last_ack_sent(i)? + opts.timeout;
            Some(signed_ms(arrived, due))
        })
        .collect();
    let summary = Summary::exact(&delays);
    Ok(DetectFigures {
        workers: opts.workers,
        stopped: n_stop,
        detected: delays.len(),
        delay: summary,
        delay_min_ms: delays
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
            .min(summary.max_ms),
        false_positives: watch.false_positives.len(),
        hb_failed: beats.load.failed,
        hb_send_lag: beats.lag.summary(),
    })
}

struct Watch<'a> {
    index: &'a HashMap<String, usize>,
    stopped: HashSet<usize>,
    online: HashSet<usize>,
    offline_at: HashMap<usize, Instant>,
    false_positives: HashSet<usize>,
}

impl Watch<'_> {
    /// Handles the next transition; returns false once `deadline` passes or the stream ends.
    async fn next(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<(Transition, Instant)>,
        deadline: Instant,
    ) -> bool {
        let Ok(Some((t, at))) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            return false;
        };
        let Some(&i) = self.index.get(t.id.as_str()) else {
            return true;
        };
        match t.to {
            Target::Online => {
                self.online.insert(i);
            }
            Target::Offline if self.stopped.contains(&i) => {
                self.offline_at.entry(i).or_insert(at);
            }
            Target::Offline | Target::Left | Target::Removed => {
                self.false_positives.insert(i);
            }
        }
        true
    }
}

fn signed_ms(a: Instant, b: Instant) -> f64 {
    if a >= b {
        (a - b).as_secs_f64() * 1000.0
    } else {
        -((b - a).as_secs_f64() * 1000.0)
    }
}
