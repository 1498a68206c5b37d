//! `rbee-keeper guard PROGRAM ARGS..`: runs a program that does not watch its stdin (etcd) so
//! that it stops with the keeper that started it, however the keeper ends.
//!
//! `up` starts every child with a pipe on its stdin and `RBEE_EXIT_ON_STDIN_EOF=1`; the rbee
//! daemons stop when that pipe closes, which the kernel does even when the keeper is killed with
//! SIGKILL. etcd knows nothing of it, and a parent-death signal would need `unsafe` between fork
//! and exec, which this workspace forbids. So `up` starts etcd under this guard: the guard reads
//! the pipe (through the shared shutdown signal), and stops etcd when the keeper sends SIGTERM
//! or goes away.

use std::{
    os::unix::process::ExitStatusExt as _,
    process::{ExitStatus, Stdio},
    time::Duration,
};

use anyhow::Context as _;
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use process_kit::ShutdownReason;
use tokio::process::{Child, Command};

use crate::config::GuardArgs;

/// How long the program gets to stop after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(5);

/// Runs the program until it exits or this process is told to stop; then stops it, and removes
/// `--remove-after` (which the keeper, when it is still there, removes too).
pub(crate) async fn run(args: GuardArgs) -> anyhow::Result<()> {
    let result = supervise(&args).await;
    if let Some(dir) = &args.remove_after
        && let Err(err) = std::fs::remove_dir_all(dir)
        && err.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %err, "cannot remove the directory");
    }
    result
}

async fn supervise(args: &GuardArgs) -> anyhow::Result<()> {
    // The handlers go in before the program starts, so an early SIGTERM is never lost.
    let signal = process_kit::shutdown_signal().context("install signal handlers")?;
    let name = args.program.display().to_string();
    let mut child = Command::new(&args.program)
        .args(&args.args)
        // Its output goes where the guard's goes: to the keeper, which tags each line.
        .stdin(Stdio::null())
        .env_remove(process_kit::EXIT_ON_STDIN_EOF_ENV)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {name}"))?;
    let reason = tokio::select! {
        status = child.wait() => {
            let status = status.with_context(|| format!("wait for {name}"))?;
            anyhow::bail!("{name} exited with {status}");
        }
        reason = signal => reason,
    };
    if reason == ShutdownReason::StdinClosed {
        // The keeper is gone and so are the queens' stdin pipes: they keep serving a moment
        // for their senders' final heartbeats and write those to etcd, so etcd stays for them.
        if let Ok(status) = tokio::time::timeout(args.linger, child.wait()).await {
            let status = status.with_context(|| format!("wait for {name}"))?;
            anyhow::bail!("{name} exited with {status}");
        }
    }
    let status = terminate(&mut child, &name).await?;
    if stopped_cleanly(status) {
        Ok(())
    } else {
        anyhow::bail!("{name} stopped with {status}")
    }
}

/// Sends SIGTERM, waits up to [`GRACE`], then kills; returns how the program ended.
async fn terminate(child: &mut Child, name: &str) -> anyhow::Result<ExitStatus> {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        // ESRCH only means it exited meanwhile; the wait below reaps it either way.
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    match tokio::time::timeout(GRACE, child.wait()).await {
        Ok(status) => status.with_context(|| format!("wait for {name}")),
        Err(_) => {
            tracing::warn!(program = %name, grace = ?GRACE, "ignored SIGTERM; killing it");
            child.kill().await.with_context(|| format!("kill {name}"))?;
            child
                .wait()
                .await
                .with_context(|| format!("wait for {name}"))
        }
    }
}

/// Whether a program told to stop stopped as asked: with success, or by the SIGTERM itself
/// (etcd re-raises the signal once it has shut down).
fn stopped_cleanly(status: ExitStatus) -> bool {
    status.success() || status.signal() == Some(Signal::SIGTERM as i32)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn guard(program: &str, args: &[&str], linger: Duration) -> GuardArgs {
        GuardArgs {
            linger,
            remove_after: None,
            program: PathBuf::from(program),
            args: args.iter().map(Into::into).collect(),
        }
    }

    #[tokio::test]
    async fn a_program_that_exits_on_its_own_or_cannot_start_is_an_error_naming_it() {
        for (program, says) in [
            ("false", "false exited with"),
            ("/nonexistent/etcd", "start /nonexistent/etcd"),
        ] {
            let err = run(guard(program, &[], GRACE))
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{err}");
        }
    }

    #[tokio::test]
    async fn the_directory_to_remove_goes_once_the_program_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("wal"), b"x").unwrap();
        let mut args = guard("true", &[], GRACE);
        args.remove_after = Some(data.clone());
        run(args).await.unwrap_err();
        assert!(!data.exists());
    }

    #[test]
    fn sigterm_counts_as_a_clean_stop() {
        assert!(stopped_cleanly(ExitStatus::from_raw(0)));
        assert!(stopped_cleanly(ExitStatus::from_raw(
            Signal::SIGTERM as i32
        )));
        assert!(!stopped_cleanly(ExitStatus::from_raw(
            Signal::SIGKILL as i32
        )));
        assert!(!stopped_cleanly(ExitStatus::from_raw(1 << 8)));
    }
}
