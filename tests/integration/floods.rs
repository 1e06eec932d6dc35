//! The bot as someone would use it to flood or mass-highlight a channel (issue 13, points 9,
//! 10 and 13), against the real servers: what the bot writes to IRC is defused and capped
//! with a paste link, replies quote only a short excerpt and a short name, built-ins come out
//! of one allowance per caller that a nick change keeps, and a Matrix display name holding
//! the placeholder characters never pulls a command's secret into its request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Uri};
use serde_json::json;

use crate::support::bot::{Bot, CONSOLE_USER};
use crate::support::{
    BOT_NICK, BotConfig, IrcClass, IrcClient, IrcConnectOptions, IrcServer, MosquittoOptions,
    MosquittoServer, MqttClient, RoomSpec, Section, SynapseServer, free_port, from_bot, temp_dir,
};

const T: Duration = Duration::from_secs(30);
/// Long enough for a debug-build bot to log in and sync on a busy 2-core machine.
const WAIT: Duration = Duration::from_secs(60);
/// As many answers as a caller gets at once (DESIGN §6).
const BURST: usize = 8;
const ZWSP: char = '\u{200B}';

/// The members named in a mass highlight.
const CROWD: [&str; 6] = [
    "memberA", "memberB", "memberC", "memberD", "memberE", "memberF",
];

/// How alice is known to the bot.
#[derive(Clone, Copy)]
enum Alice {
    /// Logged in with SASL: her principal is the key.
    Account,
    /// No account: her `user@host` is the key.
    Anonymous,
}

/// The bot on `server` in `#sig`, with its console (an admin) and its web site.
fn irc_config(server: &IrcServer, web_port: u16) -> String {
    BotConfig::new()
        .console()
        .web(web_port)
        .irc(Section::irc("testnet", server).set("channels", vec!["#sig"]))
        .role("admin", &[&format!("console:{CONSOLE_USER}")])
        .build()
}

async fn defused_capped_and_one_allowance_per_caller(server: IrcServer, alice_is: Alice) {
    server.register_account("alice", "alicepass1").await;
    let web_port = free_port();
    let dir = temp_dir("floods-irc");
    let mut bot = Bot::start(dir.path(), &irc_config(&server, web_port));

    let alice_options = match alice_is {
        Alice::Account => IrcConnectOptions::new("alice").sasl("alice", "alicepass1"),
        Alice::Anonymous => IrcConnectOptions::new("alice"),
    };
    let mut alice = IrcClient::connect_with(server.addr(), alice_options).await;
    alice.join_and_wait_for("#sig", BOT_NICK, T * 2).await;
    let mut bob = IrcClient::connect(&server, "bob").await;
    bob.join("#sig").await;
    let _crowd = join_crowd(&server).await;
    alice
        .wait_for(T, |l| from_bot(l) && l.is_privmsg("#sig", "pong"))
        .await;

    // Point 10: whatever makes the bot speak, a line naming the crowd is defused; point 13:
    // a long message becomes at most 3 lines, the last linking to all of it.
    let long_tail = "lorem ipsum dolor sit amet ".repeat(60);
    let said = format!("hello {} {long_tail}", CROWD.join(" "));
    bot.say(&format!("!say testnet/#sig {said}")).await;
    let mut lines = Vec::new();
    for _ in 0..3 {
        lines.push(alice.wait_for(T, from_bot).await.text().to_owned());
    }
    for nick in CROWD {
        let mut defused = nick.to_owned();
        defused.insert(1, ZWSP);
        assert!(lines[0].contains(&defused), "{nick} in {:?}", lines[0]);
        assert!(
            !lines[0].contains(nick),
            "{nick} highlighted: {:?}",
            lines[0]
        );
    }
    let url = lines[2]
        .strip_prefix("(full message: ")
        .and_then(|l| l.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no paste link in {lines:?}"));
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{web_port}/paste/")),
        "{url}"
    );
    let paste = reqwest::get(url).await.unwrap().text().await.unwrap();
    assert_eq!(paste, said.trim());

    // Point 10: built-ins and refusals share one allowance per caller, and a new nick does
    // not give a new one: alice, then alice2, get BURST answers between them, then one
    // "slow down", then silence.
    for i in 0..BURST {
        let text = if i % 2 == 0 {
            "!ping"
        } else {
            "!say testnet/#sig hi"
        };
        alice.privmsg("#sig", text).await;
    }
    alice.send("NICK alice2").await;
    for _ in 0..3 {
        alice.privmsg("#sig", "!ping").await;
    }
    let mut answers = Vec::new();
    loop {
        let line = alice.wait_for(T, from_bot).await;
        if line.text().contains("slow down") {
            assert!(
                line.text().starts_with("alice2: slow down; try again in "),
                "{}",
                line.raw
            );
            break;
        }
        answers.push(line.text().to_owned());
    }
    assert_eq!(answers.len(), BURST, "{answers:?}");
    // The next thing the bot says answers bob, who asked after alice2's last ping.
    for _ in 0..3 {
        bob.wait_for(T, |l| {
            l.is_privmsg_from("alice2") && l.is_privmsg("#sig", "!ping")
        })
        .await;
    }
    bob.privmsg("#sig", "!version").await;
    let next = alice.wait_for(T, from_bot).await;
    assert!(next.text().starts_with("sigbot "), "{}", next.raw);

    assert_eq!(bot.terminate(T).await, Some(0));
}

#[tokio::test]
async fn irc_lines_are_defused_and_capped_and_an_allowance_holds_per_account() {
    let server = IrcServer::start(IrcClass::Unlimited).await;
    defused_capped_and_one_allowance_per_caller(server, Alice::Account).await;
}

#[tokio::test]
async fn without_ircv3_accounts_the_allowance_holds_per_user_and_host() {
    let server = IrcServer::start_without_account_tag(IrcClass::Unlimited).await;
    defused_capped_and_one_allowance_per_caller(server, Alice::Anonymous).await;
}

/// Joins the crowd to `#sig` on `server` and waits until the bot has seen every JOIN (it
/// answers the last one to join).
async fn join_crowd(server: &IrcServer) -> Vec<IrcClient> {
    let mut crowd = Vec::new();
    for nick in CROWD {
        let mut c = IrcClient::connect(server, nick).await;
        c.join("#sig").await;
        crowd.push(c);
    }
    let last = crowd.last_mut().unwrap();
    last.privmsg("#sig", "!ping").await;
    last.wait_for(T, |l| from_bot(l) && l.is_privmsg("#sig", "pong"))
        .await;
    crowd
}

/// Point 13 and point 10 for relayed events: a long event naming the crowd reaches IRC
/// defused, in 3 lines, the last linking to all of it.
#[tokio::test]
async fn a_long_relayed_event_reaches_irc_defused_and_cut_with_a_paste_link() {
    let mosquitto = MosquittoServer::start(MosquittoOptions::default()).await;
    let irc = IrcServer::start(IrcClass::Unlimited).await;
    let web_port = free_port();
    let dir = temp_dir("floods-mqtt");
    let forge = Section::mqtt("forge", format!("mqtt://127.0.0.1:{}", mosquitto.port()))
        .set("client_id", format!("sigbot-test-{}", free_port()));
    let relay = Section::relay(
        "long",
        "forge",
        "ci/log",
        "{{ msg.text }}",
        &["testnet/#sig"],
    );
    let config = BotConfig::new()
        .web(web_port)
        .mqtt(forge)
        .irc(Section::irc("testnet", &irc).set("channels", vec!["#sig"]))
        .relay(relay)
        .build();
    let mut bot = Bot::start(dir.path(), &config);
    bot.wait_log(T, "subscribed").await;
    let mut dave = IrcClient::connect(&irc, "dave").await;
    dave.join_and_wait_for("#sig", BOT_NICK, T * 2).await;
    let _crowd = join_crowd(&irc).await;
    dave.wait_for(T, |l| from_bot(l) && l.is_privmsg("#sig", "pong"))
        .await;

    let text: Vec<String> = std::iter::once(format!("build failed, ping {}", CROWD.join(" ")))
        .chain((2..=6).map(|i| format!("log line {i}")))
        .collect();
    let text = text.join("\n");
    let mut publisher = MqttClient::connect(&mosquitto, "publisher").await;
    publisher
        .publish("ci/log", json!({ "text": text }).to_string())
        .await;
    let mut lines = Vec::new();
    for _ in 0..3 {
        lines.push(dave.wait_for(T, from_bot).await.text().to_owned());
    }
    assert!(lines[0].starts_with("build failed, ping "), "{lines:?}");
    for nick in CROWD {
        assert!(!lines[0].contains(nick), "{nick} highlighted: {lines:?}");
    }
    assert_eq!(lines[1], "log line 2");
    let url = lines[2]
        .strip_prefix("(full message: ")
        .and_then(|l| l.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no paste link in {lines:?}"));
    let paste = reqwest::get(url).await.unwrap().text().await.unwrap();
    assert_eq!(paste, text);
    assert_eq!(bot.terminate(T).await, Some(0));
}

#[tokio::test]
async fn console_builtins_share_one_allowance() {
    let dir = temp_dir("floods-console");
    let mut bot = Bot::start(dir.path(), &BotConfig::new().console().build());
    for _ in 0..BURST + 2 {
        bot.say("!help nosuchcommand").await;
    }
    for _ in 0..BURST {
        assert_eq!(
            bot.wait_stdout(T, "").await,
            "[console/#local] <sigbot> no command named \"nosuchcommand\""
        );
    }
    let line = bot.wait_stdout(T, "").await;
    assert!(
        line.starts_with(&format!(
            "[console/#local] <sigbot> {CONSOLE_USER}: slow down; try again in "
        )),
        "{line}"
    );
    // Silence after the warning: the next line out is the end of the bot.
    bot.close_stdin();
    assert!(bot.drain_stdout(T).await.is_empty());
}

/// What the echoing server received, one entry per request: method, URI, headers, body.
type Received = Arc<Mutex<Vec<String>>>;

/// A server that answers every request with what it received, and keeps it.
async fn echo_server() -> (std::net::SocketAddr, Received) {
    let received: Received = Arc::default();
    let sink = received.clone();
    let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let sink = sink.clone();
        async move {
            let mut seen = format!("{uri}\n");
            for (k, v) in &headers {
                seen.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
            }
            seen.push_str(&String::from_utf8_lossy(&body));
            sink.lock().unwrap().push(seen.clone());
            seen
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, received)
}

const TOKEN: &str = "tok-ECHO-7f3a9c";

/// A command that tells a service who asked, and authenticates with a secret.
const WHO: &str = r#"
name = "who"
summary = "Tell the echo service who asks"
[http]
method = "POST"
url = "BASE/who?caller={{ caller.nick }}"
headers = { Authorization = "Bearer ${SIGBOT_ECHO_TOKEN}", X-Caller = "{{ caller.nick }}" }
json = { caller = "{{ caller.nick }}" }
[reply]
success = "{{ caller.nick }} told"
error = "failed: {{ error }}"
"#;

#[tokio::test]
async fn a_matrix_name_with_placeholders_pulls_no_secret_and_replies_stay_short() {
    let synapse = SynapseServer::start().await;
    let bot_user = synapse.register_user("sigbot", "bot-secret-pw").await;
    let mallory_user = synapse.register_user("mallory", "mallory-secret-pw").await;
    let mut mallory = synapse.client(&mallory_user);
    // 256 characters, the most Synapse takes: the secret's placeholder, then a crowd.
    let mut name = "\u{E000}SIGBOT_ECHO_TOKEN\u{E001} ".to_owned();
    while name.chars().count() < 256 {
        name.push_str("memberA memberB ");
    }
    let name: String = name.chars().take(256).collect();
    let path = format!(
        "/_matrix/client/v3/profile/{}/displayname",
        crate::support::matrix::encode(mallory.user_id())
    );
    let status = mallory
        .request(reqwest::Method::PUT, &path)
        .json(&json!({ "displayname": name }))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "PUT {path}: {status}");
    let room = mallory
        .create_room(RoomSpec {
            alias: Some("flood".into()),
            public: true,
            ..RoomSpec::default()
        })
        .await;

    let (echo, received) = echo_server().await;
    let dir = temp_dir("floods-matrix");
    let commands = dir.path().join("commands");
    std::fs::create_dir_all(&commands).unwrap();
    std::fs::write(
        commands.join("who.toml"),
        WHO.replace("BASE", &format!("http://{echo}")),
    )
    .unwrap();
    let config = BotConfig::new()
        .bot("prefix", "!")
        .matrix(Section::matrix("hs", &synapse, &bot_user).set("rooms", vec!["#flood:sigbot.test"]))
        .build();
    let mut bot = Bot::start_with_env(dir.path(), &config, &[("SIGBOT_ECHO_TOKEN", TOKEN)]);
    bot.wait_log(WAIT, "first sync completed").await;
    let bot_id = bot_user.user_id.clone();
    mallory
        .wait_for_event(&room, WAIT, |ev| {
            ev["type"] == "m.room.member"
                && ev["state_key"] == bot_id.as_str()
                && ev["content"]["membership"] == "join"
        })
        .await;

    let bot_says =
        |ev: &serde_json::Value| ev["type"] == "m.room.message" && ev["sender"] == bot_id.as_str();
    mallory.send_text(&room, "!who").await;
    let reply = mallory.wait_for_event(&room, WAIT, bot_says).await;
    let body = reply["content"]["body"].as_str().unwrap().to_owned();
    assert!(body.ends_with(" told"), "{body}");
    // Point 10: the name in the reply is cut like a bridged name.
    assert!(body.chars().count() <= 30 + " told".len(), "{body}");

    // Point 9: the echo server got the token where the command puts it, and nowhere else.
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    let request = &got[0];
    assert!(
        request.contains("SIGBOT_ECHO_TOKEN"),
        "the name reached the request: {request}"
    );
    let without_auth: String = request
        .lines()
        .filter(|l| !l.starts_with("authorization: "))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        request.contains(&format!("authorization: Bearer {TOKEN}")),
        "{request}"
    );
    assert!(
        !without_auth.contains(TOKEN),
        "the secret was pulled in through the display name: {request}"
    );

    // Point 10: a long text is quoted in a short excerpt.
    let long = "memberA memberB ".repeat(40);
    mallory.send_text(&room, &format!("!help {long}")).await;
    let reply = mallory.wait_for_event(&room, WAIT, bot_says).await;
    let body = reply["content"]["body"].as_str().unwrap();
    assert!(
        body.starts_with("no command named \"memberA memberB"),
        "{body}"
    );
    assert!(
        body.chars().count() <= "no command named \"\"".len() + 40,
        "{body}"
    );
    assert_eq!(bot.terminate(WAIT).await, Some(0));
}
