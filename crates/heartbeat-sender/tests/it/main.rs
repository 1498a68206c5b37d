//! Integration tests of the heartbeat loop against `test-support`'s fake queen, a real HTTP server.

mod double;
mod sender;
