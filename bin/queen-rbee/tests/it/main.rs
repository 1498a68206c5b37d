//! queen-rbee integration tests: the router in-process, the server over loopback, the binary.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod hostile;
mod kept;
mod liveness;
mod openapi;
mod overload;
mod process;
mod routes;
mod stream;
mod support;
mod tokens;
mod watch;
mod watch_load;
