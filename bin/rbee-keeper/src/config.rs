//! Command line of rbee-keeper; every flag can also come from an `RBEE_*` environment variable.

use std::{ffi::OsString, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};
use reqwest::Url;

/// Starts a local rbee fleet, prints its status, or watches it live.
#[derive(Debug, Parser)]
#[command(name = "rbee-keeper", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a queen, one hive and N workers on this machine; Ctrl-C stops them all.
    Up(UpArgs),
    /// Print the hives and workers the queen knows, as tables or JSON.
    Status(StatusArgs),
    /// Show the fleet live in the terminal, from the queen's event stream.
    Watch(WatchArgs),
    /// Run a program that does not watch its stdin (etcd) so that it stops with `up`.
    ///
    /// Internal to `up`: the program gets SIGTERM when this process does, or when its stdin
    /// closes because the keeper that started it is gone, even by SIGKILL.
    #[command(hide = true)]
    Guard(GuardArgs),
}

/// Flags of `rbee-keeper up`.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// How many llm-worker processes to start.
    #[arg(long, env = "RBEE_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// The queen's port on 127.0.0.1; the dashboard is served there. With several queens,
    /// the first one's, the others on the ports after it.
    #[arg(long, env = "RBEE_PORT", default_value_t = 8500)]
    pub port: u16,
    /// How many queens to start. Two or more form a cluster on etcd: on --etcd-endpoints, or
    /// on an etcd this keeper starts (the `etcd` program of Debian's etcd-server).
    #[arg(long, env = "RBEE_QUEENS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=MAX_QUEENS))]
    pub queens: u16,
    /// etcd client URLs (comma-separated) for the queens' cluster, instead of an etcd the keeper
    /// starts; also makes a single queen (--queens 1) run in cluster mode.
    #[arg(long, env = "RBEE_ETCD_ENDPOINTS", value_delimiter = ',', conflicts_with_all = ["data_dir", "ephemeral"])]
    pub etcd_endpoints: Vec<String>,
    /// The cluster's name, the queens' key prefix in etcd [default: the queen's, rbee].
    #[arg(long, env = "RBEE_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// The leader's lease in etcd, whole seconds, at least 2s: a lost leader is replaced within
    /// about this long plus one second.
    #[arg(long, env = "RBEE_LEADER_LEASE", default_value = "5s", value_parser = parse_lease)]
    pub leader_lease: Duration,
    /// The heartbeat pace the queen asks of hive and workers.
    #[arg(long, env = "RBEE_HEARTBEAT_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,
    /// How long without a heartbeat before an entry goes offline [default: 3 x the interval].
    #[arg(long, env = "RBEE_HEARTBEAT_TIMEOUT", value_parser = humantime::parse_duration)]
    pub heartbeat_timeout: Option<Duration>,
    /// The model id the workers report.
    #[arg(
        long,
        env = "RBEE_MODEL_ID",
        default_value = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
    )]
    pub model_id: String,
    /// Bearer token the queen requires and the senders present.
    #[arg(long, env = "RBEE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// How long to wait for the whole fleet to come online.
    #[arg(long, env = "RBEE_STARTUP_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub startup_timeout: Duration,
    /// Where queen-rbee, rbee-hive and llm-worker live [default: next to rbee-keeper].
    #[arg(long, env = "RBEE_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,

    /// Where the queen keeps the fleet's state [default: the queen's, ~/.local/state/rbee]. In
    /// a cluster on the keeper's own etcd, etcd keeps it in DIR/etcd [default: a temporary
    /// directory, removed when the keeper stops].
    #[arg(long, env = "RBEE_DATA_DIR", conflicts_with = "ephemeral")]
    pub data_dir: Option<PathBuf>,

    /// Nothing is kept on disk: the next `up` starts with an empty fleet.
    #[arg(long, env = "RBEE_EPHEMERAL", value_parser = clap::builder::BoolishValueParser::new())]
    pub ephemeral: bool,
}

impl UpArgs {
    /// Whether the queens run in a cluster on etcd.
    pub fn clustered(&self) -> bool {
        self.queens > 1 || !self.etcd_endpoints.is_empty()
    }
}

/// The most queens `up` starts; a cluster of more than a handful has no use on one machine.
const MAX_QUEENS: i64 = 9;

/// Flags of the hidden `rbee-keeper guard`.
#[derive(Debug, Clone, Args)]
pub struct GuardArgs {
    /// How long the program may outlive a keeper that is gone (stdin closed), so that the
    /// queens, which linger for their senders' last heartbeats, can still write to it.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub linger: Duration,
    /// A directory to remove once the program has stopped (etcd's temporary data).
    #[arg(long, value_name = "DIR")]
    pub remove_after: Option<PathBuf>,
    /// The program to run.
    pub program: PathBuf,
    /// Its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<OsString>,
}

/// How to reach a queen.
#[derive(Debug, Clone, Args)]
pub struct QueenArgs {
    /// The queen's base URL.
    #[arg(long, env = "RBEE_QUEEN_URL", default_value = "http://127.0.0.1:8500")]
    pub queen_url: Url,
    /// Bearer token, if the queen requires one.
    #[arg(long, env = "RBEE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Flags of `rbee-keeper status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Which queen.
    #[command(flatten)]
    pub queen: QueenArgs,
    /// Print the queen's snapshot as JSON instead of tables.
    #[arg(long, env = "RBEE_JSON")]
    pub json: bool,
    /// Which rows to show.
    #[command(flatten)]
    pub view: ViewArgs,
}

/// Flags of `rbee-keeper watch`.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Which queen.
    #[command(flatten)]
    pub queen: QueenArgs,
    /// Which rows to show.
    #[command(flatten)]
    pub view: ViewArgs,
}

/// Which rows `status` and `watch` show; counts always cover the whole fleet.
#[derive(Debug, Clone, Default, Args)]
pub struct ViewArgs {
    /// Show every row instead of what fits (the terminal's height for `watch`, 50 rows for
    /// `status`).
    #[arg(long, env = "RBEE_ALL")]
    pub all: bool,
    /// Show only hives and workers in this state.
    #[arg(long, env = "RBEE_STATE", value_enum)]
    pub state: Option<StateFilter>,
    /// Show only this hive and its workers.
    #[arg(long, env = "RBEE_HIVE", value_name = "ID")]
    pub hive: Option<String>,
}

/// A state to filter rows by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateFilter {
    /// Heartbeating within the timeout.
    Online,
    /// Silent past the timeout.
    Offline,
    /// Gone gracefully.
    Left,
    /// Online, ready and not unhealthy.
    Available,
    /// Offline, unhealthy or in conflict.
    Problem,
}

/// Parses a leader lease as the queen accepts it: whole seconds, at least two.
fn parse_lease(text: &str) -> Result<Duration, String> {
    let lease = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if lease < Duration::from_secs(2) || lease.subsec_nanos() != 0 {
        return Err("the lease must be whole seconds, at least 2s".to_owned());
    }
    Ok(lease)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn up_defaults() {
        let cli = Cli::try_parse_from(["rbee-keeper", "up"]).unwrap();
        let Command::Up(up) = cli.command else {
            panic!("expected up");
        };
        assert_eq!(up.workers, 2);
        assert_eq!(up.port, 8500);
        assert_eq!(up.heartbeat_interval, Duration::from_secs(2));
        assert_eq!(up.queens, 1);
        assert_eq!(up.leader_lease, Duration::from_secs(5));
        assert!(!up.clustered());
    }

    #[test]
    fn up_clusters_with_several_queens_or_etcd_endpoints() {
        let parse =
            |args: &[&str]| match Cli::try_parse_from([&["rbee-keeper", "up"], args].concat()) {
                Ok(Cli {
                    command: Command::Up(up),
                }) => Ok(up),
                Ok(_) => panic!("expected up"),
                Err(e) => Err(e.to_string()),
            };
        let up = parse(&["--queens", "3", "--leader-lease", "2s"]).unwrap();
        assert!(up.clustered());
        assert_eq!(up.leader_lease, Duration::from_secs(2));
        let up = parse(&[
            "--etcd-endpoints",
            "http://127.0.0.1:2379,http://127.0.0.1:2479",
        ])
        .unwrap();
        assert!(up.clustered());
        assert_eq!(up.etcd_endpoints.len(), 2);
        for bad in [
            &["--queens", "0"][..],
            &["--queens", "10"],
            &["--leader-lease", "1s"],
            &["--leader-lease", "2500ms"],
            &["--etcd-endpoints", "http://127.0.0.1:2379", "--ephemeral"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn guard_passes_the_program_its_flags() {
        let cli = Cli::try_parse_from([
            "rbee-keeper",
            "guard",
            "--linger",
            "1s",
            "etcd",
            "--name",
            "x",
        ])
        .unwrap();
        let Command::Guard(g) = cli.command else {
            panic!("expected guard");
        };
        assert_eq!(g.linger, Duration::from_secs(1));
        assert_eq!(g.program, PathBuf::from("etcd"));
        assert_eq!(g.args, ["--name", "x"]);
    }

    #[test]
    fn status_takes_queen_url_token_and_json() {
        let cli = Cli::try_parse_from([
            "rbee-keeper",
            "status",
            "--json",
            "--queen-url",
            "http://127.0.0.1:1234",
            "--token",
            "t",
        ])
        .unwrap();
        let Command::Status(s) = cli.command else {
            panic!("expected status");
        };
        assert!(s.json);
        assert_eq!(s.queen.queen_url.port(), Some(1234));
        assert_eq!(s.queen.token.as_deref(), Some("t"));
        assert!(!s.view.all && s.view.state.is_none() && s.view.hive.is_none());
    }

    #[test]
    fn status_and_watch_take_the_row_filters() {
        for command in ["status", "watch"] {
            let cli = Cli::try_parse_from([
                "rbee-keeper",
                command,
                "--all",
                "--state",
                "problem",
                "--hive",
                "h1",
            ])
            .unwrap();
            let view = match cli.command {
                Command::Status(s) => s.view,
                Command::Watch(w) => w.view,
                _ => panic!("expected status or watch"),
            };
            assert!(view.all);
            assert_eq!(view.state, Some(StateFilter::Problem));
            assert_eq!(view.hive.as_deref(), Some("h1"));
        }
        assert!(Cli::try_parse_from(["rbee-keeper", "status", "--state", "sleepy"]).is_err());
    }
}
