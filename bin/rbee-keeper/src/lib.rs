//! rbee-keeper library.
