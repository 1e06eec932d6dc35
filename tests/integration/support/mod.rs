//! Real servers and raw protocol clients for the integration tests.
//!
//! Every server runs as a child process on free loopback ports, with its configuration, data and
//! log in its own temporary directory, and is killed when its handle is dropped. Start servers
//! from the test's own thread or async task (not from `spawn_blocking`): each child gets
//! `SIGKILL` when the thread that started it ends, so that an aborted test run leaves no server
//! behind.
//!
//! - [`irc`]: InspIRCd 3 linked to Anope 2 services ([`IrcServer`]), and a raw line-based client
//!   ([`IrcClient`]).
//! - [`matrix`]: Synapse ([`SynapseServer`]) and a client-server API client ([`MatrixClient`]).
//! - [`config`]: the bot's config for a test, built from typed sections ([`BotConfig`]).
//! - [`mqtt`]: mosquitto with a plain and a client-certificate TLS listener ([`MosquittoServer`]),
//!   and a rumqttc-based client ([`MqttClient`]).
//! - [`prometheus`]: Prometheus scraping the bot, with its query API
//!   ([`prometheus::PrometheusServer`]), and `promtool check metrics`.
//!
//! Readiness is always waited for by event (a port accepting, an HTTP 200, a protocol answer)
//! through [`wait_until`], never by a fixed sleep. A missing server program makes the test fail
//! with the command that installs it; `scripts/test` installs everything.

// Each test module uses a different part of the harness.
#![allow(dead_code, unused_imports)]

pub mod bot;
pub mod config;
pub mod irc;
pub mod matrix;
pub mod mqtt;
pub mod prometheus;
pub mod smtp;

pub use config::{BOT_NICK, BotConfig, Section};
pub use irc::{IrcClass, IrcClient, IrcConnectOptions, IrcLine, IrcServer, from_bot};
pub use matrix::{MatrixClient, MatrixUser, RoomSpec, SynapseServer};
pub use mqtt::{MosquittoOptions, MosquittoServer, MqttClient, MqttMessage, TlsFiles};

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Read as _;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The loopback address every server listens on.
pub const LOCALHOST: &str = "127.0.0.1";

/// How long a server may take to become ready after it is started.
pub const SERVER_START_TIMEOUT: Duration = Duration::from_secs(60);

/// The pause between two readiness probes in [`wait_until`].
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// A timeout for one protocol exchange with a local server (join, subscribe, login...).
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(15);

/// Returns a loopback TCP port that nothing listens on and that this process has not handed out
/// before, so that parallel tests never pick the same port.
pub fn free_port() -> u16 {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let handed_out = HANDED_OUT.get_or_init(Default::default);
    loop {
        let listener = TcpListener::bind((LOCALHOST, 0)).expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        if handed_out.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// Where a test keeps what a person may want to look at afterwards (a screenshot, a mail as
/// received): `<target dir>/test-artifacts/<name>`, beside the test binaries, so that it
/// survives the test's temporary directory. The directory is made if needed.
pub fn artifact_path(name: &str) -> PathBuf {
    // This test binary is <target>/<profile>/deps/<name> (an example's: .../examples/<name>).
    let exe = std::env::current_exe().expect("the test binary's path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the test binary is in <target>/<profile>/deps/");
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("the test artifacts' directory");
    dir.join(name)
}

/// A new temporary directory named after `what`, removed when the returned value is dropped.
///
/// Set `SIGBOT_KEEP_TEST_DIRS=1` to keep it for a post-mortem; its path is in every panic
/// message about the server that lives in it.
pub fn temp_dir(what: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("sigbot-{what}-"))
        .disable_cleanup(std::env::var_os("SIGBOT_KEEP_TEST_DIRS").is_some())
        .tempdir()
        .expect("create a temporary directory")
}

/// The repository root (where `Cargo.toml` is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Finds `program` on `PATH` or in the sbin directories (which a non-login root shell may lack
/// from `PATH`), or panics with `install_hint`.
pub fn require_program(program: &str, install_hint: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{program} not found: {install_hint}"))
}

/// Whether the tests run as root, from the owner of `/proc/self` (no `unsafe` `getuid`).
pub fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Calls `probe` every [`POLL_INTERVAL`] until it returns `Some`, and returns that value.
///
/// This is the only place the harness pauses: it waits for an event that has no notification of
/// its own (a port starting to accept, a health check turning 200). Panics after `timeout` with
/// `what` in the message.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_until_within(timeout, probe)
        .await
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Like [`wait_until`], but `None` after `timeout` instead of a panic.
pub async fn wait_until_within<T, F, Fut>(timeout: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        // A probe of another process's state, not a guess at readiness: a port that starts to
        // accept sends no notification.
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Whether something accepts TCP connections on `addr` right now.
pub async fn port_accepts(addr: SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_ok()
}

/// A way to start one server program again and again with the same arguments.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// What the server is, for messages ("inspircd", "synapse"...).
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub current_dir: PathBuf,
    /// Where stdout and stderr go; appended to across restarts.
    pub log: PathBuf,
    /// Run as `nobody` when the tests run as root (Anope pauses 3 s when started as root).
    pub drop_root: bool,
}

impl ProcessSpec {
    pub fn new(name: &str, program: PathBuf, dir: &Path) -> Self {
        Self {
            name: name.to_owned(),
            program,
            args: Vec::new(),
            env: Vec::new(),
            current_dir: dir.to_owned(),
            log: dir.join(format!("{name}.log")),
            drop_root: false,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn drop_root(mut self) -> Self {
        self.drop_root = true;
        self
    }
}

/// A running server program, killed (`SIGKILL`) when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    spec: ProcessSpec,
    child: Option<Child>,
}

impl ServerProcess {
    /// Starts the program described by `spec`; readiness is the caller's business.
    pub fn spawn(spec: ProcessSpec) -> Self {
        let mut process = Self::new(spec);
        process.start();
        process
    }

    /// A program that is not started yet.
    pub fn new(spec: ProcessSpec) -> Self {
        Self { spec, child: None }
    }

    /// Starts the program (again, after [`ServerProcess::kill`] or
    /// [`ServerProcess::terminate`]).
    pub fn start(&mut self) {
        assert!(
            self.child.is_none(),
            "{} is already running",
            self.spec.name
        );
        let spec = &self.spec;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .unwrap_or_else(|e| panic!("open {}: {e}", spec.log.display()));
        let setpriv = require_program(
            "setpriv",
            "run scripts/test, which installs it (apt-get install util-linux)",
        );
        // setpriv execs the server in place, so the child's pid is the server's.
        let mut command = Command::new(setpriv);
        command.args(["--pdeathsig", "KILL"]);
        if spec.drop_root && running_as_root() {
            command.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        }
        command
            .arg("--")
            .arg(&spec.program)
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&spec.current_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log file handle"))
            .stderr(log);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {} ({}): {e}", spec.name, spec.program.display()));
        self.child = Some(child);
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the program with `SIGKILL` (a crash, as far as anyone can tell) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks the program to exit with `SIGTERM` and waits for it, killing it after `timeout`.
    pub async fn terminate(&mut self, timeout: Duration) {
        let Some(pid) = self.pid() else { return };
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        if !status.is_ok_and(|s| s.success()) {
            self.kill();
            return;
        }
        // The exit is waited for where it happens: a blocking wait on its own thread.
        let mut child = self.child.take().expect("child present");
        let mut exited = tokio::task::spawn_blocking(move || {
            let _ = child.wait();
        });
        if tokio::time::timeout(timeout, &mut exited).await.is_err() {
            eprintln!(
                "timed out waiting for {} to exit after SIGTERM; killing it",
                self.spec.name
            );
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let _ = exited.await;
        }
    }

    /// Panics with the end of the program's log if it has exited.
    pub fn assert_running(&mut self) {
        let exited = match self.child.as_mut() {
            None => Some("it was stopped".to_owned()),
            Some(child) => child
                .try_wait()
                .expect("query child status")
                .map(|status| format!("it exited with {status}")),
        };
        if let Some(why) = exited {
            panic!(
                "{} is not running: {why}; end of {}:\n{}",
                self.spec.name,
                self.spec.log.display(),
                self.log_tail(40)
            );
        }
    }

    /// The last `lines` lines of the program's output.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.spec.log) {
            let _ = file.read_to_string(&mut text);
        }
        let tail: VecDeque<&str> = text.lines().fold(VecDeque::new(), |mut tail, line| {
            if tail.len() == lines {
                tail.pop_front();
            }
            tail.push_back(line);
            tail
        });
        tail.into_iter().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes `contents` to `path`, panicking with the path on error.
pub fn write_file(path: &Path, contents: impl AsRef<[u8]>) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A random lower-case alphanumeric string, for secrets in generated configs.
pub fn random_token(len: usize) -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Keeps the last few lines a client received, for timeout messages.
#[derive(Debug, Default)]
pub(crate) struct Recent {
    lines: VecDeque<String>,
}

impl Recent {
    const KEEP: usize = 30;

    pub(crate) fn push(&mut self, line: &str) {
        if self.lines.len() == Self::KEEP {
            self.lines.pop_front();
        }
        self.lines.push_back(line.to_owned());
    }

    pub(crate) fn dump(&self) -> String {
        if self.lines.is_empty() {
            return "  (nothing)".to_owned();
        }
        self.lines
            .iter()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
