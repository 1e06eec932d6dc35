//! A real Prometheus (Debian's `prometheus`) scraping the bot every second, with its query
//! API for the tests, and `promtool` to lint an exposition.

use std::net::SocketAddr;
use std::time::Duration;

use super::{
    LOCALHOST, ProcessSpec, SERVER_START_TIMEOUT, ServerProcess, free_port, require_program,
    temp_dir, wait_until, wait_until_within, write_file,
};

const INSTALL_HINT: &str =
    "run scripts/test, which installs it (apt-get install --no-install-recommends prometheus)";

/// A Prometheus server on a free loopback port, its storage in a temporary directory,
/// scraping one target.
pub struct PrometheusServer {
    process: ServerProcess,
    port: u16,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl PrometheusServer {
    /// Starts Prometheus scraping `target`'s `/metrics` every second, and waits until it is
    /// ready (`/-/ready` answers 200).
    pub async fn start(target: SocketAddr) -> Self {
        let program = require_program("prometheus", INSTALL_HINT);
        let dir = temp_dir("prometheus");
        let port = free_port();
        let config = dir.path().join("prometheus.yml");
        write_file(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: sigbot\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        );
        let spec = ProcessSpec::new("prometheus", program, dir.path())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={LOCALHOST}:{port}"));
        let mut process = ServerProcess::spawn(spec);
        let http = reqwest::Client::new();
        let ready = format!("http://{LOCALHOST}:{port}/-/ready");
        wait_until("prometheus to be ready", SERVER_START_TIMEOUT, || {
            process.assert_running();
            let req = http.get(&ready);
            async move {
                let resp = req.send().await.ok()?;
                resp.status().is_success().then_some(())
            }
        })
        .await;
        Self {
            process,
            port,
            http,
            _dir: dir,
        }
    }

    /// The value of an instant `query` with one result, if it has one now.
    pub async fn query(&self, query: &str) -> Option<f64> {
        let url = format!("http://{LOCALHOST}:{}/api/v1/query", self.port);
        let resp = self
            .http
            .get(url)
            .query(&[("query", query)])
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = resp.json().await.ok()?;
        let result = body["data"]["result"].as_array()?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    /// Waits until `query` gives `want`; panics after `timeout` with the last value seen.
    pub async fn wait_for_value(&self, query: &str, want: f64, timeout: Duration) {
        let got = wait_until_within(timeout, || async {
            (self.query(query).await == Some(want)).then_some(())
        })
        .await;
        if got.is_none() {
            let last = self.query(query).await;
            panic!(
                "timed out after {timeout:?} waiting for Prometheus to give {query} = {want}; \
                 it gives {last:?}\n--- prometheus log ---\n{}",
                self.process.log_tail(20)
            );
        }
    }
}

/// Lints an exposition with `promtool check metrics`; its complaints, if it has any.
pub fn promtool_check(exposition: &str) -> Result<(), String> {
    use std::io::Write as _;
    let program = require_program("promtool", INSTALL_HINT);
    let mut child = std::process::Command::new(program)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .expect("promtool stdin")
        .write_all(exposition.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("wait for promtool");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The value of the sample `series` (`name{labels}` exactly as the bot writes it) in the
/// bot's `/metrics` on `port` right now, if it is there.
pub async fn scrape_value(http: &reqwest::Client, port: u16, series: &str) -> Option<f64> {
    let text = http
        .get(format!("http://{LOCALHOST}:{port}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Waits until the bot's `/metrics` on `port` gives `series` = `want`.
pub async fn wait_for_scraped(http: &reqwest::Client, port: u16, series: &str, want: f64) {
    wait_for_scraped_where(http, port, series, &format!("= {want}"), |v| v == want).await;
}

/// Waits until the bot's `/metrics` on `port` gives `series` at least `least`.
pub async fn wait_for_scraped_at_least(
    http: &reqwest::Client,
    port: u16,
    series: &str,
    least: f64,
) {
    wait_for_scraped_where(http, port, series, &format!(">= {least}"), |v| v >= least).await;
}

async fn wait_for_scraped_where(
    http: &reqwest::Client,
    port: u16,
    series: &str,
    what: &str,
    ok: impl Fn(f64) -> bool,
) {
    let got = wait_until_within(Duration::from_secs(30), || async {
        scrape_value(http, port, series)
            .await
            .filter(|v| ok(*v))
            .map(|_| ())
    })
    .await;
    if got.is_none() {
        let last = scrape_value(http, port, series).await;
        panic!("timed out waiting for /metrics to give {series} {what}; it gives {last:?}");
    }
}
