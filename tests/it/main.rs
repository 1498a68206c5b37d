//! Cross-process end-to-end suite: the real built binaries, talking over loopback.

// Helpers outside #[test] functions are not covered by allow-unwrap-in-tests (rust-clippy#13981).
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a test failure"
)]

mod auth;
mod backend;
mod browser;
mod cluster;
mod dashboard;
mod dashboard_fleet;
mod dashboard_history;
mod fleet;
mod keeper;
mod keeper_cluster;
mod liveness;
mod open_files;
mod outage;
mod store;
