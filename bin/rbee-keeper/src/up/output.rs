//! Everything `up` tells the user, on stdout through `say!` (a closed stdout cannot panic it).
//! Children's logs go to stderr, each line tagged with the child's name.

use crate::{
    api::Queen,
    config::UpArgs,
    up::{Pace, supervisor::Member},
};

/// The banner once the whole fleet is online: what runs, where the dashboard is, how to stop.
pub(crate) fn fleet_is_up<'a>(
    args: &UpArgs,
    queen: &Queen,
    pace: &Pace,
    members: impl Iterator<Item = Member<'a>>,
) {
    say!(
        "rbee fleet is up: 1 queen, 1 hive, {} workers (heartbeat every {}, offline after {})",
        args.workers,
        pace.interval,
        pace.timeout
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
    for m in members {
        say!("  {:<11} {:<14} pid {}", m.program, m.name, m.pid);
    }
    say!();
    say!("Press Ctrl-C to stop them all.");
}

/// A hive or worker exited while the fleet ran; it stays down.
pub(crate) fn member_exited(program: &str, name: &str, status: std::process::ExitStatus) {
    say!("{program} ({name}) exited with {status}");
}

/// Shutdown has begun.
pub(crate) fn stopping() {
    say!("stopping the fleet...");
}

/// Every child stopped within its grace period.
pub(crate) fn stopped(count: usize) {
    say!("stopped {count} processes");
}
