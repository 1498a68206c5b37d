//! Process-level tests of the real `llm-worker` binary against a fake queen and a fake backend.

mod daemon;
