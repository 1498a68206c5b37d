//! A single-member etcd for the cluster scenarios: started on free loopback ports with a data
//! directory of its own, pinned like every server, and killed (its directory removed) at the end.

use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::Context as _;
use tokio::{process::Child, time::Instant};

use crate::{
    http,
    process::{ProcStats, log_tail, pinned_command},
};

/// How long etcd may take to answer `/health`.
const STARTUP_LIMIT: Duration = Duration::from_secs(20);
/// Starts tried before giving up: a port picked free can be taken by someone else before etcd
/// binds it.
const ATTEMPTS: u32 = 3;

/// A running etcd, killed when dropped.
#[derive(Debug)]
pub struct Etcd {
    // Declared before `dir`, so that the process is killed before its directory is removed.
    child: Child,
    /// The process id.
    pub pid: u32,
    /// Its client address.
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts `program` (Debian's `etcd` 3.4 or later) pinned to `cpu`, and waits until its
    /// `/health` answers `{"health":"true"}`.
    pub async fn start(program: &Path, cpu: Option<usize>) -> anyhow::Result<Self> {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            match Self::try_start(program, cpu).await {
                Ok(etcd) => return Ok(etcd),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("etcd did not start")))
    }

    /// The URL the queens take in `--etcd-endpoints`.
    pub fn client_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Returns the process's current resource use.
    pub fn stats(&self) -> anyhow::Result<ProcStats> {
        crate::process::proc_stats(self.pid)
    }

    /// Returns the bytes under its data directory.
    pub fn data_bytes(&self) -> u64 {
        dir_bytes(self.dir.path())
    }

    /// Kills etcd, waits for it, and removes its data directory.
    pub async fn stop(mut self) {
        // Already exited is fine: either way it is gone afterwards.
        let _ = self.child.kill().await;
    }

    async fn try_start(program: &Path, cpu: Option<usize>) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("rbee-bench-etcd-")
            .tempdir()
            .context("create etcd's data directory")?;
        let [client, peer] = free_ports()?;
        let log_path = dir.path().join("etcd.log");
        let out = std::fs::File::create(&log_path)
            .with_context(|| format!("create {}", log_path.display()))?;
        let err = out.try_clone().context("clone log file handle")?;
        let client_url = format!("http://{client}");
        let peer_url = format!("http://{peer}");
        let mut cmd = pinned_command(program, cpu);
        cmd.arg("--name")
            .arg("b0")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("b0={peer_url}"))
            .arg("--log-level")
            .arg("error")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        let child = cmd.spawn().with_context(|| {
            format!(
                "start {} (Debian: apt-get install etcd-server)",
                program.display()
            )
        })?;
        let pid = child.id().context("etcd has no pid")?;
        let mut etcd = Self {
            child,
            pid,
            addr: client,
            dir,
        };
        etcd.wait_healthy(&log_path).await?;
        Ok(etcd)
    }

    async fn wait_healthy(&mut self, log: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + STARTUP_LIMIT;
        loop {
            if let Ok((200, body)) = http::get(self.addr, "/health").await
                && memchr::memmem::find(&body, br#""health":"true""#).is_some()
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait().context("poll etcd")? {
                anyhow::bail!("etcd exited with {status}:\n{}", log_tail(log));
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "etcd was not healthy within {STARTUP_LIMIT:?}:\n{}",
                    log_tail(log)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Two loopback ports free right now (held together, so they differ).
fn free_ports() -> anyhow::Result<[SocketAddr; 2]> {
    let a = TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    let b = TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok([a.local_addr()?, b.local_addr()?])
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// The etcd binary: `--etcd-bin`, or `etcd` on the `PATH`.
pub fn binary(given: Option<&Path>) -> PathBuf {
    given.map_or_else(|| PathBuf::from("etcd"), Path::to_path_buf)
}
