//! The bridge against the real InspIRCd: two channels and the console room linked
//! by one `[[bridge]]`. Relay both ways with the zero-width space in nicks, no loops, a
//! command answered in every room once, long messages as a paste link served by the bot's
//! web site, and nothing lost while the IRC server is down or the bot is killed.

use std::time::Duration;

use crate::support::bot::{Bot, CONSOLE_USER};
use crate::support::{
    BOT_NICK, BotConfig, IrcClass, IrcClient, IrcServer, Section, free_port, from_bot, temp_dir,
};

const T: Duration = Duration::from_secs(30);

/// The console user as the IRC side shows them.
fn tester() -> String {
    let mut c = CONSOLE_USER.chars();
    let first = c.next().unwrap();
    format!("<{first}\u{200B}{}>", c.as_str())
}

/// The bridge `sig` between `#a`, `#b` and the console room.
fn sig() -> Section {
    Section::bridge("sig", &["testnet/#a", "testnet/#b", "console/#local"])
}

/// The bot with its console and web site on `web`, and `bridge`.
fn bridge_config(server: &IrcServer, web: u16, bridge: Section) -> String {
    BotConfig::new()
        .console()
        .web(web)
        .irc(Section::irc("testnet", server))
        .bridge(bridge)
        .build()
}

/// Joins `chan` and waits until the bot is in it too.
async fn join_with_bot(client: &mut IrcClient, chan: &str) {
    client.join_and_wait_for(chan, BOT_NICK, T * 2).await;
}

#[tokio::test]
async fn messages_cross_both_ways_without_loops_and_answers_reach_every_room_once() {
    let server = IrcServer::start(IrcClass::Unlimited).await;
    let dir = temp_dir("bridge-relay");
    let mut bot = Bot::start(dir.path(), &bridge_config(&server, free_port(), sig()));
    let mut alice = IrcClient::connect(&server, "alice").await;
    join_with_bot(&mut alice, "#a").await;
    let mut bob = IrcClient::connect(&server, "bob").await;
    join_with_bot(&mut bob, "#b").await;

    // IRC -> IRC and console, with a zero-width space inside the nick.
    alice.privmsg("#a", "hello from \x02a\x02").await;
    bob.wait_for(T, |l| {
        from_bot(l) && l.is_privmsg("#b", "<a\u{200B}lice> hello from \x02a\x02")
    })
    .await;
    bot.wait_stdout(T, "[console/#local] <sigbot> <a\u{200B}lice> hello from")
        .await;

    // Console -> both channels.
    bot.say("hi from the console").await;
    let want = format!("{} hi from the console", tester());
    for (client, chan) in [(&mut alice, "#a"), (&mut bob, "#b")] {
        let got = client.wait_for(T, from_bot).await;
        // The first thing the bot says in #a is the console's line: alice's own line never
        // came back to her.
        assert!(got.is_privmsg(chan, &want), "{}", got.raw);
    }

    // A command typed on IRC: relayed like any text, answered in every room once.
    alice.privmsg("#a", "!ping").await;
    let got = alice.wait_for(T, from_bot).await;
    assert!(got.is_privmsg("#a", "pong"), "{}", got.raw);
    let got = bob.wait_for(T, from_bot).await;
    assert!(got.is_privmsg("#b", "<a\u{200B}lice> !ping"), "{}", got.raw);
    let got = bob.wait_for(T, from_bot).await;
    assert!(got.is_privmsg("#b", "pong"), "{}", got.raw);
    assert_eq!(
        bot.wait_stdout(T, "").await,
        "[console/#local] <sigbot> <a\u{200B}lice> !ping"
    );
    assert_eq!(
        bot.wait_stdout(T, "").await,
        "[console/#local] <sigbot> pong"
    );

    // Once each: the next thing every room gets from the bot is this marker.
    bot.say("marker").await;
    let want = format!("{} marker", tester());
    for (client, chan) in [(&mut alice, "#a"), (&mut bob, "#b")] {
        let got = client.wait_for(T, from_bot).await;
        assert!(got.is_privmsg(chan, &want), "{}", got.raw);
    }
    // Emotes reach IRC as plain `* nick text` lines, never CTCP.
    alice.privmsg("#a", "\x01ACTION waves\x01").await;
    let got = bob.wait_for(T, from_bot).await;
    assert!(got.is_privmsg("#b", "* a\u{200B}lice waves"), "{}", got.raw);
}

#[tokio::test]
async fn a_long_message_becomes_its_first_lines_and_a_paste_link_on_the_web_site() {
    let server = IrcServer::start(IrcClass::Unlimited).await;
    let dir = temp_dir("bridge-paste");
    let web = free_port();
    let mut bot = Bot::start(
        dir.path(),
        &bridge_config(&server, web, sig().set("max_lines", 2)),
    );
    let mut alice = IrcClient::connect(&server, "alice").await;
    join_with_bot(&mut alice, "#a").await;

    let words: Vec<String> = (0..300).map(|i| format!("w{i}")).collect();
    let text = words.join(" ");
    bot.say(&text).await;
    let first = alice.wait_for(T, from_bot).await;
    let prefix = format!("{} ", tester());
    assert!(
        first.text().starts_with(&format!("{prefix}w0 w1 ")),
        "{}",
        first.raw
    );
    assert!(first.raw.len() <= 512, "{} bytes", first.raw.len());
    let last = alice.wait_for(T, from_bot).await;
    let link = last
        .text()
        .strip_prefix(&format!("{prefix}(full message: "))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not a paste link line: {}", last.raw))
        .to_owned();
    assert!(
        link.starts_with(&format!("http://127.0.0.1:{web}/paste/")),
        "{link}"
    );
    let resp = reqwest::get(&link).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/plain; charset=utf-8"
    );
    assert_eq!(resp.text().await.unwrap(), text);
    // Paste IDs cannot be guessed from one another, and unknown ones are not found.
    let id = link.rsplit('/').next().unwrap();
    assert!(id.len() >= 20, "{id}");
    let resp = reqwest::get(format!("http://127.0.0.1:{web}/paste/aaaaaaaaaaaaaaaaaaaa"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

/// The harness's InspIRCd tags every message with `msgid`, so each relayed IRC line has a
/// source ID: a line that needs two lines on the other channel still arrives whole.
#[tokio::test]
async fn an_irc_line_with_a_msgid_split_in_two_on_another_channel_arrives_whole() {
    let server = IrcServer::start(IrcClass::Unlimited).await;
    let dir = temp_dir("bridge-msgid-split");
    let mut bot = Bot::start(dir.path(), &bridge_config(&server, free_port(), sig()));
    let mut alice = IrcClient::connect(&server, "alice").await;
    join_with_bot(&mut alice, "#a").await;
    let mut bob = IrcClient::connect(&server, "bob").await;
    join_with_bot(&mut bob, "#b").await;

    let words: Vec<String> = (0..52).map(|i| format!("žluť{i:02}")).collect();
    let text = words.join(" ");
    alice.privmsg("#a", &text).await;
    // Stored under the server's message ID, line by line.
    let first = bot.wait_log(T, "bridged message stored").await;
    assert!(
        first.contains("source=\"testnet/") && first.contains("#1\""),
        "{first}"
    );
    let mut seen: Vec<String> = Vec::new();
    let mut parts = 0;
    while seen.len() < words.len() {
        let got = bob.wait_for(T, from_bot).await;
        assert!(
            got.raw.len() + 2 <= 512,
            "{} bytes: {}",
            got.raw.len(),
            got.raw
        );
        let body = got
            .text()
            .strip_prefix("<a\u{200B}lice> ")
            .unwrap_or_else(|| panic!("not alice's line: {}", got.raw));
        parts += 1;
        seen.extend(body.split(' ').map(str::to_owned));
    }
    assert!(parts >= 2, "the line was not split: {parts} part(s)");
    assert_eq!(seen, words, "words lost, doubled or out of order");
    // Once each: the next line in #b is the marker.
    alice.privmsg("#a", "marker").await;
    let got = bob.wait_for(T, from_bot).await;
    assert!(
        got.is_privmsg("#b", "<a\u{200B}lice> marker"),
        "{}",
        got.raw
    );
}

#[tokio::test]
async fn lines_said_while_the_irc_server_is_down_arrive_afterwards_in_order() {
    let mut server = IrcServer::start(IrcClass::Unlimited).await;
    let dir = temp_dir("bridge-down");
    let mut bot = Bot::start(dir.path(), &bridge_config(&server, free_port(), sig()));
    let mut watcher = IrcClient::connect(&server, "watcher").await;
    join_with_bot(&mut watcher, "#a").await;

    server.stop();
    bot.wait_log(T, "connection lost").await;
    for i in 1..=5 {
        bot.say(&format!("while down {i}")).await;
    }
    for _ in 1..=5 {
        bot.wait_log(T, "bridged message stored").await;
    }
    server.restart().await;
    let mut watcher = IrcClient::connect(&server, "watcher").await;
    watcher.send("JOIN #a").await;
    for i in 1..=5 {
        let got = watcher.wait_for(T * 4, from_bot).await;
        assert!(
            got.is_privmsg("#a", &format!("{} while down {i}", tester())),
            "line {i} in order: {}",
            got.raw
        );
    }
}

#[tokio::test]
async fn a_bot_killed_while_irc_is_down_delivers_its_outbox_once_after_restart() {
    let mut server = IrcServer::start(IrcClass::Unlimited).await;
    let dir = temp_dir("bridge-crash");
    let mut bot = Bot::start(dir.path(), &bridge_config(&server, free_port(), sig()));
    let mut watcher = IrcClient::connect(&server, "watcher").await;
    join_with_bot(&mut watcher, "#a").await;

    server.stop();
    bot.wait_log(T, "connection lost").await;
    for i in 1..=3 {
        bot.say(&format!("kept {i}")).await;
    }
    // Each line is stored once for #a and once for #b: six rows before the crash.
    for _ in 1..=6 {
        bot.wait_log(T, "bridged message stored").await;
    }
    bot.kill().await;
    server.restart().await;
    // The watcher is in the channel before the bot comes back.
    let mut watcher = IrcClient::connect(&server, "watcher").await;
    watcher.join("#a").await;
    bot.restart();
    for i in 1..=3 {
        let got = watcher.wait_for(T * 2, from_bot).await;
        assert!(
            got.is_privmsg("#a", &format!("{} kept {i}", tester())),
            "line {i} in order: {}",
            got.raw
        );
    }
    // Exactly once: the next line from the bot is one said after the restart.
    bot.say("after restart").await;
    let got = watcher.wait_for(T, from_bot).await;
    assert!(
        got.is_privmsg("#a", &format!("{} after restart", tester())),
        "{}",
        got.raw
    );
}

/// The next line the bot says in `client`'s channels.
async fn next_from_bot(client: &mut IrcClient) -> String {
    client.wait_for(T, from_bot).await.text().to_owned()
}

#[tokio::test]
async fn joins_parts_nick_changes_and_quits_are_relayed_when_the_bridge_asks_for_them() {
    let server = IrcServer::start(IrcClass::Unlimited).await;
    let dir = temp_dir("bridge-presence");
    let presence = sig()
        .set("join_part", true)
        .set("quits", true)
        .set("nick_changes", true);
    let mut bot = Bot::start(dir.path(), &bridge_config(&server, free_port(), presence));
    // Once these two see the bot in their channels, later joins are news to it.
    let mut alice = IrcClient::connect(&server, "alice").await;
    join_with_bot(&mut alice, "#a").await;
    let mut bob = IrcClient::connect(&server, "bob").await;
    join_with_bot(&mut bob, "#b").await;
    // alice's and bob's own joins are news if the bot was there first; whatever it relayed of
    // them arrives before this marker, which both wait for.
    bot.say("ready").await;
    for client in [&mut alice, &mut bob] {
        client
            .wait_for(T, |l| from_bot(l) && l.text().ends_with(" ready"))
            .await;
    }

    let mut carol = IrcClient::connect(&server, "carol").await;
    join_with_bot(&mut carol, "#a").await;
    assert_eq!(next_from_bot(&mut bob).await, "* c\u{200B}arol joined #a");
    carol.send("NICK carla").await;
    assert_eq!(
        next_from_bot(&mut bob).await,
        "* c\u{200B}arol is now known as c\u{200B}arla"
    );
    carol.send("PART #a :lunch").await;
    assert_eq!(
        next_from_bot(&mut bob).await,
        "* c\u{200B}arla left #a (lunch)"
    );
    carol.send("JOIN #a").await;
    assert_eq!(next_from_bot(&mut bob).await, "* c\u{200B}arla joined #a");
    carol.send("QUIT :bye now").await;
    let quit = next_from_bot(&mut bob).await;
    assert!(
        quit.starts_with("* c\u{200B}arla quit (") && quit.contains("bye now"),
        "{quit}"
    );
    // The console room hears of it too; #a, where it happened, does not.
    bot.wait_stdout(T, "<sigbot> * c\u{200B}arla quit (").await;
    bot.say("marker").await;
    let mut heard = next_from_bot(&mut alice).await;
    if heard == "* b\u{200B}ob joined #b" {
        // Bob joined after the bot had: #a was told.
        heard = next_from_bot(&mut alice).await;
    }
    assert_eq!(heard, format!("{} marker", tester()));
}

#[tokio::test]
async fn joins_are_silent_by_default_and_member_lists_defuse_mass_mentions() {
    let server = IrcServer::start(IrcClass::Unlimited).await;
    let dir = temp_dir("bridge-members");
    let mut bot = Bot::start(
        dir.path(),
        &bridge_config(&server, free_port(), sig().set("max_mentions", 1)),
    );
    let mut alice = IrcClient::connect(&server, "alice").await;
    join_with_bot(&mut alice, "#a").await;
    let mut bob = IrcClient::connect(&server, "bob").await;
    join_with_bot(&mut bob, "#b").await;
    // Dora joins and leaves and joins again without a word: nobody is told.
    let mut dora = IrcClient::connect(&server, "dora").await;
    join_with_bot(&mut dora, "#b").await;
    dora.send("PART #b").await;
    join_with_bot(&mut dora, "#b").await;
    // A line relayed after her join shows that the bot has read it, and that it is the
    // first thing the bot said since.
    alice.privmsg("#a", "sync").await;
    assert_eq!(next_from_bot(&mut bob).await, "<a\u{200B}lice> sync");

    // Bob and Dora never spoke: only the channel's member list names them.
    bot.say("bob dora look").await;
    assert_eq!(
        next_from_bot(&mut bob).await,
        format!("{} b\u{200B}ob d\u{200B}ora look", tester())
    );
    // In #a neither is a member: nothing to defuse.
    let got = alice.wait_for(T, from_bot).await;
    assert!(
        got.is_privmsg("#a", &format!("{} bob dora look", tester())),
        "{}",
        got.raw
    );
}
