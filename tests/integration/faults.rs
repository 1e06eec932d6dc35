//! Faults (DESIGN §12): a long-lived task that dies is logged and named on `/healthz`, and the
//! death of the core task stops the bot with a failure status.
//!
//! Tasks are made to die with `SIGBOT_FAULT=<task>`, a hook compiled into debug builds only
//! (src/app/supervise.rs): the named task panics as it starts. A release build has no such
//! hook, so these tests are skipped when the tests themselves are built without debug
//! assertions (the binary under test is built with the same profile).

use std::time::Duration;

use crate::support::bot::Bot;
use crate::support::config::BotConfig;
use crate::support::{free_port, temp_dir, wait_until};

const T: Duration = Duration::from_secs(20);

fn fault_hook_available() -> bool {
    if !cfg!(debug_assertions) {
        eprintln!("skipped: SIGBOT_FAULT exists in debug builds only");
    }
    cfg!(debug_assertions)
}

#[tokio::test]
async fn a_dead_deliverer_is_logged_and_named_on_healthz() {
    if !fault_hook_available() {
        return;
    }
    let dir = temp_dir("fault-deliverer");
    let port = free_port();
    let config = BotConfig::new()
        .data_dir(&dir.path().join("data"))
        .console()
        .web(port)
        .build();
    let mut bot = Bot::start_with_env(dir.path(), &config, &[("SIGBOT_FAULT", "outbox:console")]);
    let line = bot.wait_log(T, "task panicked").await;
    assert!(line.contains("outbox:console"), "{line}");
    assert!(line.contains("injected fault"), "{line}");

    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let resp = wait_until("healthz answers", T, || {
        let req = http.get(&url);
        async move { req.send().await.ok() }
    })
    .await;
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "failing", "{body}");
    assert_eq!(
        body["dead_tasks"],
        serde_json::json!(["outbox:console"]),
        "{body}"
    );

    // The rest of the bot still runs, and stops normally.
    bot.say("!ping").await;
    bot.wait_stdout(T, "pong").await;
    assert_eq!(bot.terminate(T).await, Some(0));
}

#[tokio::test]
async fn a_dead_core_task_stops_the_bot_with_a_failure_status() {
    if !fault_hook_available() {
        return;
    }
    let dir = temp_dir("fault-core");
    let config = BotConfig::new()
        .data_dir(&dir.path().join("data"))
        .console()
        .web(free_port())
        .build();
    let mut bot = Bot::start_with_env(dir.path(), &config, &[("SIGBOT_FAULT", "core")]);
    let line = bot.wait_log(T, "task panicked").await;
    assert!(line.contains("task=core"), "{line}");
    bot.wait_log(T, "the core task is gone: sigbot stops").await;
    // stdin stays open: the bot ends by itself, and says it failed.
    let code = bot.wait_exit(T).await;
    assert_eq!(code, Some(1), "{}", bot.log_tail(20));
}
