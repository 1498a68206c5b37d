//! The daemon executables `up` starts, found next to rbee-keeper unless told otherwise.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Where queen-rbee, rbee-hive and llm-worker are.
#[derive(Debug)]
pub(crate) struct Binaries {
    pub(crate) queen: PathBuf,
    pub(crate) hive: PathBuf,
    pub(crate) worker: PathBuf,
}

impl Binaries {
    /// Finds the three programs in `dir`, or next to this program when `dir` is `None`.
    pub(crate) fn locate(dir: Option<&Path>) -> anyhow::Result<Self> {
        let dir = match dir {
            Some(dir) => dir.to_path_buf(),
            None => std::env::current_exe()
                .context("find the path of rbee-keeper")?
                .parent()
                .context("rbee-keeper has no parent directory")?
                .to_path_buf(),
        };
        let find = |name: &str| {
            process_kit::binary_in(&dir, name).map_err(|e| {
                anyhow::anyhow!(
                    "{e}; build every program with `cargo build --workspace --bins` \
                     (or point --bin-dir at them)"
                )
            })
        };
        Ok(Self {
            queen: find("queen-rbee")?,
            hive: find("rbee-hive")?,
            worker: find("llm-worker")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_are_named() {
        let dir = std::env::temp_dir().join("rbee-keeper-no-binaries-here");
        let err = Binaries::locate(Some(&dir)).unwrap_err().to_string();
        assert!(err.contains("queen-rbee"), "{err}");
        assert!(err.contains("cargo build --workspace --bins"), "{err}");
    }
}
