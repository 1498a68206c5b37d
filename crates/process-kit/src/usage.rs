//! Reporting a bad command line: one line on stderr and exit code 2, before any port is bound.

use std::process::ExitCode;

use clap::{Parser, error::ErrorKind};

/// The exit code of a usage or configuration error.
const USAGE: u8 = 2;

/// Parses the command line and environment into `C`.
///
/// On `--help` or `--version` prints what clap prints and returns `Err(ExitCode::SUCCESS)`; on
/// anything else prints the first line of the error (see [`usage_error`]) and returns its code.
pub fn parse_args<C: Parser>() -> Result<C, ExitCode> {
    match C::try_parse() {
        Ok(config) => Ok(config),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            // Nothing better to do if stdout is closed.
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) => Err(usage_error(&e.to_string())),
    }
}

/// Starts a program: logging (see [`crate::init_tracing`]) and the open-files limit (see
/// [`crate::raise_open_files_limit`]; a failure there is logged and the program runs on with the
/// limit it has). Call it once, from `main`; on `Err` return the exit code.
pub fn init_process(info_targets: &[&str]) -> Result<(), ExitCode> {
    crate::init_tracing(info_targets).map_err(|e| usage_error(&e.to_string()))?;
    let _ = crate::raise_open_files_limit();
    Ok(())
}

/// Prints the first non-empty line of `message` to stderr and returns exit code 2.
pub fn usage_error(message: &str) -> ExitCode {
    let line = first_line(message);
    #[allow(
        clippy::print_stderr,
        reason = "the one-line message for bad configuration"
    )]
    {
        eprintln!("{line}");
    }
    ExitCode::from(USAGE)
}

fn first_line(message: &str) -> &str {
    message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("invalid configuration")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_non_empty_line_is_kept() {
        assert_eq!(
            first_line("\n  error: bad flag \n\nUsage: x"),
            "error: bad flag"
        );
        assert_eq!(first_line(""), "invalid configuration");
    }
}
