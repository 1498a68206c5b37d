//! Integration tests of the shared wire types: hostile input never panics, what decodes round-trips.

#![allow(clippy::unwrap_used, reason = "tests")]

mod hostile;
mod shared;
