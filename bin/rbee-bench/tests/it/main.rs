//! Integration tests of the bench: the load generators against a real ceiling server process, and the
//! watch, stream, kept-state and cluster scenarios in `--quick` form against the real queen.

// Tests may unwrap: a panic is the failure report (clippy does not apply allow-unwrap-in-tests here).
#![allow(clippy::unwrap_used)]

mod cluster;
mod harness;
mod store;
mod streams;
