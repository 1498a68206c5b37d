//! The heartbeat loop shared by `rbee-hive` and `llm-worker`.
//!
//! A daemon supplies a [`PayloadSource`] that produces its current payload; [`run`] sends it to
//! the queen at the pace the queen asks for, backs off while the queen is away, logs only when the
//! connection changes state, and sends a final `stopping` heartbeat on shutdown. Given several
//! queen URLs ([`QueenUrls`], a cluster), it sends to one at a time, follows a follower's `307` to
//! the leader and moves on to the next URL when the one in use stops answering. The process
//! around it (flags, signals, the daemon's own API) lives in `sender-daemon`.

#![warn(missing_docs)]

mod backoff;
mod handle;
mod queens;
mod route;
mod sender;
mod source;

pub use handle::{Link, SenderHandle, SenderStats};
pub use queens::{NoQueenUrl, QueenUrls};
pub use sender::{SenderConfig, build_client, run};
pub use source::PayloadSource;
