//! `rbee-keeper up`: a queen, one hive and N workers as child processes, stopped together.
//!
//! [`binaries`] finds the programs, [`supervisor`] starts, watches and stops them, [`readiness`]
//! waits until the queen answers and the fleet is online, and [`output`] is everything `up`
//! tells the user.

mod binaries;
mod output;
mod readiness;
mod supervisor;

use std::net::TcpListener;

use anyhow::Context as _;
use reqwest::{Client, Url};
use shared_contract::Id;
use tokio::time::Instant;

use crate::{
    api::Queen,
    config::UpArgs,
    up::{
        binaries::Binaries,
        supervisor::{Fleet, Role},
    },
};

/// Starts the fleet, waits until it is online, and keeps it running until a signal arrives.
///
/// Whatever happens, every child is stopped before this returns; dropping a child kills it too,
/// so even a panic leaves no orphans behind, and a keeper killed outright closes the pipes on
/// its children's stdin, which tells them to stop.
pub(crate) async fn run(args: UpArgs, client: Client) -> anyhow::Result<()> {
    let bins = Binaries::locate(args.bin_dir.as_deref())?;
    // Fail before starting anything if the port is taken, rather than talking to someone else's queen.
    TcpListener::bind(("127.0.0.1", args.port)).with_context(|| {
        format!(
            "port {} on 127.0.0.1 is not free; choose another with --port",
            args.port
        )
    })?;
    let queen_url =
        Url::parse(&format!("http://127.0.0.1:{}", args.port)).context("build the queen url")?;
    let queen = Queen::from_parts(client, &queen_url, args.token.clone());

    let mut fleet = Fleet::new(args.token.clone());
    let result = tokio::select! {
        () = shutdown_signal() => Ok(()),
        result = start_and_supervise(&args, &bins, &queen, &mut fleet) => result,
    };
    output::stopping();
    let stopped = fleet.stop().await;
    fleet.close_output().await;
    match (&result, stopped) {
        (Ok(()), Ok(count)) => output::stopped(count),
        (Ok(()), Err(err)) => return Err(err),
        (Err(_), _) => {}
    }
    result
}

/// Waits for the shutdown signal every rbee program shares (see [`process_kit::shutdown_signal`]).
pub(crate) async fn shutdown_signal() {
    match process_kit::shutdown_signal() {
        Ok(signal) => {
            signal.await;
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for signals");
            std::future::pending::<()>().await;
        }
    }
}

/// The settings every child is started with, as flag values.
#[derive(Debug)]
pub(crate) struct Pace {
    /// The heartbeat interval.
    pub(crate) interval: String,
    /// How long without a heartbeat before an entry goes offline.
    pub(crate) timeout: String,
}

async fn start_and_supervise(
    args: &UpArgs,
    bins: &Binaries,
    queen: &Queen,
    fleet: &mut Fleet,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + args.startup_timeout;
    let pace = Pace {
        interval: humantime::format_duration(args.heartbeat_interval).to_string(),
        timeout: humantime::format_duration(
            args.heartbeat_timeout
                .unwrap_or(args.heartbeat_interval * 3),
        )
        .to_string(),
    };
    let hive_id = local_hive_id();

    let queen_addr = format!("127.0.0.1:{}", args.port);
    let mut queen_args = vec![
        "--bind".to_owned(),
        queen_addr.clone(),
        "--heartbeat-interval".to_owned(),
        pace.interval.clone(),
        "--heartbeat-timeout".to_owned(),
        pace.timeout.clone(),
    ];
    if args.ephemeral {
        queen_args.push("--ephemeral".to_owned());
    } else if let Some(dir) = &args.data_dir {
        queen_args.push("--data-dir".to_owned());
        queen_args.push(dir.display().to_string());
    }
    let queen_args: Vec<&str> = queen_args.iter().map(String::as_str).collect();
    fleet.spawn(Role::Queen, &queen_addr, &bins.queen, &queen_args)?;
    fleet
        .unless_one_exits(readiness::wait_for_queen(queen, deadline))
        .await?;

    let common = [
        "--queen-url",
        queen.base(),
        "--heartbeat-interval",
        &pace.interval,
        "--hive-id",
        &hive_id,
    ];
    fleet.spawn(
        Role::Hive,
        &hive_id,
        &bins.hive,
        &[&common[..], &["--bind", "127.0.0.1:0"]].concat(),
    )?;
    let worker_ids: Vec<String> = (1..=args.workers).map(|i| format!("worker-{i}")).collect();
    for id in &worker_ids {
        fleet.spawn(
            Role::Worker,
            id,
            &bins.worker,
            &[
                &common[..],
                &[
                    "--bind",
                    "127.0.0.1:0",
                    "--worker-id",
                    id,
                    "--model-id",
                    &args.model_id,
                    "--device",
                    "cpu",
                ],
            ]
            .concat(),
        )?;
    }
    fleet
        .unless_one_exits(readiness::wait_for_fleet(
            queen,
            &hive_id,
            &worker_ids,
            deadline,
        ))
        .await?;

    output::fleet_is_up(args, queen, &pace, fleet.members());
    fleet.supervise().await
}

/// Returns this machine's host name as a valid hive id, or `localhost`.
fn local_hive_id() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    Id::from_host_name(&host).to_string()
}
