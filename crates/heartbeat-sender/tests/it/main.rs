//! Integration tests of the heartbeat loop against `test-support`'s fake queen, a real HTTP server.

mod daemon;
mod double;
mod sender;
