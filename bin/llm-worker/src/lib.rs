//! llm-worker library.
