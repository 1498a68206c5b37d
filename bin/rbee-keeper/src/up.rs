//! `rbee-keeper up`: a queen, one hive and N workers as child processes, stopped together.

use std::{
    collections::BTreeSet,
    ffi::OsString,
    io::Write as _,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::Duration,
};

use anyhow::Context as _;
use hive_contract::HiveInfo;
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use reqwest::{Client, Url};
use shared_contract::Entry;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncRead, BufReader},
    process::{Child, Command},
    time::Instant,
};
use tokio_util::task::TaskTracker;
use worker_contract::WorkerInfo;

use crate::{api::Queen, config::UpArgs};

/// How long senders get to send their final heartbeat and exit (they promise 2 s).
const SENDER_GRACE: Duration = Duration::from_secs(4);
/// How long the queen gets to drain and exit.
const QUEEN_GRACE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(100);

/// Starts the fleet, waits until it is online, and keeps it running until a signal arrives.
///
/// Whatever happens, every child is stopped before this returns; dropping a child kills it too,
/// so even a panic leaves no orphans behind.
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

    let tracker = TaskTracker::new();
    let mut fleet = Fleet {
        procs: Vec::new(),
        tracker: tracker.clone(),
        token: args.token.clone(),
    };
    let result = tokio::select! {
        () = shutdown_signal() => Ok(()),
        result = start_and_supervise(&args, &bins, &queen, &mut fleet) => result,
    };
    say!("stopping the fleet...");
    let stopped = fleet.stop().await;
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(2), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("child output did not close in time");
    }
    match (&result, stopped) {
        (Ok(()), Ok(count)) => say!("stopped {count} processes"),
        (Ok(()), Err(err)) => return Err(err),
        (Err(_), _) => {}
    }
    result
}

async fn start_and_supervise(
    args: &UpArgs,
    bins: &Binaries,
    queen: &Queen,
    fleet: &mut Fleet,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + args.startup_timeout;
    let interval = humantime::format_duration(args.heartbeat_interval).to_string();
    let timeout = args
        .heartbeat_timeout
        .unwrap_or(args.heartbeat_interval * 3);
    let timeout_text = humantime::format_duration(timeout).to_string();
    let hive_id = local_hive_id();

    let queen_addr = format!("127.0.0.1:{}", args.port);
    fleet.spawn(
        Role::Queen,
        &queen_addr,
        &bins.queen,
        &[
            "--bind",
            &queen_addr,
            "--heartbeat-interval",
            &interval,
            "--heartbeat-timeout",
            &timeout_text,
        ],
    )?;
    wait_for_queen(queen, fleet, deadline).await?;

    let common = [
        "--queen-url",
        queen.base(),
        "--heartbeat-interval",
        &interval,
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
    wait_for_fleet(queen, fleet, &hive_id, &worker_ids, deadline).await?;

    say!(
        "rbee fleet is up: 1 queen, 1 hive, {} workers (heartbeat every {interval}, offline after {timeout_text})",
        args.workers
    );
    say!();
    say!("  dashboard  {}/", queen.base());
    if args.token.is_some() {
        say!("             (append #token=<your token> to open it)");
    }
    say!(
        "  status     rbee-keeper status --queen-url {}",
        queen.base()
    );
    say!(
        "  watch      rbee-keeper watch --queen-url {}",
        queen.base()
    );
    say!();
    for p in &fleet.procs {
        say!("  {:<11} {:<14} pid {}", p.role.program(), p.name, p.pid);
    }
    say!();
    say!("Press Ctrl-C to stop them all.");

    fleet.supervise().await
}

/// Waits for SIGINT (Ctrl-C), SIGTERM or SIGHUP (the terminal closed).
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};

    async fn recv(kind: SignalKind) {
        match signal(kind) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for a signal");
                std::future::pending::<()>().await;
            }
        }
    }
    tokio::select! {
        () = recv(SignalKind::interrupt()) => {}
        () = recv(SignalKind::terminate()) => {}
        () = recv(SignalKind::hangup()) => {}
    }
}

/// The daemon executables, found next to this program unless told otherwise.
#[derive(Debug)]
struct Binaries {
    queen: PathBuf,
    hive: PathBuf,
    worker: PathBuf,
}

impl Binaries {
    fn locate(dir: Option<&Path>) -> anyhow::Result<Self> {
        let dir = match dir {
            Some(dir) => dir.to_path_buf(),
            None => std::env::current_exe()
                .context("find the path of rbee-keeper")?
                .parent()
                .context("rbee-keeper has no parent directory")?
                .to_path_buf(),
        };
        let find = |name: &str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(anyhow::anyhow!(
                    "cannot find {name} in {}; build every program with `cargo build --workspace --bins` \
                     (or point --bin-dir at them)",
                    dir.display()
                ))
            }
        };
        Ok(Self {
            queen: find("queen-rbee")?,
            hive: find("rbee-hive")?,
            worker: find("llm-worker")?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Queen,
    Hive,
    Worker,
}

impl Role {
    fn program(self) -> &'static str {
        match self {
            Role::Queen => "queen-rbee",
            Role::Hive => "rbee-hive",
            Role::Worker => "llm-worker",
        }
    }
}

#[derive(Debug)]
struct Proc {
    role: Role,
    name: String,
    pid: u32,
    child: Child,
    exited: Option<ExitStatus>,
}

/// The children this keeper started.
#[derive(Debug)]
struct Fleet {
    procs: Vec<Proc>,
    tracker: TaskTracker,
    token: Option<String>,
}

impl Fleet {
    fn spawn(&mut self, role: Role, name: &str, path: &Path, args: &[&str]) -> anyhow::Result<()> {
        let mut cmd = Command::new(path);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a terminal's Ctrl-C reaches only the keeper, which then
            // stops the senders before the queen and every final heartbeat still finds it.
            .process_group(0)
            .kill_on_drop(true);
        // Children get their configuration from flags only, so that RBEE_* variables meant for
        // the keeper (RBEE_PORT, RBEE_WORKERS, ...) cannot change how a daemon behaves.
        let inherited: Vec<OsString> = std::env::vars_os()
            .map(|(key, _)| key)
            .filter(|key| key.to_string_lossy().starts_with("RBEE_"))
            .collect();
        for key in inherited {
            cmd.env_remove(key);
        }
        // The token travels in the environment, not on the command line where `ps` shows it.
        if let Some(token) = &self.token {
            cmd.env("RBEE_TOKEN", token);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("start {}", path.display()))?;
        let pid = child.id().context("a freshly spawned child has no pid")?;
        if let Some(out) = child.stdout.take() {
            self.tracker.spawn(forward(name.to_owned(), out));
        }
        if let Some(err) = child.stderr.take() {
            self.tracker.spawn(forward(name.to_owned(), err));
        }
        self.procs.push(Proc {
            role,
            name: name.to_owned(),
            pid,
            child,
            exited: None,
        });
        Ok(())
    }

    /// Fails if a child has exited; startup cannot succeed without all of them.
    fn check_all_running(&mut self) -> anyhow::Result<()> {
        for p in &mut self.procs {
            if let Some(status) = p.child.try_wait().context("check a child process")? {
                p.exited = Some(status);
                anyhow::bail!(
                    "{} ({}) exited during startup with {status}; its log is above",
                    p.role.program(),
                    p.name
                );
            }
        }
        Ok(())
    }

    /// Watches the children until the queen dies; a lost hive or worker is reported and left
    /// down, which is exactly what the dashboard is for.
    async fn supervise(&mut self) -> anyhow::Result<()> {
        loop {
            for p in &mut self.procs {
                if p.exited.is_some() {
                    continue;
                }
                if let Some(status) = p.child.try_wait().context("check a child process")? {
                    p.exited = Some(status);
                    if p.role == Role::Queen {
                        anyhow::bail!("queen-rbee exited unexpectedly with {status}");
                    }
                    say!("{} ({}) exited with {status}", p.role.program(), p.name);
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Stops senders first so their final heartbeats reach the queen, then the queen.
    /// Returns how many processes were stopped; errs if any needed SIGKILL.
    async fn stop(&mut self) -> anyhow::Result<usize> {
        let senders = self.stop_role(|r| r != Role::Queen, SENDER_GRACE).await;
        let queen = self.stop_role(|r| r == Role::Queen, QUEEN_GRACE).await;
        let killed: Vec<String> = senders.into_iter().chain(queen).collect();
        if killed.is_empty() {
            Ok(self.procs.len())
        } else {
            anyhow::bail!(
                "had to kill {} after they ignored SIGTERM",
                killed.join(", ")
            )
        }
    }

    async fn stop_role(&mut self, which: impl Fn(Role) -> bool, grace: Duration) -> Vec<String> {
        let targets: Vec<&mut Proc> = self
            .procs
            .iter_mut()
            .filter(|p| which(p.role) && p.exited.is_none())
            .collect();
        for p in &targets {
            if let Ok(pid) = i32::try_from(p.pid) {
                // ESRCH only means it already exited; waiting below reaps it either way.
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + grace;
        let mut killed = Vec::new();
        for p in targets {
            match tokio::time::timeout_at(deadline, p.child.wait()).await {
                Ok(Ok(status)) => p.exited = Some(status),
                Ok(Err(err)) => {
                    tracing::warn!(name = %p.name, error = %err, "cannot wait for a child");
                }
                Err(_) => {
                    let _ = p.child.kill().await;
                    p.exited = p.child.try_wait().ok().flatten();
                    killed.push(format!("{} ({})", p.role.program(), p.name));
                }
            }
        }
        killed
    }
}

/// Copies a child's output to the keeper's stderr, each line tagged with the child's name, so
/// stdout stays free for what the keeper itself reports.
///
/// It reads until the child closes its end, whatever the bytes are and whether or not our own
/// stderr still works: a child whose log pipe breaks may fail to log, and some loggers panic
/// when that happens.
async fn forward(name: String, stream: impl AsyncRead + Unpin) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "[{name}] {}", line.trim_end_matches(['\n', '\r']));
            }
        }
    }
}

async fn wait_for_queen(queen: &Queen, fleet: &mut Fleet, deadline: Instant) -> anyhow::Result<()> {
    loop {
        fleet.check_all_running()?;
        let ok = queen
            .get("/health")
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("queen-rbee did not answer on {} in time", queen.base());
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn wait_for_fleet(
    queen: &Queen,
    fleet: &mut Fleet,
    hive_id: &str,
    worker_ids: &[String],
    deadline: Instant,
) -> anyhow::Result<()> {
    let mut missing: Vec<String>;
    loop {
        fleet.check_all_running()?;
        let workers: Vec<Entry<WorkerInfo>> = online(queen, "/v1/workers?state=online").await;
        let hives: Vec<Entry<HiveInfo>> = online(queen, "/v1/hives?state=online").await;
        let seen: BTreeSet<&str> = workers
            .iter()
            .map(|e| e.payload.id.as_str())
            .chain(hives.iter().map(|e| e.payload.id.as_str()))
            .collect();
        missing = std::iter::once(hive_id)
            .chain(worker_ids.iter().map(String::as_str))
            .filter(|id| !seen.contains(id))
            .map(str::to_owned)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "not online within the startup timeout: {}",
                missing.join(", ")
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Lists entries, treating any failure as "none yet": the caller retries until its deadline.
async fn online<T: serde::de::DeserializeOwned>(queen: &Queen, path: &str) -> Vec<T> {
    match queen.get_json(path).await {
        Ok(value) => serde_json::from_value(value).unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// Returns this machine's host name as a valid hive id, or `localhost`.
fn local_hive_id() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    sanitize_id(&host)
}

fn sanitize_id(raw: &str) -> String {
    let id: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect();
    if shared_contract::check_id("hive.id", &id).is_ok() {
        id
    } else {
        "localhost".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_become_valid_ids() {
        assert_eq!(sanitize_id("studio.lan"), "studio.lan");
        assert_eq!(sanitize_id("my host"), "my-host");
        assert_eq!(sanitize_id(""), "localhost");
    }

    #[test]
    fn missing_binaries_are_named() {
        let dir = std::env::temp_dir().join("rbee-keeper-no-binaries-here");
        let err = Binaries::locate(Some(&dir)).unwrap_err().to_string();
        assert!(err.contains("queen-rbee"), "{err}");
        assert!(err.contains("cargo build --workspace --bins"), "{err}");
    }
}
