//! Failover: three queens on one etcd and a small fleet beating at the leader. The bench kills the
//! leader (SIGKILL) again and again, restarting it on its port each time, and measures how long
//! until a surviving queen says it leads. A watcher on every queen counts offline transitions: a
//! failover must never turn a live worker offline.
//!
//! The simulated workers send to the queen they believe leads and move on, on a refused
//! connection, a `307` or a `503`, to the leader the bench last saw (or the next queen), as a
//! sender given every queen's URL does; a beat that no queen took is lost.

use std::{
    collections::HashSet,
    fmt::Write as _,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use bytes::Bytes;
use serde::Serialize;
use tokio::{task::JoinSet, time::Instant};

use crate::{
    Env,
    config::BenchArgs,
    metrics::Metrics,
    payload::heartbeat_requests,
    report::Check,
    scenarios::{
        cluster::{self, ClusterView, LEASE, POLL},
        flag_duration,
    },
    stats::Summary,
};

mod clients;

const PREFIX: &str = "failover-w";
/// The most a failover may take before the bench stops waiting for it.
const FAILOVER_LIMIT: Duration = Duration::from_secs(15);
/// How long the fleet may take to come online at the first leader.
const ONLINE_LIMIT: Duration = Duration::from_secs(20);
/// How long one request (a heartbeat, a `/v1/cluster` read, opening a watch) may take before
/// the bench gives up on it.
const REQUEST_LIMIT: Duration = Duration::from_secs(1);

/// Settings of the failover scenario.
#[derive(Debug, Clone)]
pub struct FailoverOptions {
    /// Queens in the cluster.
    pub queens: usize,
    /// Simulated workers.
    pub workers: usize,
    /// Each worker beats once per interval (also the queens' `--heartbeat-interval`).
    pub interval: Duration,
    /// The queens' `--heartbeat-timeout`.
    pub timeout: Duration,
    /// Times the leader is killed.
    pub kills: u32,
    /// Time between a restarted queen following the new leader and the next kill.
    pub settle: Duration,
    /// Connections (sending tasks) the workers share.
    pub connections: usize,
}

impl FailoverOptions {
    /// Builds the options from the command line.
    pub fn from_args(args: &BenchArgs) -> Self {
        Self {
            queens: 3,
            workers: if args.quick {
                10
            } else {
                args.failover_workers
            },
            interval: Duration::from_millis(200),
            timeout: Duration::from_millis(1500),
            kills: if args.quick { 2 } else { args.failover_kills },
            settle: Duration::from_secs(1),
            connections: 5,
        }
    }
}

/// What the simulated workers saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SenderFigures {
    /// Beats some queen answered 200.
    pub ok: u64,
    /// Beats no queen took (every queen refused, redirected or failed).
    pub lost: u64,
    /// `307` answers (a follower pointing at the leader).
    pub redirects: u64,
    /// `503` answers (no leader known).
    pub unavailable: u64,
    /// Other answers.
    pub rejected: u64,
    /// Connections refused or broken, and requests that took too long.
    pub connection_errors: u64,
    /// Latency of the beats answered 200 (the last attempt only).
    pub latency: Summary,
    /// The longest time between two accepted beats of one worker.
    pub max_gap_ms: f64,
}

/// Figures of the failover scenario.
#[derive(Debug, Clone, Serialize)]
pub struct FailoverFigures {
    /// Queens in the cluster.
    pub queens: usize,
    /// Simulated workers.
    pub workers: usize,
    /// The leader's lease, in milliseconds.
    pub lease_ms: u64,
    /// The queens' heartbeat timeout, in milliseconds.
    pub heartbeat_timeout_ms: u64,
    /// The workers' pace, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// Times the leader was killed.
    pub kills: u32,
    /// Kills after which a surviving queen led within the limit.
    pub failovers: usize,
    /// Kill to a surviving queen saying it leads.
    pub failover: Summary,
    /// The shortest failover, in milliseconds.
    pub failover_min_ms: f64,
    /// Every failover in order, in milliseconds.
    pub failover_ms: Vec<f64>,
    /// Restart of the killed queen to it following the new leader.
    pub rejoin: Summary,
    /// Offline transitions any watcher saw (distinct revisions): must be 0.
    pub offline_transitions: u64,
    /// Times a watcher connected again after its queen was killed.
    pub watch_reconnects: u64,
    /// `sync` events after a watcher's first (a resume the queen could not serve).
    pub watch_resyncs: u64,
    /// Workers online at the leader at the end.
    pub online_at_end: u64,
    /// What the simulated workers saw.
    pub beats: SenderFigures,
    /// The measured stretch, from the first kill, in seconds.
    pub seconds: f64,
}

impl FailoverFigures {
    /// Writes the scenario's text report.
    pub fn write_text(&self, s: &mut String) -> std::fmt::Result {
        writeln!(
            s,
            "\n[failover] {} queens on etcd, lease {} ms, {} workers beating every {} ms (timeout {} ms), {} kills in {:.1} s",
            self.queens,
            self.lease_ms,
            self.workers,
            self.heartbeat_interval_ms,
            self.heartbeat_timeout_ms,
            self.kills,
            self.seconds
        )?;
        writeln!(
            s,
            "  kill -> a survivor leads: p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms  min {:.0} ms  ({} of {} within {:?})",
            self.failover.p50_ms,
            self.failover.p99_ms,
            self.failover.max_ms,
            self.failover_min_ms,
            self.failovers,
            self.kills,
            FAILOVER_LIMIT
        )?;
        writeln!(
            s,
            "  restart -> follows the new leader: p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms",
            self.rejoin.p50_ms, self.rejoin.p99_ms, self.rejoin.max_ms
        )?;
        writeln!(
            s,
            "  offline transitions {}; online at the end {} of {}; watchers reconnected {} times, resynced {}",
            self.offline_transitions,
            self.online_at_end,
            self.workers,
            self.watch_reconnects,
            self.watch_resyncs
        )?;
        let b = &self.beats;
        writeln!(
            s,
            "  beats ok {}, lost {}; 307 {}, 503 {}, other {}, connection errors {}; p50 {:.2} ms  p99 {:.2} ms  max {:.1} ms; longest gap {:.0} ms",
            b.ok,
            b.lost,
            b.redirects,
            b.unavailable,
            b.rejected,
            b.connection_errors,
            b.latency.p50_ms,
            b.latency.p99_ms,
            b.latency.max_ms,
            b.max_gap_ms
        )
    }

    /// The scenario's targets.
    pub fn checks(&self) -> Vec<Check> {
        let all = self.failovers == self.kills as usize && self.kills > 0;
        let goal_ms = (LEASE + Duration::from_secs(1)).as_secs_f64() * 1000.0;
        vec![
            Check {
                name: "failover_p99_ms",
                value: self.failover.p99_ms,
                target: "<= lease + 1 s",
                pass: all && self.failover.p99_ms <= goal_ms,
            },
            Check {
                name: "failover_offline",
                value: self.offline_transitions as f64,
                target: "= 0",
                pass: self.offline_transitions == 0 && self.online_at_end == self.workers as u64,
            },
        ]
    }
}

/// Runs the failover scenario.
pub async fn run(env: &Env, opts: &FailoverOptions) -> anyhow::Result<FailoverFigures> {
    let etcd = cluster::start_etcd(env).await?;
    let flags = [
        ("--heartbeat-interval", flag_duration(opts.interval)),
        ("--heartbeat-timeout", flag_duration(opts.timeout)),
    ];
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut queens = Vec::with_capacity(opts.queens);
    for _ in 0..opts.queens {
        queens.push(Some(cluster::spawn_member(env, &etcd, any, &flags).await?));
    }
    let addrs: Vec<SocketAddr> = queens.iter().flatten().map(|q| q.addr).collect();
    // The first queen to start finds no leader and leads; wait until every other follows it.
    let first = match queens.first().and_then(Option::as_ref) {
        Some(q) => cluster::wait_for_role(q, |v| v.leader.is_some()).await?,
        None => anyhow::bail!("no queen to fail over"),
    };
    let mut leader = addrs
        .iter()
        .position(|a| first.leader.as_deref() == Some(cluster::url(*a).as_str()))
        .context("the cluster's leader is no queen the bench started")?;
    for (i, q) in queens.iter().flatten().enumerate() {
        let lead = addrs[leader];
        cluster::wait_for_role(q, |v| {
            let role = if i == leader {
                v.leads()
            } else {
                v.follows(lead)
            };
            role && v.members.len() == opts.queens
        })
        .await?;
    }

    let hint = Arc::new(AtomicUsize::new(leader));
    let (stop, _) = tokio::sync::watch::channel(false);
    let mut senders = JoinSet::new();
    let requests: Arc<[Arc<[Bytes]>]> = addrs
        .iter()
        .map(|a| Arc::from(heartbeat_requests(*a, PREFIX, opts.workers)))
        .collect::<Vec<_>>()
        .into();
    for c in 0..opts.connections.clamp(1, opts.workers.max(1)) {
        let sender = clients::Sender {
            addrs: addrs.clone(),
            requests: Arc::clone(&requests),
            hint: Arc::clone(&hint),
            slot: c,
            slots: opts.connections.clamp(1, opts.workers.max(1)),
            interval: opts.interval,
        };
        senders.spawn(sender.run(stop.subscribe()));
    }
    wait_online(addrs[leader], opts.workers, Instant::now() + ONLINE_LIMIT).await?;

    let offline = Arc::new(Mutex::new(HashSet::new()));
    let synced = Arc::new(AtomicUsize::new(0));
    let mut watchers = JoinSet::new();
    for &addr in &addrs {
        watchers.spawn(clients::watch_queen(
            addr,
            Arc::clone(&offline),
            Arc::clone(&synced),
            stop.subscribe(),
        ));
    }
    let synced_by = Instant::now() + ONLINE_LIMIT;
    while synced.load(Ordering::SeqCst) < addrs.len() {
        anyhow::ensure!(Instant::now() < synced_by, "a watcher never got its sync");
        tokio::time::sleep(POLL).await;
    }

    let start = Instant::now();
    let mut failovers = Vec::new();
    let mut rejoins = Vec::new();
    for _ in 0..opts.kills {
        tokio::time::sleep(opts.settle).await;
        let victim = leader;
        let Some(server) = queens[victim].take() else {
            anyhow::bail!("the leader is not running");
        };
        let killed = Instant::now();
        server.stop().await;
        let survivors: Vec<usize> = (0..addrs.len()).filter(|&i| i != victim).collect();
        match first_to_lead(&addrs, &survivors, killed + FAILOVER_LIMIT).await {
            Some((i, at)) => {
                failovers.push((at - killed).as_secs_f64() * 1000.0);
                leader = i;
            }
            None => {
                // No survivor led in time: look for whoever leads once the victim is back.
                leader = survivors[0];
            }
        }
        hint.store(leader, Ordering::SeqCst);
        let restarted = Instant::now();
        let queen = cluster::spawn_member(env, &etcd, addrs[victim], &flags).await?;
        let lead = addrs[leader];
        cluster::wait_for_role(&queen, |v| v.follows(lead) || v.leads()).await?;
        rejoins.push(restarted.elapsed().as_secs_f64() * 1000.0);
        queens[victim] = Some(queen);
        if failovers.len() < rejoins.len() {
            // The missed failover: find the leader among all before the next kill.
            let all: Vec<usize> = (0..addrs.len()).collect();
            if let Some((i, _)) = first_to_lead(&addrs, &all, Instant::now() + FAILOVER_LIMIT).await
            {
                leader = i;
                hint.store(leader, Ordering::SeqCst);
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    // One more timeout and a little: a worker the last failover lost would be offline by then.
    tokio::time::sleep(opts.timeout + Duration::from_millis(500)).await;
    let online_at_end = online(addrs[leader]).await.unwrap_or(0);

    stop.send_replace(true);
    let mut beats = clients::SenderOut::default();
    while let Some(joined) = senders.join_next().await {
        if let Ok(part) = joined {
            beats.merge(&part);
        }
    }
    let (mut watch_reconnects, mut watch_resyncs) = (0, 0);
    while let Some(joined) = watchers.join_next().await {
        if let Ok(part) = joined {
            watch_reconnects += part.reconnects;
            watch_resyncs += part.syncs.saturating_sub(1);
        }
    }
    for queen in queens.into_iter().flatten() {
        queen.stop().await;
    }
    etcd.stop().await;

    let offline_transitions = offline.lock().map_or(0, |set| set.len()) as u64;
    let failover = Summary::exact(&failovers);
    Ok(FailoverFigures {
        queens: opts.queens,
        workers: opts.workers,
        lease_ms: LEASE.as_millis() as u64,
        heartbeat_timeout_ms: opts.timeout.as_millis() as u64,
        heartbeat_interval_ms: opts.interval.as_millis() as u64,
        kills: opts.kills,
        failovers: failovers.len(),
        failover,
        failover_min_ms: failovers.iter().copied().fold(failover.max_ms, f64::min),
        failover_ms: failovers,
        rejoin: Summary::exact(&rejoins),
        offline_transitions,
        watch_reconnects,
        watch_resyncs,
        online_at_end,
        beats: beats.figures(),
        seconds,
    })
}

/// Polls the queens `among` every [`POLL`] until one says it leads; returns it and when its
/// answer arrived.
async fn first_to_lead(
    addrs: &[SocketAddr],
    among: &[usize],
    limit: Instant,
) -> Option<(usize, Instant)> {
    while Instant::now() < limit {
        let round = Instant::now();
        for &i in among {
            if let Ok(Ok(v)) = tokio::time::timeout(REQUEST_LIMIT, cluster::view(addrs[i])).await
                && ClusterView::leads(&v)
            {
                return Some((i, Instant::now()));
            }
        }
        tokio::time::sleep_until(round + POLL).await;
    }
    None
}

/// Workers online at the queen at `addr`, from its `/metrics`.
async fn online(addr: SocketAddr) -> anyhow::Result<u64> {
    let m = Metrics::fetch(addr).await?;
    Ok(m.value("rbee_entries", r#"kind="worker",state="online""#)
        .map_or(0, |v| v.max(0.0) as u64))
}

/// Waits until `n` workers are online at the queen at `addr`.
async fn wait_online(addr: SocketAddr, n: usize, limit: Instant) -> anyhow::Result<()> {
    loop {
        let now = online(addr).await.unwrap_or(0);
        if now >= n as u64 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < limit,
            "only {now} of {n} workers came online at the leader"
        );
        tokio::time::sleep(POLL).await;
    }
}
