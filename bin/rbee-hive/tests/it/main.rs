//! Process-level tests of the real `rbee-hive` binary against a fake queen.

mod daemon;
