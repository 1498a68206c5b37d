//! Tests of the sender daemons' own API, with the heartbeat loop against `test-support`'s fake queen.

// The fake worker is the heartbeat loop's own test double, shared rather than copied.
#[allow(
    dead_code,
    reason = "not every helper of the shared double is used here"
)]
#[path = "../../../heartbeat-sender/tests/it/double.rs"]
mod double;

mod daemon;
