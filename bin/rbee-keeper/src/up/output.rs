//! Everything `up` tells the user, on stdout through `say!` (a closed stdout cannot panic it).
//! Children's logs go to stderr, each line tagged with the child's name.

use crate::{
    api::Queen,
    config::UpArgs,
    up::{ClusterSetup, Pace, supervisor::Member},
};

/// The banner once the whole fleet is online: what runs, where the dashboards are, which queen
/// leads, how to stop.
pub(crate) fn fleet_is_up<'a>(
    args: &UpArgs,
    queens: &[Queen],
    cluster: Option<&ClusterSetup>,
    pace: &Pace,
    members: impl Iterator<Item = Member<'a>>,
) {
    let queen_count = match (queens.len(), cluster) {
        (1, None) => "1 queen".to_owned(),
        (1, Some(_)) => "1 queen on etcd".to_owned(),
        (n, _) => format!("{n} queens in a cluster on etcd"),
    };
    let lease = cluster.map_or_else(String::new, |c| format!(", leader lease {}", c.lease));
    say!(
        "rbee fleet is up: {queen_count}, 1 hive, {} workers (heartbeat every {}, offline after {}{lease})",
        args.workers,
        pace.interval,
        pace.timeout
    );
    say!();
    for queen in queens {
        let role = match cluster {
            None => "",
            Some(c) if c.leader.trim_end_matches('/') == queen.base() => "  (leader)",
            Some(_) => "  (follower)",
        };
        say!("  dashboard  {}/{role}", queen.base());
    }
    if args.token.is_some() {
        say!("             (append #token=<your token> to open it)");
    }
    if let Some(c) = cluster {
        if !queens
            .iter()
            .any(|q| q.base() == c.leader.trim_end_matches('/'))
        {
            say!("  leader     {}", c.leader);
        }
        say!("  etcd       {}", c.etcd);
    }
    let first = queens.first().map_or("", Queen::base);
    say!("  status     rbee-keeper status --queen-url {first}");
    say!("  watch      rbee-keeper watch --queen-url {first}");
    say!();
    let members: Vec<Member<'a>> = members.collect();
    let width = members
        .iter()
        .map(|m| m.name.len())
        .max()
        .unwrap_or(0)
        .max(14);
    for m in members {
        say!("  {:<11} {:<width$} pid {}", m.program, m.name, m.pid);
    }
    say!();
    if cluster.is_some() && queens.len() > 1 {
        say!("Stop the leader (kill its pid) and another queen leads within the lease.");
    }
    say!("Press Ctrl-C to stop them all.");
}

/// A hive or worker exited while the fleet ran; it stays down.
pub(crate) fn member_exited(program: &str, name: &str, status: std::process::ExitStatus) {
    say!("{program} ({name}) exited with {status}");
}

/// A queen of a cluster exited while others run; it stays down.
pub(crate) fn queen_exited(name: &str, status: std::process::ExitStatus, left: usize) {
    let left = match left {
        1 => "1 queen still runs".to_owned(),
        n => format!("{n} queens still run"),
    };
    say!("queen-rbee ({name}) exited with {status}; {left}, and one of them leads");
}

/// Shutdown has begun.
pub(crate) fn stopping() {
    say!("stopping the fleet...");
}

/// Every child stopped within its grace period.
pub(crate) fn stopped(count: usize) {
    say!("stopped {count} processes");
}
