//! SIGHUP reloads the whole config (DESIGN §5 "Reload") against real servers: a bridge and a
//! relay added while the IRC connection stays the same one, a broken config that changes
//! nothing, and networks added, changed and removed.

use std::time::Duration;

use crate::support::bot::Bot;
use crate::support::{
    BOT_NICK, BotConfig, IrcClass, IrcClient, IrcLine, IrcServer, MosquittoOptions,
    MosquittoServer, MqttClient, Section, free_port, from_bot, temp_dir, wait_until,
};

const T: Duration = Duration::from_secs(30);

/// Whether `line` shows the bot (nick `nick`) leaving or coming back: what a reconnection
/// looks like from a channel.
fn bot_came_or_went(line: &IrcLine, nick: &str) -> bool {
    line.nick() == Some(nick) && matches!(line.command.as_str(), "JOIN" | "QUIT" | "PART")
}

/// Waits for the bot's message in `#sig` that contains `text`, noting any sign of a
/// reconnection seen meanwhile.
async fn wait_in_sig(dave: &mut IrcClient, text: &str, reconnected: &mut bool) -> IrcLine {
    dave.wait_for(T, |l| {
        *reconnected |= bot_came_or_went(l, BOT_NICK);
        from_bot(l) && l.param(0) == Some("#sig") && l.text().contains(text)
    })
    .await
}

/// When the server says `nick`'s connection signed on (`WHOIS`, `RPL_WHOISIDLE`): the same
/// value before and after means the same connection.
async fn signon(client: &mut IrcClient, nick: &str) -> String {
    client.send(&format!("WHOIS {nick} {nick}")).await;
    let idle = client
        .wait_for(T, |l| l.command == "317" && l.param(1) == Some(nick))
        .await;
    idle.param(3).expect("signon time").to_owned()
}

/// How many times the bot's log says that it registered on `network`.
fn registrations(bot: &Bot, network: &str) -> usize {
    bot.log()
        .iter()
        .filter(|l| l.contains("registered") && l.contains(&format!("network={network}")))
        .count()
}

/// Waits until the bot's log says that it registered `n` times on `network` (its log is
/// read as it comes, maybe after the server has seen the connection).
async fn wait_registrations(bot: &Bot, network: &str, n: usize) {
    wait_until(&format!("{n} registration(s) on {network}"), T, || {
        let seen = registrations(bot, network);
        async move { (seen == n).then_some(()) }
    })
    .await;
}

fn base(irc: &IrcServer) -> BotConfig {
    BotConfig::new()
        .console()
        .irc(Section::irc("testnet", irc).set("channels", vec!["#sig"]))
}

#[tokio::test]
async fn a_bridge_and_a_relay_added_by_sighup_carry_traffic_on_the_same_irc_connection() {
    let mosquitto = MosquittoServer::start(MosquittoOptions::default()).await;
    let irc = IrcServer::start(IrcClass::Unlimited).await;
    let dir = temp_dir("reload-add");
    let mut bot = Bot::start(dir.path(), &base(&irc).build());
    let mut dave = IrcClient::connect(&irc, "dave").await;
    dave.join_and_wait_for("#sig", BOT_NICK, T * 2).await;
    let connected = signon(&mut dave, BOT_NICK).await;

    let forge = Section::mqtt("forge", format!("mqtt://127.0.0.1:{}", mosquitto.port()))
        .set("client_id", format!("sigbot-reload-{}", free_port()));
    let with_bridge = base(&irc)
        .mqtt(forge)
        .relay(Section::relay(
            "pushes",
            "forge",
            "git/#",
            "push {{ msg.n }}",
            &["testnet/#sig"],
        ))
        .bridge(Section::bridge("sig", &["testnet/#sig", "console/#local"]));
    bot.rewrite_config(&with_bridge.build());
    bot.hangup();
    let line = bot.wait_log(T, "SIGHUP: network unchanged").await;
    assert!(line.contains("testnet"), "{line}");
    let line = bot.wait_log(T, "SIGHUP: config reloaded").await;
    assert!(
        line.contains("kept=1") && line.contains("started=1") && line.contains("bridges=1"),
        "{line}"
    );
    // The new connection subscribes whenever it is up, before or after that line.
    wait_until("the new MQTT connection's subscription", T, || {
        let subscribed = bot.log().iter().any(|l| l.contains("subscribed"));
        async move { subscribed.then_some(()) }
    })
    .await;

    // The bridge, both ways.
    let mut reconnected = false;
    dave.privmsg("#sig", "hello from irc").await;
    let seen = bot.wait_stdout(T, "hello from irc").await;
    assert_eq!(
        seen,
        "[console/#local] <sigbot> <d\u{200B}ave> hello from irc"
    );
    bot.say("hello from the console").await;
    wait_in_sig(&mut dave, "hello from the console", &mut reconnected).await;
    // The relay, from a connection the reload started.
    let mut publisher = MqttClient::connect(&mosquitto, "publisher").await;
    publisher.publish("git/push", r#"{"n": 7}"#).await;
    wait_in_sig(&mut dave, "push 7", &mut reconnected).await;

    // A broken config: refused with its location, and everything runs as before.
    bot.rewrite_config(&format!("bogus = 1\n{}", with_bridge.build()));
    bot.hangup();
    let line = bot.wait_log(T, "config not reloaded").await;
    assert!(
        line.contains("sigbot.toml:1:1: unknown field `bogus`"),
        "{line}"
    );
    dave.privmsg("#sig", "still bridged").await;
    bot.wait_stdout(T, "still bridged").await;
    publisher.publish("git/push", r#"{"n": 8}"#).await;
    wait_in_sig(&mut dave, "push 8", &mut reconnected).await;

    // One connection and one registration all along, as the server and the bot tell.
    assert!(!reconnected, "the bot left or joined #sig again");
    assert_eq!(signon(&mut dave, BOT_NICK).await, connected);
    assert_eq!(registrations(&bot, "testnet"), 1, "{}", bot.log_tail(80));
    assert_eq!(bot.terminate(T).await, Some(0));
}

#[tokio::test]
async fn networks_added_are_started_changed_ones_restarted_and_removed_ones_stopped() {
    let irc = IrcServer::start(IrcClass::Unlimited).await;
    let dir = temp_dir("reload-networks");
    let mut bot = Bot::start(dir.path(), &base(&irc).build());
    let mut dave = IrcClient::connect(&irc, "dave").await;
    dave.join_and_wait_for("#sig", BOT_NICK, T * 2).await;
    let connected = signon(&mut dave, BOT_NICK).await;

    // A second IRC network (the same server, another nick) bridged to the first.
    let other = Section::irc("othernet", &irc)
        .set("nick", "otherbot")
        .set("channels", vec!["#other"]);
    let two = base(&irc)
        .irc(other)
        .bridge(Section::bridge("sig", &["testnet/#sig", "othernet/#other"]));
    bot.rewrite_config(&two.build());
    bot.hangup();
    bot.wait_log(T, "SIGHUP: config reloaded").await;
    let mut erin = IrcClient::connect(&irc, "erin").await;
    erin.join_and_wait_for("#other", "otherbot", T * 2).await;
    let mut reconnected = false;
    erin.privmsg("#other", "from the other side").await;
    wait_in_sig(&mut dave, "from the other side", &mut reconnected).await;
    wait_registrations(&bot, "othernet", 1).await;
    bot.say("!status").await;
    let status = bot.wait_stdout(T, "networks:").await;
    assert!(status.contains("othernet connected"), "{status}");

    // Changed (one more channel): restarted, and what is bridged to it meanwhile waits in
    // the outbox for the new connection.
    let other = Section::irc("othernet", &irc)
        .set("nick", "otherbot")
        .set("channels", vec!["#other", "#more"]);
    let changed = base(&irc)
        .irc(other)
        .bridge(Section::bridge("sig", &["testnet/#sig", "othernet/#other"]));
    bot.rewrite_config(&changed.build());
    bot.hangup();
    dave.privmsg("#sig", "across the restart").await;
    // The old connection may still send it as it drains, or the new one once it has joined.
    let (mut quit, mut rejoined, mut relayed) = (false, false, false);
    erin.wait_for(T, |l| {
        if l.nick() == Some("otherbot") {
            quit |= l.command == "QUIT";
            rejoined |= quit && l.command == "JOIN";
        }
        relayed |= l.is_privmsg_from("otherbot") && l.text().contains("across the restart");
        relayed && rejoined
    })
    .await;
    let line = bot.wait_log(T, "SIGHUP: config reloaded").await;
    assert!(
        line.contains("kept=1") && line.contains("restarted=1"),
        "{line}"
    );
    wait_registrations(&bot, "othernet", 2).await;

    // Removed again: its connection quits; the first one stays. A data_dir changed at the
    // same time needs a restart: the running one stays.
    bot.rewrite_config(&base(&irc).bot("data_dir", "elsewhere").build());
    bot.hangup();
    let quit = erin
        .wait_for(T, |l| l.nick() == Some("otherbot") && l.command == "QUIT")
        .await;
    assert_eq!(quit.command, "QUIT");
    let warning = bot.wait_log(T, "needs a restart").await;
    assert!(warning.contains("[bot] data_dir"), "{warning}");
    bot.wait_log(T, "SIGHUP: config reloaded").await;
    assert!(!dir.path().join("elsewhere").exists());
    bot.say("!status").await;
    let status = bot.wait_stdout(T, "networks:").await;
    assert!(!status.contains("othernet"), "{status}");
    dave.privmsg("#sig", "!ping").await;
    wait_in_sig(&mut dave, "pong", &mut reconnected).await;
    assert!(!reconnected, "the bot left or joined #sig again");
    assert_eq!(signon(&mut dave, BOT_NICK).await, connected);
    assert_eq!(registrations(&bot, "testnet"), 1);
    assert_eq!(bot.terminate(T).await, Some(0));
}

/// A Matrix network and a bridge to it added by SIGHUP: the bot logs in, joins the room and
/// relays both ways, while its IRC connection stays the same one.
#[tokio::test]
async fn a_matrix_network_added_by_sighup_is_bridged_to_the_running_irc_channel() {
    use crate::support::{RoomSpec, SynapseServer};
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
    let dir = temp_dir("reload-matrix");
    let web = free_port();
    let mut bot = Bot::start(dir.path(), &base(&irc).web(web).build());
    let mut dave = IrcClient::connect(&irc, "dave").await;
    dave.join_and_wait_for("#sig", BOT_NICK, T * 2).await;
    let connected = signon(&mut dave, BOT_NICK).await;

    let alias = format!("#sig:{}", synapse.server_name());
    let with_matrix = base(&irc)
        .web(web)
        .matrix(Section::matrix("hs", &synapse, &bot_user).set("rooms", vec![alias.as_str()]))
        .bridge(Section::bridge(
            "sig",
            &["testnet/#sig", &format!("hs/{alias}")],
        ));
    bot.rewrite_config(&with_matrix.build());
    bot.hangup();
    let line = bot.wait_log(T, "SIGHUP: config reloaded").await;
    assert!(
        line.contains("kept=1") && line.contains("started=1"),
        "{line}"
    );
    let bot_id = bot_user.user_id.clone();
    alice
        .wait_for_event(&room, T * 2, |ev| {
            ev["type"] == "m.room.member"
                && ev["state_key"] == bot_id
                && ev["content"]["membership"] == "join"
        })
        .await;

    let mut reconnected = false;
    alice.send_text(&room, "hello from matrix").await;
    wait_in_sig(&mut dave, "hello from matrix", &mut reconnected).await;
    dave.privmsg("#sig", "hello from irc").await;
    let got = alice
        .wait_for_event(&room, T, |ev| {
            ev["type"] == "m.room.message" && ev["sender"] == bot_id
        })
        .await;
    assert_eq!(got["content"]["body"], "dave: hello from irc", "{got}");

    // A file shared there is served on /media through the network the reload started.
    let bytes = b"notes from the matrix side\n".to_vec();
    let upload: serde_json::Value = alice
        .request(
            reqwest::Method::POST,
            "/_matrix/media/v3/upload?filename=notes.txt",
        )
        .header("content-type", "application/octet-stream")
        .body(bytes.clone())
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("upload reply");
    let mxc = upload["content_uri"].as_str().expect("content_uri");
    alice
        .send_message(
            &room,
            serde_json::json!({
                "msgtype": "m.file",
                "body": "notes.txt",
                "url": mxc,
                "info": {"mimetype": "text/plain", "size": bytes.len()},
            }),
        )
        .await;
    let shared = wait_in_sig(&mut dave, "sent notes.txt", &mut reconnected).await;
    let (_, id) = shared
        .text()
        .split_once("/media/")
        .unwrap_or_else(|| panic!("no link in {}", shared.raw));
    let url = format!("http://127.0.0.1:{web}/media/{}", id.trim());
    let served = reqwest::get(&url).await.expect("GET /media");
    assert_eq!(served.status(), 200, "{url}");
    assert_eq!(served.bytes().await.expect("body").to_vec(), bytes);

    assert!(!reconnected, "the bot left or joined #sig again");
    assert_eq!(signon(&mut dave, BOT_NICK).await, connected);
    assert_eq!(registrations(&bot, "testnet"), 1);
    assert_eq!(bot.terminate(T).await, Some(0));
}

/// `[log] level` follows a reload when `RUST_LOG` does not set the filter: INFO lines appear
/// once the level goes from warn to info.
#[tokio::test]
async fn the_log_level_follows_a_reload() {
    let dir = temp_dir("reload-log");
    let config = |level: &str| {
        BotConfig::new()
            .console()
            .table("log", Section::new().set("level", level))
            .build()
    };
    let mut bot = Bot::start_with_env(dir.path(), &config("warn"), &[("RUST_LOG", "")]);
    bot.say("!ping").await;
    bot.wait_stdout(T, "pong").await;
    assert!(
        !bot.log().iter().any(|l| l.contains("INFO")),
        "an INFO line at level warn: {}",
        bot.log_tail(20)
    );
    bot.rewrite_config(&config("info"));
    bot.hangup();
    let changed = bot.wait_log(T, "SIGHUP: log level changed").await;
    assert!(changed.contains(" INFO "), "{changed}");
    assert!(
        changed.contains("from=\"warn\"") && changed.contains("to=\"info\""),
        "{changed}"
    );
    assert_eq!(bot.terminate(T).await, Some(0));
    assert!(
        bot.log()
            .iter()
            .any(|l| l.contains("INFO") && l.contains("sigbot stopped"))
    );
}
