//! The shipped declarative commands, run through the real binary over the console network,
//! against a local HTTP server that answers with the real services' response shapes
//! (`tests/fixtures/lookups/`): success, not found, error bodies, a 500 and a timeout.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::support::BotConfig;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/lookups");
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/commands");
/// How long the fake server stalls: longer than any command's (test) timeout of 2s.
/// A server that never answers, for timeouts: the bot's own timeout ends the wait.
async fn stall() {
    std::future::pending::<()>().await;
}
/// How long a test waits for one reply line.
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);
const TOKEN: &str = "tok-Zq81-SECRET-do-not-leak";

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(FIXTURES).join(rel)).unwrap_or_else(|e| panic!("fixture {rel}: {e}"))
}

fn json(status: StatusCode, rel: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        fixture(rel),
    )
        .into_response()
}

async fn bugzilla(UrlPath(id): UrlPath<String>) -> Response {
    match id.as_str() {
        "1839234" => json(
            StatusCode::OK,
            "bugzilla/rhbz_GET_rest_bug_1839234.gozilla-readme.json",
        ),
        "3" => json(
            StatusCode::NOT_FOUND,
            "bugzilla/rhbz_error_101_bug_does_not_exist.prow-fixture.json",
        ),
        "2" => json(
            StatusCode::UNAUTHORIZED,
            "bugzilla/rhbz_error_102_access_denied.prow-fixture.json",
        ),
        "777" => {
            stall().await;
            StatusCode::OK.into_response()
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response(),
    }
}

async fn pagure(UrlPath((project, id)): UrlPath<(String, String)>) -> Response {
    match (project.as_str(), id.as_str()) {
        ("ogr-tests", "2") => json(
            StatusCode::OK,
            "pagure/pagure_io_GET_api0_ogr-tests_issue_2.json",
        ),
        ("ogr-tests", "99") => json(
            StatusCode::NOT_FOUND,
            "pagure/pagure_404_ENOISSUE.DERIVED.json",
        ),
        ("ogr-tests", "7") => json(
            StatusCode::FORBIDDEN,
            "pagure/pagure_403_EISSUENOTALLOWED.DERIVED.json",
        ),
        ("nope", _) => json(
            StatusCode::NOT_FOUND,
            "pagure/pagure_io_404_ENOPROJECT.json",
        ),
        ("slow", _) => {
            stall().await;
            StatusCode::OK.into_response()
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
    }
}

async fn kojihub(body: String) -> Response {
    let xml = |rel: &str| {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/xml")],
            fixture(rel),
        )
            .into_response()
    };
    if !body.contains("<methodName>getLatestBuilds</methodName>") {
        return xml("koji/kojiji_multicall-fault-response.xml");
    }
    if body.contains("f40-updates") && body.contains("<name>__starstar</name>") {
        xml("koji/getLatestBuilds-response.SYNTHETIC.xml")
    } else if body.contains("f99-updates") {
        xml("koji/getLatestBuilds-fault-no-such-tag.SYNTHETIC.xml")
    } else if body.contains("empty-tag") {
        (StatusCode::OK, "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><array><data>\n</data></array></value>\n</param>\n</params>\n</methodResponse>\n").into_response()
    } else if body.contains("slow-tag") {
        stall().await;
        StatusCode::OK.into_response()
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
    }
}

async fn repo(UrlPath((name, file)): UrlPath<(String, String)>) -> Response {
    match name.as_str() {
        "broken" => return (StatusCode::INTERNAL_SERVER_ERROR, "no").into_response(),
        "slow" => {
            stall().await;
            return StatusCode::OK.into_response();
        }
        _ => {}
    }
    let path = Path::new(FIXTURES)
        .join("repodata")
        .join(&name)
        .join("repodata")
        .join(&file);
    match std::fs::read(path) {
        Ok(b) => b.into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn trigger(body: Bytes) -> Response {
    let form: Vec<(String, String)> = url_pairs(&body);
    let token_ok = form.iter().any(|(k, v)| k == "token" && v == TOKEN);
    let version = form
        .iter()
        .find(|(k, _)| k == "variables[VERSION]")
        .map(|(_, v)| v.clone());
    if !token_ok {
        return json(
            StatusCode::NOT_FOUND,
            "triggers/gitlab_404_not_found.SYNTHETIC.json",
        );
    }
    match version.as_deref() {
        Some("9.9.9") => {
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
        }
        _ => json(
            StatusCode::CREATED,
            "triggers/gitlab_POST_trigger_pipeline_201.docs-example.json",
        ),
    }
}

/// Sends back what it was given, as a careless service might.
async fn echo(headers: HeaderMap, Query(q): Query<Vec<(String, String)>>) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (
        StatusCode::OK,
        [("x-echo", auth.clone())],
        format!("auth={auth} query={q:?}"),
    )
        .into_response()
}

fn url_pairs(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%'
                && i + 2 < b.len()
                && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The fake services on a free loopback port; stops with the test's runtime.
pub(crate) async fn fake_services() -> SocketAddr {
    let app = Router::new()
        .route("/rest/bug/{id}", get(bugzilla))
        .route("/api/0/{project}/issue/{id}", get(pagure))
        .route("/kojihub", post(kojihub))
        .route("/repo/{name}/repodata/{file}", get(repo))
        .route("/trigger", post(trigger))
        .route("/echo", get(echo));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// The shipped command files, pointed at the fake services, with short timeouts and no
/// cooldown (the cooldown is covered by the core's unit tests).
pub(crate) fn shipped_commands(dir: &Path, base: &str) {
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(SHIPPED).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text
            .replace("https://bugzilla.redhat.com/rest/bug/", &format!("{base}/rest/bug/"))
            .replace("https://pagure.io/api/0/", &format!("{base}/api/0/"))
            .replace("https://cbs.centos.org/kojihub", &format!("{base}/kojihub"))
            .replace(
                "https://mirror.stream.centos.org/SIGs/9-stream/hyperscale/x86_64/packages-main/",
                &format!("{base}/repo/{{{{ 'slow' if args.package == 'slowpkg' else ('broken' if args.package == 'brokenpkg' else 'libdnf_modules_all_x86_64') }}}}/"),
            )
            .replace(
                "https://gitlab.com/api/v4/projects/sigbot%2Frelease/trigger/pipeline",
                &format!("{base}/trigger"),
            );
        let text = regex_replace_timeouts(&text);
        std::fs::write(dir.join(path.file_name().unwrap()), text).unwrap();
    }
}

fn regex_replace_timeouts(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with("timeout = ") {
                "timeout = \"2s\"".to_owned()
            } else if l.starts_with("cooldown = ") {
                "cooldown = \"0s\"".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The bot, started as the real binary with the console network.
struct Bot {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Bot {
    fn start(base: &str, extra: &[(&str, &str)]) -> Bot {
        Self::start_logging(base, extra, "text")
    }

    /// With `[log] format = format`.
    fn start_logging(base: &str, extra: &[(&str, &str)], format: &str) -> Bot {
        let dir = tempfile::tempdir().unwrap();
        let commands = dir.path().join("commands");
        shipped_commands(&commands, base);
        for (name, text) in extra {
            std::fs::write(commands.join(name), text.replace("BASE", base)).unwrap();
        }
        let config = dir.path().join("sigbot.toml");
        let text = BotConfig::empty()
            .data_dir(&dir.path().join("data"))
            .commands_dir(&commands)
            .console()
            .role("releng", &["console:releaser"])
            .raw(&format!("[log]\nformat = {format:?}\n"));
        std::fs::write(&config, text.build()).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sigbot"))
            .arg("--config")
            .arg(&config)
            .env("USER", "releaser")
            .env("SIGBOT_RELEASE_TOKEN", TOKEN)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let stdin = child.stdin.take();
        Bot {
            child,
            stdin,
            lines,
            stderr,
            config,
            _dir: dir,
        }
    }

    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The bot's next line in the console room (its text only).
    fn reply(&mut self) -> String {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no reply within {REPLY_TIMEOUT:?}; stderr:\n{}",
                    self.stderr.lock().unwrap()
                )
            });
            if let Some(text) = line.strip_prefix("[console/#local] <sigbot> ") {
                return text.to_owned();
            }
        }
    }

    fn ask(&mut self, line: &str) -> String {
        self.say(line);
        self.reply()
    }

    /// Ends stdin (the bot stops), waits for it, and returns everything it logged.
    fn finish(mut self) -> (String, PathBuf, tempfile::TempDir) {
        drop(self.stdin.take());
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the bot did not stop after its input ended");
            }
            std::thread::yield_now();
        }
        // The reader thread has seen EOF once the process is gone; collect what it read.
        let _ = self.child.wait();
        let log = self.stderr.lock().unwrap().clone();
        (log, self.config, self._dir)
    }
}

fn audit_log(config: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sigbot"))
        .args(["audit", "--since", "1h", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bug_against_bugzilla_shapes() {
    let base = format!("http://{}", fake_services().await);
    let mut bot = tokio::task::block_in_place(|| Bot::start(&base, &[]));
    tokio::task::block_in_place(|| {
        assert_eq!(
            bot.ask("!bug 1839234"),
            "rhbz#1839234: sqlite-3.32.0 is available [MODIFIED] (Fedora/sqlite) https://bugzilla.redhat.com/show_bug.cgi?id=1839234"
        );
        assert_eq!(bot.ask("!rhbz 3"), "No bug 3 in Red Hat Bugzilla");
        assert_eq!(bot.ask("!bug 2"), "rhbz#2 is private");
        assert_eq!(
            bot.ask("!bug 500"),
            "Bugzilla did not answer: HTTP 500 Internal Server Error"
        );
        assert_eq!(
            bot.ask("!bug 777"),
            "Bugzilla did not answer: timed out after 2s"
        );
        assert_eq!(
            bot.ask("!bug x1"),
            "releaser: <id> does not look right; usage: !bug <id>"
        );
        bot.finish();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_against_pagure_shapes() {
    let base = format!("http://{}", fake_services().await);
    tokio::task::block_in_place(|| {
        let mut bot = Bot::start(&base, &[]);
        assert_eq!(
            bot.ask("!issue ogr-tests 2"),
            "ogr-tests#2: Test 1 [Closed] https://pagure.io/ogr-tests/issue/2"
        );
        assert_eq!(bot.ask("!issue ogr-tests 99"), "No issue 99 in ogr-tests");
        assert_eq!(bot.ask("!issue nope 1"), "No project nope on pagure.io");
        assert_eq!(bot.ask("!issue ogr-tests 7"), "ogr-tests#7 is private");
        assert_eq!(
            bot.ask("!issue other 1"),
            "Pagure did not answer: HTTP 500 Internal Server Error"
        );
        assert_eq!(
            bot.ask("!issue slow 1"),
            "Pagure did not answer: timed out after 2s"
        );
        bot.finish();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_against_koji_shapes() {
    let base = format!("http://{}", fake_services().await);
    tokio::task::block_in_place(|| {
        let mut bot = Bot::start(&base, &[]);
        let ok = bot.ask("!latest f40-updates python-requests");
        assert!(
            ok.contains("2.31.0-4.fc40 in f40-updates (built by jdoe, 2024-04-23 11:30:09)"),
            "{ok}"
        );
        assert_eq!(
            bot.ask("!latest f99-updates python-requests"),
            "No build of python-requests in f99-updates (or no such tag)"
        );
        assert_eq!(
            bot.ask("!latest empty-tag nothing"),
            "No build of nothing in empty-tag (or no such tag)"
        );
        assert_eq!(
            bot.ask("!latest other-tag x"),
            "CBS Koji did not answer: HTTP 500 Internal Server Error"
        );
        assert_eq!(
            bot.ask("!latest slow-tag x"),
            "CBS Koji did not answer: timed out after 2s"
        );
        bot.finish();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repover_against_createrepo_output() {
    let base = format!("http://{}", fake_services().await);
    tokio::task::block_in_place(|| {
        let mut bot = Bot::start(&base, &[]);
        assert_eq!(
            bot.ask("!repover httpd"),
            "httpd 0:2.4.25-8 (x86_64) is the newest in hyperscale packages-main"
        );
        // Second lookup: same repomd revision, answered from the cache.
        assert_eq!(
            bot.ask("!repover libnghttp2"),
            "libnghttp2 0:1.21.1-1.1 (x86_64) is the newest in hyperscale packages-main"
        );
        assert_eq!(
            bot.ask("!repover nosuchpkg"),
            "No package nosuchpkg in hyperscale packages-main"
        );
        assert_eq!(
            bot.ask("!repover brokenpkg"),
            "The repository did not answer: HTTP 500 for repomd.xml"
        );
        assert_eq!(
            bot.ask("!repover slowpkg"),
            "The repository did not answer: timed out after 2s"
        );
        bot.finish();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_needs_role_and_confirmation_and_is_audited() {
    let base = format!("http://{}", fake_services().await);
    tokio::task::block_in_place(|| {
        let mut bot = Bot::start(&base, &[]);
        let ask = bot.ask("!release 1.2.3");
        assert!(
            ask.starts_with(
                "releaser: about to run release version=1.2.3; to go ahead say !confirm "
            ),
            "{ask}"
        );
        let code = ask.split("!confirm ").nth(1).unwrap()[..6].to_owned();
        assert_eq!(
            bot.ask(&format!("!confirm {code}")),
            "release 1.2.3: pipeline 257 created http://127.0.0.1:3000/test-group/test-project/-/pipelines/257"
        );
        assert!(
            bot.ask(&format!("!confirm {code}"))
                .contains("no command is waiting")
        );
        let ask = bot.ask("!release 9.9.9");
        let code = ask.split("!confirm ").nth(1).unwrap()[..6].to_owned();
        assert_eq!(
            bot.ask(&format!("!confirm {code}")),
            "release 9.9.9 not started: HTTP 500 Internal Server Error"
        );
        bot.ask("!release 1.2.4");
        assert_eq!(bot.ask("!cancel"), "releaser: cancelled release");
        let (_, config, _dir) = bot.finish();
        let audit = audit_log(&config);
        for want in [
            "console:releaser console/#local release [version=1.2.3] awaiting confirmation",
            "console:releaser console/#local release [version=1.2.3] confirmed",
            "console:releaser console/#local release [version=1.2.3] success (HTTP 201)",
            "console:releaser console/#local release [version=9.9.9] error: HTTP 500 Internal Server Error (HTTP 500)",
            "console:releaser console/#local release [version=1.2.4] cancelled",
        ] {
            assert!(audit.contains(want), "{want:?} not in audit:\n{audit}");
        }
    });
}

const ECHO: &str = r#"
name = "echo"
summary = "Echo what the trigger endpoint got"
role = "releng"
[http]
url = "BASE/echo?key=${SIGBOT_RELEASE_TOKEN}"
headers = { Authorization = "Bearer ${SIGBOT_RELEASE_TOKEN}" }
[reply]
success = "{{ text }} {{ headers['x-echo'] }}"
error = "{{ error }}"
"#;

const ECHO_DOWN: &str = r#"
name = "echodown"
summary = "A trigger that is not there"
role = "releng"
[http]
url = "http://127.0.0.1:1/x?key=${SIGBOT_RELEASE_TOKEN}"
timeout = "2s"
[reply]
success = "{{ text }}"
error = "failed: {{ error }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_replies_logs_or_audit() {
    let base = format!("http://{}", fake_services().await);
    for format in ["text", "json"] {
        secrets_stay_out_of_a_log(&base, format);
    }
}

fn secrets_stay_out_of_a_log(base: &str, format: &str) {
    tokio::task::block_in_place(|| {
        let extra = [("echo.toml", ECHO), ("echodown.toml", ECHO_DOWN)];
        let mut bot = Bot::start_logging(base, &extra, format);
        let mut replies = Vec::new();
        // The server got the token (it echoes it), and the reply shows it redacted.
        let echoed = bot.ask("!echo");
        assert!(echoed.contains("auth=Bearer <redacted>"), "{echoed}");
        assert!(echoed.contains("<redacted>"), "{echoed}");
        replies.push(echoed);
        replies.push(bot.ask("!echodown"));
        assert_eq!(replies[1], "failed: could not connect");
        let ask = bot.ask("!release 1.2.3");
        let code = ask.split("!confirm ").nth(1).unwrap()[..6].to_owned();
        replies.push(ask);
        replies.push(bot.ask(&format!("!confirm {code}")));
        let (log, config, _dir) = bot.finish();
        let audit = audit_log(&config);
        assert!(audit.contains("echo"), "{audit}");
        assert!(log.contains("http request"), "the log was captured: {log}");
        if format == "json" {
            let lines: Vec<serde_json::Value> = log
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect();
            // An event's fields are keys of its line: the command of a request, for one.
            assert!(
                lines
                    .iter()
                    .any(|l| l["message"] == "http request" && l["command"] == "echo"),
                "{log}"
            );
        }
        for (what, text) in [
            ("replies", replies.join("\n")),
            ("log", log),
            ("audit", audit),
        ] {
            assert!(
                !text.contains(TOKEN),
                "the secret leaked into the {what}:\n{text}"
            );
        }
        let db = std::fs::read(config.parent().unwrap().join("data/sigbot.db")).unwrap();
        assert!(
            !db.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
            "secret in the database"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_lists_declarative_commands_by_role() {
    let base = format!("http://{}", fake_services().await);
    tokio::task::block_in_place(|| {
        let mut bot = Bot::start(&base, &[]);
        let help = bot.ask("!help");
        for name in ["!bug", "!issue", "!latest", "!repover", "!release", "!ping"] {
            assert!(help.contains(name), "{name} missing from {help}");
        }
        assert_eq!(
            bot.ask("!help latest"),
            "!latest <tag> <package>: Show the latest build of a package in a CBS Koji tag"
        );
        bot.finish();
    });
}

impl Bot {
    fn hangup(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -HUP failed");
    }

    /// Waits until the bot's log contains `needle` (an event in the log, not a fixed pause).
    fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            {
                let log = self.stderr.lock().unwrap();
                if let Some(i) = log.find(needle) {
                    let end = log[i..].find('\n').map_or(log.len(), |e| i + e);
                    return log[..end].rsplit('\n').next().unwrap_or("").to_owned();
                }
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} never logged:\n{}",
                self.stderr.lock().unwrap()
            );
            std::thread::yield_now();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_a_bad_file_keeps_the_old_set() {
    let base = format!("http://{}", fake_services().await);
    tokio::task::block_in_place(|| {
        let mut bot = Bot::start(&base, &[]);
        assert_eq!(bot.ask("!ping"), "pong");
        let dir = bot.config.parent().unwrap().join("commands");
        std::fs::write(
            dir.join("zz.toml"),
            "name = \"zz\"\nsummary = \"x\"\nbogus = 1\n",
        )
        .unwrap();
        bot.hangup();
        let line = bot.wait_log("commands not reloaded");
        assert!(
            line.contains("zz.toml:3:1: unknown field `bogus`"),
            "{line}"
        );
        assert!(
            bot.ask("!bug 3").starts_with("No bug 3"),
            "the old set stays"
        );
        let good = std::fs::read_to_string(dir.join("bug.toml"))
            .unwrap()
            .replace("name = \"bug\"", "name = \"zz\"")
            .replace("usage = \"bug <id>\"", "usage = \"zz <id>\"")
            .replace("aliases = [\"rhbz\"]", "");
        std::fs::write(dir.join("zz.toml"), good).unwrap();
        bot.hangup();
        bot.wait_log("SIGHUP: commands reloaded");
        assert!(bot.ask("!zz 3").starts_with("No bug 3"));
        bot.finish();
    });
}
