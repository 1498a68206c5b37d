//! Child servers (the queen, the ceiling server): spawning, finding their port, and reading their
//! resource use from `/proc`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::Context as _;
use tokio::{
    process::{Child, Command},
    time::Instant,
};

/// How long a child may take to log its address.
const STARTUP_LIMIT: Duration = Duration::from_secs(20);
/// The Linux `USER_HZ`, in which `/proc/PID/stat` counts CPU time; fixed at 100 by the kernel ABI.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// A running child server, killed when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// The child's process id.
    pub pid: u32,
    /// The address it listens on.
    pub addr: SocketAddr,
    log: PathBuf,
}

/// Resource use of a process, from `/proc`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcStats {
    /// Resident set size now, in bytes.
    pub rss_bytes: u64,
    /// Peak resident set size, in bytes.
    pub hwm_bytes: u64,
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: f64,
}

impl Server {
    /// Starts `program args..`, pinned to `cpu` through `taskset` when given, with its output in a log file,
    /// and waits for its `listening on http://IP:PORT` line.
    pub async fn spawn(
        label: &str,
        program: &Path,
        args: &[String],
        cpu: Option<usize>,
    ) -> anyhow::Result<Self> {
        let log = std::env::temp_dir().join(format!(
            "rbee-bench-{}-{label}-{}.log",
            std::process::id(),
            unique()
        ));
        let out =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone().context("clone log file handle")?;
        let mut cmd = pinned_command(program, cpu);
        cmd.args(args)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("start {}", program.display()))?;
        // taskset execs the program, so the pid stays the same.
        let pid = child.id().context("child has no pid")?;
        let mut server = Server {
            child,
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        server.addr = server.wait_for_address(label).await?;
        Ok(server)
    }

    /// Returns the child's current resource use.
    pub fn stats(&self) -> anyhow::Result<ProcStats> {
        proc_stats(self.pid)
    }

    /// Returns the last lines of the child's log, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// Kills the child and waits for it.
    pub async fn stop(mut self) {
        // Already exited is fine: either way it is gone afterwards.
        let _ = self.child.kill().await;
    }

    async fn wait_for_address(&mut self, label: &str) -> anyhow::Result<SocketAddr> {
        let deadline = Instant::now() + STARTUP_LIMIT;
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(addr) = process_kit::find_listening(&text) {
                return Ok(addr);
            }
            if let Some(status) = self.child.try_wait().context("poll child")? {
                anyhow::bail!(
                    "{label} exited with {status} before listening:\n{}",
                    self.log_tail()
                );
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "{label} did not log its address within {STARTUP_LIMIT:?}:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // kill_on_drop kills the child; the log is only useful while it runs.
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A command that runs `program` pinned to `cpu` through `taskset` when given (taskset execs
/// the program, so the child's pid is the program's).
pub(crate) fn pinned_command(program: &Path, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Returns the last lines of the log file at `path`, for error messages.
pub(crate) fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// Reads the resource use of process `pid` from `/proc`.
pub fn proc_stats(pid: u32) -> anyhow::Result<ProcStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    Ok(ProcStats {
        rss_bytes: kib("VmRSS:"),
        hwm_bytes: kib("VmHWM:"),
        cpu_seconds: cpu_ticks(&stat).context("parse /proc stat")? as f64 / CLOCK_TICKS_PER_SEC,
    })
}

/// Returns utime + stime from the text of `/proc/PID/stat`.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses, so count fields after the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_skip_odd_command_names() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 5 0 0";
        assert_eq!(cpu_ticks(stat), Some(10));
    }

    #[test]
    fn reads_own_stats() {
        let s = proc_stats(std::process::id()).unwrap();
        assert!(s.rss_bytes > 0 && s.hwm_bytes >= s.rss_bytes);
    }
}
