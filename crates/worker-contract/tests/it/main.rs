//! Integration tests of the worker contract: hostile input never panics, valid input round-trips,
//! and the OpenAPI schema describes the wire shape.

#![allow(clippy::unwrap_used, reason = "tests")]

#[path = "../../../shared-contract/tests/it/hostile.rs"]
mod hostile;

mod decode;
mod schema;
