//! Logging set-up: human-readable lines on stderr, filtered by `RUST_LOG`.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Logging could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start logging: {0}")]
pub struct LoggingError(String);

/// Starts logging to stderr, filtered by `RUST_LOG` when it is set.
///
/// Otherwise the filter shows warnings and errors from every crate (this workspace's and the
/// libraries'), this crate's start-up lines, and info from each target in `info_targets`
/// (a daemon passes its own crate name, e.g. `env!("CARGO_CRATE_NAME")`). Colour is used only
/// when stderr is a terminal. Call it once, from `main`.
pub fn init_tracing(info_targets: &[&str]) -> Result<(), LoggingError> {
    let filter = match EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(_) => EnvFilter::try_new(default_directives(info_targets))
            .map_err(|e| LoggingError(e.to_string()))?,
    };
    tracing_subscriber::fmt()
        // A closed stderr must not panic the logger (and with it the task that handles signals).
        .log_internal_errors(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| LoggingError(e.to_string()))
}

fn default_directives(info_targets: &[&str]) -> String {
    let mut directives = format!("warn,{}=info", env!("CARGO_CRATE_NAME"));
    for target in info_targets {
        directives.push(',');
        directives.push_str(target);
        directives.push_str("=info");
    }
    directives
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_filter_warns_everywhere_and_informs_for_the_named_targets() {
        let directives = default_directives(&["queen_rbee", "heartbeat_sender"]);
        assert_eq!(
            directives,
            "warn,process_kit=info,queen_rbee=info,heartbeat_sender=info"
        );
        assert!(EnvFilter::try_new(directives).is_ok());
    }
}
