//! Command line of rbee-keeper; every flag can also come from an `RBEE_*` environment variable.

use std::{path::PathBuf, time::Duration};

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
}

/// Flags of `rbee-keeper up`.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// How many llm-worker processes to start.
    #[arg(long, env = "RBEE_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// The queen's port on 127.0.0.1; the dashboard is served there.
    #[arg(long, env = "RBEE_PORT", default_value_t = 8500)]
    pub port: u16,
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

    /// Where the queen keeps the fleet's state [default: the queen's, ~/.local/state/rbee].
    #[arg(long, env = "RBEE_DATA_DIR", conflicts_with = "ephemeral")]
    pub data_dir: Option<PathBuf>,

    /// The queen keeps nothing on disk: the next `up` starts with an empty fleet.
    #[arg(long, env = "RBEE_EPHEMERAL", value_parser = clap::builder::BoolishValueParser::new())]
    pub ephemeral: bool,
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
                Command::Up(_) => panic!("expected status or watch"),
            };
            assert!(view.all);
            assert_eq!(view.state, Some(StateFilter::Problem));
            assert_eq!(view.hive.as_deref(), Some("h1"));
        }
        assert!(Cli::try_parse_from(["rbee-keeper", "status", "--state", "sleepy"]).is_err());
    }
}
