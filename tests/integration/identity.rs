//! Who the bot believes someone is, on an IRC server without the `account-tag` capability
//! (the bot then learns accounts from extended-join, account-notify and WHOX): an account is
//! known only while its nick shares a channel with the bot, so nobody inherits a departed
//! admin's roles by taking the nick.

use std::time::Duration;

use crate::support::bot::Bot;
use crate::support::{
    IrcClass, IrcClient, IrcConnectOptions, IrcLine, IrcServer, free_port, temp_dir,
};

const T: Duration = Duration::from_secs(30);

fn config(server: &IrcServer) -> String {
    format!(
        r##"
[bot]
nick = "sigbot"
data_dir = "data"

[web]
listen = "127.0.0.1:{web}"

[[irc]]
name = "testnet"
server = "127.0.0.1:{port}"
tls = false
nick = "sigbot"
channels = ["#sig"]

[roles]
admin = ["testnet:alice"]
"##,
        web = free_port(),
        port = server.port(),
    )
}

fn from_bot(l: &IrcLine) -> bool {
    l.nick() == Some("sigbot") && (l.command == "PRIVMSG" || l.command == "NOTICE")
}

async fn join_with_bot(client: &mut IrcClient) {
    client.send("JOIN #sig").await;
    client
        .wait_for(T * 2, |l| {
            (l.command == "JOIN" && l.nick() == Some("sigbot"))
                || (l.command == "353"
                    && l.text().split(' ').any(|n| {
                        n.trim_start_matches(['@', '+']).split('!').next() == Some("sigbot")
                    }))
        })
        .await;
}

#[tokio::test]
async fn a_departed_admins_nick_gives_no_roles_without_account_tag() {
    let server = IrcServer::start_without_account_tag(IrcClass::Unlimited).await;
    server.register_account("alice", "alicepass1").await;
    let dir = temp_dir("irc-identity-no-tag");
    let mut bot = Bot::start(dir.path(), &config(&server));
    let registered = bot.wait_log(T, "registered").await;
    assert!(
        !registered.contains("account-tag"),
        "the server must not offer account-tag here: {registered}"
    );

    // The real alice, logged in with SASL, is known from her JOIN on.
    let mut alice = IrcClient::connect_with(
        server.addr(),
        IrcConnectOptions::new("alice").sasl("alice", "alicepass1"),
    )
    .await;
    join_with_bot(&mut alice).await;
    alice.privmsg("#sig", "!whoami").await;
    assert_eq!(
        alice.wait_for(T, from_bot).await.text(),
        "alice: you are testnet:alice, with roles: admin"
    );
    alice.privmsg("sigbot", "!whoami").await;
    assert_eq!(
        alice.wait_for(T, from_bot).await.text(),
        "alice: you are testnet:alice, with roles: admin"
    );

    // She parts, then quits somewhere the bot cannot see.
    alice.send("PART #sig :later").await;
    alice.wait_for(T, |l| l.command == "PART").await;
    alice.quit().await;

    // mallory takes the nick and talks to the bot in private.
    let mut mallory = IrcClient::connect_with(server.addr(), IrcConnectOptions::new("alice")).await;
    mallory.privmsg("sigbot", "!whoami").await;
    assert_eq!(
        mallory.wait_for(T, from_bot).await.text(),
        "alice: you are not identified on testnet (no account), so you hold no roles"
    );
    mallory
        .privmsg("sigbot", "!say testnet/#sig I am alice")
        .await;
    assert_eq!(
        mallory.wait_for(T, from_bot).await.text(),
        "alice: say needs the admin role"
    );
    assert_eq!(bot.terminate(T).await, Some(0));
}
