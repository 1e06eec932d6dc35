//! Meetings end to end through the real binary on the console network: a meeting survives
//! SIGKILL, `sigbot meetings render` writes the six files, and a room's Atom feed lists its
//! public minutes (read by Python's feedparser).

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{BotConfig, Section, free_port};

/// How long one answer from the bot may take (a cold debug binary on a busy machine).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The binary under test, copied once: `CARGO_BIN_EXE_sigbot` lives in a target directory
/// that other worktrees' builds may overwrite at any moment, and a restart must run the very
/// same binary as the start before it.
fn sigbot_exe() -> &'static Path {
    static EXE: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    &EXE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("sigbot");
        std::fs::copy(env!("CARGO_BIN_EXE_sigbot"), &exe).unwrap();
        let ok = Command::new(&exe)
            .args(["meetings", "--help"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(
            ok,
            "{} is not this branch's build (another build replaced it?); rebuild and rerun",
            env!("CARGO_BIN_EXE_sigbot")
        );
        (dir, exe)
    })
    .1
}

fn write_config(dir: &Path) -> PathBuf {
    write_config_on(dir, free_port())
}

fn write_config_on(dir: &Path, web: u16) -> PathBuf {
    let cfg = dir.join("sigbot.toml");
    let config = BotConfig::new()
        .bot("prefix", "!")
        .data_dir(&dir.join("data"))
        .commands_dir(&dir.join("commands"))
        .table(
            "console",
            Section::new().set("name", "console").set("room", "#local"),
        )
        .web(web)
        .meetings(&["console/#local"]);
    std::fs::write(&cfg, config.build()).unwrap();
    cfg
}

/// The bot as a child process, its stdout read line by line on a thread.
struct Bot {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: PathBuf,
}

impl Bot {
    fn start(config: &Path) -> Bot {
        let stderr = std::fs::File::create(config.with_extension("stderr")).unwrap();
        let mut child = Command::new(sigbot_exe())
            .arg("--config")
            .arg(config)
            .env("USER", "alice")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start sigbot");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Bot {
            stderr: config.with_extension("stderr"),
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn say(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{text}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for a line of the bot's containing `needle`.
    fn expect(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(REPLY_TIMEOUT) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no {needle:?} from the bot ({e}); it said: {:#?}\nstderr:\n{}",
                    self.seen,
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                ),
            }
        }
    }

    /// Says each line, then `!ping`, and waits for the `pong`: the core handles events in
    /// order, so every line before it is journaled by then.
    fn say_all(&mut self, lines: &[&str]) {
        for l in lines {
            self.say(l);
        }
        self.say("!ping");
        self.expect("pong");
    }

    fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
    }

    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

const BEFORE: &[&str] = &[
    "#startmeeting Crash <test>",
    "#topic Before the crash",
    "#info one & two",
    "#chair bob",
    "#action bob checks <the> logs",
    "https://pagure.io/sigbot is the repo",
    "#idea idea one",
    "#undo",
];
const AFTER: &[&str] = &[
    "#topic After the crash",
    "#agreed it works",
    "#action alice writes it up",
    "#meetingname crash-test",
];

fn meeting_files(data: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![data.join("meetings")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn file_with(files: &[PathBuf], ext: &str) -> String {
    let f = files
        .iter()
        .find(|p| {
            p.to_string_lossy().ends_with(ext)
                && !p.to_string_lossy().ends_with(&format!("log{ext}"))
        })
        .unwrap_or_else(|| panic!("no *{ext} in {files:?}"));
    std::fs::read_to_string(f).unwrap()
}

/// The log without times (those the bot says included, as in the greeting and `#undo`: the two
/// runs may say them in different seconds), and without the bot's "resumed" notice.
fn log_lines(files: &[PathBuf]) -> Vec<String> {
    let clock = regex::Regex::new(r"\d\d:\d\d:\d\d").unwrap();
    let f = files
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".log.txt"))
        .unwrap();
    std::fs::read_to_string(f)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("is resumed"))
        .map(|l| match l[9..].split_once("Meeting started ") {
            Some((who, _)) => format!("{who}Meeting started"),
            None => clock.replace_all(&l[9..], "hh:mm:ss").into_owned(),
        })
        .collect()
}

fn items(json: &str) -> Vec<(String, String, String)> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["type"].as_str().unwrap().to_owned(),
                i["text"].as_str().unwrap().to_owned(),
                i["nick"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_meeting_survives_sigkill_and_its_minutes_hold_every_line() {
    // Uninterrupted.
    let a = tempfile::tempdir().unwrap();
    let mut bot = Bot::start(&write_config(a.path()));
    bot.say_all(BEFORE);
    bot.say_all(AFTER);
    bot.say("#endmeeting");
    bot.expect("Meeting ended");
    bot.expect("Log:");
    bot.finish();
    let whole = meeting_files(&a.path().join("data"));
    assert_eq!(whole.len(), 6, "{whole:?}");

    // Killed mid-meeting, restarted, finished.
    let b = tempfile::tempdir().unwrap();
    let cfg = write_config(b.path());
    let mut bot = Bot::start(&cfg);
    bot.say_all(BEFORE);
    bot.kill();
    let mut bot = Bot::start(&cfg);
    let notice = bot.expect("is resumed");
    assert!(notice.contains("started by alice"), "{notice}");
    bot.say_all(AFTER);
    bot.say("#endmeeting");
    bot.expect("Meeting ended");
    let log_url = bot.expect("Log:");
    assert!(log_url.contains("/meetings/local/"), "{log_url}");
    assert!(log_url.contains("/crash-test."), "{log_url}");
    bot.finish();
    let resumed = meeting_files(&b.path().join("data"));
    assert_eq!(resumed.len(), 6, "no stub or duplicate files: {resumed:?}");

    // Same file names (the times may differ by the minute they were written in), same
    // log lines, same minutes.
    let names = |f: &[PathBuf]| -> Vec<String> {
        f.iter()
            .map(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.split('.').next().unwrap().to_owned()
            })
            .collect()
    };
    assert_eq!(names(&whole), names(&resumed));
    assert_eq!(log_lines(&whole), log_lines(&resumed));
    assert_eq!(
        items(&file_with(&whole, ".json")),
        items(&file_with(&resumed, ".json"))
    );
    assert_eq!(items(&file_with(&resumed, ".json")).len(), 7);
    let html = file_with(&resumed, ".html");
    assert!(html.contains("bob checks &lt;the&gt; logs"));
    assert!(!html.contains("<the>"));
}

#[test]
fn render_writes_all_formats_from_a_raw_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("weekly.2026-01-02-03.04.log.txt");
    std::fs::write(
        &log,
        "03:04:00 <alice> #startmeeting Weekly\n03:04:10 <alice> #topic One\n03:04:20 * bob waves\n03:05:00 <alice> #action bob does <x>\n03:06:00 <alice> #endmeeting\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let status = Command::new(sigbot_exe())
        .args(["meetings", "render"])
        .arg(&log)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    for ext in ["log.txt", "log.html", "html", "txt", "md", "json"] {
        let p = out.join(format!("weekly.2026-01-02-03.04.{ext}"));
        assert!(p.exists(), "{}", p.display());
    }
    let txt = std::fs::read_to_string(out.join("weekly.2026-01-02-03.04.txt")).unwrap();
    assert!(
        txt.contains("Meeting started by alice at 03:04:00 UTC"),
        "{txt}"
    );
    assert!(txt.contains("* bob\n  * bob does <x>"), "{txt}");
}

/// Fetches the site's pages named on the command line and reads the feed with feedparser
/// (from the Synapse virtualenv, where scripts/test installs it): prints JSON with each
/// page's status, and the feed's content type, errors and entries.
const READ_FEED: &str = r#"
import json, sys, urllib.request, urllib.error
import feedparser
site, feed_path, others = sys.argv[1], sys.argv[2], sys.argv[3:]
def status(path):
    try:
        with urllib.request.urlopen(site + path) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
with urllib.request.urlopen(site + feed_path) as r:
    ctype, body = r.headers["Content-Type"], r.read()
d = feedparser.parse(body)
print(json.dumps({
    "content_type": ctype,
    "bozo": bool(d.bozo),
    "version": d.version,
    "title": d.feed.get("title"),
    "entries": [{
        "title": e.get("title"),
        "link": e.get("link"),
        "updated": e.get("updated"),
        "updated_ok": e.get("updated_parsed") is not None,
        "summary": e.get("summary"),
        "link_status": status(e.get("link", "").removeprefix(site)),
    } for e in d.entries],
    "statuses": {p: status(p) for p in others},
}))
"#;

#[test]
fn a_rooms_feed_lists_its_public_minutes_escaped_and_never_a_restricted_one() {
    let venv = crate::support::matrix::synapse_venv();
    let python = venv.join("bin/python");
    let has_feedparser = Command::new(&python)
        .args(["-c", "import feedparser"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_feedparser,
        "feedparser is missing from {}: run scripts/test once (it installs it)",
        venv.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut bot = Bot::start(&write_config_on(dir.path(), port));
    // A restricted meeting, 20 public ones, then one whose name is markup: the feed lists
    // the latest 20 public ones.
    bot.say_all(&[
        "#startmeeting secret plans",
        "#info secret words",
        "#restrictlogs",
    ]);
    bot.say("#endmeeting");
    bot.expect("Log:");
    // (No `!ping` here: the bot slows down a user's commands; lines are handled in order.)
    for i in 1..=20 {
        bot.say(&format!("#startmeeting m{i}"));
        bot.say("#info words");
        bot.say("#endmeeting");
        bot.expect("Log:");
    }
    bot.say_all(&["#startmeeting First <b>&amp; \"one\"", "#info first words"]);
    bot.say("#endmeeting");
    bot.expect("Log:");

    let site = format!("http://127.0.0.1:{port}");
    let out = Command::new(&python)
        .args(["-c", READ_FEED, &site, "/meetings/local/feed.atom"])
        .args([
            "/meetings/nosuchroom/feed.atom",
            "/meetings/LOCAL/feed.atom",
            "/meetings/%2E%2E/feed.atom",
        ])
        .output()
        .unwrap();
    bot.finish();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("MEASURE feed: {text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["bozo"], false, "a well-formed feed: {text}");
    assert_eq!(v["version"], "atom10", "{text}");
    assert!(
        v["content_type"]
            .as_str()
            .unwrap()
            .starts_with("application/atom+xml"),
        "{text}"
    );
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 20, "the latest 20 public meetings: {text}");
    assert!(!text.contains("secret"), "{text}");
    // Newest first; the title is the text as said, not markup.
    assert_eq!(entries[0]["title"], "First <b>&amp; \"one\"", "{text}");
    assert_eq!(entries[1]["title"], "m20", "{text}");
    assert_eq!(entries[19]["title"], "m2", "{text}");
    for e in entries {
        let link = e["link"].as_str().unwrap();
        assert!(
            link.starts_with(&format!("{site}/meetings/local/")) && link.ends_with(".html"),
            "{link}"
        );
        assert!(!link.ends_with(".log.html"), "{link}");
        assert_eq!(e["link_status"], 200, "{link}");
        assert_eq!(e["updated_ok"], true, "{text}");
    }
    for (path, status) in v["statuses"].as_object().unwrap() {
        assert_eq!(status, 404, "{path}");
    }
}
