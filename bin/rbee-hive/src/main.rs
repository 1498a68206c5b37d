//! rbee-hive entry point.

fn main() {}
