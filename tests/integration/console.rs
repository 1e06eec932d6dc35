//! The foundation end to end: the real binary on its console network, its web site, its
//! shutdown, and `check-config` refusing bad configs with their location.

use std::time::Duration;

use crate::support::bot::{Bot, CONSOLE_USER};
use crate::support::{BotConfig, free_port, repo_root, temp_dir};

const T: Duration = Duration::from_secs(30);

/// The bot on its console, with its web site on `web_port`.
fn console_config(web_port: u16) -> BotConfig {
    BotConfig::new().console().web(web_port)
}

#[tokio::test]
async fn console_answers_builtins_and_ignores_unknown_commands() {
    let dir = temp_dir("console");
    let port = free_port();
    let mut bot = Bot::start(
        dir.path(),
        &console_config(port)
            .role("admin", &[&format!("console:{CONSOLE_USER}")])
            .build(),
    );
    bot.say("!ping").await;
    assert_eq!(
        bot.wait_stdout(T, "").await,
        "[console/#local] <sigbot> pong"
    );

    // An unknown command gets no reply: the next line out answers the next command.
    bot.say("!frobnicate now").await;
    bot.say("sigbot: version").await;
    let line = bot.wait_stdout(T, "").await;
    assert_eq!(
        line,
        format!(
            "[console/#local] <sigbot> sigbot {}",
            env!("CARGO_PKG_VERSION")
        )
    );

    bot.say("!whoami").await;
    let line = bot.wait_stdout(T, "").await;
    assert_eq!(
        line,
        format!(
            "[console/#local] <sigbot> {CONSOLE_USER}: you are console:{CONSOLE_USER}, with roles: admin"
        )
    );

    bot.say("!help").await;
    let line = bot.wait_stdout(T, "").await;
    assert!(line.contains("!ping") && line.contains("!say"), "{line}");

    bot.say("!status").await;
    let line = bot.wait_stdout(T, "").await;
    // The queue length is whatever the console writer had not printed yet at that instant.
    let status =
        regex::Regex::new(r"networks: console connected \(queue \d+\); uptime \d+s$").unwrap();
    assert!(status.is_match(&line), "{line}");

    // The role-guarded built-in runs for the admin.
    bot.say("!say console/#local hello from the admin").await;
    assert_eq!(
        bot.wait_stdout(T, "").await,
        "[console/#local] <sigbot> hello from the admin"
    );

    assert_eq!(
        bot.terminate(T).await,
        Some(0),
        "SIGTERM must end the bot cleanly"
    );
}

#[tokio::test]
async fn guarded_builtin_is_refused_without_the_role() {
    let dir = temp_dir("console-norole");
    let mut bot = Bot::start(dir.path(), &console_config(free_port()).build());
    bot.say("!say console/#local hi").await;
    assert_eq!(
        bot.wait_stdout(T, "").await,
        format!("[console/#local] <sigbot> {CONSOLE_USER}: say needs the admin role")
    );
    bot.say("!help").await;
    let line = bot.wait_stdout(T, "").await;
    assert!(
        !line.contains("!say"),
        "help must not list what the caller may not run: {line}"
    );
}

#[tokio::test]
async fn healthz_reports_each_network_and_the_index_page_answers() {
    let dir = temp_dir("console-web");
    let port = free_port();
    let mut bot = Bot::start(dir.path(), &console_config(port).build());
    // The console reports itself connected as soon as it reads; a ping proves it is up.
    bot.say("!ping").await;
    bot.wait_stdout(T, "pong").await;
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let resp = crate::support::wait_until("healthz answers", T, || {
        let http = http.clone();
        let url = url.clone();
        async move { http.get(&url).send().await.ok() }
    })
    .await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["networks"]["console"]["state"], "connected", "{body}");
    assert_eq!(body["networks"]["console"]["kind"], "console", "{body}");
    assert_eq!(body["status"], "ok", "{body}");

    let index = http
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(index.status(), 200);
    assert!(index.text().await.unwrap().contains("<h1>sigbot</h1>"));
    bot.terminate(T).await;
}

#[tokio::test]
async fn shipped_default_config_answers_ping_typed_at_the_console() {
    // `cargo run --release` runs config/sigbot.toml from the repository root; do the same
    // from a scratch directory so that its data/ does not land in the tree.
    let dir = temp_dir("default-config");
    let config = std::fs::read_to_string(repo_root().join("config/sigbot.toml")).unwrap();
    // The shipped web and broker ports may be taken on a busy machine (or by a parallel
    // test); the rest is as shipped.
    let config = config
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", free_port()))
        .replace("127.0.0.1:1883", &format!("127.0.0.1:{}", free_port()));
    let mut bot = Bot::start(dir.path(), &config);
    bot.say("!ping").await;
    assert_eq!(
        bot.wait_stdout(T, "").await,
        "[console/#local] <sigbot> pong"
    );
    bot.terminate(T).await;
    assert!(
        dir.path().join("data/sigbot.db").exists(),
        "the store lives in data_dir"
    );
}

fn check_config(dir: &std::path::Path, text: &str) -> (i32, String, String) {
    let path = dir.join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sigbot"))
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .env_remove("SIGBOT_TEST_UNSET")
        .env("SIGBOT_TEST_SET", "s3cret-value")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_refuses_each_bad_config_with_its_location() {
    let dir = temp_dir("check-config");
    let base = "[console]\n\n[[irc]]\nname = \"libera\"\nserver = \"irc.example.org\"\n";
    let cases: &[(&str, String, &str)] = &[
        (
            "unknown key",
            format!("{base}chanels = [\"#a\"]\n"),
            ":6:1: unknown field `chanels`",
        ),
        (
            "malformed room reference",
            format!("{base}[meetings]\nrooms = [\"libera#a\"]\n"),
            ":7:10: room reference \"libera#a\" has no '/'",
        ),
        (
            "room on an undefined network",
            format!("{base}[meetings]\nrooms = [\"oftc/#a\"]\n"),
            ":7:10: room \"oftc/#a\" names network \"oftc\", which is not defined",
        ),
        (
            "two networks with one name",
            format!("{base}[[irc]]\nname = \"libera\"\nserver = \"irc.example.net\"\n"),
            ":7:8: two networks are named \"libera\"",
        ),
        (
            "unset environment variable",
            format!("{base}password = \"${{SIGBOT_TEST_UNSET}}\"\n"),
            ":6:12: environment variable SIGBOT_TEST_UNSET is not set",
        ),
        (
            "unknown [log] key",
            format!("{base}[log]\nlevels = \"debug\"\n"),
            ":7:1: unknown field `levels`",
        ),
        (
            "bad log format",
            format!("{base}[log]\nformat = \"xml\"\n"),
            ":7:10: log.format \"xml\": write \"text\" or \"json\"",
        ),
        (
            "bad log level",
            format!("{base}[log]\nlevel = \"loud\"\n"),
            ":7:9: log.level \"loud\": write one of error, warn, info, debug, trace",
        ),
        (
            "unreadable secret file",
            format!("{base}password = {{ file = \"/nonexistent/sigbot-secret\" }}\n"),
            ":6:12: password: cannot read secret file /nonexistent/sigbot-secret",
        ),
    ];
    let path = dir.path().join("bad.toml");
    for (what, text, expected) in cases {
        let (code, stdout, stderr) = check_config(dir.path(), text);
        assert_eq!(code, 1, "{what}: exit code; stderr: {stderr}");
        let want = format!("{}{expected}", path.display());
        assert!(
            stderr.starts_with(&want),
            "{what}: expected {want:?}, got {stderr:?}"
        );
        assert!(stdout.is_empty(), "{what}: nothing on stdout on error");
    }

    // A good config passes and the summary never shows the secret.
    let (code, stdout, stderr) = check_config(
        dir.path(),
        &format!("{base}password = \"${{SIGBOT_TEST_SET}}\"\n"),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("irc libera: irc.example.org:6697 (tls)"),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cret") && !stderr.contains("s3cret"));
}

#[test]
fn bot_refuses_to_start_on_a_bad_config_or_unusable_data_dir() {
    let dir = temp_dir("bad-start");
    let (code, _, stderr) = check_config(dir.path(), "[bot]\nnick = 5\n");
    assert_eq!(code, 1);
    assert!(stderr.contains("bad.toml:2:8:"), "{stderr}");

    // data_dir under a plain file cannot be created: a clear error, nothing started.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "x").unwrap();
    let cfg = dir.path().join("bot.toml");
    let config = BotConfig::empty().data_dir(&blocker.join("data")).console();
    std::fs::write(&cfg, config.build()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sigbot"))
        .args(["run", "--config"])
        .arg(&cfg)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "data directory {}/data: cannot create it",
            blocker.display()
        )),
        "{stderr}"
    );
}

#[test]
// A list, so that further shipped configs join it.
#[allow(clippy::single_element_loop)]
fn every_shipped_config_passes_check_config() {
    for entry in std::fs::read_dir(repo_root().join("config")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".toml") || name.starts_with("example") {
            // The full example names secrets and servers that exist only in production;
            // the config module's unit test parses it with placeholders.
            continue;
        }
        let name = format!("config/{name}");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sigbot"))
            .arg("check-config")
            .arg("--config")
            .arg(repo_root().join(&name))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
