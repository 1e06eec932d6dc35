//! The sigbot binary itself, run as a child process with a generated config: its console
//! network on stdin/stdout is the test's way in, its logs (stderr) are kept for diagnostics
//! and for waiting on log events.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, watch};

/// The console user the bot sees (`console:<USER>`), set in the child's environment.
pub const CONSOLE_USER: &str = "tester";

/// The binary under test: `$SIGBOT_BIN` when set (worktrees that share one `target/`
/// overwrite each other's `target/debug/sigbot`; copy yours and point this at it), else the one
/// cargo built for this test run. Cargo names the binary only to tests and benches, so the
/// examples that include this harness (`benches/`) must set `$SIGBOT_BIN`.
pub fn bot_binary() -> std::path::PathBuf {
    std::env::var_os("SIGBOT_BIN")
        .map(std::path::PathBuf::from)
        .or_else(|| option_env!("CARGO_BIN_EXE_sigbot").map(Into::into))
        .expect("set SIGBOT_BIN to the sigbot binary to run")
}

/// A running sigbot.
pub struct Bot {
    dir: PathBuf,
    config: PathBuf,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    stdout: mpsc::UnboundedReceiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
    stderr_seen: usize,
    /// Counts the log lines read, so that waiting for one is woken by each new line.
    stderr_lines: Arc<watch::Sender<u64>>,
    env: Vec<(String, String)>,
    /// Reads stderr until the process closes it: awaited after an exit, so that the log
    /// holds every line the bot wrote.
    stderr_reader: Option<tokio::task::JoinHandle<()>>,
}

impl Bot {
    /// Writes `config` to `dir/sigbot.toml` and starts the bot in `dir`.
    pub fn start(dir: &Path, config: &str) -> Bot {
        Self::start_with_env(dir, config, &[])
    }

    pub fn start_with_env(dir: &Path, config: &str, env: &[(&str, &str)]) -> Bot {
        let path = dir.join("sigbot.toml");
        std::fs::write(&path, config).expect("write bot config");
        let (tx, rx) = mpsc::unbounded_channel();
        let mut bot = Bot {
            dir: dir.to_owned(),
            config: path,
            child: None,
            stdin: None,
            stdout: rx,
            stderr: Arc::new(Mutex::new(Vec::new())),
            stderr_seen: 0,
            stderr_lines: Arc::new(watch::Sender::new(0)),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            stderr_reader: None,
        };
        bot.spawn(tx);
        bot
    }

    fn spawn(&mut self, stdout_tx: mpsc::UnboundedSender<String>) {
        // A `SIGBOT_BIN` among the bot's own variables names its binary (benchmarks that start
        // two builds side by side).
        let binary = self
            .env
            .iter()
            .find(|(k, _)| k == "SIGBOT_BIN")
            .map_or_else(bot_binary, |(_, v)| v.into());
        let mut cmd = Command::new(binary);
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .current_dir(&self.dir)
            .env("USER", CONSOLE_USER)
            .env("RUST_LOG", "sigbot=debug,info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start sigbot");
        self.stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if stdout_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let log = self.stderr.clone();
        let lines_read = Arc::clone(&self.stderr_lines);
        self.stderr_reader = Some(tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                log.lock().unwrap().push(line);
                lines_read.send_modify(|n| *n += 1);
            }
        }));
        self.child = Some(child);
    }

    /// After the process exited: waits until its last log lines are read.
    async fn read_log_to_end(&mut self) {
        if let Some(reader) = self.stderr_reader.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), reader).await;
        }
    }

    /// Types a line at the bot's console.
    pub async fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("bot is running");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write to bot stdin");
        stdin.flush().await.expect("flush bot stdin");
    }

    /// Replaces the bot's config file (read again on [`Bot::hangup`]).
    pub fn rewrite_config(&self, config: &str) {
        std::fs::write(&self.config, config).expect("rewrite bot config");
    }

    /// SIGHUP: the bot reads its config again.
    pub fn hangup(&self) {
        let pid = self.pid().expect("bot is running");
        let ok = std::process::Command::new("kill")
            .arg("-HUP")
            .arg(pid.to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -HUP {pid} failed");
    }

    /// Closes the bot's stdin (end of console input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for a console output line containing `needle`; panics with the bot's log on
    /// timeout.
    pub async fn wait_stdout(&mut self, timeout: Duration, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.stdout.recv()).await {
                Ok(Some(line)) if line.contains(needle) => return line,
                Ok(Some(_)) => {}
                Ok(None) => panic!(
                    "bot stdout closed while waiting for {needle:?}\n--- bot log ---\n{}",
                    self.log_tail(60)
                ),
                Err(_) => panic!(
                    "timed out after {timeout:?} waiting for bot output {needle:?}\n--- bot log ---\n{}",
                    self.log_tail(60)
                ),
            }
        }
    }

    /// After [`Bot::kill`] or [`Bot::terminate`]: every console line the stopped process
    /// wrote that was not read yet, up to the end of its output.
    pub async fn drain_stdout(&mut self, timeout: Duration) -> Vec<String> {
        let mut lines = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.stdout.recv()).await {
                Ok(Some(line)) => lines.push(line),
                Ok(None) => return lines,
                Err(_) => {
                    panic!("bot stdout did not end within {timeout:?}; is the bot still running?")
                }
            }
        }
    }

    /// Waits for a log line (stderr) containing `needle` that appeared after the last one
    /// this method returned.
    pub async fn wait_log(&mut self, timeout: Duration, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut new_lines = self.stderr_lines.subscribe();
        loop {
            // Marked seen before the look, so that a line read after it wakes the wait below.
            new_lines.borrow_and_update();
            {
                let log = self.stderr.lock().unwrap();
                if let Some((i, line)) = log
                    .iter()
                    .enumerate()
                    .skip(self.stderr_seen)
                    .find(|(_, l)| l.contains(needle))
                {
                    self.stderr_seen = i + 1;
                    return line.clone();
                }
            }
            // The sender lives as long as `self`, so `changed` only ends with a new line.
            if tokio::time::timeout_at(deadline, new_lines.changed())
                .await
                .is_err()
            {
                panic!(
                    "timed out after {timeout:?} waiting for bot log {needle:?}\n--- bot log ---\n{}",
                    self.log_tail(60)
                );
            }
        }
    }

    /// Every log line so far.
    pub fn log(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    pub fn log_tail(&self, n: usize) -> String {
        let log = self.stderr.lock().unwrap();
        let start = log.len().saturating_sub(n);
        log[start..].join("\n")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// SIGKILL, as in a crash: nothing is flushed.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
        self.stdin = None;
    }

    /// SIGTERM, then waits for a clean exit; returns the exit code.
    pub async fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        self.stdin = None;
        if let Some(pid) = child.id() {
            // SAFETY-free: kill(1) with the pid, no libc binding needed.
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        match tokio::time::timeout(timeout, child.wait()).await {
            Ok(Ok(status)) => {
                self.read_log_to_end().await;
                status.code()
            }
            _ => {
                let _ = child.kill().await;
                panic!(
                    "bot did not stop within {timeout:?} after SIGTERM\n{}",
                    self.log_tail(40)
                );
            }
        }
    }

    /// Waits for the bot to exit by itself (stdin stays open); its exit code, or `None` when
    /// it is still running after `timeout` (it is killed then) or died of a signal.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        let exited = tokio::time::timeout(timeout, child.wait()).await;
        self.stdin = None;
        match exited {
            Ok(Ok(status)) => {
                self.read_log_to_end().await;
                status.code()
            }
            _ => {
                let _ = child.kill().await;
                None
            }
        }
    }

    /// Sends `signal` (`TERM`, `INT`, ...) with stdin still open, as a terminal keeps it, and
    /// waits for the exit; returns the exit code, or `None` if the bot is still running after
    /// `timeout` (it is killed then).
    pub async fn signal_with_stdin_open(&mut self, signal: &str, timeout: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        let pid = child.id()?;
        let _ = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status();
        let exited = tokio::time::timeout(timeout, child.wait()).await;
        self.stdin = None;
        match exited {
            Ok(Ok(status)) => {
                self.read_log_to_end().await;
                status.code()
            }
            _ => {
                let _ = child.kill().await;
                None
            }
        }
    }

    /// Starts the bot again with the same config and directory (after `kill`/`terminate`).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the bot before restarting it");
        let (tx, rx) = mpsc::unbounded_channel();
        self.stdout = rx;
        self.stderr.lock().unwrap().clear();
        self.stderr_seen = 0;
        self.spawn(tx);
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
