//! queen-rbee entry point.

fn main() {}
