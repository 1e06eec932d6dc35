//! Metrics and readiness (DESIGN §5 `[metrics]`, §7 routes, §12): a real Prometheus scrapes
//! the bot while it talks on a real IRC server, sees the messages counted and the network go
//! down when the server is killed and up when it is back; `/readyz` names the network while
//! it is down past `ready_grace`; `promtool` accepts the exposition; `[metrics] listen` moves
//! `/metrics` to a listener of its own, and one that cannot be bound stops the start; a
//! bridge between Synapse and InspIRCd is counted on both sides.

use std::time::Duration;

use crate::support::bot::Bot;
use crate::support::prometheus::{
    PrometheusServer, promtool_check, wait_for_scraped, wait_for_scraped_at_least,
};
use crate::support::{
    BOT_NICK, BotConfig, IrcClass, IrcClient, IrcServer, LOCALHOST, RoomSpec, Section,
    SynapseServer, free_port, from_bot, temp_dir, wait_until,
};

const T: Duration = Duration::from_secs(30);

/// `/readyz`'s status and body, once the site answers.
async fn readyz(http: &reqwest::Client, port: u16) -> Option<(u16, serde_json::Value)> {
    let resp = http
        .get(format!("http://{LOCALHOST}:{port}/readyz"))
        .send()
        .await
        .ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.json().await.ok()?))
}

/// Waits until `/readyz` answers `status`; returns its body.
async fn wait_ready_status(
    http: &reqwest::Client,
    port: u16,
    status: u16,
    timeout: Duration,
) -> serde_json::Value {
    wait_until(&format!("/readyz to answer {status}"), timeout, || async {
        readyz(http, port)
            .await
            .filter(|(s, _)| *s == status)
            .map(|(_, body)| body)
    })
    .await
}

#[tokio::test]
async fn prometheus_sees_irc_traffic_and_the_network_going_down_and_up() {
    let mut server = IrcServer::start(IrcClass::Unlimited).await;
    let dir = temp_dir("metrics-prometheus");
    let web = free_port();
    let config = BotConfig::new()
        .console()
        .web(web)
        .table("web", Section::new().set("ready_grace", "2s"))
        .irc(Section::irc("testnet", &server).set("channels", vec!["#sig"]))
        .bridge(Section::bridge("sig", &["testnet/#sig", "console/#local"]))
        .build();
    let mut bot = Bot::start(dir.path(), &config);
    let prometheus = PrometheusServer::start(format!("{LOCALHOST}:{web}").parse().unwrap()).await;
    let http = reqwest::Client::new();

    let mut alice = IrcClient::connect(&server, "alice").await;
    alice.join_and_wait_for("#sig", BOT_NICK, T * 2).await;
    wait_ready_status(&http, web, 200, T).await;
    prometheus
        .wait_for_value("sigbot_network_connected{network=\"testnet\"}", 1.0, T)
        .await;

    // Three lines of chatter and one command: four received, one answer sent; the four
    // lines and the answer are bridged to the console.
    for text in ["hello", "anyone here?", "guess not"] {
        alice.privmsg("#sig", text).await;
    }
    alice.privmsg("#sig", "!ping").await;
    alice
        .wait_for(T, |l| from_bot(l) && l.is_privmsg("#sig", "pong"))
        .await;
    bot.wait_stdout(T, "pong").await;
    prometheus
        .wait_for_value(
            "sigbot_network_messages_received_total{network=\"testnet\"}",
            4.0,
            T,
        )
        .await;
    prometheus
        .wait_for_value(
            "sigbot_network_messages_sent_total{network=\"testnet\"}",
            1.0,
            T,
        )
        .await;
    prometheus
        .wait_for_value(
            "sigbot_command_invocations_total{command=\"ping\",outcome=\"ok\"}",
            1.0,
            T,
        )
        .await;
    prometheus
        .wait_for_value(
            "sigbot_bridge_messages_relayed_total{bridge=\"sig\",to=\"console\"}",
            5.0,
            T,
        )
        .await;
    prometheus
        .wait_for_value(
            "sigbot_bridge_relay_delay_seconds_count{bridge=\"sig\"}",
            5.0,
            T,
        )
        .await;
    prometheus.wait_for_value("sigbot_build_info", 1.0, T).await;
    // What a scrape reads from /proc.
    for gauge in ["process_resident_memory_bytes", "process_open_fds"] {
        let v = prometheus.query(gauge).await;
        assert!(v.is_some_and(|v| v > 0.0), "{gauge} = {v:?}");
    }

    // The exposition passes promtool's lint (the classic text format, as curl gets it).
    let exposition = http
        .get(format!("http://{LOCALHOST}:{web}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    if let Err(complaints) = promtool_check(&exposition) {
        panic!("promtool check metrics: {complaints}\n--- exposition ---\n{exposition}");
    }

    // The server dies: the network is down, then not ready once the grace has passed.
    server.stop();
    prometheus
        .wait_for_value("sigbot_network_connected{network=\"testnet\"}", 0.0, T)
        .await;
    let body = wait_ready_status(&http, web, 503, T).await;
    assert_eq!(body["status"], "not ready", "{body}");
    let reasons = body["reasons"].to_string();
    assert!(reasons.contains("network testnet"), "{body}");
    // Liveness is another matter: the bot itself is fine.
    let health = http
        .get(format!("http://{LOCALHOST}:{web}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    prometheus
        .wait_for_value(
            "sigbot_network_reconnects_total{network=\"testnet\"}",
            1.0,
            T,
        )
        .await;

    // Back: connected and ready again.
    server.restart().await;
    prometheus
        .wait_for_value("sigbot_network_connected{network=\"testnet\"}", 1.0, T * 3)
        .await;
    let body = wait_ready_status(&http, web, 200, T).await;
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(bot.terminate(T).await, Some(0));
}

/// A local HTTP service for a declarative command: `/<status>` answers that status.
async fn status_service() -> std::net::SocketAddr {
    use axum::extract::Path;
    use axum::http::StatusCode;
    let app = axum::Router::new().route(
        "/{code}",
        axum::routing::get(|Path(code): Path<u16>| async move {
            (
                StatusCode::from_u16(code).unwrap(),
                axum::Json(serde_json::json!({ "v": code })),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn commands_lookups_and_meetings_are_counted_on_a_metrics_listener_of_its_own() {
    let dir = temp_dir("metrics-listen");
    let commands = dir.path().join("commands");
    std::fs::create_dir_all(&commands).unwrap();
    let service = status_service().await;
    std::fs::write(
        commands.join("code.toml"),
        format!(
            r#"name = "code"
summary = "Asks the test service for a status"
usage = "code <code>"

[[args]]
name = "code"
pattern = "[0-9]{{3}}"

[http]
method = "GET"
url = "http://{service}/{{{{ args.code }}}}"
timeout = "10s"

[reply]
success = "got {{{{ json.v }}}}"
not_found = "none"
error = "failed: {{{{ error }}}}"
"#
        ),
    )
    .unwrap();
    let web = free_port();
    let metrics = free_port();
    let config = BotConfig::new()
        .console()
        .commands_dir(&commands)
        .meetings(&["console/#local"])
        .web(web)
        .table(
            "metrics",
            Section::new().set("listen", format!("{LOCALHOST}:{metrics}")),
        )
        .build();
    let mut bot = Bot::start(dir.path(), &config);
    // A lookup that answers, one that finds nothing, and a built-in.
    bot.say("!code 200").await;
    bot.wait_stdout(T, "got 200").await;
    bot.say("!code 404").await;
    bot.wait_stdout(T, "none").await;
    bot.say("!ping").await;
    bot.wait_stdout(T, "pong").await;
    bot.say("#startmeeting counted").await;
    bot.wait_stdout(T, "Meeting started").await;
    let http = reqwest::Client::new();
    let url = format!("http://{LOCALHOST}:{metrics}/metrics");
    let resp = wait_until("the metrics listener", T, || async {
        http.get(&url).send().await.ok()
    })
    .await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("sigbot_network_connected{network=\"console\"}"),
        "{text}"
    );
    let on_site = http
        .get(format!("http://{LOCALHOST}:{web}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(on_site.status(), 404);
    for (series, n) in [
        (
            "sigbot_command_invocations_total{command=\"code\",outcome=\"ok\"}",
            1.0,
        ),
        (
            "sigbot_command_invocations_total{command=\"code\",outcome=\"not_found\"}",
            1.0,
        ),
        (
            "sigbot_command_invocations_total{command=\"ping\",outcome=\"ok\"}",
            1.0,
        ),
        ("sigbot_lookup_duration_seconds_count{kind=\"http\"}", 2.0),
        ("sigbot_meetings_active", 1.0),
        (
            "sigbot_network_messages_received_total{network=\"console\"}",
            4.0,
        ),
    ] {
        wait_for_scraped(&http, metrics, series, n).await;
    }
    // Three answers and the meeting's opening lines; the lines of the meeting journaled.
    for (series, least) in [
        (
            "sigbot_network_messages_sent_total{network=\"console\"}",
            4.0,
        ),
        ("sigbot_meeting_lines_journaled_total", 1.0),
    ] {
        wait_for_scraped_at_least(&http, metrics, series, least).await;
    }
    assert_eq!(bot.terminate(T).await, Some(0));
}

#[tokio::test]
async fn a_metrics_address_that_cannot_be_bound_stops_the_start_naming_it() {
    let dir = temp_dir("metrics-taken");
    let taken = std::net::TcpListener::bind((LOCALHOST, 0)).unwrap();
    let addr = taken.local_addr().unwrap();
    let config = BotConfig::new()
        .console()
        .web(free_port())
        .table("metrics", Section::new().set("listen", addr.to_string()))
        .build();
    let mut bot = Bot::start(dir.path(), &config);
    let code = bot.wait_exit(T).await;
    assert_eq!(code, Some(1), "{}", bot.log_tail(20));
    let log = bot.log().join("\n");
    assert!(
        log.contains(&format!("metrics: cannot listen on {addr}")),
        "{log}"
    );
}

#[tokio::test]
async fn matrix_and_irc_traffic_across_a_bridge_is_counted_on_both_sides() {
    const WAIT: Duration = Duration::from_secs(60);
    let synapse = SynapseServer::start().await;
    let irc = IrcServer::start(IrcClass::Unlimited).await;
    let bot_user = synapse.register_user("sigbot", "bot-secret-pw").await;
    let alice_user = synapse.register_user("alice", "alice-secret-pw").await;
    let mut alice = synapse.client(&alice_user);
    let room = alice
        .create_room(RoomSpec {
            alias: Some("sig".into()),
            public: true,
            ..RoomSpec::default()
        })
        .await;
    let alias = "#sig:sigbot.test";
    let web = free_port();
    let config = BotConfig::new()
        .web(web)
        .irc(Section::irc("testnet", &irc))
        .matrix(Section::matrix("hs", &synapse, &bot_user).set("rooms", vec![alias]))
        .bridge(Section::bridge(
            "sig",
            &["testnet/#sig", &format!("hs/{alias}")],
        ))
        .build();
    let dir = temp_dir("metrics-matrix");
    let mut bot = Bot::start(dir.path(), &config);
    let bot_id = bot_user.user_id.clone();
    alice
        .wait_for_event(&room, WAIT, |ev| {
            ev["type"] == "m.room.member"
                && ev["state_key"] == bot_id
                && ev["content"]["membership"] == "join"
        })
        .await;
    let mut dave = IrcClient::connect(&irc, "dave").await;
    dave.join_and_wait_for("#sig", BOT_NICK, WAIT * 2).await;

    // Two lines from Matrix to IRC, one from IRC to Matrix.
    for text in ["one from matrix", "two from matrix"] {
        alice.send_text(&room, text).await;
        dave.wait_for(WAIT, |l| from_bot(l) && l.text().ends_with(text))
            .await;
    }
    dave.privmsg("#sig", "one from irc").await;
    alice
        .wait_for_message(&room, WAIT, |b| b == "dave: one from irc")
        .await;

    let http = reqwest::Client::new();
    for (series, n) in [
        ("sigbot_network_connected{network=\"hs\"}", 1.0),
        (
            "sigbot_network_messages_received_total{network=\"hs\"}",
            2.0,
        ),
        ("sigbot_network_messages_sent_total{network=\"hs\"}", 1.0),
        (
            "sigbot_network_messages_received_total{network=\"testnet\"}",
            1.0,
        ),
        (
            "sigbot_network_messages_sent_total{network=\"testnet\"}",
            2.0,
        ),
        (
            "sigbot_bridge_messages_relayed_total{bridge=\"sig\",to=\"testnet\"}",
            2.0,
        ),
        (
            "sigbot_bridge_messages_relayed_total{bridge=\"sig\",to=\"hs\"}",
            1.0,
        ),
        (
            "sigbot_bridge_relay_delay_seconds_count{bridge=\"sig\"}",
            3.0,
        ),
        ("sigbot_outbox_rows{network=\"hs\"}", 0.0),
    ] {
        wait_for_scraped(&http, web, series, n).await;
    }
    assert_eq!(bot.terminate(T).await, Some(0));
}

/// The README's "Running in production", as an operator copies it.
fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

#[test]
fn the_readmes_alert_rules_pass_promtool() {
    let readme = readme();
    let start = readme.find("groups:\n").expect("the README's alert rules");
    let end = start + readme[start..].find("```").expect("the end of the rules");
    let dir = temp_dir("readme-rules");
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, &readme[start..end]).unwrap();
    let out = std::process::Command::new(crate::support::require_program(
        "promtool",
        "apt-get install prometheus (scripts/test does)",
    ))
    .args(["check", "rules"])
    .arg(&rules)
    .output()
    .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 3 rules found"));
}
