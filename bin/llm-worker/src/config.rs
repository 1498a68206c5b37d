//! Command-line and environment configuration of `llm-worker`.

use std::net::SocketAddr;

use clap::Parser;
use reqwest::Url;
use sender_daemon::cli::{SenderArgs, parse_http_url, parse_id};
use shared_contract::check_text;
use worker_contract::{MAX_DEVICE_LEN, MAX_MODEL_ID_LEN};

/// `llm-worker` flags; each is also read from `RBEE_<FLAG>`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "llm-worker",
    version,
    about = "Reports one loaded model to the rbee queen"
)]
pub struct Config {
    /// Queen connection and heartbeat pace.
    #[command(flatten)]
    pub sender: SenderArgs,

    /// Address of the worker's own API; port 0 picks a free port.
    #[arg(long, env = "RBEE_BIND", default_value = "127.0.0.1:0")]
    pub bind: SocketAddr,

    /// Worker id; defaults to `<hive-id>-<port>` with the port actually bound.
    #[arg(long, env = "RBEE_WORKER_ID", value_parser = parse_id)]
    pub worker_id: Option<String>,

    /// The hive (machine) this worker runs on; defaults to the host name made into a valid id.
    #[arg(long, env = "RBEE_HIVE_ID", value_parser = parse_id)]
    pub hive_id: Option<String>,

    /// The loaded model, e.g. `meta-llama/Llama-3.2-1B-Instruct`.
    #[arg(long, env = "RBEE_MODEL_ID", value_parser = parse_model_id)]
    pub model_id: String,

    /// The device the model runs on: `cpu`, `cuda:0`, `metal:0`, ...
    #[arg(long, env = "RBEE_DEVICE", default_value = "cpu", value_parser = parse_device)]
    pub device: String,

    /// Base URL of an OpenAI-compatible inference server to probe each interval.
    #[arg(long, env = "RBEE_BACKEND_URL", value_parser = parse_http_url)]
    pub backend_url: Option<Url>,
}

fn parse_model_id(s: &str) -> Result<String, String> {
    check_text("model-id", s, MAX_MODEL_ID_LEN).map_err(|e| e.reason)?;
    Ok(s.to_owned())
}

fn parse_device(s: &str) -> Result<String, String> {
    check_text("device", s, MAX_DEVICE_LEN).map_err(|e| e.reason)?;
    Ok(s.to_owned())
}
