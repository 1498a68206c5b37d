//! The open-files limit: raised from the soft to the hard limit at start.

use std::io;

/// Raises this process's soft open-files limit to its hard limit, logs the limit in effect at
/// info, and returns it.
///
/// The usual soft limit of 1,024 would cap a queen at about a thousand connected senders, with
/// the rest left waiting in the kernel's backlog; the hard limit is typically far higher, and any
/// process may raise its soft limit that far. On failure the old limit stays and a warning says
/// so.
pub fn raise_open_files_limit() -> io::Result<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            tracing::info!(limit, "open files limit");
            Ok(limit)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open files limit");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use rlimit::Resource;

    use super::*;

    #[test]
    fn the_soft_limit_reaches_the_hard_limit() {
        let limit = raise_open_files_limit().unwrap();
        let (soft, hard) = Resource::NOFILE.get().unwrap();
        assert_eq!(soft, limit);
        // macOS caps the soft limit below an unlimited hard one; Linux raises it all the way.
        if cfg!(target_os = "linux") {
            assert_eq!(soft, hard);
        }
    }
}
