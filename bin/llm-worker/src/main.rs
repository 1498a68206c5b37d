//! llm-worker entry point.

fn main() {}
