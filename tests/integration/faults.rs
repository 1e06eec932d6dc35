//! Faults and retention (DESIGN §12): a long-lived task that dies is logged and named on
//! `/healthz`, and the death of the core task stops the bot with a failure status; expired
//! rows are pruned while the bot runs; a full database holds relayed messages and refuses
//! guarded commands until there is room again.
//!
//! Tasks are made to die with `SIGBOT_FAULT=<task>`, a hook compiled into debug builds only
//! (src/app/supervise.rs): the named task panics as it starts. A release build has no such
//! hook, so these tests are skipped when the tests themselves are built without debug
//! assertions (the binary under test is built with the same profile).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{TimeDelta, Utc};

use crate::support::bot::{Bot, CONSOLE_USER};
use crate::support::config::{BotConfig, Section};
use crate::support::{
    BOT_NICK, IrcClass, IrcClient, IrcServer, MosquittoOptions, MosquittoServer, MqttClient,
    free_port, from_bot, temp_dir, wait_until,
};

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

/// Times as the store writes them (fixed-width RFC 3339 in UTC).
fn stored_time(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn count(db: &rusqlite::Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The bot's database, opened beside the bot (WAL lets both write).
fn open_db(data: &Path) -> rusqlite::Connection {
    let db = rusqlite::Connection::open(data.join("sigbot.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db
}

#[tokio::test]
async fn expired_pastes_audit_entries_and_relay_keys_are_pruned_while_the_bot_runs() {
    let dir = temp_dir("retention");
    let data = dir.path().join("data");
    let port = free_port();
    let config = BotConfig::new()
        .data_dir(&data)
        .console()
        .web(port)
        .table("web", Section::new().set("paste_ttl", "4s"))
        .table("store", Section::new().set("audit_retention", "1d"))
        .build();
    let mut bot = Bot::start(dir.path(), &config);
    let http = reqwest::Client::new();
    let site = format!("http://127.0.0.1:{port}");
    wait_until("healthz answers", T, || {
        let req = http.get(format!("{site}/healthz"));
        async move { req.send().await.ok() }
    })
    .await;

    // Rows as the bot writes them: a paste of an hour ago and one of now, an audit entry of
    // two days ago and one of now, and a relay dedup key whose window closes in a second.
    let now = Utc::now();
    let db = open_db(&data);
    db.execute_batch(&format!(
        "INSERT INTO pastes (id, created, text) VALUES ('old', '{old}', 'old text');
         INSERT INTO pastes (id, created, text) VALUES ('new', '{now}', 'new text');
         INSERT INTO audit (time, principal, room, command, args, result)
             VALUES ('{days}', 'console:x', 'console/#local', 'deploy', '', 'success');
         INSERT INTO audit (time, principal, room, command, args, result)
             VALUES ('{now}', 'console:x', 'console/#local', 'deploy', '', 'recent');
         INSERT INTO relay_seen (key, until) VALUES ('k', {until});",
        old = stored_time(now - TimeDelta::hours(1)),
        now = stored_time(now),
        days = stored_time(now - TimeDelta::days(2)),
        until = (now + TimeDelta::seconds(1)).timestamp(),
    ))
    .unwrap();
    let new = http.get(format!("{site}/paste/new")).send().await.unwrap();
    assert_eq!(new.status(), 200);
    assert_eq!(new.text().await.unwrap(), "new text");

    // Pruned by the running bot (every 2 s with a 4 s ttl), without a restart.
    bot.wait_log(T, "expired rows pruned").await;
    wait_until("the expired rows are deleted", T, || {
        let gone = count(&db, "SELECT COUNT(*) FROM pastes WHERE id = 'old'") == 0
            && count(&db, "SELECT COUNT(*) FROM relay_seen") == 0
            && count(&db, "SELECT COUNT(*) FROM audit") == 1;
        async move { gone.then_some(()) }
    })
    .await;
    let kept: String = db
        .query_row("SELECT result FROM audit", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, "recent");
    let old = http.get(format!("{site}/paste/old")).send().await.unwrap();
    assert_eq!(old.status(), 404);

    // The fresh paste expires in turn: gone (410 until pruned, then 404), then deleted.
    let status = wait_until("the new paste expires", T, || {
        let req = http.get(format!("{site}/paste/new"));
        async move {
            let s = req.send().await.ok()?.status().as_u16();
            (s != 200).then_some(s)
        }
    })
    .await;
    assert!(
        status == 410 || status == 404,
        "expired paste answered {status}"
    );
    wait_until("the new paste is deleted", T, || {
        let gone = count(&db, "SELECT COUNT(*) FROM pastes") == 0;
        async move { gone.then_some(()) }
    })
    .await;
    let new = http.get(format!("{site}/paste/new")).send().await.unwrap();
    assert_eq!(new.status(), 404);
    assert_eq!(bot.terminate(T).await, Some(0));
}

/// A guarded command (role `ops`) whose request the test counts.
const DEPLOY: &str = r#"
name = "deploy"
summary = "Deploy"
role = "ops"
[http]
url = "BASE/deploy"
timeout = "5s"
[reply]
success = "deployed"
error = "deploy failed: {{ error }}"
"#;

/// A service that counts the requests it gets.
async fn counting_service() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/deploy",
        axum::routing::get(move || {
            h.fetch_add(1, Ordering::SeqCst);
            async { "ok" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), hits)
}

#[tokio::test]
async fn a_full_database_holds_relayed_messages_and_refuses_guarded_commands_until_there_is_room() {
    let mosquitto = MosquittoServer::start(MosquittoOptions::default()).await;
    let (base, hits) = counting_service().await;
    let dir = temp_dir("disk-full");
    let data = dir.path().join("data");
    let commands = dir.path().join("commands");
    std::fs::create_dir_all(&commands).unwrap();
    std::fs::write(commands.join("deploy.toml"), DEPLOY.replace("BASE", &base)).unwrap();
    // Each relayed message is larger than a database page, so storing one always needs new
    // pages: once the database is at its cap, every one is refused.
    let config = BotConfig::new()
        .data_dir(&data)
        .commands_dir(&commands)
        .console()
        .role("ops", &[&format!("console:{CONSOLE_USER}")])
        .table("store", Section::new().set("max_db_size", "1MiB"))
        .mqtt(
            Section::mqtt("forge", format!("mqtt://127.0.0.1:{}", mosquitto.port()))
                .set("client_id", format!("sigbot-test-{}", free_port())),
        )
        .relay(Section::relay(
            "numbers",
            "forge",
            "load/#",
            "n={{ msg.n }} {{ msg.pad }}",
            &["console/#local"],
        ))
        .build();
    let mut bot = Bot::start(dir.path(), &config);
    bot.wait_log(T, "subscribed").await;
    let mut publisher = MqttClient::connect(&mosquitto, "publisher").await;
    let pad = "x".repeat(5000);
    let publish = |n: u32| format!("{{\"n\":\"{n}\",\"pad\":\"{pad}\"}}");
    publisher.publish("load/numbers", publish(1)).await;
    bot.wait_stdout(T, "n=1 ").await;
    // Its row is gone (its pages free) before the database is filled.
    bot.wait_log(T, "queued messages done").await;

    // Another writer fills the database past the bot's cap.
    let db = open_db(&data);
    db.execute_batch(
        "CREATE TABLE ballast (b BLOB); INSERT INTO ballast VALUES (zeroblob(2 * 1024 * 1024));",
    )
    .unwrap();
    for n in 2..=4 {
        publisher.publish("load/numbers", publish(n)).await;
    }
    let full = bot.wait_log(T, "SQLITE_FULL").await;
    assert!(full.contains("ERROR"), "{full}");
    bot.say("!deploy").await;
    let refused = bot.wait_stdout(T, "deploy failed").await;
    assert!(
        refused.contains("not run: the audit log cannot be written"),
        "{refused}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a refused command made its request"
    );

    // Room again: the held messages go out, in order, once each; commands run again.
    db.execute_batch("DROP TABLE ballast;").unwrap();
    bot.wait_log(T, "database has room again").await;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let line = bot.wait_stdout(T, "n=").await;
        seen.push(
            line.split("n=")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(seen, ["2", "3", "4"]);
    bot.say("!deploy").await;
    bot.wait_stdout(T, "deployed").await;
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    publisher.disconnect().await;
    assert_eq!(bot.terminate(T).await, Some(0));
    let full_lines = bot
        .log()
        .iter()
        .filter(|l| l.contains("SQLITE_FULL"))
        .count();
    assert_eq!(full_lines, 1, "one log line says the database is full");
    let late: Vec<String> = bot.drain_stdout(Duration::from_secs(1)).await;
    assert!(
        !late.iter().any(|l| l.contains("n=")),
        "a held message went out twice: {late:?}"
    );
}

#[tokio::test]
async fn a_full_database_holds_bridged_messages_and_their_paste_until_there_is_room() {
    let server = IrcServer::start(IrcClass::Unlimited).await;
    let dir = temp_dir("disk-full-bridge");
    let data = dir.path().join("data");
    let web = free_port();
    let config = BotConfig::new()
        .data_dir(&data)
        .console()
        .web(web)
        .irc(Section::irc("testnet", &server))
        .bridge(Section::bridge("sig", &["testnet/#a", "console/#local"]).set("max_lines", 2))
        .table("store", Section::new().set("max_db_size", "1MiB"))
        .build();
    let mut bot = Bot::start(dir.path(), &config);
    let mut alice = IrcClient::connect(&server, "alice").await;
    alice.join_and_wait_for("#a", BOT_NICK, T * 2).await;
    bot.say("first").await;
    let got = alice.wait_for(T, from_bot).await;
    assert!(got.text().ends_with(" first"), "{}", got.raw);
    bot.wait_log(T, "queued messages done").await;

    let db = open_db(&data);
    db.execute_batch(
        "CREATE TABLE ballast (b BLOB); INSERT INTO ballast VALUES (zeroblob(2 * 1024 * 1024));",
    )
    .unwrap();
    // Too long for IRC: its paste is larger than a page, so it cannot be stored now.
    let words: Vec<String> = (0..1000).map(|i| format!("w{i}")).collect();
    let long = words.join(" ");
    bot.say(&long).await;
    bot.wait_log(T, "SQLITE_FULL").await;
    // Held: the paste, then the message that links to it.
    bot.wait_log(T, "held=2").await;
    // Stored after the ones before it, so it waits too (whatever room there is).
    alice.privmsg("#a", "from irc").await;
    bot.wait_log(T, "held=3").await;

    db.execute_batch("DROP TABLE ballast;").unwrap();
    bot.wait_log(T, "database has room again").await;
    let first = alice.wait_for(T, from_bot).await;
    assert!(first.text().contains(" w0 w1 "), "{}", first.raw);
    let last = alice.wait_for(T, from_bot).await;
    let link = last
        .text()
        .split("(full message: ")
        .nth(1)
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not a paste link line: {}", last.raw))
        .to_owned();
    let resp = reqwest::get(&link).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), long);
    bot.wait_stdout(T, "from irc").await;
    assert_eq!(bot.terminate(T).await, Some(0));
    let late = bot.drain_stdout(Duration::from_secs(1)).await;
    assert!(
        !late.iter().any(|l| l.contains("from irc")),
        "a held message went out twice: {late:?}"
    );
}
