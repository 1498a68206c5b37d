//! What a started program inherits from the environment.

use std::process::Command;

/// Removes every `RBEE_*` variable of this process from `command`'s environment.
///
/// Programs that start daemons pass their configuration as flags, so that variables meant for
/// the starter (`RBEE_PORT`, `RBEE_WORKERS`, ...) cannot change how a daemon behaves. Variables
/// set on `command` afterwards still reach the child.
pub fn scrub_rbee_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RBEE_") {
            command.env_remove(key);
        }
    }
}
