//! queen-rbee library.
