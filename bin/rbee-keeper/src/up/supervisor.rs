//! The children `up` started: spawning each with its output forwarded and a pipe on its stdin,
//! waiting on their exits, and stopping them in order (senders first, then the queens, then
//! etcd).

use std::{
    future::Future,
    io::Write as _,
    path::Path,
    process::{ExitStatus, Stdio},
    time::Duration,
};

use anyhow::Context as _;
use futures_util::future::select_all;
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncRead, BufReader},
    process::{Child, ChildStdin, Command},
    time::Instant,
};
use tokio_util::task::TaskTracker;

use crate::up::output;

/// How long senders get to send their final heartbeat and exit (they promise 2 s).
const SENDER_GRACE: Duration = Duration::from_secs(4);
/// How long the queen gets to drain and exit.
const QUEEN_GRACE: Duration = Duration::from_secs(5);
/// How long etcd (its guard, which passes SIGTERM on) gets to exit.
const ETCD_GRACE: Duration = Duration::from_secs(6);
/// How long the children's output may take to close once they stopped.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// What a child is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The etcd the queens of a cluster share, run by `rbee-keeper guard`.
    Etcd,
    Queen,
    Hive,
    Worker,
}

impl Role {
    fn program(self) -> &'static str {
        match self {
            Role::Etcd => "etcd",
            Role::Queen => "queen-rbee",
            Role::Hive => "rbee-hive",
            Role::Worker => "llm-worker",
        }
    }

    fn sends(self) -> bool {
        matches!(self, Role::Hive | Role::Worker)
    }
}

/// A child as the user sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member<'a> {
    pub(crate) program: &'static str,
    pub(crate) name: &'a str,
    pub(crate) pid: u32,
}

#[derive(Debug)]
struct Proc {
    role: Role,
    name: String,
    pid: u32,
    child: Child,
    /// Held open for the child's lifetime: when this process dies, however it dies, the kernel
    /// closes it and the child reads end of file, its signal to stop.
    _stdin: Option<ChildStdin>,
    exited: Option<ExitStatus>,
}

/// The children this keeper started.
#[derive(Debug)]
pub(crate) struct Fleet {
    procs: Vec<Proc>,
    output: TaskTracker,
    token: Option<String>,
}

impl Fleet {
    /// A fleet with no children yet; `token` is handed to each child it starts.
    pub(crate) fn new(token: Option<String>) -> Self {
        Self {
            procs: Vec::new(),
            output: TaskTracker::new(),
            token,
        }
    }

    /// Starts `path args..` as a child named `name`.
    pub(crate) fn spawn(
        &mut self,
        role: Role,
        name: &str,
        path: &Path,
        args: &[&str],
    ) -> anyhow::Result<()> {
        let mut cmd = Command::new(path);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a terminal's Ctrl-C reaches only the keeper, which then
            // stops the senders before the queen and every final heartbeat still finds it.
            .process_group(0)
            .kill_on_drop(true);
        // Children get their configuration from flags only, so that RBEE_* variables meant for
        // the keeper (RBEE_PORT, RBEE_WORKERS, ...) cannot change how a daemon behaves.
        process_kit::scrub_rbee_env(cmd.as_std_mut());
        if role == Role::Etcd {
            // etcd refuses to start when an ETCD_* variable shadows a flag it is given, and
            // obeys the others: it runs on its flags alone.
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("ETCD_") {
                    cmd.env_remove(key);
                }
            }
        }
        cmd.env(process_kit::EXIT_ON_STDIN_EOF_ENV, "1");
        // The token travels in the environment, not on the command line where `ps` shows it.
        if let Some(token) = &self.token {
            cmd.env("RBEE_TOKEN", token);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("start {}", path.display()))?;
        let pid = child.id().context("a freshly spawned child has no pid")?;
        if let Some(out) = child.stdout.take() {
            self.output.spawn(forward(name.to_owned(), out));
        }
        if let Some(err) = child.stderr.take() {
            self.output.spawn(forward(name.to_owned(), err));
        }
        let stdin = child.stdin.take();
        self.procs.push(Proc {
            role,
            name: name.to_owned(),
            pid,
            child,
            _stdin: stdin,
            exited: None,
        });
        Ok(())
    }

    /// Returns the children in the order they were started.
    pub(crate) fn members(&self) -> impl Iterator<Item = Member<'_>> {
        self.procs.iter().map(|p| Member {
            program: p.role.program(),
            name: &p.name,
            pid: p.pid,
        })
    }

    /// Runs `step` unless a child exits first; startup cannot succeed without all of them.
    pub(crate) async fn unless_one_exits<T>(
        &mut self,
        step: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        tokio::select! {
            result = step => result,
            exit = self.next_exit() => {
                let (role, name, status) = exit?;
                anyhow::bail!(
                    "{} ({name}) exited during startup with {status}; its log is above",
                    role.program()
                )
            }
        }
    }

    /// Watches the children until the last queen or etcd dies; a lost hive or worker is
    /// reported and left down, which is exactly what the dashboard is for, and so is a lost
    /// queen of a cluster while another one runs: the others elect a new leader.
    pub(crate) async fn supervise(&mut self) -> anyhow::Result<()> {
        loop {
            let (role, name, status) = self.next_exit().await?;
            match role {
                Role::Etcd => anyhow::bail!(
                    "etcd exited unexpectedly with {status}; the queens cannot go on without it"
                ),
                Role::Queen => {
                    let left = self.running(Role::Queen);
                    if left == 0 {
                        anyhow::bail!("queen-rbee exited unexpectedly with {status}");
                    }
                    output::queen_exited(&name, status, left);
                }
                Role::Hive | Role::Worker => output::member_exited(role.program(), &name, status),
            }
        }
    }

    /// Stops senders first so their final heartbeats reach a queen, then the queens, then the
    /// etcd they write to. Returns how many processes were stopped (not counting those that
    /// had exited before); errs if any needed SIGKILL.
    pub(crate) async fn stop(&mut self) -> anyhow::Result<usize> {
        let running = self.procs.iter().filter(|p| p.exited.is_none()).count();
        let senders = self.stop_role(Role::sends, SENDER_GRACE).await;
        let queens = self.stop_role(|r| r == Role::Queen, QUEEN_GRACE).await;
        let etcd = self.stop_role(|r| r == Role::Etcd, ETCD_GRACE).await;
        let killed: Vec<String> = senders.into_iter().chain(queens).chain(etcd).collect();
        if killed.is_empty() {
            Ok(running)
        } else {
            anyhow::bail!(
                "had to kill {} after they ignored SIGTERM",
                killed.join(", ")
            )
        }
    }

    /// Returns how many children of `role` still run.
    fn running(&self, role: Role) -> usize {
        self.procs
            .iter()
            .filter(|p| p.role == role && p.exited.is_none())
            .count()
    }

    /// Waits, for a bounded time, until every child's output has been forwarded.
    pub(crate) async fn close_output(&self) {
        self.output.close();
        if tokio::time::timeout(OUTPUT_GRACE, self.output.wait())
            .await
            .is_err()
        {
            tracing::warn!("child output did not close in time");
        }
    }

    /// Completes when the next running child exits, with its role, name and status; never
    /// completes if none is running. Cancel-safe: waiting on a child can be dropped and resumed.
    async fn next_exit(&mut self) -> anyhow::Result<(Role, String, ExitStatus)> {
        let waits: Vec<_> = self
            .procs
            .iter_mut()
            .filter(|p| p.exited.is_none())
            .map(|p| {
                Box::pin(async move {
                    let status = p.child.wait().await;
                    (p, status)
                })
            })
            .collect();
        if waits.is_empty() {
            return std::future::pending().await;
        }
        let ((p, status), _, _) = select_all(waits).await;
        let status = status.context("wait for a child process")?;
        p.exited = Some(status);
        Ok((p.role, p.name.clone(), status))
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
