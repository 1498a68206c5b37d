//! The queens' shared state on etcd (SPEC section 11): one leader elected with a lease-guarded
//! key, the leader's change log written in fenced transactions, and the followers' mirror fed
//! by an etcd watch.
//!
//! Like `fleet-store` it knows rows, not kinds: the queen hands it each material change as a
//! kind, an id, the entry's kept JSON, the transition and the serialized watch event, and gets
//! the same back on every follower. The etcd client runs on a runtime thread of its own, so
//! that a busy queen can never starve the lease keep-alive.
//!
//! Keys under `/{cluster-name}/`:
//! - `meta`: `{"epoch", "revision"}`, the change log's epoch and its newest committed revision;
//! - `leader`: the leader's advertised URL, attached to its lease (the election);
//! - `members/{url}`: every running queen, attached to its lease;
//! - `entry/{kind}/{id}`: each entry's kept form, the state a new leader or follower loads;
//! - `log/{revision}`: the last [`LOG_KEEP`] changes, which followers watch.

#![warn(missing_docs)]

mod gate;
mod keys;
mod runner;
mod wire;

pub use gate::Gate;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use bytes::Bytes;
use fleet_store::KeptEntry;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, oneshot, watch};

/// How many changes the log keys keep; older ones are deleted as new ones are written.
pub const LOG_KEEP: u64 = 10_000;

/// How a queen joins its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// etcd client URLs.
    pub endpoints: Vec<String>,
    /// The key prefix; several clusters can share one etcd.
    pub name: String,
    /// How senders and the other queens reach this one.
    pub advertise_url: String,
    /// The leader's lease: a lost leader is replaced within about this long.
    pub lease: Duration,
}

/// One material change, as the leader writes it and followers receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The change log's revision.
    pub revision: u64,
    /// The entry's kind.
    pub kind: String,
    /// The entry's id.
    pub id: String,
    /// The entry's kept form (JSON); `None` when it was removed.
    pub kept: Option<String>,
    /// The transition (JSON), when the change is one.
    pub transition: Option<String>,
    /// The complete watch event, exactly as the leader serves it.
    pub frame: Bytes,
}

/// The cluster's state as read from etcd at one etcd revision.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The change log's epoch, the same on every queen.
    pub epoch: String,
    /// The newest committed revision.
    pub revision: u64,
    /// Every entry's kept form.
    pub entries: Vec<KeptEntry>,
}

/// What the cluster tells the queen, in order.
#[derive(Debug)]
pub enum Event {
    /// Follow: replace the fleet with this state and apply the [`Event::Changes`] that follow.
    Follow(Loaded),
    /// Changes the leader committed, in revision order, for the mirror.
    Changes(Vec<Change>),
    /// This queen leads: make the fleet this state (if it is not already), take over, then
    /// [`Gate::activate`] the term.
    Lead {
        /// The term to activate.
        term: u64,
        /// The committed state.
        loaded: Loaded,
    },
    /// The term ended because the lease could not be renewed in time: stop judging, hand over
    /// everything appended with [`Cluster::record`], then call [`Cluster::drained`].
    Lapsed {
        /// The term that ended.
        term: u64,
    },
}

/// What `GET /v1/cluster` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The leader's advertised URL, when one is known.
    pub leader: Option<String>,
    /// Every registered queen's advertised URL, sorted.
    pub members: Vec<String>,
    /// Whether etcd answered within the lease.
    pub etcd_ok: bool,
}

/// Why the cluster could not be joined.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// etcd did not answer in time.
    #[error("etcd at {endpoints} did not answer within {timeout:?}")]
    Unreachable {
        /// The endpoints tried.
        endpoints: String,
        /// How long.
        timeout: Duration,
    },
    /// The runtime thread could not be started.
    #[error("cannot start the etcd client thread: {0}")]
    Thread(#[from] std::io::Error),
}

enum Command {
    Record { term: u64, changes: Vec<Change> },
    Drained { term: u64 },
    Stop(oneshot::Sender<()>),
}

/// Counters the queen's metrics read.
#[derive(Debug, Default)]
pub struct Counters {
    /// Transactions committed to etcd.
    pub txns: AtomicU64,
    /// Keys written or deleted by them.
    pub ops: AtomicU64,
    /// Times this queen became the leader.
    pub elected: AtomicU64,
    /// Leader changes this queen observed.
    pub leader_changes: AtomicU64,
}

#[derive(Debug, Default)]
struct Shared {
    gate: Gate,
    leader: RwLock<Option<String>>,
    members: RwLock<Vec<String>>,
    etcd_ok: AtomicBool,
    counters: Counters,
}

impl Shared {
    fn set_leader(&self, leader: Option<String>) {
        let mut current = self.leader.write();
        if *current != leader {
            if leader.is_some() {
                self.counters.leader_changes.fetch_add(1, Ordering::Relaxed);
            }
            match &leader {
                Some(url) => tracing::info!(leader = %url, "cluster leader"),
                None => tracing::warn!("the cluster has no leader"),
            }
            *current = leader;
        }
    }
}

/// A queen's membership of its cluster; the etcd client runs on its own thread behind it.
#[derive(Debug)]
pub struct Cluster {
    config: ClusterConfig,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    committed: watch::Receiver<u64>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Record { term, changes } => write!(f, "Record({term}, {})", changes.len()),
            Command::Drained { term } => write!(f, "Drained({term})"),
            Command::Stop(_) => f.write_str("Stop"),
        }
    }
}

impl Cluster {
    /// Starts the etcd client thread, joins the cluster and returns once the cluster's state is
    /// loaded: the membership, that state, and the events that follow it (the first
    /// [`Event::Follow`] is the state returned here and is not repeated).
    pub async fn start(
        config: ClusterConfig,
        timeout: Duration,
    ) -> Result<(Cluster, Loaded, mpsc::UnboundedReceiver<Event>), ClusterError> {
        let shared = Arc::new(Shared::default());
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let (committed_tx, committed) = watch::channel(0);
        let runner = runner::Runner::new(
            config.clone(),
            Arc::clone(&shared),
            events_tx,
            command_rx,
            committed_tx,
        );
        let thread = std::thread::Builder::new()
            .name("etcd".to_owned())
            .spawn(move || runner::run(runner))?;
        let cluster = Cluster {
            config,
            shared,
            commands,
            committed,
            thread: Mutex::new(Some(thread)),
        };
        match tokio::time::timeout(timeout, events.recv()).await {
            Ok(Some(Event::Follow(loaded))) => Ok((cluster, loaded, events)),
            _ => {
                let endpoints = cluster.config.endpoints.join(",");
                cluster.stop(Duration::from_millis(100)).await;
                Err(ClusterError::Unreachable { endpoints, timeout })
            }
        }
    }

    /// This queen's advertised URL.
    pub fn advertise_url(&self) -> &str {
        &self.config.advertise_url
    }

    /// Whether this queen may accept heartbeats and judge right now.
    pub fn gate(&self) -> &Gate {
        &self.shared.gate
    }

    /// The leader's advertised URL, when one is known.
    pub fn leader(&self) -> Option<String> {
        self.shared.leader.read().clone()
    }

    /// The cluster as this queen last saw it.
    pub fn status(&self) -> Status {
        Status {
            leader: self.leader(),
            members: self.shared.members.read().clone(),
            etcd_ok: self.shared.etcd_ok.load(Ordering::Relaxed),
        }
    }

    /// Counters for the metrics.
    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// Hands the leader's changes of `term` to the writer, in revision order; never waits.
    /// Changes of a term that ended are dropped.
    pub fn record(&self, term: u64, changes: Vec<Change>) {
        if !changes.is_empty() {
            let _ = self.commands.send(Command::Record { term, changes });
        }
    }

    /// Says that everything of the lapsed `term` was handed to [`Cluster::record`].
    pub fn drained(&self, term: u64) {
        let _ = self.commands.send(Command::Drained { term });
    }

    /// The newest revision committed to etcd by this queen as leader.
    pub fn committed(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    /// Writes what is still pending (for up to `grace`), gives up the lease so that another
    /// queen takes over at once, and ends the client thread.
    pub async fn stop(&self, grace: Duration) {
        let (done, stopped) = oneshot::channel();
        if self.commands.send(Command::Stop(done)).is_ok() {
            let _ = tokio::time::timeout(grace + Duration::from_secs(1), stopped).await;
        }
        let thread = self.thread.lock().take();
        if let Some(thread) = thread {
            // The thread ends right after answering; joining off the runtime keeps it free.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}
