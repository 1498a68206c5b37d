//! Watch-resume: subscribers disconnect, changes are made, and they reconnect with `Last-Event-ID`;
//! each must get exactly the changes it missed, in revision order, and no `sync`.

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
        changes::{CONNECT_LIMIT, FleetShape, LiveFleet, Stop, WATCH_PATH, next_or_stop},
        watch::wait_for,
    },
    sse::{json_u64, subscribe, subscribe_with},
    stats::Summary,
};

/// How long the subscribers keep reading after the last missed change, to catch extra events.
const GRACE: Duration = Duration::from_millis(500);

/// Settings of the watch-resume scenario.
#[derive(Debug, Clone)]
pub struct ResumeOptions {
    /// The fleet; its changer makes the changes.
    pub shape: FleetShape,
    /// Subscribers that disconnect and resume.
    pub subscribers: usize,
    /// Changes made while they are away.
    pub changes: usize,
}

impl ResumeOptions {
    /// Builds the options from the command line.
    pub fn from_args(args: &BenchArgs) -> Self {
        if args.quick {
            return Self {
                shape: FleetShape::quick(300, 20),
                subscribers: 20,
                changes: 100,
            };
        }
        Self {
            shape: FleetShape::full(args.watch_workers, args.change_rate),
            subscribers: args.watch_subscribers,
            changes: args.resume_changes,
        }
    }
}

/// Figures of the watch-resume scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ResumeFigures {
    /// Simulated workers.
    pub workers: usize,
    /// Subscribers that synced, then disconnected.
    pub subscribers: usize,
    /// Changes made while they were away.
    pub changes: u64,
    /// Subscribers that reconnected and got every missed change and nothing else.
    pub exact: usize,
    /// `sync` events received after reconnecting, over all subscribers (goal 0).
    pub syncs: u64,
    /// Upserts and removes received after reconnecting, over all subscribers.
    pub events: u64,
    /// Events expected (missed changes per subscriber, summed).
    pub events_expected: u64,
    /// Revisions that did not follow the previous one by exactly one, over all subscribers.
    pub gaps: u64,
    /// Subscribers whose reconnect or stream failed.
    pub subscriber_errors: usize,
    /// Per subscriber: time from reconnecting to the last missed change.
    pub catch_up: Summary,
    /// Material changes that were no flip of the bench (a worker timing out, say): should be 0.
    pub other_changes: u64,
}

impl ResumeFigures {
    /// Writes the scenario's text report.
    pub fn write_text(&self, s: &mut String) -> std::fmt::Result {
        writeln!(
            s,
            "\n[watch-resume] {} workers, {} subscribers away during {} changes",
            self.workers, self.subscribers, self.changes
        )?;
        writeln!(
            s,
            "  exact {} of {};  events {} of {} expected;  gaps {};  syncs {};  errors {};  other changes {}",
            self.exact,
            self.subscribers,
            self.events,
            self.events_expected,
            self.gaps,
            self.syncs,
            self.subscriber_errors,
            self.other_changes
        )?;
        writeln!(
            s,
            "  catch-up after reconnect p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms",
            self.catch_up.p50_ms, self.catch_up.p99_ms, self.catch_up.max_ms
        )
    }

    /// The scenario's targets.
    pub fn checks(&self) -> Vec<Check> {
        vec![
            Check {
                name: "resume_exact",
                value: self.exact as f64,
                target: "= all",
                pass: self.exact == self.subscribers && self.subscribers > 0,
            },
            Check {
                name: "resume_syncs",
                value: self.syncs as f64,
                target: "= 0",
                pass: self.syncs == 0,
            },
        ]
    }
}

/// What one subscriber saw after reconnecting.
#[derive(Debug, Default, Clone)]
struct Resumed {
    synced: bool,
    expected: u64,
    events: u64,
    syncs: u64,
    gaps: u64,
    catch_up: Option<Duration>,
    failed: bool,
}

/// Runs the watch-resume scenario.
pub async fn run(env: &Env, opts: &ResumeOptions) -> anyhow::Result<ResumeFigures> {
    let mut fleet = LiveFleet::start(env, opts.shape, "resume-w", opts.changes + 1).await?;
    let addr = fleet.addr;
    let (away_tx, away) = tokio::sync::watch::channel(false);
    let (target_tx, target) = tokio::sync::watch::channel(0u64);
    let limit = Instant::now() + CONNECT_LIMIT;
    fleet.beat(Instant::now(), None);
    fleet.settle(limit).await?;

    let synced = Arc::new(AtomicUsize::new(0));
    let away_count = Arc::new(AtomicUsize::new(0));
    let mut subscribers = JoinSet::new();
    for _ in 0..opts.subscribers {
        let task = resume(
            addr,
            Arc::clone(&synced),
            Arc::clone(&away_count),
            away.clone(),
            target.clone(),
            fleet.stop_signal(),
        );
        fleet.spawn_into(&mut subscribers, task);
    }
    wait_for(&synced, opts.subscribers, limit).await;
    let _ = away_tx.send(true);
    wait_for(&away_count, opts.subscribers, limit).await;

    fleet.change.burst(opts.changes);
    // The target is the revision of the last change, once the observer has seen it.
    let last = opts.changes.saturating_sub(1);
    let made_limit = Instant::now() + Duration::from_secs(60);
    while fleet.flips.revision_of(last).is_none() && Instant::now() < made_limit {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = target_tx.send(fleet.flips.observed());

    let mut results = Vec::with_capacity(opts.subscribers);
    let end = Instant::now() + CONNECT_LIMIT;
    while let Ok(Some(joined)) = tokio::time::timeout_at(end, subscribers.join_next()).await {
        results.push(joined.unwrap_or_default());
    }
    fleet.stop_readers();
    while subscribers.join_next().await.is_some() {}
    let other_changes = fleet.flips.others();
    let changes = fleet.flips.count() as u64;
    let _ = fleet.stop().await;

    let away_ones: Vec<&Resumed> = results.iter().filter(|r| r.synced).collect();
    let catch_up: Vec<f64> = away_ones
        .iter()
        .filter_map(|r| r.catch_up.map(|d| d.as_secs_f64() * 1000.0))
        .collect();
    Ok(ResumeFigures {
        workers: opts.shape.workers,
        subscribers: away_ones.len(),
        changes,
        exact: away_ones
            .iter()
            .filter(|r| {
                !r.failed && r.syncs == 0 && r.gaps == 0 && r.events == r.expected && r.expected > 0
            })
            .count(),
        syncs: away_ones.iter().map(|r| r.syncs).sum(),
        events: away_ones.iter().map(|r| r.events).sum(),
        events_expected: away_ones.iter().map(|r| r.expected).sum(),
        gaps: away_ones.iter().map(|r| r.gaps).sum(),
        subscriber_errors: away_ones.iter().filter(|r| r.failed).count(),
        catch_up: Summary::exact(&catch_up),
        other_changes,
    })
}

/// Syncs, reads until told to go away, disconnects, then reconnects with its last event id once
/// the target revision is known and reads until it has it, plus a grace period.
async fn resume(
    addr: SocketAddr,
    synced: Arc<AtomicUsize>,
    away_count: Arc<AtomicUsize>,
    mut away: Stop,
    mut target: tokio::sync::watch::Receiver<u64>,
    mut stop: Stop,
) -> Resumed {
    let mut out = Resumed::default();
    let Ok(mut stream) = subscribe(addr, WATCH_PATH).await else {
        out.failed = true;
        return out;
    };
    let mut last = 0u64;
    let mut failed = false;
    while let Some(ev) = next_or_stop(&mut stream, &mut away, &mut failed).await {
        if let Some(r) = json_u64(&ev.data, "revision") {
            last = last.max(r);
        }
        if ev.event == "sync" && !out.synced {
            out.synced = true;
            synced.fetch_add(1, Ordering::SeqCst);
        }
    }
    let last_id = stream.last_event_id().map(str::to_owned);
    drop(stream);
    away_count.fetch_add(1, Ordering::SeqCst);
    if failed || !out.synced {
        out.failed = true;
        return out;
    }
    let goal = loop {
        let goal = *target.borrow_and_update();
        if goal > 0 {
            break goal;
        }
        if target.changed().await.is_err() {
            out.failed = true;
            return out;
        }
    };
    out.expected = goal.saturating_sub(last);
    let reconnected = Instant::now();
    let Ok(mut stream) = subscribe_with(addr, WATCH_PATH, last_id.as_deref()).await else {
        out.failed = true;
        return out;
    };
    let mut cursor = last;
    let mut grace_end: Option<Instant> = None;
    loop {
        let until = grace_end.unwrap_or(reconnected + CONNECT_LIMIT);
        let next =
            tokio::time::timeout_at(until, next_or_stop(&mut stream, &mut stop, &mut out.failed))
                .await;
        let Ok(Some(ev)) = next else {
            break;
        };
        match ev.event.as_str() {
            "sync" => out.syncs += 1,
            "upsert" | "remove" => {
                let Some(r) = json_u64(&ev.data, "revision") else {
                    continue;
                };
                out.events += 1;
                if r != cursor + 1 {
                    out.gaps += 1;
                }
                cursor = r;
                if r >= goal && grace_end.is_none() {
                    out.catch_up = Some(ev.at.saturating_duration_since(reconnected));
                    grace_end = Some(Instant::now() + GRACE);
                }
            }
            _ => {}
        }
    }
    out
}
