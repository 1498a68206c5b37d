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
        if self.store_dir().is_none() && !self.ephemeral {
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
    /// The directory the fleet's state is kept in; `None` with `--ephemeral`.
    pub fn store_dir(&self) -> Option<PathBuf> {
        if self.ephemeral {
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
