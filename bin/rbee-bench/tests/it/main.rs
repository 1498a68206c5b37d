//! Integration tests of the bench harness: a real ceiling server process driven by the load generators.

// Tests may unwrap: a panic is the failure report (clippy does not apply allow-unwrap-in-tests here).
#![allow(clippy::unwrap_used)]

mod harness;
