//! Self-tests of the harness: each server starts, carries real messages, enforces what later
//! tests rely on (SASL accounts, flood limits, client certificates) and restarts on its port.

use std::time::Duration;

use serde_json::Value;

use crate::support::irc::strip_formatting;
use crate::support::{
    EXCHANGE_TIMEOUT, IrcClass, IrcClient, IrcConnectOptions, IrcLine, IrcServer, MosquittoOptions,
    MosquittoServer, MqttClient, RoomSpec, SynapseServer, wait_until,
};

const WAIT: Duration = EXCHANGE_TIMEOUT;

/// The line parser the IRC predicates rely on.
#[test]
fn irc_line_parsing() {
    let line = IrcLine::parse(
        "@account=alice;time=2026-01-01T00:00:00.000Z;+draft/x=a\\sb\\:c :alice!a@127.0.0.1 \
         PRIVMSG #room :hello there",
    );
    assert_eq!(line.tag("account"), Some("alice"));
    assert_eq!(line.tag("+draft/x"), Some("a b;c"));
    assert_eq!(line.nick(), Some("alice"));
    assert_eq!(line.command, "PRIVMSG");
    assert_eq!(line.params, ["#room", "hello there"]);
    assert!(line.is_privmsg("#ROOM", "hello there"));

    let numeric = IrcLine::parse(":irc.sigbot.test 366 bob #room :End of /NAMES list.");
    assert_eq!(numeric.nick(), Some("irc.sigbot.test"));
    assert_eq!(numeric.param(1), Some("#room"));
    assert_eq!(IrcLine::parse("PING :token").text(), "token");

    assert_eq!(
        strip_formatting("\x02bold\x02 \x0304,12red\x03 \x1ditalic\x0f 1,2"),
        "bold red italic 1,2"
    );
}

/// Two clients talk in a channel; one is logged in to a NickServ account through SASL PLAIN and
/// the other sees that account in `extended-join` and in the `account` tag of its messages.
#[tokio::test]
async fn irc_sasl_account_and_channel_messages() {
    let server = IrcServer::start(IrcClass::Unlimited).await;
    server.register_account("alice", "alice-secret-1").await;

    let mut alice = IrcClient::connect_with(
        server.addr(),
        IrcConnectOptions::new("alice_")
            .all_caps()
            .sasl("alice", "alice-secret-1"),
    )
    .await;
    assert_eq!(alice.account(), Some("alice"));
    let logged_in = alice
        .registration()
        .iter()
        .find(|l| l.command == "900")
        .expect("RPL_LOGGEDIN (900) during registration");
    assert_eq!(logged_in.param(2), Some("alice"), "{}", logged_in.raw);
    assert!(alice.caps().iter().any(|c| c == "account-tag"));

    let mut bob =
        IrcClient::connect_with(server.addr(), IrcConnectOptions::new("bob").all_caps()).await;
    assert_eq!(bob.account(), None);

    bob.join("#selftest").await;
    alice.join("#selftest").await;
    // extended-join: JOIN <channel> <account> :<realname>
    let join = bob
        .wait_for(WAIT, |l| l.command == "JOIN" && l.nick() == Some("alice_"))
        .await;
    assert_eq!(join.param(1), Some("alice"), "{}", join.raw);

    alice.privmsg("#selftest", "hello from alice").await;
    let message = bob
        .wait_for(WAIT, |l| l.is_privmsg("#selftest", "hello from alice"))
        .await;
    assert_eq!(message.tag("account"), Some("alice"), "{}", message.raw);
    assert!(
        message.tag("time").is_some(),
        "server-time: {}",
        message.raw
    );
    assert!(message.tag("msgid").is_some(), "msgid: {}", message.raw);

    bob.privmsg("#selftest", "hello from bob").await;
    let message = alice
        .wait_for(WAIT, |l| l.is_privmsg("#selftest", "hello from bob"))
        .await;
    assert_eq!(message.tag("account"), None, "{}", message.raw);
    assert_eq!(message.nick(), Some("bob"));
}

/// The control for flood tests: a client that sends 300 lines at once in the public-network
/// class is disconnected for excess flood.
#[tokio::test]
async fn irc_public_network_class_disconnects_flooders() {
    let server = IrcServer::start(IrcClass::PublicNetwork).await;
    let mut flooder = IrcClient::connect(&server, "flooder").await;
    flooder.join("#flood").await;
    for n in 0..300 {
        if flooder
            .try_send(&format!("PRIVMSG #flood :line {n}"))
            .await
            .is_err()
        {
            break;
        }
    }
    let error = flooder
        .wait_for_disconnect(WAIT)
        .await
        .expect("an ERROR line before the disconnection");
    assert!(error.text().contains("Excess Flood"), "{}", error.raw);
}

/// The same 300 lines in the unlimited class all arrive, in order.
#[tokio::test]
async fn irc_unlimited_class_takes_a_burst() {
    let server = IrcServer::start(IrcClass::Unlimited).await;
    let mut sender = IrcClient::connect(&server, "sender").await;
    let mut receiver = IrcClient::connect(&server, "receiver").await;
    receiver.join("#burst").await;
    sender.join("#burst").await;
    for n in 0..300 {
        sender.privmsg("#burst", &format!("line {n}")).await;
    }
    for n in 0..300 {
        let expected = format!("line {n}");
        let line = receiver.wait_for(WAIT, |l| l.command == "PRIVMSG").await;
        assert_eq!(line.text(), expected);
    }
}

/// Stop and restart on the same port: clients are cut off, can reconnect, and NickServ
/// accounts survive.
#[tokio::test]
async fn irc_restart_on_same_port_keeps_accounts() {
    let mut server = IrcServer::start(IrcClass::Unlimited).await;
    let port = server.port();
    server.register_account("carol", "carol-secret-1").await;
    let mut client = IrcClient::connect(&server, "watcher").await;

    server.stop();
    client.wait_for_disconnect(WAIT).await;
    assert!(
        tokio::net::TcpStream::connect(server.addr()).await.is_err(),
        "the port still accepts connections after stop()"
    );

    server.restart().await;
    assert_eq!(server.port(), port);
    let carol = IrcClient::connect_with(
        server.addr(),
        IrcConnectOptions::new("carol").sasl("carol", "carol-secret-1"),
    )
    .await;
    assert_eq!(carol.account(), Some("carol"));
}

/// Two Synapse users: one creates a room, the other joins it, and each receives the other's
/// message through /sync; an invitation arrives; a restart on the same port loses nothing.
#[tokio::test]
async fn matrix_two_users_exchange_messages() {
    let server = SynapseServer::start().await;
    let alice = server.register_user("alice", "alice-secret-1").await;
    let bob = server.register_user("bob", "bob-secret-1").await;
    assert_eq!(alice.user_id, server.user_id("alice"));

    let mut alice = server.client(&alice);
    let room = alice
        .create_room(RoomSpec {
            alias: Some("selftest".to_owned()),
            public: true,
            ..RoomSpec::default()
        })
        .await;

    // Bob logs in with his password (a second device) and joins by alias.
    let mut bob =
        crate::support::MatrixClient::login(&server.url(), &bob.user_id, &bob.password).await;
    let joined = bob.join("#selftest:sigbot.test").await;
    assert_eq!(joined, room);

    alice
        .wait_for_event(&room, WAIT, |e| {
            e["type"] == "m.room.member"
                && e["state_key"] == bob.user_id()
                && e["content"]["membership"] == "join"
        })
        .await;
    let sent = alice.send_text(&room, "hello from alice").await;
    let received: Value = bob
        .wait_for_message(&room, WAIT, |body| body == "hello from alice")
        .await;
    assert_eq!(received["event_id"], sent.as_str());
    assert_eq!(received["sender"], alice.user_id());

    bob.send_text(&room, "hello from bob").await;
    let received = alice
        .wait_for_message(&room, WAIT, |body| body == "hello from bob")
        .await;
    assert_eq!(received["sender"], bob.user_id());

    // An invitation reaches the invitee's /sync.
    let private = alice.create_room(RoomSpec::default()).await;
    alice.invite(&private, bob.user_id()).await;
    assert_eq!(bob.wait_for_invite(WAIT).await, private);

    // After a crash and restart on the same port, tokens, rooms and sync positions still hold.
    let mut server = server;
    let port = server.port();
    server.stop();
    server.restart().await;
    assert_eq!(server.port(), port);
    bob.send_text(&room, "after the restart").await;
    alice
        .wait_for_message(&room, WAIT, |body| body == "after the restart")
        .await;
}

/// Publish and subscribe over the plain listener and over the TLS listener with the client
/// certificate; without a client certificate the TLS listener refuses the client.
#[tokio::test]
async fn mqtt_plain_and_mutual_tls() {
    let server = MosquittoServer::start(MosquittoOptions::default()).await;

    let mut subscriber = MqttClient::connect(&server, "selftest-sub").await;
    subscriber.subscribe("selftest/#").await;
    let mut publisher = MqttClient::connect(&server, "selftest-pub").await;
    publisher.publish("selftest/plain", "over plain MQTT").await;
    let message = subscriber
        .wait_for_message(WAIT, |m| m.topic == "selftest/plain")
        .await;
    assert_eq!(message.text(), "over plain MQTT");

    let mut tls_subscriber = MqttClient::connect_tls(&server, "selftest-tls-sub").await;
    tls_subscriber.subscribe("selftest/#").await;
    let mut tls_publisher = MqttClient::connect_tls(&server, "selftest-tls-pub").await;
    tls_publisher
        .publish("selftest/tls", "over mutual TLS")
        .await;
    let message = tls_subscriber
        .wait_for_message(WAIT, |m| m.topic == "selftest/tls")
        .await;
    assert_eq!(message.text(), "over mutual TLS");
    // Both listeners share one broker.
    let message = subscriber
        .wait_for_message(WAIT, |m| m.topic == "selftest/tls")
        .await;
    assert_eq!(message.text(), "over mutual TLS");

    let refused = MqttClient::try_connect(server.mqtt_tls_options("selftest-no-cert", false)).await;
    let error = refused.expect_err("the TLS listener accepted a client without a certificate");
    // TLS 1.3 says so with its certificate_required alert; TLS 1.2 with a handshake failure.
    assert!(
        error.contains("CertificateRequired") || error.contains("HandshakeFailure"),
        "{error}"
    );
}

/// Restart on the same ports; with persistence on, a retained message survives a SIGKILL once
/// saved, and survives a graceful shutdown.
#[tokio::test]
async fn mqtt_restart_on_same_ports_keeps_retained_messages() {
    let mut server = MosquittoServer::start(MosquittoOptions { persistence: true }).await;
    let (port, tls_port) = (server.port(), server.tls_port());
    let mut publisher = MqttClient::connect(&server, "selftest-retain").await;
    publisher
        .publish_with("selftest/retained", "kept across restarts", true)
        .await;
    let saved = server.persistence_file();
    wait_until("mosquitto to save its state", WAIT, || {
        let exists = saved.exists();
        async move { exists.then_some(()) }
    })
    .await;

    server.stop();
    assert!(
        MqttClient::try_connect(server.mqtt_options("selftest-down"))
            .await
            .is_err(),
        "the broker still accepts clients after stop()"
    );
    server.restart().await;
    assert_eq!((server.port(), server.tls_port()), (port, tls_port));

    let mut subscriber = MqttClient::connect_tls(&server, "selftest-after").await;
    subscriber.subscribe("selftest/#").await;
    let message = subscriber
        .wait_for_message(WAIT, |m| m.topic == "selftest/retained")
        .await;
    assert_eq!(message.text(), "kept across restarts");
    assert!(message.retain);

    publisher = MqttClient::connect(&server, "selftest-retain-2").await;
    publisher
        .publish_with("selftest/retained2", "kept across a shutdown", true)
        .await;
    server.shutdown().await;
    server.restart().await;
    let mut subscriber = MqttClient::connect(&server, "selftest-after-2").await;
    subscriber.subscribe("selftest/retained2").await;
    let message = subscriber.wait_for_message(WAIT, |_| true).await;
    assert_eq!(message.text(), "kept across a shutdown");
}
