//! The IRC network against the real InspIRCd + Anope: registration with SASL, identity by
//! account (never by nick), commands in channels and in private, reconnection after a
//! server crash with the queued lines delivered in order, and flood safety.

use std::time::Duration;

use crate::support::bot::{Bot, CONSOLE_USER};
use crate::support::{
    BOT_NICK, BotConfig, IrcClass, IrcClient, IrcConnectOptions, IrcServer, Section, free_port,
    from_bot, temp_dir,
};

const T: Duration = Duration::from_secs(30);

/// Network `testnet` on `server`, with the bot in `#sig`.
fn testnet(server: &IrcServer) -> Section {
    Section::irc("testnet", server).set("channels", vec!["#sig"])
}

/// The bot on `network`, with its console and web site.
fn bot_config(network: Section) -> BotConfig {
    BotConfig::new().console().web(free_port()).irc(network)
}

/// The console user, as a member of a role: an admin may `!say`.
fn console_admin() -> String {
    format!("console:{CONSOLE_USER}")
}

/// Joins `#sig` and waits until the bot is there too.
async fn join_and_wait_for_bot(client: &mut IrcClient) {
    client.join_and_wait_for("#sig", BOT_NICK, T * 2).await;
}

#[tokio::test]
async fn bot_logs_in_with_sasl_and_answers_in_channel_and_in_private() {
    let server = IrcServer::start(IrcClass::Unlimited).await;
    server.register_account("sigbot", "botpass123").await;
    let dir = temp_dir("irc-basic");
    let mut bot = Bot::start(
        dir.path(),
        &bot_config(testnet(&server).raw(r#"sasl = { user = "sigbot", password = "botpass123" }"#))
            .build(),
    );
    bot.wait_log(T, "logged in").await;

    let mut alice =
        IrcClient::connect_with(server.addr(), IrcConnectOptions::new("alice").all_caps()).await;
    join_and_wait_for_bot(&mut alice).await;

    alice.privmsg("#sig", "!ping").await;
    alice
        .wait_for(T, |l| from_bot(l) && l.is_privmsg("#sig", "pong"))
        .await;

    // Addressed by nick, in private.
    alice.privmsg("sigbot", "sigbot: ping").await;
    alice
        .wait_for(T, |l| from_bot(l) && l.is_privmsg("alice", "pong"))
        .await;

    // The bot set its bot mode where the server has one (ISUPPORT BOT=).
    alice.send("WHOIS sigbot").await;
    let whois = alice
        .wait_for(T, |l| l.command == "335" || l.command == "318")
        .await;
    assert_eq!(whois.command, "335", "RPL_WHOISBOT expected: bot mode set");

    // whoami over IRC shows the account the bot sees.
    alice.privmsg("#sig", "!whoami").await;
    let line = alice.wait_for(T, from_bot).await;
    assert!(line.text().contains("not identified"), "{}", line.raw);
}

#[tokio::test]
async fn roles_follow_accounts_not_nicks() {
    let server = IrcServer::start(IrcClass::Unlimited).await;
    server.register_account("alice", "alicepass1").await;
    let dir = temp_dir("irc-identity");
    let mut bot = Bot::start(
        dir.path(),
        &bot_config(testnet(&server))
            .role("admin", &["testnet:alice"])
            .build(),
    );
    bot.wait_log(T, "registered").await;

    // Someone takes alice's nick without her account: refused.
    let mut impostor =
        IrcClient::connect_with(server.addr(), IrcConnectOptions::new("alice").all_caps()).await;
    join_and_wait_for_bot(&mut impostor).await;
    impostor
        .privmsg("#sig", "!say testnet/#sig I am alice")
        .await;
    let refusal = impostor.wait_for(T, from_bot).await;
    assert_eq!(refusal.text(), "alice: say needs the admin role");
    impostor.quit().await;

    // The real alice, logged in with SASL: allowed.
    let mut alice = IrcClient::connect_with(
        server.addr(),
        IrcConnectOptions::new("alice")
            .all_caps()
            .sasl("alice", "alicepass1"),
    )
    .await;
    assert_eq!(alice.account(), Some("alice"));
    join_and_wait_for_bot(&mut alice).await;
    alice
        .privmsg("#sig", "!say testnet/#sig the real alice")
        .await;
    alice
        .wait_for(T, |l| from_bot(l) && l.is_privmsg("#sig", "the real alice"))
        .await;
    alice.privmsg("#sig", "!whoami").await;
    let line = alice.wait_for(T, from_bot).await;
    assert_eq!(
        line.text(),
        "alice: you are testnet:alice, with roles: admin"
    );
}

#[tokio::test]
async fn bot_comes_back_after_the_server_is_killed_and_sends_queued_lines_in_order() {
    let mut server = IrcServer::start(IrcClass::Unlimited).await;
    let dir = temp_dir("irc-reconnect");
    let mut bot = Bot::start(
        dir.path(),
        &bot_config(testnet(&server))
            .role("admin", &[&console_admin()])
            .build(),
    );
    let mut watcher = IrcClient::connect(&server, "watcher").await;
    join_and_wait_for_bot(&mut watcher).await;

    server.stop();
    bot.wait_log(T, "connection lost").await;
    // Lines for the channel while the server is down wait in the bot's queue.
    for i in 1..=5 {
        bot.say(&format!("!say testnet/#sig queued {i}")).await;
    }
    server.restart().await;

    let mut watcher = IrcClient::connect(&server, "watcher").await;
    watcher.send("JOIN #sig").await;
    for i in 1..=5 {
        let line = watcher.wait_for(T * 4, from_bot).await;
        assert_eq!(
            line.text(),
            format!("queued {i}"),
            "queued lines arrive in order"
        );
    }
    // And it answers commands again.
    watcher.privmsg("#sig", "!ping").await;
    watcher
        .wait_for(T, |l| from_bot(l) && l.is_privmsg("#sig", "pong"))
        .await;
}

#[tokio::test]
async fn bot_takes_an_alternative_nick_and_regains_its_own() {
    let server = IrcServer::start(IrcClass::Unlimited).await;
    let squatter = IrcClient::connect(&server, "sigbot").await;
    let dir = temp_dir("irc-nick");
    let mut bot = Bot::start(
        dir.path(),
        &bot_config(testnet(&server).set("alt_nicks", vec!["sigbot_alt"])).build(),
    );
    bot.wait_log(T, "nick unavailable").await;
    let mut watcher = IrcClient::connect(&server, "watcher").await;
    watcher.send("JOIN #sig").await;
    watcher
        .wait_for(T * 2, |l| {
            l.names_include("sigbot_alt") || (l.command == "JOIN" && l.nick() == Some("sigbot_alt"))
        })
        .await;
    squatter.quit().await;
    watcher
        .wait_for(T * 2, |l| {
            l.command == "NICK" && l.nick() == Some("sigbot_alt") && l.text() == "sigbot"
        })
        .await;
}

#[tokio::test]
async fn flood_control_delivers_300_lines_in_order_without_being_disconnected() {
    let server = IrcServer::start(IrcClass::PublicNetwork).await;

    // The control: a client that writes 300 lines at once is cut off for excess flood.
    let mut flooder = IrcClient::connect(&server, "flooder").await;
    flooder.join("#flood").await;
    for i in 0..300 {
        if flooder
            .try_send(&format!("PRIVMSG #flood :flood {i}"))
            .await
            .is_err()
        {
            break;
        }
    }
    let error = flooder.wait_for_disconnect(T).await;
    assert!(
        error
            .as_ref()
            .is_some_and(|e| e.text().contains("Excess Flood")),
        "the control client must be disconnected for excess flood: {error:?}"
    );

    let dir = temp_dir("irc-flood");
    let mut bot = Bot::start(
        dir.path(),
        &bot_config(
            testnet(&server).set(
                "rate",
                Section::new()
                    .set("burst", IrcClass::PUBLIC_BURST / 4)
                    .set("per_second", IrcClass::PUBLIC_RATE * 0.8),
            ),
        )
        .role("admin", &[&console_admin()])
        .build(),
    );
    let mut watcher = IrcClient::connect(&server, "watcher").await;
    join_and_wait_for_bot(&mut watcher).await;
    for i in 0..300 {
        bot.say(&format!("!say testnet/#sig line {i}")).await;
    }
    let mut first_at = None;
    for i in 0..300 {
        if i == 1 {
            first_at = Some(std::time::Instant::now());
        }
        let line = watcher.wait_for(T * 2, from_bot).await;
        assert_eq!(line.text(), format!("line {i}"));
    }
    if let Some(t) = first_at {
        // Measurement only (reported in the issue's note): the pace the bucket allowed.
        println!(
            "MEASURE irc flood test: 299 lines after the first in {:?} = {:.2} lines/s",
            t.elapsed(),
            299.0 / t.elapsed().as_secs_f64()
        );
    }
    // Still connected: it answers.
    watcher.privmsg("#sig", "!ping").await;
    watcher
        .wait_for(T, |l| from_bot(l) && l.is_privmsg("#sig", "pong"))
        .await;
    let log = bot.log().join("\n");
    assert!(
        !log.contains("connection lost"),
        "the bot must never be disconnected:\n{log}"
    );
}

#[tokio::test]
async fn bot_connects_over_tls_and_logs_in_with_its_client_certificate() {
    let server = IrcServer::start(IrcClass::Unlimited).await;
    let tls = server.tls_files().clone();
    let dir = temp_dir("irc-tls");
    let network = Section::irc_tls("testnet", &server)
        .set("ca_file", tls.ca_cert.display().to_string())
        .set("client_cert", tls.client_cert.display().to_string())
        .set("client_key", tls.client_key.display().to_string())
        .set("nick", BOT_NICK)
        .set("channels", vec!["#sig"]);
    let config = BotConfig::new()
        .irc(
            network
                .clone()
                .set("sasl", Section::new().set("mechanism", "EXTERNAL")),
        )
        .build();
    // First start: no account yet. The bot's operator registers it with NickServ from the
    // console, then adds the client certificate the bot is connected with to the account's
    // certificate list (CertFP).
    let first = BotConfig::new()
        .irc(network)
        .console()
        .role("admin", &[&console_admin()])
        .build();
    let mut bot = Bot::start(dir.path(), &first);
    bot.wait_log(T, "registered").await;
    bot.say("!say testnet/NickServ REGISTER botpass123 sigbot@example.org")
        .await;
    bot.wait_log(T, "logged in").await;
    bot.say("!say testnet/NickServ CERT ADD").await;
    let anope_log = server.dir().join("anope.log");
    crate::support::wait_until("NickServ to add the certificate", T, || {
        let log = std::fs::read_to_string(&anope_log).unwrap_or_default();
        async move { log.contains("used CERT to ADD").then_some(()) }
    })
    .await;
    bot.terminate(T).await;

    let mut bot = Bot::start(dir.path(), &config);
    let logged_in = bot.wait_log(T, "logged in").await;
    assert!(logged_in.contains("sigbot"), "{logged_in}");

    let mut alice = IrcClient::connect(&server, "alice").await;
    join_and_wait_for_bot(&mut alice).await;
    alice.privmsg("#sig", "!ping").await;
    alice
        .wait_for(T, |l| from_bot(l) && l.is_privmsg("#sig", "pong"))
        .await;
}

#[tokio::test]
async fn tls_with_an_unknown_certificate_authority_is_refused_with_a_clear_log_line() {
    let server = IrcServer::start(IrcClass::Unlimited).await;
    let dir = temp_dir("irc-tls-bad");
    // No ca_file: the harness's CA is not among the system's roots.
    let config = BotConfig::new()
        .irc(Section::irc_tls("testnet", &server))
        .build();
    let mut bot = Bot::start(dir.path(), &config);
    let line = bot.wait_log(T, "cannot connect").await;
    assert!(line.contains("certificate"), "{line}");
}

#[tokio::test]
async fn kicked_bot_rejoins_after_its_delay_and_stdin_eof_does_not_stop_it() {
    let server = IrcServer::start(IrcClass::Unlimited).await;
    // The first one in a channel gets operator status: the op joins before the bot.
    let mut op = IrcClient::connect(&server, "chanop").await;
    op.join("#sig").await;
    let dir = temp_dir("irc-kick");
    let mut bot = Bot::start(
        dir.path(),
        &bot_config(testnet(&server).set("rejoin_delay", "1s")).build(),
    );
    op.wait_for(T * 2, |l| l.command == "JOIN" && l.nick() == Some("sigbot"))
        .await;
    // The console's input ends; with IRC running, the bot goes on.
    bot.close_stdin();
    bot.wait_log(T, "console input ended").await;
    op.send("KICK #sig sigbot :testing rejoin").await;
    bot.wait_log(T, "kicked; rejoining after a delay").await;
    op.wait_for(T, |l| l.command == "JOIN" && l.nick() == Some("sigbot"))
        .await;
    op.privmsg("#sig", "!ping").await;
    op.wait_for(T, |l| from_bot(l) && l.is_privmsg("#sig", "pong"))
        .await;
}

#[tokio::test]
async fn nickserv_identify_is_the_fallback_and_private_replies_can_be_notices() {
    let server = IrcServer::start(IrcClass::Unlimited).await;
    server.register_account("sigbot", "botpass123").await;
    let dir = temp_dir("irc-nickserv");
    let mut bot = Bot::start(
        dir.path(),
        &bot_config(
            testnet(&server)
                .set("nickserv_password", "botpass123")
                .set("private_replies", "notice"),
        )
        .build(),
    );
    bot.wait_log(T, "logged in").await;
    let mut alice = IrcClient::connect(&server, "alice").await;
    alice.privmsg("sigbot", "!ping").await;
    let reply = alice
        .wait_for(T, |l| l.nick() == Some("sigbot") && l.command != "JOIN")
        .await;
    assert_eq!(reply.command, "NOTICE");
    assert_eq!(reply.text(), "pong");
}

/// Measurement, not a timing assertion: how long from the IRC server's restart until the bot
/// is back in its channel, over 5 crashes (printed as MEASURE lines; the issue's note cites the
/// median). What it asserts is only that the bot comes back every time.
#[tokio::test]
async fn measure_time_back_in_channel_after_server_restarts() {
    let mut server = IrcServer::start(IrcClass::Unlimited).await;
    let mut times = Vec::new();
    for run in 0..5 {
        // A fresh bot each run, so every run starts from the first backoff step.
        let dir = temp_dir(&format!("irc-measure-{run}"));
        let mut bot = Bot::start(dir.path(), &bot_config(testnet(&server)).build());
        bot.wait_log(T, "joined").await;
        server.stop();
        bot.wait_log(T, "connection lost").await;
        server.restart().await;
        let restarted = std::time::Instant::now();
        let mut watcher = IrcClient::connect(&server, "watcher").await;
        join_and_wait_for_bot(&mut watcher).await;
        times.push(restarted.elapsed());
        watcher.quit().await;
        bot.terminate(T).await;
    }
    times.sort();
    println!(
        "MEASURE irc restart -> bot back in channel: median {:?}, all {:?}",
        times[2], times
    );
}

#[tokio::test]
async fn declarative_commands_and_meetings_work_over_irc() {
    let server = IrcServer::start(IrcClass::Unlimited).await;
    let base = format!("http://{}", crate::commands::fake_services().await);
    let dir = temp_dir("irc-cmd-meeting");
    crate::commands::shipped_commands(&dir.path().join("commands"), &base);
    let mut bot = Bot::start(
        dir.path(),
        &bot_config(testnet(&server))
            .meetings(&["testnet/#sig"])
            .build(),
    );
    bot.wait_log(T, "joined").await;
    let mut alice = IrcClient::connect(&server, "alice").await;
    join_and_wait_for_bot(&mut alice).await;
    let mut bob = IrcClient::connect(&server, "bob").await;
    bob.join("#sig").await;

    alice.privmsg("#sig", "!bug 1839234").await;
    let reply = alice.wait_for(T, from_bot).await;
    assert!(
        reply
            .text()
            .starts_with("rhbz#1839234: sqlite-3.32.0 is available [MODIFIED]"),
        "{}",
        reply.raw
    );

    alice.privmsg("#sig", "#startmeeting SIG weekly").await;
    let started = alice.wait_for(T, from_bot).await;
    assert!(
        started.text().contains("Meeting started"),
        "{}",
        started.raw
    );
    alice
        .wait_for(T, |l| from_bot(l) && l.text().contains("#topic"))
        .await;
    // bob is not a chair: a chair-only command is refused, his #info is minuted.
    bob.privmsg("#sig", "#topic bob's topic").await;
    alice.privmsg("#sig", "#chair bob").await;
    alice.privmsg("#sig", "#info the mirror moved").await;
    alice.privmsg("#sig", "#action bob updates the docs").await;
    alice.privmsg("#sig", "#endmeeting").await;
    let ended = alice
        .wait_for(T, |l| from_bot(l) && l.text().contains("Minutes:"))
        .await;
    assert!(ended.text().contains("/meetings/sig/"), "{}", ended.raw);
    let minutes = walk(&dir.path().join("data/meetings"))
        .into_iter()
        .find(|p| {
            p.to_string_lossy().ends_with(".txt") && !p.to_string_lossy().ends_with(".log.txt")
        })
        .expect("text minutes written");
    let text = std::fs::read_to_string(minutes).unwrap();
    assert!(text.contains("the mirror moved"), "{text}");
    assert!(text.contains("bob updates the docs"), "{text}");
    assert!(
        !text.contains("bob's topic"),
        "a non-chair's #topic is not minuted:\n{text}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn bot_joins_a_keyed_channel_with_its_key() {
    let server = IrcServer::start(IrcClass::Unlimited).await;
    let mut op = IrcClient::connect(&server, "chanop").await;
    op.join("#locked").await;
    op.send("MODE #locked +k sekrit").await;
    op.wait_for(T, |l| l.command == "MODE" && l.text() == "sekrit")
        .await;
    let dir = temp_dir("irc-key");
    let config = bot_config(testnet(&server).set("channels", vec!["#locked sekrit"])).build();
    let _bot = Bot::start(dir.path(), &config);
    op.wait_for(T * 2, |l| l.command == "JOIN" && l.nick() == Some("sigbot"))
        .await;
}
