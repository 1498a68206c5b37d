//! rbee-hive library.
