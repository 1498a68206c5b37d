//! `rbee-keeper up`: a queen (or a cluster of queens on etcd), one hive and N workers as child
//! processes, stopped together.
//!
//! [`binaries`] finds the programs, [`etcd`] prepares the etcd a cluster runs on when the user
//! names none, [`supervisor`] starts, watches and stops them, [`readiness`] waits until etcd and
//! the queens answer, a leader is elected and the fleet is online, and [`output`] is everything
//! `up` tells the user.

mod binaries;
mod etcd;
mod output;
mod readiness;
mod supervisor;

use std::{net::TcpListener, ops::RangeInclusive};

use anyhow::Context as _;
use reqwest::{Client, Url};
use shared_contract::Id;
use tokio::time::Instant;

use crate::{
    api::Queen,
    config::UpArgs,
    up::{
        binaries::Binaries,
        etcd::LocalEtcd,
        supervisor::{Fleet, Role},
    },
};

/// Starts the fleet, waits until it is online, and keeps it running until a signal arrives.
///
/// Whatever happens, every child is stopped before this returns; dropping a child kills it too,
/// so even a panic leaves no orphans behind, and a keeper killed outright closes the pipes on
/// its children's stdin, which tells them to stop (etcd through its guard, see
/// [`crate::guard`]).
pub(crate) async fn run(args: UpArgs, client: Client) -> anyhow::Result<()> {
    let bins = Binaries::locate(args.bin_dir.as_deref())?;
    let ports = queen_ports(&args)?;
    let local_etcd = if args.clustered() && args.etcd_endpoints.is_empty() {
        Some(LocalEtcd::prepare(args.data_dir.as_deref(), ports.clone())?)
    } else {
        None
    };
    // Fail before starting anything if a port is taken, rather than talking to someone else's queen.
    for port in ports.clone() {
        TcpListener::bind(("127.0.0.1", port)).with_context(|| {
            format!("port {port} on 127.0.0.1 is not free; choose another with --port")
        })?;
    }
    let queens = ports
        .map(|port| {
            let url =
                Url::parse(&format!("http://127.0.0.1:{port}")).context("build the queen url")?;
            Ok(Queen::from_parts(client.clone(), &url, args.token.clone()))
        })
        .collect::<anyhow::Result<Vec<Queen>>>()?;

    let mut fleet = Fleet::new(args.token.clone());
    let start = Start {
        args: &args,
        bins: &bins,
        client: &client,
        queens: &queens,
        local_etcd: local_etcd.as_ref(),
    };
    let result = tokio::select! {
        () = shutdown_signal() => Ok(()),
        result = start.and_supervise(&mut fleet) => result,
    };
    output::stopping();
    let stopped = fleet.stop().await;
    fleet.close_output().await;
    // Only now, with etcd stopped, may its temporary data directory go.
    drop(local_etcd);
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

/// What a cluster of queens runs on, as the banner tells it.
#[derive(Debug)]
pub(crate) struct ClusterSetup {
    /// The leader's URL once the queens agreed.
    pub(crate) leader: String,
    /// etcd's URLs, and who started it.
    pub(crate) etcd: String,
    /// The leader's lease.
    pub(crate) lease: String,
}

/// Everything the start needs, borrowed from `run`.
#[derive(Debug)]
struct Start<'a> {
    args: &'a UpArgs,
    bins: &'a Binaries,
    client: &'a Client,
    queens: &'a [Queen],
    local_etcd: Option<&'a LocalEtcd>,
}

impl Start<'_> {
    async fn and_supervise(&self, fleet: &mut Fleet) -> anyhow::Result<()> {
        let args = self.args;
        let deadline = Instant::now() + args.startup_timeout;
        let pace = Pace {
            interval: humantime::format_duration(args.heartbeat_interval).to_string(),
            timeout: humantime::format_duration(
                args.heartbeat_timeout
                    .unwrap_or(args.heartbeat_interval * 3),
            )
            .to_string(),
        };
        let endpoints = match self.local_etcd {
            Some(etcd) => self.start_etcd(etcd, fleet, deadline).await?,
            None => args.etcd_endpoints.join(","),
        };
        for queen in self.queens {
            let queen_args = self.queen_args(queen, &pace, &endpoints);
            let queen_args: Vec<&str> = queen_args.iter().map(String::as_str).collect();
            fleet.spawn(Role::Queen, &addr_of(queen), &self.bins.queen, &queen_args)?;
        }
        for queen in self.queens {
            fleet
                .unless_one_exits(readiness::wait_for_queen(queen, deadline))
                .await?;
        }
        let (leader, cluster) = if args.clustered() {
            let (leader, setup) = self.elect(fleet, &endpoints, deadline).await?;
            (leader, Some(setup))
        } else {
            (self.queens[0].clone(), None)
        };
        let hive_id = local_hive_id();
        let worker_ids = self.start_senders(fleet, &pace, &hive_id)?;
        fleet
            .unless_one_exits(readiness::wait_for_fleet(
                &leader,
                &hive_id,
                &worker_ids,
                deadline,
            ))
            .await?;

        output::fleet_is_up(args, self.queens, cluster.as_ref(), &pace, fleet.members());
        fleet.supervise().await
    }

    /// Starts etcd under this keeper's guard and waits until it answers; returns its URL.
    async fn start_etcd(
        &self,
        etcd: &LocalEtcd,
        fleet: &mut Fleet,
        deadline: Instant,
    ) -> anyhow::Result<String> {
        let keeper = std::env::current_exe().context("find the path of rbee-keeper")?;
        let guard_args = etcd.guard_args();
        let guard_args: Vec<&str> = guard_args.iter().map(String::as_str).collect();
        fleet.spawn(Role::Etcd, "etcd", &keeper, &guard_args)?;
        let url = etcd.client_url();
        fleet
            .unless_one_exits(readiness::wait_for_etcd(self.client, &url, deadline))
            .await?;
        Ok(url)
    }

    /// Waits until the queens agree on a leader; returns it and what the banner tells.
    async fn elect(
        &self,
        fleet: &mut Fleet,
        endpoints: &str,
        deadline: Instant,
    ) -> anyhow::Result<(Queen, ClusterSetup)> {
        let url = fleet
            .unless_one_exits(readiness::wait_for_leader(self.queens, deadline))
            .await?;
        let ours = self
            .queens
            .iter()
            .find(|q| q.base() == url.trim_end_matches('/'));
        let leader = match ours {
            Some(queen) => queen.clone(),
            // A queen of the same cluster that this keeper did not start.
            None => Queen::from_parts(
                self.client.clone(),
                &Url::parse(&url).with_context(|| format!("the leader's url {url:?}"))?,
                self.args.token.clone(),
            ),
        };
        let etcd = match self.local_etcd {
            Some(etcd) => format!(
                "{endpoints} (started by rbee-keeper, {})",
                etcd.describe_data()
            ),
            None => endpoints.to_owned(),
        };
        let setup = ClusterSetup {
            leader: url,
            etcd,
            lease: humantime::format_duration(self.args.leader_lease).to_string(),
        };
        Ok((leader, setup))
    }

    /// Starts the hive and the workers, pointed at every queen; returns the workers' ids.
    fn start_senders(
        &self,
        fleet: &mut Fleet,
        pace: &Pace,
        hive_id: &str,
    ) -> anyhow::Result<Vec<String>> {
        let queen_urls: Vec<&str> = self.queens.iter().map(Queen::base).collect();
        let queen_urls = queen_urls.join(",");
        let common = [
            "--queen-url",
            &queen_urls,
            "--heartbeat-interval",
            &pace.interval,
            "--hive-id",
            hive_id,
        ];
        fleet.spawn(
            Role::Hive,
            hive_id,
            &self.bins.hive,
            &[&common[..], &["--bind", "127.0.0.1:0"]].concat(),
        )?;
        let worker_ids: Vec<String> = (1..=self.args.workers)
            .map(|i| format!("worker-{i}"))
            .collect();
        for id in &worker_ids {
            fleet.spawn(
                Role::Worker,
                id,
                &self.bins.worker,
                &[
                    &common[..],
                    &[
                        "--bind",
                        "127.0.0.1:0",
                        "--worker-id",
                        id,
                        "--model-id",
                        &self.args.model_id,
                        "--device",
                        "cpu",
                    ],
                ]
                .concat(),
            )?;
        }
        Ok(worker_ids)
    }

    /// The command line of one queen.
    fn queen_args(&self, queen: &Queen, pace: &Pace, endpoints: &str) -> Vec<String> {
        let args = self.args;
        let mut out = vec![
            "--bind".to_owned(),
            addr_of(queen),
            "--heartbeat-interval".to_owned(),
            pace.interval.clone(),
            "--heartbeat-timeout".to_owned(),
            pace.timeout.clone(),
        ];
        if args.clustered() {
            out.extend([
                "--etcd-endpoints".to_owned(),
                endpoints.to_owned(),
                "--leader-lease".to_owned(),
                humantime::format_duration(args.leader_lease).to_string(),
            ]);
            if let Some(name) = &args.cluster_name {
                out.extend(["--cluster-name".to_owned(), name.clone()]);
            }
        } else if args.ephemeral {
            out.push("--ephemeral".to_owned());
        } else if let Some(dir) = &args.data_dir {
            out.push("--data-dir".to_owned());
            out.push(dir.display().to_string());
        }
        out
    }
}

/// The queens' ports: `--port` and the ones after it.
fn queen_ports(args: &UpArgs) -> anyhow::Result<RangeInclusive<u16>> {
    let last = args.port.checked_add(args.queens - 1).with_context(|| {
        format!(
            "{} queens from port {} run past port 65535; choose a lower --port",
            args.queens, args.port
        )
    })?;
    Ok(args.port..=last)
}

/// `127.0.0.1:8500` of `http://127.0.0.1:8500`: how `up` names a queen.
fn addr_of(queen: &Queen) -> String {
    queen.base().trim_start_matches("http://").to_owned()
}

/// Returns this machine's host name as a valid hive id, or `localhost`.
fn local_hive_id() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    Id::from_host_name(&host).to_string()
}
