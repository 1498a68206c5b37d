//! rbee-keeper entry point.

fn main() {}
