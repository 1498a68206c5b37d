//! Process plumbing every rbee program shares, written once: how a process learns it should stop,
//! how it logs, how many files it may open, how it announces its address, how it finds and starts
//! its sibling programs, and how it reports a bad command line.
//!
//! Only a program's `main` calls [`init_process`] (or [`init_tracing`] alone); libraries
//! return errors and let `main` choose the exit code.

#![warn(missing_docs)]

mod binaries;
mod child_env;
mod limits;
mod listening;
mod logging;
mod signal;
mod usage;

pub use binaries::{BinaryNotFound, binary_in, sibling_binary};
pub use child_env::scrub_rbee_env;
pub use limits::raise_open_files_limit;
pub use listening::{Listening, find_listening, parse_listening};
pub use logging::{LoggingError, init_tracing};
pub use signal::{
    EXIT_ON_STDIN_EOF_ENV, ShutdownReason, cancel_on_shutdown_signal, shutdown_signal,
};
pub use usage::{init_process, parse_args, usage_error};
