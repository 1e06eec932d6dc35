//! The log of the real binary: `[log] format = "json"` writes one JSON object a line with its
//! fields, `[log] level` filters unless `RUST_LOG` is set, a clean start and stop of the
//! embedded default warns of nothing, and no secret reaches a line.

use std::time::Duration;

use crate::support::bot::Bot;
use crate::support::{free_port, repo_root, temp_dir};

const T: Duration = Duration::from_secs(30);

const BROKER_PASSWORD: &str = "brk-Pq73-SECRET-do-not-log";
const RELEASE_TOKEN: &str = "tok-Lm52-SECRET-do-not-log";

/// The shipped embedded default (console, web site, broker, MQTT relay, the shipped commands)
/// on free ports, its broker behind a login read from the environment, with `log` appended.
fn embedded_default(dir: &std::path::Path, log: &str) -> (String, u16) {
    let web = free_port();
    let broker = free_port();
    let login = "username = \"relay\"\npassword = \"${SIGBOT_TEST_BROKER_PASSWORD}\"\n";
    let config = std::fs::read_to_string(repo_root().join("config/sigbot.toml"))
        .unwrap()
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{web}"))
        .replace("127.0.0.1:1883", &format!("127.0.0.1:{broker}"))
        .replace(
            "commands_dir = \"commands\"",
            &format!(
                "commands_dir = {:?}",
                repo_root().join("commands").display().to_string()
            ),
        )
        .replace(
            &format!("listen = \"127.0.0.1:{broker}\"\n"),
            &format!("listen = \"127.0.0.1:{broker}\"\n{login}"),
        )
        .replace(
            "client_id = \"sigbot-embedded\"\n",
            &format!("client_id = \"sigbot-embedded\"\n{login}"),
        );
    assert!(config.contains("username = \"relay\""), "{config}");
    std::fs::create_dir_all(dir).unwrap();
    (format!("{config}\n{log}"), web)
}

/// Environment of a bot whose log filter is its config's: `RUST_LOG` empty counts as unset.
fn env<'a>() -> Vec<(&'a str, &'a str)> {
    vec![
        ("RUST_LOG", ""),
        ("SIGBOT_TEST_BROKER_PASSWORD", BROKER_PASSWORD),
        ("SIGBOT_RELEASE_TOKEN", RELEASE_TOKEN),
    ]
}

#[tokio::test]
async fn json_lines_carry_their_fields_and_a_clean_run_logs_no_warning() {
    let dir = temp_dir("log-json");
    let (config, web) = embedded_default(dir.path(), "[log]\nformat = \"json\"\n");
    let mut bot = Bot::start_with_env(dir.path(), &config, &env());
    bot.wait_log(T, "\"sigbot started\"").await;
    bot.say("!ping").await;
    assert_eq!(
        bot.wait_stdout(T, "").await,
        "[console/#local] <sigbot> pong"
    );
    assert_eq!(bot.terminate(T).await, Some(0));

    let log = bot.log();
    let lines: Vec<serde_json::Map<String, serde_json::Value>> = log
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON object ({e}): {l}")))
        .collect();
    for (line, text) in lines.iter().zip(&log) {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(line[key].is_string(), "no {key} in {text}");
        }
        let stamp = line["timestamp"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
            "timestamp {stamp}"
        );
        let level = line["level"].as_str().unwrap();
        assert!(
            level == "INFO",
            "a clean start and stop logs nothing above INFO: {text}"
        );
        assert!(
            !text.contains("Some("),
            "a field printed as an Option: {text}"
        );
        for secret in [BROKER_PASSWORD, RELEASE_TOKEN] {
            assert!(!text.contains(secret), "a secret in the log: {text}");
        }
    }
    let find = |message: &str| {
        lines
            .iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} in\n{}", log.join("\n")))
    };
    // Event fields are keys of the line, plainly; span fields are in `span` and `spans`.
    assert_eq!(
        find("web site listening")["addr"],
        format!("127.0.0.1:{web}").as_str()
    );
    let connected = find("MQTT connected");
    assert_eq!(connected["span"]["network"], "local");
    assert_eq!(connected["spans"][0]["network"], "local");
    assert_eq!(find("sigbot started")["target"], "sigbot::app::start");
    find("sigbot stopped");
}

#[tokio::test]
async fn the_config_sets_the_level_and_rust_log_wins() {
    let dir = temp_dir("log-level");
    let (config, _) = embedded_default(dir.path(), "[log]\nlevel = \"warn\"\n");
    // A missing commands directory is a WARN at start: the one line a warn level lets out.
    let config = config.replace(
        &format!(
            "commands_dir = {:?}",
            repo_root().join("commands").display().to_string()
        ),
        "commands_dir = \"no-such-dir\"",
    );
    let mut bot = Bot::start_with_env(dir.path(), &config, &env());
    bot.say("!ping").await;
    assert_eq!(
        bot.wait_stdout(T, "").await,
        "[console/#local] <sigbot> pong"
    );
    assert_eq!(bot.terminate(T).await, Some(0));
    let log = bot.log();
    assert_eq!(log.len(), 1, "{}", log.join("\n"));
    assert!(
        log[0].contains(" WARN ") && log[0].contains("commands directory does not exist"),
        "{}",
        log[0]
    );

    // RUST_LOG, when set, is the filter instead.
    let mut env = env();
    env[0] = ("RUST_LOG", "info");
    let mut bot = Bot::start_with_env(dir.path(), &config, &env);
    bot.wait_log(T, "sigbot started").await;
    assert_eq!(bot.terminate(T).await, Some(0));
    assert!(bot.log().iter().any(|l| l.contains(" INFO ")));
}
