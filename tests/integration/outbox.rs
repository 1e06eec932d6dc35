//! The one outbox end to end: relayed MQTT events go to every network on its own, so an IRC
//! server that is down holds back nothing elsewhere, and its lines arrive in order once it is
//! back.

use std::time::Duration;

use crate::support::bot::Bot;
use crate::support::{
    BotConfig, IrcClass, IrcClient, IrcServer, MosquittoOptions, MosquittoServer, MqttClient,
    Section, free_port, from_bot, temp_dir,
};

const T: Duration = Duration::from_secs(30);

/// A bot with its console, one IRC network `testnet` in `#sig`, and one relay from the MQTT
/// connection `forge` to both.
fn config(mosquitto: &MosquittoServer, irc: &IrcServer) -> String {
    BotConfig::new()
        .console()
        .irc(Section::irc("testnet", irc).set("channels", vec!["#sig"]))
        .mqtt(
            Section::mqtt("forge", format!("mqtt://127.0.0.1:{}", mosquitto.port()))
                .set("client_id", format!("sigbot-test-{}", free_port())),
        )
        .relay(Section::relay(
            "events",
            "forge",
            "events/#",
            "event {{ msg.n }}",
            &["testnet/#sig", "console/#local"],
        ))
        .build()
}

async fn publish(publisher: &mut MqttClient, n: &str) {
    publisher
        .publish("events/test", format!(r#"{{"n":"{n}"}}"#))
        .await;
}

#[tokio::test]
async fn with_the_irc_server_down_relayed_events_reach_the_console_at_once_and_irc_later_in_order()
{
    let mosquitto = MosquittoServer::start(MosquittoOptions::default()).await;
    let mut irc = IrcServer::start(IrcClass::Unlimited).await;
    let dir = temp_dir("outbox-irc-down");
    let mut bot = Bot::start(dir.path(), &config(&mosquitto, &irc));
    bot.wait_log(T, "subscribed").await;
    let mut watcher = IrcClient::connect(&irc, "watcher").await;
    watcher.send("JOIN #sig").await;
    watcher
        .wait_for(T * 2, |l| {
            (l.command == "JOIN" && l.nick() == Some("sigbot"))
                || (l.command == "353"
                    && l.text()
                        .split(' ')
                        .any(|n| n.trim_start_matches('@') == "sigbot"))
        })
        .await;

    irc.stop();
    bot.wait_log(T, "connection lost").await;
    let mut publisher = MqttClient::connect(&mosquitto, "publisher").await;
    for n in 1..=3 {
        publish(&mut publisher, &n.to_string()).await;
    }
    // IRC's deliverer waits for its network; the console's goes on.
    for n in 1..=3 {
        let line = bot.wait_stdout(T, "event").await;
        assert_eq!(line, format!("[console/#local] <sigbot> event {n}"));
    }

    irc.restart().await;
    let mut watcher = IrcClient::connect(&irc, "watcher").await;
    watcher.join("#sig").await;
    for n in 1..=3 {
        let got = watcher.wait_for(T * 4, from_bot).await;
        assert!(
            got.is_privmsg("#sig", &format!("event {n}")),
            "event {n} in order: {}",
            got.raw
        );
    }
    // Exactly once: the first line on IRC after those three is the event published after them.
    publish(&mut publisher, "after").await;
    let got = watcher.wait_for(T, from_bot).await;
    assert!(got.is_privmsg("#sig", "event after"), "{}", got.raw);
    let line = bot.wait_stdout(T, "event").await;
    assert_eq!(line, "[console/#local] <sigbot> event after");
    bot.terminate(T).await;
}
