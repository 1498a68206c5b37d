//! Command-line and environment configuration of `rbee-hive`.

use std::net::SocketAddr;

use clap::Parser;
use sender_daemon::cli::{SenderArgs, parse_id};

/// `rbee-hive` flags; each is also read from `RBEE_<FLAG>`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "rbee-hive",
    version,
    about = "Reports this machine to the rbee queen"
)]
pub struct Config {
    /// Queen connection and heartbeat pace.
    #[command(flatten)]
    pub sender: SenderArgs,

    /// Address of the hive's own API (`GET /health`, `GET /v1/info`).
    #[arg(long, env = "RBEE_BIND", default_value = "127.0.0.1:9200")]
    pub bind: SocketAddr,

    /// Hive id; defaults to the host name made into a valid id.
    #[arg(long, env = "RBEE_HIVE_ID", value_parser = parse_id)]
    pub hive_id: Option<String>,
}
