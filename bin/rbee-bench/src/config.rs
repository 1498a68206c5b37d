//! The command line: which scenarios to run, how long, and at what scale.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Measures queen-rbee against a ceiling server, at fleet scale, for detection delay and memory per entry.
#[derive(Debug, Parser)]
#[command(name = "rbee-bench", version, about)]
pub struct Cli {
    /// A helper mode instead of the bench.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Bench settings.
    #[command(flatten)]
    pub bench: BenchArgs,
}

/// Helper modes.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serves the minimal ingest endpoint the queen is compared with (the bench starts this itself).
    CeilingServer {
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:0")]
        bind: SocketAddr,
    },
    /// Sends the ingest load to a running server and prints its rate (for profiling one target by hand).
    Load {
        /// The server's address (127.0.0.1 only).
        #[arg(long)]
        addr: SocketAddr,
        /// How long to send.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
    },
}

/// Which scenario to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Queen versus ceiling requests per second.
    Ingest,
    /// Ten thousand workers and a thousand stream subscribers.
    Fleet,
    /// Delay from a timeout elapsing to the offline transition on the stream.
    Detect,
    /// Resident memory per registered worker.
    Memory,
    /// Changes reaching a thousand `/v1/watch` subscribers at fleet scale.
    Watch,
    /// A thousand watch subscribers connecting at once: time until all have their `sync`.
    WatchConnect,
    /// Watch subscribers resuming with `Last-Event-ID` after missing changes.
    WatchResume,
    /// Changes reaching summary-stream subscribers, at two fleet sizes.
    Stream,
    /// Reading watchers next to stalled ones, compared with a run without stalled ones.
    WatchStalled,
    /// The kept state at fleet scale: commit lag, write rates and size, and no writes for steady beats.
    Store,
    /// Start on a data directory of 100,000 entries and a week of history: time until served.
    Startup,
    /// `ingest` with the queen keeping its state in a data directory.
    IngestStore,
    /// Three queens on etcd: time from killing the leader until another leads, 20 times.
    Failover,
    /// A cluster leader at fleet scale: etcd writes for steady beats (none) and per change.
    ClusterWrites,
    /// Changes sent to the leader reaching a follower's `/v1/watch`.
    MirrorLag,
    /// `ingest` with the queen leading a cluster on etcd.
    IngestCluster,
    /// The four cluster scenarios (each starts its own etcd).
    Cluster,
    /// Every scenario.
    All,
}

impl Scenario {
    /// Whether this is one of the scenarios of the `cluster` group.
    pub fn in_cluster_group(self) -> bool {
        matches!(
            self,
            Scenario::Failover
                | Scenario::ClusterWrites
                | Scenario::MirrorLag
                | Scenario::IngestCluster
        )
    }
}

/// Bench settings; `--quick` shrinks everything to a smoke run of a few seconds.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Scenario to run.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    pub scenario: Scenario,
    /// A smoke run of a few seconds, with small numbers; its figures mean little.
    #[arg(long)]
    pub quick: bool,
    /// Print one JSON object instead of the human report.
    #[arg(long)]
    pub json: bool,
    /// Do not pin the server and the bench to separate CPUs.
    #[arg(long)]
    pub no_pin: bool,
    /// The queen binary; defaults to `queen-rbee` next to this executable.
    #[arg(long)]
    pub queen_bin: Option<PathBuf>,
    /// Ingest: rounds per target (odd rounds run the ceiling first, even rounds the queen first).
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
    /// Ingest: measured time per round.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub round_duration: Duration,
    /// Ingest: concurrent keep-alive connections (64, as the shared yardstick uses).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Measured time: fleet and the watch and stream windows (default 30 s), the store
    /// scenario's changes (default 60 s), cluster-writes' two windows and mirror-lag's changes
    /// (default 20 s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Fleet: simulated workers (each beats every 5 s).
    #[arg(long, default_value_t = 10_000)]
    pub fleet_workers: usize,
    /// Fleet: stream subscribers.
    #[arg(long, default_value_t = 1_000)]
    pub fleet_subscribers: usize,
    /// Fleet: the queen's `--snapshot-interval`.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub fleet_snapshot_interval: Duration,
    /// Detect: simulated workers, of which a tenth stop.
    #[arg(long, default_value_t = 1_000)]
    pub detect_workers: usize,
    /// Memory: distinct workers registered.
    #[arg(long, default_value_t = 100_000)]
    pub memory_workers: usize,
    /// Watch scenarios: simulated workers (each beats every 5 s).
    #[arg(long, default_value_t = 10_000)]
    pub watch_workers: usize,
    /// Watch scenarios: `/v1/watch` subscribers.
    #[arg(long, default_value_t = 1_000)]
    pub watch_subscribers: usize,
    /// Watch and stream scenarios: material changes per second (status flips).
    #[arg(long, default_value_t = 100)]
    pub change_rate: u32,
    /// Watch-resume: changes made while the subscribers are away.
    #[arg(long, default_value_t = 1_000)]
    pub resume_changes: usize,
    /// Watch-stalled: watchers that stop reading.
    #[arg(long, default_value_t = 500)]
    pub stalled_watchers: usize,
    /// Watch-stalled: receive buffer of each stalled watcher's socket, in bytes (0: the system's
    /// autotuned one, which on loopback absorbs megabytes before the queen feels the stall).
    #[arg(long, default_value_t = 16 * 1024)]
    pub stalled_rcvbuf: u32,
    /// Watch-stalled: watchers that keep reading.
    #[arg(long, default_value_t = 50)]
    pub stalled_readers: usize,
    /// Store: simulated workers (each beats every 5 s).
    #[arg(long, default_value_t = 10_000)]
    pub store_workers: usize,
    /// Store: the phase of beats without material changes, in which nothing may be written.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub steady_duration: Duration,
    /// Startup: kept worker entries in the data directory (half online).
    #[arg(long, default_value_t = 100_000)]
    pub startup_entries: usize,
    /// Startup: kept transitions, spread over the last 7 days.
    #[arg(long, default_value_t = 1_000_000)]
    pub startup_transitions: usize,
    /// Startup: starts measured, each on a fresh copy of the data directory.
    #[arg(long, default_value_t = 3)]
    pub startup_runs: u32,
    /// Cluster scenarios: the etcd binary; defaults to `etcd` on the `PATH`.
    #[arg(long)]
    pub etcd_bin: Option<PathBuf>,
    /// Failover: times the leader is killed (and restarted).
    #[arg(long, default_value_t = 20)]
    pub failover_kills: u32,
    /// Failover: simulated workers beating at the leader every 200 ms.
    #[arg(long, default_value_t = 50)]
    pub failover_workers: usize,
    /// Cluster-writes and mirror-lag: simulated workers (each beats every 5 s).
    #[arg(long, default_value_t = 10_000)]
    pub cluster_workers: usize,
}

impl BenchArgs {
    /// Returns whether `scenario` is selected.
    pub fn runs(&self, scenario: Scenario) -> bool {
        self.scenario == Scenario::All
            || self.scenario == scenario
            || (self.scenario == Scenario::Cluster && scenario.in_cluster_group())
    }

    /// `--duration`, or `default` when not given.
    pub fn duration_or(&self, default: Duration) -> Duration {
        self.duration.unwrap_or(default)
    }
}
