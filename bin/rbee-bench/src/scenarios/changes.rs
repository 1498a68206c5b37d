//! What the watch and stream scenarios share: a registered fleet kept beating, a changer that flips
//! workers between ready and busy at a steady rate, and the bookkeeping that ties each event a
//! subscriber receives to the change it shows.
//!
//! An observer watch subscriber learns every flip's revision, which the summary stream's subscribers
//! need, and counts the material changes that were no flip (there should be none).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use chrono::{SubsecRound, Utc};
use serde::Serialize;
use shared_contract::Status;
use tokio::{sync::Notify, task::JoinHandle, time::Instant};
use worker_contract::WorkerHeartbeat;

use crate::{
    Env,
    http::HttpConn,
    loadgen::{BeatControl, Pace, PacedResult, paced, send_each},
    payload::{HEARTBEAT_PATH, heartbeat_body, post_request},
    process::Server,
    scenarios::{flag_duration, own_cpu_seconds, spawn_queen},
    sse::{SseStream, json_str, json_u64, subscribe},
    stats::{Latency, Summary, ratio},
};

/// The watch route, every kind.
pub const WATCH_PATH: &str = "/v1/watch";
/// How long the subscribers of one scenario may take to connect and read their first event.
pub(crate) const CONNECT_LIMIT: Duration = Duration::from_secs(90);

/// A fleet's size and pace.
#[derive(Debug, Clone, Copy)]
pub struct FleetShape {
    /// Simulated workers, flippers included.
    pub workers: usize,
    /// The queen's `--heartbeat-interval`, which is also every worker's pace.
    pub interval: Duration,
    /// The queen's `--heartbeat-timeout`.
    pub timeout: Duration,
    /// Connections the regular beats share.
    pub connections: usize,
    /// Flips per second while flipping.
    pub change_rate: u32,
}

impl FleetShape {
    /// Workers the changer beats: each flips once per interval, which is also its beat.
    pub fn flippers(&self) -> usize {
        let n = (f64::from(self.change_rate) * self.interval.as_secs_f64()).round() as usize;
        n.min(self.workers)
    }

    /// The full-size fleet of the watch scenarios.
    pub fn full(workers: usize, change_rate: u32) -> Self {
        Self {
            workers,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            // Each connection carries 40 workers, 8 beats/s: a slow answer delays few others.
            connections: 256,
            change_rate,
        }
    }

    /// The queen flags that set this pace.
    pub fn queen_flags(&self) -> Vec<(&'static str, String)> {
        vec![
            ("--heartbeat-interval", flag_duration(self.interval)),
            ("--heartbeat-timeout", flag_duration(self.timeout)),
        ]
    }

    /// The small fleet of `--quick`.
    pub fn quick(workers: usize, change_rate: u32) -> Self {
        Self {
            workers,
            interval: Duration::from_secs(1),
            // Generous: a debug build on a busy machine can send beats late.
            timeout: Duration::from_secs(5),
            connections: 8,
            change_rate,
        }
    }
}

/// Every flip: what it was, when it was answered, its revision, and who received it when.
///
/// A received upsert is tied to a flip by its worker and status: the newest flip of that worker to
/// that status whose revision is not yet known, or known to be this one. Other upserts (a worker
/// that timed out and came back, say) match no flip and are counted apart.
#[derive(Debug)]
pub struct FlipLog {
    base: Instant,
    /// Flips started; flip `k` is the `k`-th, counting from 0.
    count: AtomicUsize,
    /// Per flip: whether it set the worker busy.
    busy: Vec<AtomicBool>,
    /// Per flip: the same worker's flip before it, plus one (0 = none).
    prev: Vec<AtomicU64>,
    /// Per worker: its newest flip, plus one (0 = none).
    latest: Vec<AtomicU64>,
    /// Per flip: its revision, once some subscriber received it (0 = not yet).
    revision: Vec<AtomicU64>,
    /// Per flip: when it was answered 200, in ns after `base` plus one (0 = not yet, or failed).
    ack: Vec<AtomicU64>,
    /// Per flip: subscribers that received it.
    delivered: Vec<AtomicU32>,
    /// Per flip: when the last of them received it, in ns after `base` plus one.
    last_arrival: Vec<AtomicU64>,
    /// The newest revision the observer has seen.
    observed: AtomicU64,
    /// Whether the observer has its `sync`.
    observer_synced: AtomicBool,
    /// Upserts the observer saw that are no flip of the bench, after it synced.
    others: AtomicU64,
}

impl FlipLog {
    /// Creates a log with room for `cap` flips of `workers` workers.
    pub fn new(cap: usize, workers: usize) -> Arc<Self> {
        let zeros = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
        Arc::new(Self {
            base: Instant::now(),
            count: AtomicUsize::new(0),
            busy: (0..cap).map(|_| AtomicBool::new(false)).collect(),
            prev: zeros(cap),
            latest: zeros(workers),
            revision: zeros(cap),
            ack: zeros(cap),
            delivered: (0..cap).map(|_| AtomicU32::new(0)).collect(),
            last_arrival: zeros(cap),
            observed: AtomicU64::new(0),
            observer_synced: AtomicBool::new(false),
            others: AtomicU64::new(0),
        })
    }

    /// Flips started so far.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst).min(self.busy.len())
    }

    /// The newest revision the observer has seen.
    pub fn observed(&self) -> u64 {
        self.observed.load(Ordering::SeqCst)
    }

    /// Upserts that were no flip of the bench (a worker timing out, say), as the observer saw them.
    pub fn others(&self) -> u64 {
        self.others.load(Ordering::SeqCst)
    }

    /// The revision of flip `k`, once some subscriber has received it.
    pub fn revision_of(&self, k: usize) -> Option<u64> {
        match self.revision.get(k)?.load(Ordering::SeqCst) {
            0 => None,
            r => Some(r),
        }
    }

    /// Ties an upsert of `worker` to `busy` at `revision` to the flip it shows, if any.
    pub fn resolve(&self, worker: usize, busy: bool, revision: u64) -> Option<usize> {
        let mut k = self
            .latest
            .get(worker)?
            .load(Ordering::SeqCst)
            .checked_sub(1)?;
        loop {
            let k_usize = usize::try_from(k).ok()?;
            if self.busy[k_usize].load(Ordering::SeqCst) == busy {
                match self.revision[k_usize].compare_exchange(
                    0,
                    revision,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                ) {
                    Ok(_) => return Some(k_usize),
                    Err(known) if known == revision => return Some(k_usize),
                    // A later change of the worker that kept its status: no flip.
                    Err(known) if known < revision => return None,
                    // An older event: an earlier flip of the worker.
                    Err(_) => {}
                }
            }
            k = self.prev[k_usize].load(Ordering::SeqCst).checked_sub(1)?;
        }
    }

    /// Records that one subscriber received flip `k` at `at`; returns the delay after its answer,
    /// zero when the event came before the bench saw the answer.
    pub fn deliver(&self, k: usize, at: Instant) -> Duration {
        let at_ns = self.ns(at);
        self.delivered[k].fetch_add(1, Ordering::Relaxed);
        self.last_arrival[k].fetch_max(at_ns, Ordering::Relaxed);
        match self.ack[k].load(Ordering::SeqCst) {
            0 => Duration::ZERO,
            ack => Duration::from_nanos(at_ns.saturating_sub(ack)),
        }
    }

    /// Per flip in `flips`: the delay from its answer until the last of `subscribers` had it, over
    /// the flips every one of them received; and how many flips some did not receive.
    pub fn all_delivered(&self, flips: std::ops::Range<usize>, subscribers: u32) -> (Summary, u64) {
        let mut all = Latency::new();
        let mut incomplete = 0;
        for k in flips {
            let ack = self.ack[k].load(Ordering::SeqCst);
            if ack == 0 {
                continue;
            }
            if self.delivered[k].load(Ordering::SeqCst) < subscribers {
                incomplete += 1;
                continue;
            }
            let last = self.last_arrival[k].load(Ordering::SeqCst);
            all.record(Duration::from_nanos(last.saturating_sub(ack)));
        }
        (all.summary(), incomplete)
    }

    /// Waits until every flip in `flips` that was answered has reached `subscribers`, or `limit`.
    pub async fn drain(&self, flips: std::ops::Range<usize>, subscribers: u32, limit: Instant) {
        while Instant::now() < limit
            && flips.clone().any(|k| {
                self.ack[k].load(Ordering::SeqCst) != 0
                    && self.delivered[k].load(Ordering::SeqCst) < subscribers
            })
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Flips answered 200 among `flips`.
    pub fn acked(&self, flips: std::ops::Range<usize>) -> u64 {
        flips
            .filter(|&k| self.ack[k].load(Ordering::SeqCst) != 0)
            .count() as u64
    }

    fn ns(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX - 1)
            + 1
    }

    fn start(&self, worker: usize, busy: bool) -> Option<usize> {
        let k = self.count.fetch_add(1, Ordering::SeqCst);
        self.busy.get(k)?.store(busy, Ordering::SeqCst);
        let latest = self.latest.get(worker)?;
        self.prev[k].store(latest.load(Ordering::SeqCst), Ordering::SeqCst);
        latest.store(k as u64 + 1, Ordering::SeqCst);
        Some(k)
    }

    fn acked_at(&self, k: usize, at: Instant) {
        self.ack[k].store(self.ns(at), Ordering::SeqCst);
    }
}

/// Controls the changer.
#[derive(Debug, Default)]
pub struct ChangeControl {
    flipping: AtomicBool,
    /// Flips stop once this many were made.
    flip_until: AtomicUsize,
    burst: AtomicUsize,
    halt: AtomicBool,
    wake: Notify,
}

impl ChangeControl {
    /// Makes every beat of the changer a flip, or none.
    pub fn set_flipping(&self, on: bool) {
        self.flipping.store(on, Ordering::SeqCst);
    }

    /// Asks for `n` flips back to back, between the paced beats.
    pub fn burst(&self, n: usize) {
        self.flip_until.fetch_add(n, Ordering::SeqCst);
        self.burst.fetch_add(n, Ordering::SeqCst);
        self.wake.notify_one();
    }

    fn halt(&self) {
        self.halt.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// What the changer measured.
#[derive(Debug, Default, Clone)]
pub struct ChangerResult {
    /// Latency of the flips answered 200.
    pub flip_latency: Latency,
    /// Flips not answered 200.
    pub flip_failed: u64,
    /// Plain beats of flippers not answered 200.
    pub beat_failed: u64,
}

/// Beats the flipper workers round-robin, one every `interval / flippers`, flipping each beat's
/// status while flipping is on.
struct Changer {
    conn: HttpConn,
    workers: Vec<usize>,
    /// Per flipper: its ready and busy requests.
    bodies: Vec<[Bytes; 2]>,
    busy: Vec<bool>,
    next: usize,
    flips: Arc<FlipLog>,
    out: ChangerResult,
}

impl Changer {
    async fn beat(&mut self, flip: bool, until: usize) {
        let slot = self.next % self.workers.len();
        self.next += 1;
        let k = if flip && self.flips.count() < until {
            let busy = !self.busy[slot];
            let k = self.flips.start(self.workers[slot], busy);
            if k.is_some() {
                self.busy[slot] = busy;
            }
            k
        } else {
            None
        };
        let req = self.bodies[slot][usize::from(self.busy[slot])].clone();
        let sent = Instant::now();
        let result = self.conn.request(&req).await;
        let done = Instant::now();
        match (result, k) {
            (Ok(200), Some(k)) => {
                self.flips.acked_at(k, done);
                self.out.flip_latency.record(done - sent);
            }
            (Ok(200), None) => {}
            (_, Some(_)) => self.out.flip_failed += 1,
            (_, None) => self.out.beat_failed += 1,
        }
    }

    async fn run(mut self, interval: Duration, ctl: Arc<ChangeControl>) -> ChangerResult {
        if self.workers.is_empty() {
            return self.out;
        }
        let step = interval / u32::try_from(self.workers.len()).unwrap_or(u32::MAX);
        let start = Instant::now();
        let mut n = 0u32;
        while !ctl.halt.load(Ordering::SeqCst) {
            tokio::select! {
                () = tokio::time::sleep_until(start + step * n) => {
                    let flip = ctl.flipping.load(Ordering::SeqCst);
                    self.beat(flip, ctl.flip_until.load(Ordering::SeqCst)).await;
                    n += 1;
                }
                () = ctl.wake.notified() => {}
            }
            let burst = ctl.burst.swap(0, Ordering::SeqCst);
            for _ in 0..burst {
                self.beat(true, ctl.flip_until.load(Ordering::SeqCst)).await;
            }
        }
        self.out
    }
}

/// A queen with a registered fleet, its regular beats and its changer running, and the runtime
/// thread its subscribers read on.
#[derive(Debug)]
pub struct LiveFleet {
    /// The queen; taken when stopped.
    queen: Option<Server>,
    /// Its address.
    pub addr: SocketAddr,
    /// The flips.
    pub flips: Arc<FlipLog>,
    /// The changer's controls.
    pub change: Arc<ChangeControl>,
    shape: FleetShape,
    requests: Arc<[Bytes]>,
    flippers: Vec<usize>,
    beats: Option<(Arc<BeatControl>, JoinHandle<PacedResult>)>,
    changer: Option<JoinHandle<ChangerResult>>,
    /// The subscribers read on a runtime thread of their own, so that their reading cannot hold
    /// back the beats' clocks (which would charge bench delays to the queen).
    reader: Option<tokio::runtime::Runtime>,
    stop: tokio::sync::watch::Sender<bool>,
}

/// What one measured window of flips saw.
#[derive(Debug, Clone)]
pub struct Window {
    /// Its length.
    pub seconds: f64,
    /// Flips made in it (flips `0..flips`).
    pub flips: usize,
    /// The regular beats in it.
    pub beats: PacedResult,
    /// Queen RSS at its start and after the drain, in bytes.
    pub rss_start_bytes: u64,
    /// Queen RSS after the drain, in bytes.
    pub rss_end_bytes: u64,
    /// Queen CPU as a share of one core.
    pub cpu_share: f64,
    /// Bench CPU as a share of one core.
    pub bench_cpu_share: f64,
}

impl LiveFleet {
    /// Starts a queen, registers `shape.workers` workers, and keeps them beating: the flippers
    /// through the changer (not flipping yet), the rest through paced beats that record nothing.
    /// With flippers, an observer follows the watch stream from the start.
    pub async fn start(
        env: &Env,
        shape: FleetShape,
        prefix: &str,
        flip_cap: usize,
    ) -> anyhow::Result<Self> {
        Self::start_with(env, shape, prefix, flip_cap, &[]).await
    }

    /// [`LiveFleet::start`] with more queen flags (a `--data-dir`, say).
    pub async fn start_with(
        env: &Env,
        shape: FleetShape,
        prefix: &str,
        flip_cap: usize,
        extra_flags: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let mut flags = shape.queen_flags();
        flags.extend(extra_flags.iter().cloned());
        let queen = spawn_queen(env, &flags).await?;
        Self::start_on(queen, shape, prefix, flip_cap).await
    }

    /// [`LiveFleet::start`] on a queen already running with [`FleetShape::queen_flags`] (a
    /// cluster's leader, say).
    pub async fn start_on(
        queen: Server,
        shape: FleetShape,
        prefix: &str,
        flip_cap: usize,
    ) -> anyhow::Result<Self> {
        let addr = queen.addr;
        // Whole seconds keep the bodies close to what a real sender emits; one started_at for all
        // bodies of a worker, or a flip would look like a restart.
        let now = Utc::now().trunc_subsecs(0);
        let started_at = now - chrono::Duration::minutes(5);
        let bodies: Vec<Vec<u8>> = (0..shape.workers)
            .map(|i| heartbeat_body(prefix, i, started_at, now))
            .collect();
        let requests: Arc<[Bytes]> = bodies
            .iter()
            .map(|b| post_request(addr, HEARTBEAT_PATH, b))
            .collect::<Vec<_>>()
            .into();
        let registered = send_each(
            addr,
            Arc::clone(&requests),
            shape.connections,
            Duration::from_secs(120),
        )
        .await;
        anyhow::ensure!(
            registered.ok == shape.workers as u64,
            "only {} of {} workers registered:\n{}",
            registered.ok,
            shape.workers,
            queen.log_tail()
        );

        let mut rng = rand::thread_rng();
        let flippers =
            rand::seq::index::sample(&mut rng, shape.workers, shape.flippers()).into_vec();
        let mut flipper_bodies = Vec::with_capacity(flippers.len());
        for &i in &flippers {
            let mut hb: WorkerHeartbeat = serde_json::from_slice(&bodies[i])?;
            hb.worker.status = Status::Busy;
            let busy = post_request(addr, HEARTBEAT_PATH, &serde_json::to_vec(&hb)?);
            flipper_bodies.push([requests[i].clone(), busy]);
        }
        let flips = FlipLog::new(flip_cap.max(1), shape.workers);
        let change = Arc::new(ChangeControl::default());
        let changer = Changer {
            conn: HttpConn::new(addr),
            workers: flippers.clone(),
            busy: vec![false; flippers.len()],
            bodies: flipper_bodies,
            next: 0,
            flips: Arc::clone(&flips),
            out: ChangerResult::default(),
        };
        let changer = tokio::spawn(changer.run(shape.interval, Arc::clone(&change)));
        let reader = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bench-subscribers")
            .enable_all()
            .build()?;
        let (stop, _) = tokio::sync::watch::channel(false);
        let mut fleet = Self {
            queen: Some(queen),
            addr,
            flips,
            change,
            shape,
            requests,
            beats: None,
            changer: Some(changer),
            reader: Some(reader),
            stop,
            flippers,
        };
        // Recording starts after the run, so nothing of this phase is counted.
        fleet.beat(Instant::now() + Duration::from_secs(24 * 3600), None);
        if !fleet.flippers.is_empty() {
            fleet.spawn(observer(
                addr,
                Arc::clone(&fleet.flips),
                fleet.stop_signal(),
            ));
        }
        Ok(fleet)
    }

    /// The queen.
    pub fn queen(&self) -> anyhow::Result<&Server> {
        self.queen
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the queen was stopped"))
    }

    /// The signal that ends every subscriber's reading.
    pub fn stop_signal(&self) -> Stop {
        self.stop.subscribe()
    }

    /// Spawns a subscriber on the reading thread.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.reader {
            Some(reader) => reader.spawn(task),
            None => tokio::spawn(task),
        }
    }

    /// Spawns a subscriber on the reading thread into `set`.
    pub fn spawn_into<T: Send + 'static>(
        &self,
        set: &mut tokio::task::JoinSet<T>,
        task: impl std::future::Future<Output = T> + Send + 'static,
    ) {
        match &self.reader {
            Some(reader) => set.spawn_on(task, reader.handle()),
            None => set.spawn(task),
        };
    }

    /// Tells every subscriber to stop reading.
    pub fn stop_readers(&self) {
        self.stop.send_replace(true);
    }

    /// Replaces the regular beats with ones recorded from `record_from` until `deadline` (or
    /// until halted when `None`).
    pub fn beat(&mut self, record_from: Instant, deadline: Option<Instant>) {
        if let Some((control, _)) = self.beats.take() {
            // The old run ends at its next scheduled beat; the new one starts its schedule now,
            // so no worker waits much more than one interval.
            control.halt();
        }
        let control = BeatControl::new(self.shape.workers);
        for &i in &self.flippers {
            control.stop(i);
        }
        let pace = Pace {
            interval: self.shape.interval,
            connections: self.shape.connections,
            record_from,
            deadline: deadline.unwrap_or(record_from + Duration::from_secs(24 * 3600)),
        };
        let run = tokio::spawn(paced(
            self.addr,
            Arc::clone(&self.requests),
            pace,
            Arc::clone(&control),
        ));
        self.beats = Some((control, run));
    }

    /// Halts the regular beats and returns what they measured.
    pub async fn stop_beats(&mut self) -> PacedResult {
        match self.beats.take() {
            Some((control, run)) => {
                control.halt();
                run.await.unwrap_or_default()
            }
            None => PacedResult::default(),
        }
    }

    /// Flips for about `duration` with recorded beats, then waits (at most `drain`) until every
    /// flip has reached all `subscribers`.
    ///
    /// The window holds whole rounds of the flippers, so that it ends with flips that all go one
    /// way: a last flip undone by the next one within the queen's coalescing delay would leave
    /// the summary unchanged, and no summary would show it until the periodic one.
    pub async fn flip_window(
        &mut self,
        duration: Duration,
        drain: Duration,
        subscribers: usize,
    ) -> anyhow::Result<Window> {
        let rounds = (duration.as_secs_f64() / self.shape.interval.as_secs_f64()).ceil();
        let target = self.flippers.len() * (rounds as usize).max(1);
        let target = target.min(self.flips.busy.len());
        let rss_start_bytes = self.queen()?.stats()?.rss_bytes;
        let start = Instant::now();
        self.beat(start, None);
        let queen_before = self.queen()?.stats()?;
        let bench_before = own_cpu_seconds();
        self.change.flip_until.store(target, Ordering::SeqCst);
        self.change.set_flipping(true);
        // A slow queen slows the flips (one at a time); the window then lasts longer.
        let limit = start + duration * 3 + Duration::from_secs(10);
        tokio::time::sleep_until(start + duration).await;
        while self.flips.count() < target && Instant::now() < limit {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.change.set_flipping(false);
        let flips = self.flips.count();
        let seconds = start.elapsed().as_secs_f64();
        let queen_after = self.queen()?.stats()?;
        let bench_after = own_cpu_seconds();
        let beats = self.stop_beats().await;
        // The fleet keeps beating while the last events arrive, or it would time out.
        self.beat(Instant::now() + Duration::from_secs(24 * 3600), None);
        let n = u32::try_from(subscribers).unwrap_or(u32::MAX);
        self.flips.drain(0..flips, n, Instant::now() + drain).await;
        Ok(Window {
            seconds,
            flips,
            beats,
            rss_start_bytes,
            rss_end_bytes: self.queen()?.stats()?.rss_bytes,
            cpu_share: ratio(queen_after.cpu_seconds - queen_before.cpu_seconds, seconds),
            bench_cpu_share: ratio(bench_after - bench_before, seconds),
        })
    }

    /// Stops everything and the queen; returns the changer's figures and the queen's peak RSS.
    pub async fn stop(mut self) -> (ChangerResult, u64) {
        let _ = self.stop_beats().await;
        self.stop_readers();
        self.change.halt();
        let changer = match self.changer.take() {
            Some(run) => run.await.unwrap_or_default(),
            None => ChangerResult::default(),
        };
        if let Some(reader) = self.reader.take() {
            reader.shutdown_background();
        }
        let mut peak = 0;
        if let Some(queen) = self.queen.take() {
            peak = queen.stats().map_or(0, |s| s.hwm_bytes);
            queen.stop().await;
        }
        (changer, peak)
    }

    /// Waits until the observer has synced and seen no change for a moment; returns the revision.
    pub async fn settle(&self, limit: Instant) -> anyhow::Result<u64> {
        while !self.flips.observer_synced.load(Ordering::SeqCst) {
            anyhow::ensure!(Instant::now() < limit, "the observer never got its sync");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        loop {
            let seen = self.flips.observed();
            tokio::time::sleep(Duration::from_millis(300)).await;
            if self.flips.observed() == seen || Instant::now() >= limit {
                return Ok(seen);
            }
        }
    }
}

impl Drop for LiveFleet {
    fn drop(&mut self) {
        // A runtime may not be dropped (blocking) inside another; the queen dies with its handle.
        if let Some(reader) = self.reader.take() {
            reader.shutdown_background();
        }
    }
}

/// The end of a subscriber's reading.
pub(crate) type Stop = tokio::sync::watch::Receiver<bool>;

/// Reads the next event, or `None` when stopped, ended or failed (`failed` tells which).
pub(crate) async fn next_or_stop(
    stream: &mut SseStream,
    stop: &mut Stop,
    failed: &mut bool,
) -> Option<crate::sse::SseEvent> {
    if *stop.borrow() {
        return None;
    }
    tokio::select! {
        biased;
        _ = stop.changed() => None,
        ev = stream.next() => match ev {
            Ok(Some(ev)) => Some(ev),
            Ok(None) | Err(_) => {
                *failed = !*stop.borrow();
                None
            }
        },
    }
}

/// Waits until `stop` is set.
pub(crate) async fn stopped(stop: &mut Stop) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// The worker index and busy flag an upsert's entry shows.
pub(crate) fn upsert_worker(data: &[u8]) -> (Option<usize>, Option<bool>) {
    let worker = json_str(data, "id")
        .and_then(|id| id.rsplit_once('-'))
        .and_then(|(_, n)| n.parse().ok());
    let busy = json_str(data, "status").map(|s| s == "busy");
    (worker, busy)
}

/// Ties an upsert event to the flip it shows, if any.
pub(crate) fn resolve_event(flips: &FlipLog, data: &[u8]) -> Option<usize> {
    let revision = json_u64(data, "revision")?;
    let (worker, busy) = upsert_worker(data);
    flips.resolve(worker?, busy?, revision)
}

/// Follows the watch stream, so that every flip's revision is known early (the summary stream
/// carries revisions only), and counts the changes that were no flip.
pub(crate) async fn observer(addr: SocketAddr, flips: Arc<FlipLog>, mut stop: Stop) {
    let Ok(mut stream) = subscribe(addr, WATCH_PATH).await else {
        return;
    };
    let mut failed = false;
    while let Some(ev) = next_or_stop(&mut stream, &mut stop, &mut failed).await {
        let Some(revision) = json_u64(&ev.data, "revision") else {
            continue;
        };
        match ev.event.as_str() {
            "sync" => {
                flips.observed.fetch_max(revision, Ordering::SeqCst);
                flips.observer_synced.store(true, Ordering::SeqCst);
            }
            "upsert" | "remove" => {
                flips.observed.fetch_max(revision, Ordering::SeqCst);
                if resolve_event(&flips, &ev.data).is_none() {
                    flips.others.fetch_add(1, Ordering::SeqCst);
                }
            }
            _ => {}
        }
    }
}

/// Figures of the regular beats and the changer.
#[derive(Debug, Clone, Serialize)]
pub struct BeatFigures {
    /// Heartbeats per second answered 200.
    pub hb_rps: f64,
    /// Heartbeat latency.
    pub hb_latency: Summary,
    /// Heartbeats that failed.
    pub hb_failed: u64,
    /// How late beats left compared with their schedule (the bench's own lag).
    pub hb_send_lag: Summary,
    /// Latency of the flips (a heartbeat that changes the status).
    pub flip_latency: Summary,
    /// Flips not answered 200.
    pub flip_failed: u64,
}

impl BeatFigures {
    /// Combines the beats' and the changer's results over `seconds`.
    pub fn new(beats: &PacedResult, changer: &ChangerResult, seconds: f64) -> Self {
        Self {
            hb_rps: ratio(beats.load.ok as f64, seconds),
            hb_latency: beats.load.latency.summary(),
            hb_failed: beats.load.failed + changer.beat_failed,
            hb_send_lag: beats.lag.summary(),
            flip_latency: changer.flip_latency.summary(),
            flip_failed: changer.flip_failed,
        }
    }

    /// Writes the line of a window of `flips` in `seconds` (and `other_changes`), then the
    /// heartbeat line.
    pub fn write_window_text(
        &self,
        s: &mut String,
        seconds: f64,
        flips: u64,
        other_changes: u64,
    ) -> std::fmt::Result {
        use std::fmt::Write as _;
        writeln!(
            s,
            "  changes {seconds:.1} s, {flips} flips ({:.1}/s), other changes {other_changes}",
            ratio(flips as f64, seconds)
        )?;
        self.write_text(s)
    }

    /// Writes the heartbeat line of the text report.
    pub fn write_text(&self, s: &mut String) -> std::fmt::Result {
        use std::fmt::Write as _;
        writeln!(
            s,
            "  heartbeats {:.0}/s  p50 {:.2} ms  p99 {:.2} ms  failed {}  (bench send lag p99 {:.2} ms);  flips p99 {:.2} ms, failed {}",
            self.hb_rps,
            self.hb_latency.p50_ms,
            self.hb_latency.p99_ms,
            self.hb_failed,
            self.hb_send_lag.p99_ms,
            self.flip_latency.p99_ms,
            self.flip_failed
        )
    }
}
