//! The MQTT relay end to end: the real binary subscribed to mosquitto (plain and mutual
//! TLS) or to its own embedded broker, relaying into its console room.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::support::bot::Bot;
use crate::support::prometheus::{scrape_value, wait_for_scraped};
use crate::support::{
    BOT_NICK, BotConfig, MosquittoOptions, MosquittoServer, MqttClient, Section, TlsFiles,
    free_port, repo_root, temp_dir,
};

const T: Duration = Duration::from_secs(30);

/// The sample payloads (`tests/fixtures/pagure-mqtt/`, or `SIGBOT_FIXTURES`).
fn fixture(name: &str) -> String {
    let dir = std::env::var_os("SIGBOT_FIXTURES").map_or_else(
        || repo_root().join("tests/fixtures/pagure-mqtt"),
        PathBuf::from,
    );
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

const GIT_RECEIVE: &str = "01_git.centos.org__git.receive.json";
const GIT_RECEIVE_LINE: &str =
    "nkoval pushed 2 commits to rpms/systemd (c9s-sig-hyperscale) e7d20b5c93 by Nadia Koval";

/// The MQTT connection `forge` to `url`, with a client ID no other test uses.
fn forge(url: String) -> Section {
    Section::mqtt("forge", url).set("client_id", format!("sigbot-test-{}", free_port()))
}

/// `forge` on `mosquitto`'s plain-text port.
fn forge_plain(mosquitto: &MosquittoServer) -> Section {
    forge(format!("mqtt://127.0.0.1:{}", mosquitto.port()))
}

/// A console bot with the MQTT connection `forge` and the relay route `relay` from it.
fn config(forge: Section, relay: Section) -> String {
    BotConfig::new().console().mqtt(forge).relay(relay).build()
}

/// A relay route from `forge` into the console room.
fn to_console(name: &str, topic: &str, template: &str) -> Section {
    Section::relay(name, "forge", topic, template, &["console/#local"])
}

/// The pagure template's route for everything from git.centos.org.
fn pagure_relay() -> Section {
    to_console("pagure", "git.centos.org/#", r#"{% include "pagure.j2" %}"#)
}

/// Publishes the git.receive fixture and waits for its line in the console room.
async fn publish_git_receive_and_see_it_relayed(publisher: &mut MqttClient, bot: &mut Bot) {
    publisher
        .publish("git.centos.org/git.receive", fixture(GIT_RECEIVE))
        .await;
    let line = bot.wait_stdout(T, "pushed").await;
    assert_eq!(
        line,
        format!("[console/#local] <sigbot> {GIT_RECEIVE_LINE}")
    );
}

#[tokio::test]
async fn tls_with_a_client_certificate_relays_and_a_wrong_certificate_is_refused() {
    let mosquitto = MosquittoServer::start(MosquittoOptions::default()).await;
    let tls = mosquitto.tls_files();
    let dir = temp_dir("mqtt-tls");

    // Certificate and key in one PEM file.
    let both = dir.path().join("client-both.pem");
    let pem = std::fs::read_to_string(&tls.client_cert).unwrap()
        + std::fs::read_to_string(&tls.client_key).unwrap().as_str();
    std::fs::write(&both, pem).unwrap();
    let good = forge(format!("mqtts://127.0.0.1:{}", mosquitto.tls_port()))
        .set("ca_file", tls.ca_cert.display().to_string())
        .set("cert_file", both.display().to_string());
    let good_dir = dir.path().join("good");
    std::fs::create_dir_all(&good_dir).unwrap();
    let mut bot = Bot::start(&good_dir, &config(good, pagure_relay()));
    bot.wait_log(T, "MQTT connected").await;
    bot.wait_log(T, "subscribed").await;
    let mut publisher = MqttClient::connect(&mosquitto, "publisher").await;
    publish_git_receive_and_see_it_relayed(&mut publisher, &mut bot).await;
    bot.terminate(T).await;

    // A client certificate from a CA the broker does not trust, as two files.
    let other = dir.path().join("other-ca");
    std::fs::create_dir_all(&other).unwrap();
    let stranger = TlsFiles::generate(&other);
    let bad = forge(format!("mqtts://127.0.0.1:{}", mosquitto.tls_port()))
        .set("ca_file", tls.ca_cert.display().to_string())
        .set("cert_file", stranger.client_cert.display().to_string())
        .set("key_file", stranger.client_key.display().to_string());
    let bad_dir = dir.path().join("bad");
    std::fs::create_dir_all(&bad_dir).unwrap();
    let mut bot = Bot::start(&bad_dir, &config(bad, pagure_relay()));
    let line = bot
        .wait_log(T, "the broker refused our TLS client certificate")
        .await;
    assert!(
        line.contains("MQTT connection failed") && line.contains("retry_in"),
        "{line}"
    );
    assert!(!bot.log().iter().any(|l| l.contains("MQTT connected")));
    bot.terminate(T).await;
}

/// A packet far over `max_payload` is refused from its header, before its body is read; the
/// broker's session is dropped so that it is not sent again on every reconnect, and the relay
/// goes on.
#[tokio::test]
async fn a_packet_far_over_max_payload_is_refused_unread_and_the_relay_goes_on() {
    let mosquitto = MosquittoServer::start(MosquittoOptions::default()).await;
    let dir = temp_dir("mqtt-huge");
    let client_id = format!("sigbot-test-{}", free_port());
    let bot_config = || {
        let forge = Section::mqtt("forge", format!("mqtt://127.0.0.1:{}", mosquitto.port()))
            .set("client_id", client_id.clone())
            .set("max_payload", 4096);
        let route = to_console("huge", "huge/#", "{{ msg.agent }} did {{ msg.what }}");
        config(forge, route)
    };
    let mut bot = Bot::start(dir.path(), &bot_config());
    bot.wait_log(T, "subscribed").await;

    let mut options = mosquitto.mqtt_options("huge-publisher");
    options.set_max_packet_size(2 << 20, 2 << 20);
    let mut publisher = MqttClient::try_connect(options).await.unwrap();
    let huge = format!(r#"{{"agent":"a","what":"{}"}}"#, "x".repeat(1 << 20));
    publisher.publish("huge/one", huge).await;
    let line = bot.wait_log(T, "MQTT packet refused unread").await;
    assert!(line.contains("max=4096"), "{line}");
    assert!(line.contains("WARN"), "{line}");
    bot.wait_log(T, "MQTT session cleared").await;
    bot.wait_log(T, "subscribed").await;

    publisher
        .publish("huge/two", r#"{"agent":"b","what":"c"}"#)
        .await;
    assert_eq!(
        bot.wait_stdout(T, "").await,
        "[console/#local] <sigbot> b did c"
    );
    let refused = bot
        .log()
        .iter()
        .filter(|l| l.contains("MQTT packet refused unread"))
        .count();
    assert_eq!(refused, 1, "the broker sent the refused packet again");

    // The session is persistent again: what is published while the bot is away is delivered
    // when it comes back.
    bot.terminate(T).await;
    publisher
        .publish("huge/three", r#"{"agent":"d","what":"e"}"#)
        .await;
    let mut again = Bot::start(dir.path(), &bot_config());
    assert_eq!(
        again.wait_stdout(T, "").await,
        "[console/#local] <sigbot> d did e"
    );
    again.terminate(T).await;
}

#[tokio::test]
async fn bad_payloads_are_logged_counted_and_skipped_and_template_errors_name_route_and_line() {
    let mosquitto = MosquittoServer::start(MosquittoOptions::default()).await;
    let dir = temp_dir("mqtt-bad");
    let strict = to_console(
        "strict",
        "bad/#",
        "{#- one line per event -#}\n{{ msg.agent }} did {{ msg.what }}",
    );
    let web = free_port();
    let config = BotConfig::new()
        .console()
        .web(web)
        .mqtt(forge_plain(&mosquitto))
        .relay(strict)
        .build();
    let mut bot = Bot::start(dir.path(), &config);
    bot.wait_log(T, "subscribed").await;
    let mut publisher = MqttClient::connect(&mosquitto, "publisher").await;

    publisher.publish("bad/text", "this is not JSON").await;
    let line = bot.wait_log(T, "MQTT message skipped").await;
    assert!(
        line.contains("topic=\"bad/text\"") && line.contains("reason=not JSON"),
        "{line}"
    );
    assert!(line.contains("skipped=1"), "{line}");

    publisher
        .publish("bad/binary", vec![0x00, 0xff, 0xfe, 0x80, 0x01])
        .await;
    let line = bot.wait_log(T, "MQTT message skipped").await;
    assert!(
        line.contains("topic=\"bad/binary\"") && line.contains("reason=binary payload"),
        "{line}"
    );

    let big = format!("{{\"agent\":\"a\",\"what\":\"{}\"}}", "x".repeat(1_100_000));
    let mut options = mosquitto.mqtt_options("big-publisher");
    options.set_max_packet_size(2 << 20, 2 << 20);
    let mut big_publisher = MqttClient::try_connect(options).await.unwrap();
    big_publisher.publish("bad/big", big).await;
    let line = bot.wait_log(T, "MQTT message skipped").await;
    assert!(
        line.contains("topic=\"bad/big\"") && line.contains("larger than max_payload"),
        "{line}"
    );
    assert!(
        line.contains("len=1100023") && line.contains("max=1048576"),
        "{line}"
    );

    publisher.publish("bad/fields", r#"{"agent":"a"}"#).await;
    let line = bot.wait_log(T, "MQTT message skipped").await;
    assert!(line.contains("topic=\"bad/fields\""), "{line}");
    assert!(
        line.contains("relay route strict: template line 2: undefined value"),
        "{line}"
    );

    // The relay goes on.
    publisher
        .publish("bad/good", r#"{"agent":"a","what":"b"}"#)
        .await;
    assert_eq!(
        bot.wait_stdout(T, "").await,
        "[console/#local] <sigbot> a did b"
    );
    // Counted by route and outcome in the metrics.
    let http = reqwest::Client::new();
    for (outcome, n) in [("bad_payload", 4.0), ("relayed", 1.0)] {
        let series = format!("sigbot_relay_events_total{{route=\"strict\",outcome=\"{outcome}\"}}");
        wait_for_scraped(&http, web, &series, n).await;
    }
    bot.terminate(T).await;
}

#[tokio::test]
async fn a_burst_past_max_per_minute_becomes_one_digest() {
    let mosquitto = MosquittoServer::start(MosquittoOptions::default()).await;
    let dir = temp_dir("mqtt-digest");
    let pushes = to_console("pushes", "git.centos.org/#", r#"{% include "pagure.j2" %}"#)
        .set("max_per_minute", 3);
    let web = free_port();
    let config = BotConfig::new()
        .console()
        .web(web)
        .mqtt(forge_plain(&mosquitto))
        .relay(pushes)
        .build();
    let mut bot = Bot::start(dir.path(), &config);
    bot.wait_log(T, "subscribed").await;
    let mut publisher = MqttClient::connect(&mosquitto, "publisher").await;
    let pushes = [
        ("kernel", "c9s"),
        ("systemd", "c9s"),
        ("kernel", "c9s"),
        ("systemd", "c9s"),
    ];
    for i in 0..8 {
        let (repo, branch) = pushes[i % pushes.len()];
        let payload = format!(
            r#"{{"agent":"a{i}","branch":"{branch}","total_commits":1,"repo":{{"name":"{repo}","namespace":"rpms","fullname":"rpms/{repo}"}}}}"#
        );
        publisher
            .publish("git.centos.org/git.receive", payload)
            .await;
    }
    for i in 0..3 {
        let line = bot.wait_stdout(T, "pushed").await;
        assert!(line.contains(&format!("a{i} pushed")), "{line}");
    }
    // The window closes a minute after its first event.
    let digest = bot.wait_stdout(Duration::from_secs(90), "more").await;
    assert_eq!(
        digest,
        "[console/#local] <sigbot> 5 more git.centos.org/git.receive events: rpms/systemd c9s ×3, rpms/kernel c9s ×2"
    );
    let http = reqwest::Client::new();
    for (series, n) in [
        (
            "sigbot_relay_events_total{route=\"pushes\",outcome=\"relayed\"}",
            3.0,
        ),
        (
            "sigbot_relay_events_total{route=\"pushes\",outcome=\"digested\"}",
            5.0,
        ),
        ("sigbot_relay_digests_total{route=\"pushes\"}", 1.0),
    ] {
        wait_for_scraped(&http, web, series, n).await;
    }
    bot.terminate(T).await;
}

/// Publishes `n=<i>` for every `i` in `range` (QoS 1, each acknowledged by mosquitto).
async fn publish_numbers(publisher: &mut MqttClient, range: std::ops::RangeInclusive<u32>) {
    for i in range {
        publisher
            .publish("load/numbers", format!("{{\"n\":\"{i}\"}}"))
            .await;
    }
}

/// The console's outbox window (DESIGN §8): the most lines a crash may repeat.
const CONSOLE_LAST_WRITE: usize = 32;

fn count_numbers(lines: &[String], counts: &mut BTreeMap<String, u32>) {
    for line in lines {
        if let Some(n) = line.split("n=").nth(1) {
            *counts.entry(n.to_owned()).or_default() += 1;
        }
    }
}

#[tokio::test]
async fn a_thousand_qos1_events_reach_the_room_once_across_a_bot_kill_and_a_broker_restart() {
    let mut mosquitto = MosquittoServer::start(MosquittoOptions { persistence: true }).await;
    let dir = temp_dir("mqtt-load");
    let numbers = to_console("numbers", "load/#", "n={{ msg.n }}");
    let mut bot = Bot::start(dir.path(), &config(forge_plain(&mosquitto), numbers));
    bot.wait_log(T, "subscribed").await;
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();

    let mut publisher = MqttClient::connect(&mosquitto, "publisher").await;
    publish_numbers(&mut publisher, 1..=400).await;
    // A crash in the middle of the stream: received, stored, acknowledged, written: every
    // step may be cut short.
    bot.kill().await;
    let lines = bot.drain_stdout(T).await;
    count_numbers(&lines, &mut counts);
    // The last lines the console wrote before the process died (at most its window, DESIGN
    // §8) may be written again after the restart: nothing tells a pipe's reader apart from a
    // crash right after the write and before the outbox recorded it.
    let last_written: Vec<String> = lines
        .iter()
        .rev()
        .take(CONSOLE_LAST_WRITE)
        .filter_map(|l| l.split("n=").nth(1))
        .map(str::to_owned)
        .collect();
    // Published while the bot is down: mosquitto keeps them for its persistent session.
    publish_numbers(&mut publisher, 401..=600).await;
    publisher.disconnect().await;

    bot.restart();
    bot.wait_log(T, "subscribed").await;
    let mut publisher = MqttClient::connect(&mosquitto, "publisher").await;
    publish_numbers(&mut publisher, 601..=750).await;
    publisher.disconnect().await;
    // The broker crashes; its saved state brings back the bot's session.
    mosquitto.restart().await;
    let line = bot.wait_log(T, "MQTT connection failed").await;
    assert!(line.contains("retry_in"), "{line}");
    bot.wait_log(T, "MQTT connected").await;
    let mut publisher = MqttClient::connect(&mosquitto, "publisher").await;
    publish_numbers(&mut publisher, 751..=1000).await;
    publisher.publish("load/numbers", r#"{"n":"end"}"#).await;

    // Everything before "end" was stored before "end" was acknowledged, and the outbox is
    // delivered in order: once "end" shows, every number has had its chance.
    let mut lines = Vec::new();
    loop {
        let line = bot.wait_stdout(Duration::from_secs(60), "n=").await;
        let end = line.ends_with("n=end");
        lines.push(line);
        if end && counts_complete(&lines, &counts) {
            break;
        }
    }
    count_numbers(&lines, &mut counts);
    let missing: Vec<u32> = (1..=1000)
        .filter(|i| !counts.contains_key(&i.to_string()))
        .collect();
    let twice: Vec<(&String, &u32)> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        missing.is_empty(),
        "numbers that never reached the room: {missing:?}"
    );
    let only_the_last_write_twice = twice
        .iter()
        .all(|(n, c)| **c == 2 && last_written.contains(n));
    assert!(
        only_the_last_write_twice,
        "numbers relayed more than once: {twice:?} (last lines before the kill: {last_written:?})"
    );
    bot.terminate(T).await;
}

/// Events that wait together are committed together (group commit, DESIGN §11): a burst of
/// 1,000 QoS 1 events queued by mosquitto while the bot was away (its default
/// `max_queued_messages` for a session) reaches the room whole, in order and once each,
/// stored in fewer transactions than events.
#[tokio::test]
async fn a_burst_of_queued_events_arrives_once_in_order_and_is_committed_in_groups() {
    const N: u32 = 1_000;
    let mosquitto = MosquittoServer::start(MosquittoOptions::default()).await;
    let dir = temp_dir("mqtt-burst");
    let numbers = to_console("numbers", "load/#", "n={{ msg.n }}");
    let web = free_port();
    let config = BotConfig::new()
        .console()
        .web(web)
        .mqtt(forge_plain(&mosquitto))
        .relay(numbers)
        .build();
    let mut bot = Bot::start(dir.path(), &config);
    bot.wait_log(T, "subscribed").await;
    // A clean stop keeps the broker's session: what is published now waits there.
    bot.terminate(T).await;
    let mut publisher = MqttClient::connect(&mosquitto, "publisher").await;
    publish_numbers(&mut publisher, 1..=N).await;
    publisher.disconnect().await;

    bot.restart();
    let mut seen = Vec::new();
    while seen.len() < N as usize {
        let line = bot.wait_stdout(Duration::from_secs(60), "n=").await;
        seen.push(line.split("n=").nth(1).unwrap().to_owned());
    }
    let want: Vec<String> = (1..=N).map(|i| i.to_string()).collect();
    assert_eq!(seen, want, "every event once, in the order published");
    let http = reqwest::Client::new();
    wait_for_scraped(
        &http,
        web,
        "sigbot_relay_committed_events_total",
        f64::from(N),
    )
    .await;
    let commits = scrape_value(&http, web, "sigbot_relay_commits_total")
        .await
        .expect("the commit counter is exposed");
    assert!(
        commits >= 1.0 && commits < f64::from(N),
        "{N} events in {commits} transactions"
    );
    // Nothing more comes: each was acknowledged once stored, and not sent again.
    bot.terminate(T).await;
    bot.restart();
    bot.wait_log(T, "subscribed").await;
    let mut publisher = MqttClient::connect(&mosquitto, "publisher").await;
    publisher.publish("load/numbers", r#"{"n":"end"}"#).await;
    let line = bot.wait_stdout(T, "n=").await;
    assert!(
        line.ends_with("n=end"),
        "nothing redelivered before: {line}"
    );
    bot.terminate(T).await;
}

/// Whether `lines` plus `before` hold every number from 1 to 1000.
fn counts_complete(lines: &[String], before: &BTreeMap<String, u32>) -> bool {
    let mut counts = before.clone();
    count_numbers(lines, &mut counts);
    (1..=1000).all(|i| counts.contains_key(&i.to_string()))
}

#[tokio::test]
async fn the_embedded_default_relays_a_fixture_published_to_its_own_broker() {
    let dir = temp_dir("mqtt-embedded");
    let port = free_port();
    let config = std::fs::read_to_string(repo_root().join("config/sigbot.toml"))
        .unwrap()
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", free_port()))
        .replace("127.0.0.1:1883", &format!("127.0.0.1:{port}"));
    let mut bot = Bot::start(dir.path(), &config);
    bot.wait_log(T, "embedded MQTT broker listening").await;
    bot.wait_log(T, "subscribed").await;
    let mut options = rumqttc::MqttOptions::new("publisher", "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    let mut publisher = MqttClient::try_connect(options).await.unwrap();
    publish_git_receive_and_see_it_relayed(&mut publisher, &mut bot).await;
    // Stdin ending does not stop a bot that has more than its console.
    bot.close_stdin();
    bot.wait_log(T, "console input ended").await;
    publisher
        .publish(
            "git.centos.org/git.receive",
            fixture("05_pagure.io__git.receive.json"),
        )
        .await;
    let line = bot.wait_stdout(T, "pushed").await;
    assert!(
        line.ends_with("pingou pushed 3 commits to pagure (master) edc02fbb42"),
        "{line}"
    );
    bot.terminate(T).await;
}

/// The embedded broker with a login: the bot's own connection logs in and relays; a client
/// without the login, or with a wrong password, is refused.
#[tokio::test]
async fn the_embedded_broker_with_a_login_refuses_strangers() {
    let dir = temp_dir("mqtt-embedded-login");
    let port = free_port();
    let pw_file = dir.path().join("broker-pw");
    std::fs::write(&pw_file, "s3cret-broker\n").unwrap();
    let pw = format!(
        "password = {{ file = {:?} }}",
        pw_file.display().to_string()
    );
    let broker = Section::new()
        .set("listen", format!("127.0.0.1:{port}"))
        .set("username", "relay")
        .raw(&pw);
    let forge = forge(format!("mqtt://127.0.0.1:{port}"))
        .set("username", "relay")
        .raw(&pw);
    let config = BotConfig::new()
        .console()
        .table("broker", broker)
        .mqtt(forge)
        .relay(pagure_relay())
        .build();
    let mut bot = Bot::start(dir.path(), &config);
    bot.wait_log(T, "embedded MQTT broker listening").await;
    bot.wait_log(T, "subscribed").await;

    let options = |user: Option<(&str, &str)>| {
        let mut o = rumqttc::MqttOptions::new(format!("c{}", free_port()), "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        if let Some((u, p)) = user {
            o.set_credentials(u, p);
        }
        o
    };
    let anonymous = MqttClient::try_connect(options(None)).await;
    assert!(anonymous.is_err(), "a client without a login got in");
    let wrong = MqttClient::try_connect(options(Some(("relay", "guess")))).await;
    assert!(wrong.is_err(), "a client with a wrong password got in");
    let mut publisher = MqttClient::try_connect(options(Some(("relay", "s3cret-broker"))))
        .await
        .unwrap();
    publish_git_receive_and_see_it_relayed(&mut publisher, &mut bot).await;
    assert!(
        !bot.log().iter().any(|l| l.contains("s3cret-broker")),
        "the broker's password reached the log"
    );
    bot.terminate(T).await;
}

/// A relayed event whose template gives several lines reaches an IRC channel whole and in
/// order, once, like every other relayed message.
#[tokio::test]
async fn a_multi_line_relay_reaches_irc_whole_and_once() {
    use crate::support::{IrcClass, IrcClient, IrcServer, from_bot};
    let mosquitto = MosquittoServer::start(MosquittoOptions::default()).await;
    let irc = IrcServer::start(IrcClass::Unlimited).await;
    let dir = temp_dir("mqtt-irc-lines");
    let lines = Section::relay(
        "lines",
        "forge",
        "load/numbers",
        "first {{ msg.n }}\nsecond {{ msg.n }}\nthird {{ msg.n }}",
        &["testnet/#sig", "console/#local"],
    );
    let config = BotConfig::new()
        .console()
        .mqtt(forge_plain(&mosquitto))
        .irc(Section::irc("testnet", &irc).set("channels", vec!["#sig"]))
        .relay(lines)
        .build();
    let mut bot = Bot::start(dir.path(), &config);
    bot.wait_log(T, "subscribed").await;
    let mut dave = IrcClient::connect(&irc, "dave").await;
    dave.join_and_wait_for("#sig", BOT_NICK, T * 2).await;
    let mut publisher = MqttClient::connect(&mosquitto, "publisher").await;
    publish_numbers(&mut publisher, 1..=1).await;
    // The same payload again: a duplicate, not relayed.
    publish_numbers(&mut publisher, 1..=1).await;
    publish_numbers(&mut publisher, 2..=2).await;
    for want in [
        "first 1", "second 1", "third 1", "first 2", "second 2", "third 2",
    ] {
        let got = dave.wait_for(T, from_bot).await;
        assert!(got.is_privmsg("#sig", want), "want {want:?}: {}", got.raw);
    }
    bot.terminate(T).await;
}

/// Events folded into a digest are acknowledged at once; a bot stopped before the window
/// closes stores the digest on its way out and tells it after the restart.
#[tokio::test]
async fn a_digest_still_open_at_shutdown_is_told_after_the_restart() {
    let mosquitto = MosquittoServer::start(MosquittoOptions::default()).await;
    let dir = temp_dir("mqtt-digest-stop");
    let numbers = to_console("numbers", "load/numbers", "n={{ msg.n }}").set("max_per_minute", 2);
    let mut bot = Bot::start(dir.path(), &config(forge_plain(&mosquitto), numbers));
    bot.wait_log(T, "subscribed").await;
    let mut publisher = MqttClient::connect(&mosquitto, "publisher").await;
    publish_numbers(&mut publisher, 1..=5).await;
    for i in 1..=2 {
        let line = bot.wait_stdout(T, "n=").await;
        assert!(line.ends_with(&format!("n={i}")), "{line}");
    }
    // The three others are folded (and acknowledged).
    for _ in 3..=5 {
        bot.wait_log(T, "folded into the digest").await;
    }
    bot.terminate(T).await;
    bot.restart();
    let digest = bot.wait_stdout(T, "more").await;
    assert_eq!(
        digest,
        "[console/#local] <sigbot> 3 more load/numbers events"
    );
    bot.terminate(T).await;
}
