//! The failover scenario's clients: simulated workers that send to the queen they believe leads
//! and move on when it does not take their beat, and watchers that follow a queen's `/v1/watch`
//! across its restarts and collect every offline transition.

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tokio::time::Instant;

use crate::{
    http::HttpConn,
    scenarios::{
        changes::{Stop, WATCH_PATH, next_or_stop, stopped},
        failover::{REQUEST_LIMIT, SenderFigures},
    },
    sse::{json_str, json_u64, subscribe_with},
    stats::Latency,
};

/// The pause before a watcher tries again to connect.
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);

/// One sending task: the workers `slot, slot + slots, …`, each beating once per interval,
/// evenly staggered.
pub(super) struct Sender {
    pub(super) addrs: Vec<SocketAddr>,
    /// Per queen, every worker's request.
    pub(super) requests: Arc<[Arc<[Bytes]>]>,
    /// The queen the bench last saw lead.
    pub(super) hint: Arc<AtomicUsize>,
    pub(super) slot: usize,
    pub(super) slots: usize,
    pub(super) interval: Duration,
}

#[derive(Debug, Default, Clone)]
pub(super) struct SenderOut {
    ok: u64,
    lost: u64,
    redirects: u64,
    unavailable: u64,
    rejected: u64,
    connection_errors: u64,
    latency: Latency,
    max_gap: Duration,
}

impl SenderOut {
    pub(super) fn merge(&mut self, other: &SenderOut) {
        self.ok += other.ok;
        self.lost += other.lost;
        self.redirects += other.redirects;
        self.unavailable += other.unavailable;
        self.rejected += other.rejected;
        self.connection_errors += other.connection_errors;
        self.latency.merge(&other.latency);
        self.max_gap = self.max_gap.max(other.max_gap);
    }

    pub(super) fn figures(&self) -> SenderFigures {
        SenderFigures {
            ok: self.ok,
            lost: self.lost,
            redirects: self.redirects,
            unavailable: self.unavailable,
            rejected: self.rejected,
            connection_errors: self.connection_errors,
            latency: self.latency.summary(),
            max_gap_ms: self.max_gap.as_secs_f64() * 1000.0,
        }
    }
}

impl Sender {
    pub(super) async fn run(self, mut stop: Stop) -> SenderOut {
        let n = self.requests.first().map_or(0, |r| r.len());
        let queens = self.addrs.len();
        let mut conns: Vec<HttpConn> = self.addrs.iter().map(|a| HttpConn::new(*a)).collect();
        let mut target = self.hint.load(Ordering::SeqCst);
        let mut last_ack: Vec<Option<Instant>> = vec![None; n];
        let mut out = SenderOut::default();
        let start = Instant::now();
        'run: for cycle in 0u32.. {
            for i in (self.slot..n).step_by(self.slots) {
                let due =
                    start + self.interval * cycle + self.interval.mul_f64(i as f64 / n as f64);
                tokio::select! {
                    () = tokio::time::sleep_until(due) => {}
                    () = stopped(&mut stop) => break 'run,
                }
                // One try at each queen at most: a beat none takes is lost, as a sender's
                // retry would come no sooner than its next beat.
                let mut took = false;
                for _ in 0..queens {
                    let sent = Instant::now();
                    let answer = tokio::time::timeout(
                        REQUEST_LIMIT,
                        conns[target].request(&self.requests[target][i]),
                    )
                    .await;
                    match answer {
                        Ok(Ok(200)) => {
                            let done = Instant::now();
                            out.ok += 1;
                            out.latency.record(done - sent);
                            if let Some(prev) = last_ack[i] {
                                out.max_gap = out.max_gap.max(done - prev);
                            }
                            last_ack[i] = Some(done);
                            took = true;
                            break;
                        }
                        Ok(Ok(307)) => out.redirects += 1,
                        Ok(Ok(503)) => out.unavailable += 1,
                        Ok(Ok(_)) => out.rejected += 1,
                        Ok(Err(_)) => out.connection_errors += 1,
                        Err(_) => {
                            // A half-read answer leaves the connection unusable.
                            conns[target] = HttpConn::new(self.addrs[target]);
                            out.connection_errors += 1;
                        }
                    }
                    let hinted = self.hint.load(Ordering::SeqCst);
                    target = if hinted == target {
                        (target + 1) % queens
                    } else {
                        hinted
                    };
                }
                out.lost += u64::from(!took);
            }
        }
        out
    }
}

#[derive(Debug, Default)]
pub(super) struct WatcherOut {
    pub(super) syncs: u64,
    pub(super) reconnects: u64,
}

/// Follows `/v1/watch` on the queen at `addr` until stopped, connecting again (resuming from the
/// last event id) whenever the queen goes away; records the revision of every offline
/// transition in `offline`.
pub(super) async fn watch_queen(
    addr: SocketAddr,
    offline: Arc<Mutex<HashSet<u64>>>,
    synced: Arc<AtomicUsize>,
    mut stop: Stop,
) -> WatcherOut {
    let mut out = WatcherOut::default();
    let mut last_id: Option<String> = None;
    let mut connected_before = false;
    while !*stop.borrow() {
        let opened = tokio::time::timeout(
            REQUEST_LIMIT,
            subscribe_with(addr, WATCH_PATH, last_id.as_deref()),
        )
        .await;
        let Ok(Ok(mut stream)) = opened else {
            tokio::select! {
                () = tokio::time::sleep(RECONNECT_PAUSE) => {}
                () = stopped(&mut stop) => {}
            }
            continue;
        };
        out.reconnects += u64::from(connected_before);
        connected_before = true;
        let mut failed = false;
        while let Some(ev) = next_or_stop(&mut stream, &mut stop, &mut failed).await {
            match ev.event.as_str() {
                "sync" => {
                    out.syncs += 1;
                    if out.syncs == 1 {
                        synced.fetch_add(1, Ordering::SeqCst);
                    }
                }
                "upsert" if json_str(&ev.data, "to") == Some("offline") => {
                    if let (Some(revision), Ok(mut set)) =
                        (json_u64(&ev.data, "revision"), offline.lock())
                    {
                        set.insert(revision);
                    }
                }
                _ => {}
            }
        }
        if let Some(id) = stream.last_event_id() {
            last_id = Some(id.to_owned());
        }
    }
    out
}
