//! Real etcd servers for tests: one member or a small cluster on free loopback ports, each with
//! its own temporary data directory, plus raw key access through etcd's JSON gateway.

mod gateway;

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    sync::{
        Once,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use nix::{errno::Errno, unistd::Pid};

use crate::{JsonClient, process::Daemon, wait::try_wait_until};

/// The environment variable that turns a missing `etcd` from a skip into a failure.
pub const REQUIRE_ETCD_ENV: &str = "RBEE_REQUIRE_ETCD";

/// How long members get to report healthy after a start or restart. Generous: a busy two-core
/// machine can take seconds to elect a leader, and waiting ends as soon as they are healthy.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times a start picks fresh ports after losing one to another process.
const START_ATTEMPTS: usize = 3;

/// Each cluster's directory under the temporary directory is named `<prefix><pid>-<n>`.
const DIR_PREFIX: &str = "rbee-test-etcd-";

/// A running etcd cluster of one or more members, each an `etcd` child process.
///
/// Members listen on `127.0.0.1` only, on ports that were free when the cluster started, and
/// keep their data in a temporary directory. Dropping the value kills every member (SIGKILL),
/// reaps it and removes the data.
///
/// Tests that need etcd start with [`Etcd::require`], which decides between running, skipping
/// and failing when the binary is missing.
#[derive(Debug)]
pub struct Etcd {
    program: PathBuf,
    token: String,
    root: PathBuf,
    members: Vec<Member>,
}

impl Etcd {
    /// Returns whether an `etcd` binary is on `PATH`.
    pub fn available() -> bool {
        etcd_program().is_some()
    }

    /// Decides whether a test that needs etcd runs, and returns `true` when it should.
    ///
    /// Without `etcd` on `PATH` it panics if `RBEE_REQUIRE_ETCD=1` is set (machines that must
    /// run these tests, such as CI), and otherwise prints a skip line naming the test to stderr
    /// and returns `false`, so the test returns early and passes:
    ///
    /// ```no_run
    /// # async fn test() {
    /// use test_support::Etcd;
    ///
    /// if !Etcd::require() {
    ///     return;
    /// }
    /// let etcd = Etcd::start_single().await;
    /// # }
    /// ```
    pub fn require() -> bool {
        if Self::available() {
            return true;
        }
        let test = std::thread::current()
            .name()
            .unwrap_or("this test")
            .to_owned();
        if std::env::var(REQUIRE_ETCD_ENV).is_ok_and(|v| v == "1") {
            panic!("{test} needs etcd but none is on PATH, and {REQUIRE_ETCD_ENV}=1 is set");
        }
        #[allow(
            clippy::print_stderr,
            reason = "the skip must show in the test's output"
        )]
        {
            eprintln!(
                "skipping {test}: etcd is not on PATH (set {REQUIRE_ETCD_ENV}=1 to fail instead)"
            );
        }
        false
    }

    /// Starts a one-member cluster and waits until it is healthy.
    pub async fn start_single() -> Etcd {
        Self::start_cluster(1).await
    }

    /// Starts a cluster of `members` members (three for tests that kill one and keep a quorum)
    /// and waits until every member is healthy.
    ///
    /// Panics, with the members' output, if `etcd` is not on `PATH` or the cluster does not
    /// become healthy in time.
    pub async fn start_cluster(members: usize) -> Etcd {
        assert!(members > 0, "an etcd cluster needs at least one member");
        let program = etcd_program().unwrap_or_else(|| {
            panic!(
                "etcd is not on PATH; install it (Debian: etcd-server) or guard the test with \
                 Etcd::require()"
            )
        });
        let all: Vec<usize> = (0..members).collect();
        for attempt in 1..=START_ATTEMPTS {
            let mut etcd = Self::configure(&program, members);
            for i in &all {
                etcd.spawn_member(*i);
            }
            match etcd.await_healthy(&all).await {
                Ok(()) => return etcd,
                // Another process took a port between picking it and etcd binding it.
                Err(Unhealthy::Exited(output))
                    if attempt < START_ATTEMPTS && output.contains("address already in use") => {}
                Err(unhealthy) => panic!("{}", etcd.describe(&unhealthy)),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Returns the members' client URLs, e.g. `http://127.0.0.1:40123`, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// Returns the client URLs joined with commas, the form `--etcd-endpoints` takes.
    pub fn endpoints_arg(&self) -> String {
        self.endpoints().join(",")
    }

    /// Returns the client URL of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        self.member(i).client_url()
    }

    /// Returns the pid of member `i`'s current process, or of its last one if it is stopped.
    pub fn member_pid(&self, i: usize) -> Pid {
        self.member(i).daemon().pid()
    }

    /// Returns everything member `i`'s current process has logged, for assertion messages.
    pub fn member_output(&self, i: usize) -> String {
        self.member(i).daemon().output()
    }

    /// Kills member `i` with SIGKILL and waits for it to exit; its data directory stays.
    ///
    /// It returns without waiting for the rest to recover: if `i` led the cluster, the others
    /// serve again only after an election (one to two seconds). The key helpers such as
    /// [`Etcd::put_on`] retry through it.
    pub async fn kill_member(&mut self, i: usize) {
        self.members
            .get_mut(i)
            .unwrap_or_else(|| panic!("no etcd member {i}"))
            .daemon_mut()
            .kill()
            .await;
    }

    /// Kills every member with SIGKILL and waits for each to exit; the data directories stay,
    /// so [`Etcd::restart_all`] brings the same cluster back.
    pub async fn stop_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill_member(i).await;
        }
    }

    /// Starts member `i` again on the same ports and data directory, killing it first if it is
    /// still running, and waits until it is healthy.
    ///
    /// etcd ignores the `--initial-cluster*` flags once a data directory holds a member, so the
    /// restarted process rejoins as the same member. A member is healthy only while the cluster
    /// has a quorum, so restarting one member of a cluster that has lost its quorum times out:
    /// use [`Etcd::restart_all`] there.
    pub async fn restart_member(&mut self, i: usize) {
        self.kill_member(i).await;
        self.spawn_member(i);
        if let Err(unhealthy) = self.await_healthy(&[i]).await {
            panic!("{}", self.describe(&unhealthy));
        }
    }

    /// Kills any member still running, starts every member again on its ports and data
    /// directory, and waits until all are healthy.
    pub async fn restart_all(&mut self) {
        self.stop_all().await;
        let all: Vec<usize> = (0..self.members.len()).collect();
        for i in &all {
            self.spawn_member(*i);
        }
        if let Err(unhealthy) = self.await_healthy(&all).await {
            panic!("{}", self.describe(&unhealthy));
        }
    }

    fn configure(program: &Path, members: usize) -> Etcd {
        static CLUSTERS: AtomicUsize = AtomicUsize::new(0);
        static SWEEP: Once = Once::new();
        SWEEP.call_once(remove_abandoned_dirs);
        let ports = free_ports(2 * members);
        let (token, root) = loop {
            let n = CLUSTERS.fetch_add(1, Ordering::Relaxed);
            let token = format!("{DIR_PREFIX}{}-{n}", std::process::id());
            let root = std::env::temp_dir().join(&token);
            // A directory left by an earlier process with the same pid is not ours to reuse.
            if std::fs::create_dir(&root).is_ok() {
                break (token, root);
            }
        };
        let members = (0..members)
            .map(|i| {
                let client_port = ports[2 * i];
                Member {
                    name: format!("m{i}"),
                    client_port,
                    peer_port: ports[2 * i + 1],
                    data_dir: root.join(format!("m{i}")),
                    client: JsonClient::new(format!("http://127.0.0.1:{client_port}")),
                    daemon: None,
                }
            })
            .collect();
        Etcd {
            program: program.to_path_buf(),
            token,
            root,
            members,
        }
    }

    fn spawn_member(&mut self, i: usize) {
        let initial_cluster = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let member = &self.members[i];
        let daemon = Daemon::builder_for(&self.program)
            .name(format!("etcd-{}", member.name))
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(&member.data_dir)
            .args(["--listen-client-urls", &member.client_url()])
            .args(["--advertise-client-urls", &member.client_url()])
            .args(["--listen-peer-urls", &member.peer_url()])
            .args(["--initial-advertise-peer-urls", &member.peer_url()])
            .args(["--initial-cluster", &initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.token])
            // Errors only, as plain lines on stderr: the test's log stays readable.
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .args(["--log-level", "error"])
            .spawn();
        self.members[i].daemon = Some(daemon);
    }

    /// Waits until every member in `which` answers `/health` with `{"health":"true"}`; etcd
    /// says so only while the cluster has a leader and a quorum.
    async fn await_healthy(&mut self, which: &[usize]) -> Result<(), Unhealthy> {
        let outcome = try_wait_until(HEALTHY_TIMEOUT, || {
            let exited = which.iter().find_map(|&i| {
                let member = &mut self.members[i];
                member.daemon_mut().try_exit_status().map(|status| {
                    format!(
                        "etcd member {} exited ({status}):\n{}",
                        member.name,
                        member.daemon().output()
                    )
                })
            });
            let clients: Vec<JsonClient> = which
                .iter()
                .map(|&i| self.members[i].client.clone())
                .collect();
            async move {
                if let Some(output) = exited {
                    return Some(Err(Unhealthy::Exited(output)));
                }
                for client in &clients {
                    let health = client.get_ok("/health").await?;
                    if health["health"] != "true" {
                        return None;
                    }
                }
                Some(Ok(()))
            }
        })
        .await;
        outcome.unwrap_or(Err(Unhealthy::TimedOut))
    }

    fn describe(&self, unhealthy: &Unhealthy) -> String {
        match unhealthy {
            Unhealthy::Exited(output) => output.clone(),
            Unhealthy::TimedOut => {
                let mut text = format!("etcd not healthy within {HEALTHY_TIMEOUT:?}");
                for member in &self.members {
                    text.push_str(&format!(
                        "\n--- member {} ({}):\n{}",
                        member.name,
                        member.client_url(),
                        member.daemon().output()
                    ));
                }
                text
            }
        }
    }

    fn member(&self, i: usize) -> &Member {
        self.members
            .get(i)
            .unwrap_or_else(|| panic!("no etcd member {i}"))
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // Daemons are killed and reaped when dropped, before their data goes.
        self.members.clear();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    client: JsonClient,
    /// The member's current or last process; `None` only before the cluster's first start.
    daemon: Option<Daemon>,
}

impl Member {
    fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    fn daemon(&self) -> &Daemon {
        self.daemon
            .as_ref()
            .expect("every member is spawned when its cluster starts")
    }

    fn daemon_mut(&mut self) -> &mut Daemon {
        self.daemon
            .as_mut()
            .expect("every member is spawned when its cluster starts")
    }
}

/// Why members did not become healthy.
#[derive(Debug)]
enum Unhealthy {
    /// A member's process ended; carries its name, status and output.
    Exited(String),
    TimedOut,
}

/// Returns `n` distinct loopback ports that were free a moment ago. All listeners are held until
/// every port is picked, so the kernel cannot hand out the same port twice.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .expect("a bound listener has an address")
                .port()
        })
        .collect()
}

/// Removes the data of clusters whose test process is gone without dropping them (killed, or
/// ended by `process::exit`): over 100 MB a member, since etcd preallocates its log.
fn remove_abandoned_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let owner = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<i32>().ok());
        // ESRCH: no such process. Any other answer, a denial included, means it may be alive.
        if let Some(pid) = owner
            && nix::sys::signal::kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH)
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn etcd_program() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .find(|p| p.is_file())
}
