//! Integration tests of the heartbeat loop against real HTTP servers on loopback: `test-support`'s
//! fake queen and a redirecting follower.

mod double;
mod queens;
mod sender;
