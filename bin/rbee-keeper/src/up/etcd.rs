//! The etcd a cluster of queens shares when the user names none: Debian's `etcd` from PATH, one
//! member on free loopback ports, run under `rbee-keeper guard` so that it stops with the keeper,
//! with its data in a temporary directory (removed when `up` ends) or in `DIR/etcd` with
//! `--data-dir DIR`.

use std::{
    net::TcpListener,
    ops::RangeInclusive,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use tempfile::TempDir;

use crate::UsageError;

/// The name of the one member, in etcd's own membership.
const MEMBER: &str = "rbee-keeper";

/// An etcd to start: where the program is, its ports and its data directory.
#[derive(Debug)]
pub(crate) struct LocalEtcd {
    program: PathBuf,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    /// Removes the temporary data directory on drop, once etcd has stopped.
    temporary: Option<TempDir>,
}

impl LocalEtcd {
    /// Finds `etcd` on PATH and picks its ports and data directory; fails with a
    /// [`UsageError`] when etcd is not installed.
    ///
    /// The ports are ones the system had free a moment ago, outside `avoid` (the queens'); a
    /// program that took one meanwhile makes etcd exit at start, which `up` reports.
    pub(crate) fn prepare(
        data_dir: Option<&Path>,
        avoid: RangeInclusive<u16>,
    ) -> anyhow::Result<Self> {
        let program = find_on_path("etcd").ok_or_else(|| {
            UsageError(
                "etcd is not on PATH: install it (Debian: apt install etcd-server) or pass \
                 --etcd-endpoints"
                    .to_owned(),
            )
        })?;
        let (client_port, peer_port) = two_free_ports(&avoid)?;
        let (data_dir, temporary) = match data_dir {
            Some(dir) => {
                let dir = dir.join("etcd");
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("create {}", dir.display()))?;
                (dir, None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("rbee-etcd-")
                    .tempdir()
                    .context("create a temporary directory for etcd")?;
                // etcd's own subdirectory: etcd wants to create it with its own permissions.
                (temp.path().join("data"), Some(temp))
            }
        };
        Ok(Self {
            program,
            client_port,
            peer_port,
            data_dir,
            temporary,
        })
    }

    /// Returns the URL the queens reach etcd on.
    pub(crate) fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Returns where the data lives, as the banner tells it.
    pub(crate) fn describe_data(&self) -> String {
        match self.temporary {
            Some(_) => "data in a temporary directory, removed on stop".to_owned(),
            None => format!("data in {}", self.data_dir.display()),
        }
    }

    /// Returns the arguments of `rbee-keeper` that start etcd under its guard.
    pub(crate) fn guard_args(&self) -> Vec<String> {
        let client = self.client_url();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut args = vec!["guard".to_owned()];
        if let Some(temp) = &self.temporary {
            // For a keeper killed outright: then only the guard is left to remove it.
            args.push(format!("--remove-after={}", temp.path().display()));
        }
        args.extend(["--".to_owned(), self.program.display().to_string()]);
        for (flag, value) in [
            ("--name", MEMBER.to_owned()),
            ("--data-dir", self.data_dir.display().to_string()),
            ("--listen-client-urls", client.clone()),
            ("--advertise-client-urls", client),
            ("--listen-peer-urls", peer.clone()),
            ("--initial-advertise-peer-urls", peer.clone()),
            ("--initial-cluster", format!("{MEMBER}={peer}")),
            // Only what goes wrong: etcd's info lines would drown the fleet's.
            ("--logger", "zap".to_owned()),
            ("--log-level", "warn".to_owned()),
        ] {
            args.push(format!("{flag}={value}"));
        }
        args
    }
}

/// Returns the first executable file called `name` in the directories of PATH.
fn find_on_path(name: &str) -> Option<PathBuf> {
    // PATH is the user's choice of programs, read here as a shell would.
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Returns two distinct ports the system had free a moment ago, none in `avoid`.
fn two_free_ports(avoid: &RangeInclusive<u16>) -> anyhow::Result<(u16, u16)> {
    // Every listener stays open until both ports are chosen, so the two differ.
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < 2 {
        anyhow::ensure!(held.len() < 16, "found no free loopback port for etcd");
        let listener = TcpListener::bind("127.0.0.1:0").context("find a free port for etcd")?;
        let port = listener
            .local_addr()
            .context("find a free port for etcd")?
            .port();
        if !avoid.contains(&port) {
            ports.push(port);
        }
        held.push(listener);
    }
    Ok((ports[0], ports[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_avoid_the_queens() {
        let (a, b) = two_free_ports(&(8500..=8502)).unwrap();
        assert_ne!(a, b);
        assert!(!(8500..=8502).contains(&a) && !(8500..=8502).contains(&b));
    }

    #[test]
    fn executables_are_found_on_path_and_others_are_not() {
        assert!(find_on_path("sh").is_some());
        assert!(find_on_path("surely-no-such-program-rbee").is_none());
    }

    #[test]
    fn a_kept_data_directory_is_under_the_data_dir_and_a_temporary_one_goes_away() {
        if find_on_path("etcd").is_none() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let kept = LocalEtcd::prepare(Some(dir.path()), 8500..=8500).unwrap();
        assert_eq!(kept.data_dir, dir.path().join("etcd"));
        assert!(kept.describe_data().contains("etcd"));
        let args = kept.guard_args();
        assert_eq!(args[..2], ["guard", "--"], "nothing to remove");
        let client = format!("--advertise-client-urls={}", kept.client_url());
        assert!(args.contains(&client), "{args:?}");

        let temp = LocalEtcd::prepare(None, 8500..=8500).unwrap();
        let root = temp.temporary.as_ref().unwrap().path().to_path_buf();
        assert!(root.is_dir());
        let remove = format!("--remove-after={}", root.display());
        assert!(temp.guard_args().contains(&remove));
        assert!(temp.describe_data().contains("temporary"));
        drop(temp);
        assert!(!root.exists());
    }
}
