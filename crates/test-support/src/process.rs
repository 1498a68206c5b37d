//! Real daemons as child processes: output captured line by line, signals, no orphans.

use std::{
    ffi::{OsStr, OsString},
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::Arc,
    thread,
    time::Duration,
};

use nix::{sys::signal::Signal, unistd::Pid};
use parking_lot::Mutex;

use crate::wait::{try_wait_until, wait_until};

/// Returns the path of a workspace binary built next to the running test executable
/// (`target/<profile>/<name>`); panics with the command to build it if it is missing.
pub fn binary_path(name: &str) -> PathBuf {
    process_kit::sibling_binary(name).unwrap_or_else(|e| {
        panic!("{e}; build the daemons first with `cargo build --workspace --bins`")
    })
}

/// Configures a daemon before it starts.
#[derive(Debug)]
pub struct DaemonBuilder {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
}

impl DaemonBuilder {
    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Names the daemon in panics and in `TEST_LOG` output (defaults to the binary name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Starts the process.
    ///
    /// The child does not inherit the caller's `RBEE_*` variables, logs at `info` unless
    /// `RUST_LOG` is set here, and never writes colour codes, so its lines can be matched.
    pub fn spawn(self) -> Daemon {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        process_kit::scrub_rbee_env(&mut command);
        command.envs(self.envs.iter().map(|(k, v)| (k, v)));
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program.display()));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let echo = std::env::var_os("TEST_LOG").is_some();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        for stream in [Box::new(stdout) as Box<dyn Read + Send>, Box::new(stderr)] {
            let lines = Arc::clone(&lines);
            let name = self.name.clone();
            thread::spawn(move || capture(stream, &lines, &name, echo));
        }
        Daemon {
            name: self.name,
            child,
            lines,
            exit: None,
        }
    }
}

/// A running daemon. Dropping it kills the process (SIGKILL) and reaps it, so a failing test
/// leaves no orphans.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    exit: Option<ExitStatus>,
}

impl Daemon {
    /// Starts configuring the workspace binary `bin` (see [`binary_path`]).
    pub fn builder(bin: &str) -> DaemonBuilder {
        DaemonBuilder {
            name: bin.to_owned(),
            program: binary_path(bin),
            args: Vec::new(),
            envs: Vec::new(),
        }
    }

    /// Starts configuring the program at `path`, e.g. `env!("CARGO_BIN_EXE_rbee-hive")`.
    pub fn builder_for(path: impl Into<PathBuf>) -> DaemonBuilder {
        let program = path.into();
        let name = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.display().to_string());
        DaemonBuilder {
            name,
            program,
            args: Vec::new(),
            envs: Vec::new(),
        }
    }

    /// Starts the workspace binary `bin` with `args`.
    pub fn spawn<I, S>(bin: &str, args: I) -> Daemon
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Self::builder(bin).args(args).spawn()
    }

    /// Returns the name used in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the process id.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("pids fit in i32"))
    }

    /// Returns every line written so far to stdout and stderr, in arrival order.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().clone()
    }

    /// Returns all output so far as one string, for assertion messages.
    pub fn output(&self) -> String {
        self.lines.lock().join("\n")
    }

    /// Counts the lines so far that satisfy `pred`.
    pub fn count_lines(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.lines.lock().iter().filter(|l| pred(l)).count()
    }

    /// Counts the lines so far that contain `needle`.
    pub fn count_containing(&self, needle: &str) -> usize {
        self.count_lines(|l| l.contains(needle))
    }

    /// Waits for a line containing `needle` and returns it; panics with the output on timeout.
    pub async fn wait_for_line(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for_line_where(needle, timeout, |l| l.contains(needle))
            .await
    }

    /// Waits for a line satisfying `pred` (described by `what`) and returns it.
    pub async fn wait_for_line_where(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let found = try_wait_until(timeout, || {
            let line = self.lines.lock().iter().find(|l| pred(l)).cloned();
            async move { line }
        })
        .await;
        match found {
            Some(line) => line,
            None => panic!(
                "{}: no line matching {what:?} within {timeout:?}; output so far:\n{}",
                self.name,
                self.output()
            ),
        }
    }

    /// Waits for the `listening on http://IP:PORT` line and returns the address it names.
    pub async fn listening_addr(&self, timeout: Duration) -> SocketAddr {
        let line = self.wait_for_line("listening on http://", timeout).await;
        process_kit::parse_listening(&line)
            .unwrap_or_else(|| panic!("{}: cannot parse an address in {line:?}", self.name))
    }

    /// Waits for the listening line and returns `http://IP:PORT`.
    pub async fn base_url(&self, timeout: Duration) -> String {
        format!("http://{}", self.listening_addr(timeout).await)
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) {
        nix::sys::signal::kill(self.pid(), signal)
            .unwrap_or_else(|e| panic!("{}: cannot send {signal}: {e}", self.name));
    }

    /// Returns the exit status if the process has exited, without waiting.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Waits for the process to exit and returns its status; panics with the output on timeout.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let status = try_wait_until(timeout, || {
            let status = self.try_exit_status();
            async move { status }
        })
        .await;
        match status {
            Some(status) => status,
            None => panic!(
                "{}: still running {timeout:?} later; output so far:\n{}",
                self.name,
                self.output()
            ),
        }
    }

    /// Kills the process with SIGKILL and reaps it.
    pub async fn kill(&mut self) -> ExitStatus {
        if self.try_exit_status().is_none() {
            self.signal(Signal::SIGKILL);
        }
        self.wait_exit(Duration::from_secs(10)).await
    }

    /// Waits until the process has written at least `n` lines containing `needle`.
    pub async fn wait_for_count(&self, needle: &str, n: usize, timeout: Duration) {
        let what = format!("{n} lines containing {needle:?} from {}", self.name);
        wait_until(&what, timeout, || {
            let ok = self.count_containing(needle) >= n;
            async move { ok.then_some(()) }
        })
        .await;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.try_exit_status().is_none() {
            // SIGKILL also ends a process stopped with SIGSTOP.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn capture(stream: Box<dyn Read + Send>, lines: &Mutex<Vec<String>>, name: &str, echo: bool) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\n', '\r'])
                    .to_owned();
                if echo {
                    #[allow(clippy::print_stderr, reason = "TEST_LOG asks for child output")]
                    {
                        eprintln!("[{name}] {line}");
                    }
                }
                lines.lock().push(line);
            }
        }
    }
}
