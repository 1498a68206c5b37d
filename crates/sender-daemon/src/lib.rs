//! The process shell `rbee-hive` and `llm-worker` share around the heartbeat loop: the common
//! flags ([`cli`]), binding and signals, the daemon's own `GET /health` and `GET /v1/info`, and a
//! shutdown bounded by the 2 s the contract allows ([`daemon`]).
//!
//! Nothing here initialises logging or exits the process: errors go back to `main`.

#![warn(missing_docs)]

pub mod cli;
pub mod daemon;
