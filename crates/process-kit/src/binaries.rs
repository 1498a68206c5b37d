//! Finding sibling programs: the daemons are built into the same directory as the program (or
//! test) that starts them.

use std::path::{Path, PathBuf};

/// A program was not where it should be.
#[derive(Debug, thiserror::Error)]
#[error("cannot find {name} in {}", dir.display())]
pub struct BinaryNotFound {
    /// The program's name.
    pub name: String,
    /// Where it was looked for.
    pub dir: PathBuf,
}

/// Returns the path of the program `name` in `dir`, if it is a file there.
pub fn binary_in(dir: &Path, name: &str) -> Result<PathBuf, BinaryNotFound> {
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if path.is_file() {
        Ok(path)
    } else {
        Err(BinaryNotFound {
            name: name.to_owned(),
            dir: dir.to_path_buf(),
        })
    }
}

/// Returns the path of the program `name` next to the running executable.
///
/// A test executable lives in `target/<profile>/deps`, one level below the programs, so a
/// trailing `deps` is skipped.
pub fn sibling_binary(name: &str) -> Result<PathBuf, BinaryNotFound> {
    let dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .map(|mut dir| {
            if dir.ends_with("deps") {
                dir.pop();
            }
            dir
        })
        .unwrap_or_default();
    binary_in(&dir, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_programs_are_named_with_their_directory() {
        let dir = std::env::temp_dir().join("process-kit-no-binaries-here");
        let err = binary_in(&dir, "queen-rbee").unwrap_err();
        assert_eq!(err.name, "queen-rbee");
        let text = err.to_string();
        assert!(text.contains("cannot find queen-rbee in"), "{text}");
        assert!(text.contains("process-kit-no-binaries-here"), "{text}");
    }

    #[test]
    fn the_test_executable_is_found_as_its_own_sibling() {
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_name().unwrap().to_string_lossy().into_owned();
        let dir = exe.parent().unwrap();
        assert_eq!(binary_in(dir, &name).unwrap(), exe);
    }
}
