//! Integration tests of the heartbeat loop against a real HTTP server standing in for the queen.

mod daemon;
mod double;
mod sender;
