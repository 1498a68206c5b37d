//! Command-line and environment configuration, checked before any port is bound.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use clap::Parser;

/// Every setting of the queen; each flag can also be set as `RBEE_<FLAG>`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "queen-rbee",
    version,
    about = "The rbee orchestrator: heartbeats in, registries, REST, SSE and the dashboard out"
)]
pub struct Config {
    /// Address to listen on; port 0 picks any free port.
    #[arg(long, env = "RBEE_BIND", default_value = "127.0.0.1:8500")]
    pub bind: SocketAddr,

    /// Interval the queen asks of senders (`next_heartbeat_ms`).
    #[arg(long, env = "RBEE_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,

    /// An entry without a heartbeat for this long goes offline.
    #[arg(long, env = "RBEE_HEARTBEAT_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub heartbeat_timeout: Duration,

    /// Interval of periodic snapshots on the stream.
    #[arg(long, env = "RBEE_SNAPSHOT_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub snapshot_interval: Duration,

    /// How long offline and left entries are kept.
    #[arg(long, env = "RBEE_RETENTION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub retention: Duration,

    /// Most entries per registry; heartbeats from new ids beyond it get 429.
    #[arg(long, env = "RBEE_MAX_ENTRIES", default_value_t = 100_000)]
    pub max_entries: usize,

    /// Bearer token every route except `/` and `/health` requires.
    #[arg(long, env = "RBEE_TOKEN", hide_env_values = true)]
    pub token: Option<Token>,

    /// Extra allowed CORS origin (repeatable; `*` allows any). Loopback origins are always allowed.
    #[arg(long = "cors-origin", env = "RBEE_CORS_ORIGIN", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Allows listening on a non-loopback address without a token.
    #[arg(long, env = "RBEE_INSECURE_NO_AUTH", value_parser = clap::builder::BoolishValueParser::new())]
    pub insecure_no_auth: bool,

    /// Where the fleet's state is kept [default: $XDG_STATE_HOME/rbee, else ~/.local/state/rbee].
    #[arg(long, env = "RBEE_DATA_DIR", conflicts_with = "ephemeral")]
    pub data_dir: Option<PathBuf>,

    /// Keeps nothing on disk: a restart forgets the fleet (tests, benchmarks, demos).
    #[arg(long, env = "RBEE_EPHEMERAL", value_parser = clap::builder::BoolishValueParser::new())]
    pub ephemeral: bool,

    /// How long transitions are kept in the history `/v1/events` answers from.
    #[arg(long, env = "RBEE_HISTORY_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub history_retention: Duration,

    /// etcd client URLs (comma-separated): runs the queen in a cluster, with its state in etcd
    /// instead of a data directory.
    #[arg(long, env = "RBEE_ETCD_ENDPOINTS", value_delimiter = ',', conflicts_with_all = ["data_dir", "ephemeral"])]
    pub etcd_endpoints: Vec<String>,

    /// The cluster's name: the key prefix in etcd, so several clusters can share one.
    #[arg(long, env = "RBEE_CLUSTER_NAME", default_value = "rbee")]
    pub cluster_name: String,

    /// How senders and the other queens reach this queen [default: http://<bind address>].
    #[arg(long, env = "RBEE_ADVERTISE_URL")]
    pub advertise_url: Option<String>,

    /// The leader's lease in etcd, in whole seconds, at least 2: a lost leader is replaced
    /// within about this long plus one second.
    #[arg(long, env = "RBEE_LEADER_LEASE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub leader_lease: Duration,

    /// Revisions the watch keeps for resuming clients, at the least (tests lower it).
    #[arg(
        long,
        env = "RBEE_WATCH_HISTORY",
        default_value_t = 10_000,
        hide = true
    )]
    pub watch_history: usize,

    /// How long the watch keeps revisions for resuming clients, at the least (tests lower it).
    #[arg(long, env = "RBEE_WATCH_HISTORY_AGE", default_value = "5m", value_parser = humantime::parse_duration, hide = true)]
    pub watch_history_age: Duration,
}

impl Config {
    /// Checks rules clap cannot express; the message is one lowercase line.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (flag, value) in [
            ("--heartbeat-interval", self.heartbeat_interval),
            ("--heartbeat-timeout", self.heartbeat_timeout),
            ("--snapshot-interval", self.snapshot_interval),
        ] {
            if value.is_zero() {
                return Err(ConfigError(format!("{flag} must be greater than zero")));
            }
        }
        for (flag, value) in [
            ("--heartbeat-interval", self.heartbeat_interval),
            ("--heartbeat-timeout", self.heartbeat_timeout),
            ("--snapshot-interval", self.snapshot_interval),
            ("--retention", self.retention),
            ("--watch-history-age", self.watch_history_age),
            ("--history-retention", self.history_retention),
        ] {
            // Deadlines are computed as `now + duration`; absurd values would overflow the clock.
            if value > MAX_DURATION {
                return Err(ConfigError(format!("{flag} must be at most 365 days")));
            }
        }
        if self.clustered() {
            self.validate_cluster()?;
        } else if self.store_dir().is_none() && !self.ephemeral {
            return Err(ConfigError(
                "no data directory: set --data-dir, XDG_STATE_HOME or HOME, or pass --ephemeral"
                    .to_owned(),
            ));
        }
        if self.max_entries == 0 {
            return Err(ConfigError("--max-entries must be at least 1".to_owned()));
        }
        if self.token.is_none() && !self.insecure_no_auth && !self.bind.ip().is_loopback() {
            return Err(ConfigError(format!(
                "refusing to listen on {} without --token; pass --insecure-no-auth to allow it",
                self.bind
            )));
        }
        Ok(())
    }
}

impl Config {
    /// Whether the queen runs in a cluster (`--etcd-endpoints`).
    pub fn clustered(&self) -> bool {
        !self.etcd_endpoints.is_empty()
    }

    fn validate_cluster(&self) -> Result<(), ConfigError> {
        for endpoint in &self.etcd_endpoints {
            let url = url::Url::parse(endpoint).map_err(|error| {
                ConfigError(format!(
                    "--etcd-endpoints: {endpoint:?} is not a URL: {error}"
                ))
            })?;
            if url.scheme() != "http" || url.host_str().is_none_or(str::is_empty) {
                return Err(ConfigError(format!(
                    "--etcd-endpoints: {endpoint:?} must be an http:// URL with a host"
                )));
            }
        }
        let name_ok = !self.cluster_name.is_empty()
            && self.cluster_name.len() <= 64
            && self
                .cluster_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !name_ok {
            return Err(ConfigError(
                "--cluster-name must be 1-64 letters, digits, '-', '_' or '.'".to_owned(),
            ));
        }
        // etcd leases have whole seconds and a floor of about two.
        if self.leader_lease < Duration::from_secs(2) || self.leader_lease.subsec_nanos() != 0 {
            return Err(ConfigError(
                "--leader-lease must be whole seconds, at least 2s".to_owned(),
            ));
        }
        if self.leader_lease > Duration::from_secs(3600) {
            return Err(ConfigError("--leader-lease must be at most 1h".to_owned()));
        }
        match &self.advertise_url {
            Some(advertised) => {
                let url = url::Url::parse(advertised)
                    .map_err(|error| ConfigError(format!("--advertise-url: not a URL: {error}")))?;
                if url.scheme() != "http"
                    || url.host_str().is_none_or(str::is_empty)
                    || url.query().is_some()
                    || url.fragment().is_some()
                {
                    return Err(ConfigError(
                        "--advertise-url must be an http:// URL with a host and no query"
                            .to_owned(),
                    ));
                }
            }
            None if self.bind.ip().is_unspecified() => {
                return Err(ConfigError(format!(
                    "--advertise-url is required when listening on {}",
                    self.bind
                )));
            }
            None => {}
        }
        Ok(())
    }

    /// The URL this queen advertises once bound to `local` (the port the OS picked for port 0).
    pub fn advertised(&self, local: SocketAddr) -> String {
        match &self.advertise_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{local}"),
        }
    }

    /// The directory the fleet's state is kept in; `None` with `--ephemeral` or in a cluster.
    pub fn store_dir(&self) -> Option<PathBuf> {
        if self.ephemeral || self.clustered() {
            return None;
        }
        if let Some(dir) = &self.data_dir {
            return Some(dir.clone());
        }
        let non_empty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        non_empty("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| non_empty("HOME").map(|home| PathBuf::from(home).join(".local/state")))
            .map(|state| state.join("rbee"))
    }
}

/// The longest duration any flag accepts.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// A configuration rule was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// The shared bearer token; never printed, not even by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Returns the token's bytes, for constant-time comparison.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl FromStr for Token {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            Err(ConfigError("--token must not be empty".to_owned()))
        } else {
            Ok(Self(s.to_owned()))
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}
