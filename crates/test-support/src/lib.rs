//! Helpers for rbee's tests: real daemons as child processes, deadline waits, and loopback clients
//! and servers. Used only as a dev-dependency.

#![warn(missing_docs)]

mod etcd;
mod http;
mod process;
mod queen;
mod server;
mod sse;
mod wait;

pub use etcd::{Etcd, REQUIRE_ETCD_ENV};
pub use http::JsonClient;
pub use nix::sys::signal::Signal;
pub use process::{Daemon, DaemonBuilder, binary_path};
pub use queen::{FakeQueen, ReceivedBeat};
pub use server::TestServer;
pub use sse::{SseEvent, SseRecorder};
pub use wait::{POLL, try_wait_until, wait_for, wait_until};
