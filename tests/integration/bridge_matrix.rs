//! The bridge between IRC and Matrix with the real servers: an IRC client on
//! InspIRCd and Matrix clients on Synapse, talking through the bot. Names with the
//! zero-width space on IRC and `<b>nick</b>:` on Matrix, formatting both ways, pills both
//! ways, an edit as `s/old/new/`, a reply, an image served by the bot's web site, and
//! nothing lost while Synapse restarts or while the bot is down.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::bot::Bot;
use crate::support::{
    BOT_NICK, BotConfig, IrcClass, IrcClient, IrcServer, MatrixClient, MatrixUser, RoomSpec,
    Section, SynapseServer, free_port, from_bot, temp_dir,
};

/// Long enough for a debug-build bot to log in and sync on a busy 2-core machine.
const WAIT: Duration = Duration::from_secs(60);
const CHANNEL: &str = "#sig";
const ALIAS: &str = "#sig:sigbot.test";

/// Synapse, InspIRCd, the bot's Matrix account and two Matrix users, the bridged room made
/// by alice, and the bot's web port.
struct World {
    synapse: SynapseServer,
    irc: IrcServer,
    bot_user: MatrixUser,
    alice: MatrixClient,
    bob: MatrixUser,
    room: String,
    web: u16,
}

impl World {
    async fn new() -> World {
        let synapse = SynapseServer::start().await;
        let irc = IrcServer::start(IrcClass::Unlimited).await;
        let bot_user = synapse.register_user("sigbot", "bot-secret-pw").await;
        let alice_user = synapse.register_user("alice", "alice-secret-pw").await;
        let bob = synapse.register_user("bob", "bob-secret-pw").await;
        let alice = synapse.client(&alice_user);
        let room = alice
            .create_room(RoomSpec {
                alias: Some("sig".into()),
                public: true,
                ..RoomSpec::default()
            })
            .await;
        World {
            synapse,
            irc,
            bot_user,
            alice,
            bob,
            room,
            web: free_port(),
        }
    }

    fn config(&self) -> String {
        let irc_room = format!("testnet/{CHANNEL}");
        let matrix_room = format!("hs/{ALIAS}");
        BotConfig::new()
            .web(self.web)
            .irc(Section::irc("testnet", &self.irc))
            .matrix(Section::matrix("hs", &self.synapse, &self.bot_user).set("rooms", vec![ALIAS]))
            .bridge(
                Section::bridge("sig", &[&irc_room, &matrix_room])
                    .set("edits", "diff")
                    .set("reactions", true),
            )
            .build()
    }

    /// Starts the bot, with dave on IRC in the channel, once the bot is in both rooms.
    async fn start(&mut self, dir: &std::path::Path) -> (Bot, IrcClient) {
        let bot = Bot::start(dir, &self.config());
        self.wait_bot_in_room().await;
        let dave = irc_user_with_bot(&self.irc, "dave").await;
        (bot, dave)
    }

    async fn wait_bot_in_room(&mut self) {
        let bot_id = self.bot_user.user_id.clone();
        self.alice
            .wait_for_event(&self.room, WAIT, |ev| {
                ev["type"] == "m.room.member"
                    && ev["state_key"] == bot_id
                    && ev["content"]["membership"] == "join"
            })
            .await;
    }

    /// The bot's next message in the room, as alice's client sees it.
    async fn bot_says(&mut self) -> Value {
        let bot_id = self.bot_user.user_id.clone();
        let ev = self
            .alice
            .wait_for_event(&self.room, WAIT, |ev| {
                ev["type"] == "m.room.message" && ev["sender"] == bot_id
            })
            .await;
        ev["content"].clone()
    }

    /// The bot's next messages in the room until `n` lines have come, each as its lines: lines
    /// that wait for the room together go in one event.
    async fn bot_says_lines(&mut self, n: usize) -> Vec<Vec<String>> {
        let mut events = Vec::new();
        let mut lines = 0;
        while lines < n {
            let body = self.bot_says().await["body"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let event: Vec<String> = body.lines().map(str::to_owned).collect();
            lines += event.len();
            events.push(event);
        }
        events
    }
}

/// Connects `nick` to the IRC server and joins the channel once the bot is in it.
async fn irc_user_with_bot(server: &IrcServer, nick: &str) -> IrcClient {
    let mut client = IrcClient::connect(server, nick).await;
    client.join_and_wait_for(CHANNEL, BOT_NICK, WAIT * 2).await;
    client
}

/// The next line the bot says on IRC.
async fn bot_line(client: &mut IrcClient) -> String {
    client.wait_for(WAIT, from_bot).await.text().to_owned()
}

/// alice as IRC shows her.
const ALICE: &str = "a\u{200B}lice";

#[tokio::test]
async fn irc_and_matrix_read_each_other_naturally() {
    let mut w = World::new().await;
    let dir = temp_dir("bridge-matrix");
    let (mut bot, mut dave) = w.start(dir.path()).await;
    let room = w.room.clone();

    // Matrix -> IRC: the nick with a zero-width space.
    let hello = w.alice.send_text(&room, "hello from matrix").await;
    assert_eq!(
        bot_line(&mut dave).await,
        format!("<{ALICE}> hello from matrix")
    );

    // IRC -> Matrix: `nick: text`, formatted `<b>nick</b>: text`, mIRC bold as HTML.
    dave.privmsg(CHANNEL, "hi \x02there\x02").await;
    let got = w.bot_says().await;
    assert_eq!(got["msgtype"], "m.text", "{got}");
    assert_eq!(got["body"], "dave: hi there", "{got}");
    assert_eq!(
        got["formatted_body"], "<b>dave</b>: hi <b>there</b>",
        "{got}"
    );
    assert_eq!(got["m.mentions"], json!({}), "{got}");

    // A formatted Matrix message arrives as mIRC codes.
    w.alice
        .send_message(
            &room,
            json!({
                "msgtype": "m.text",
                "body": "**bold** and _it_",
                "format": "org.matrix.custom.html",
                "formatted_body": "<strong>bold</strong> and <em>it</em>",
            }),
        )
        .await;
    assert_eq!(
        bot_line(&mut dave).await,
        format!("<{ALICE}> \x02bold\x02 and \x1dit\x1d")
    );

    // A Matrix pill arrives as the display name.
    w.alice
        .send_message(
            &room,
            json!({
                "msgtype": "m.text",
                "body": "bob: look",
                "format": "org.matrix.custom.html",
                "formatted_body": format!(
                    "<a href=\"https://matrix.to/#/{}\">bob</a>: look", w.bob.user_id
                ),
                "m.mentions": {"user_ids": [w.bob.user_id]},
            }),
        )
        .await;
    assert_eq!(bot_line(&mut dave).await, format!("<{ALICE}> bob: look"));

    // An IRC mention of a Matrix member becomes a pill that mentions her, and only her.
    dave.privmsg(CHANNEL, "alice: ping").await;
    let got = w.bot_says().await;
    let alice_id = w.alice.user_id().to_owned();
    assert_eq!(got["body"], "dave: alice: ping", "{got}");
    assert_eq!(
        got["formatted_body"],
        format!("<b>dave</b>: <a href=\"https://matrix.to/#/{alice_id}\">alice</a>: ping"),
        "{got}"
    );
    assert_eq!(got["m.mentions"], json!({"user_ids": [alice_id]}), "{got}");

    // A reply and a reaction to a line from IRC name its IRC author.
    dave.privmsg(CHANNEL, "is the mirror up?").await;
    let question = w
        .alice
        .wait_for_message(&room, WAIT, |b| b == "dave: is the mirror up?")
        .await;
    let question = question["event_id"].as_str().unwrap().to_owned();
    w.alice
        .send_message(
            &room,
            json!({
                "msgtype": "m.text",
                "body": "yes",
                "m.relates_to": {"m.in_reply_to": {"event_id": question}},
            }),
        )
        .await;
    assert_eq!(bot_line(&mut dave).await, format!("<{ALICE}> dave: yes"));
    w.alice
        .send_event(
            &room,
            "m.reaction",
            json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": question, "key": "👍"}}),
        )
        .await;
    assert_eq!(
        bot_line(&mut dave).await,
        format!("* {ALICE} reacted 👍 to \"is the mirror up?\"")
    );

    // An edit arrives as s/old/new/.
    let typo = w.alice.send_text(&room, "the bulid is green").await;
    assert_eq!(
        bot_line(&mut dave).await,
        format!("<{ALICE}> the bulid is green")
    );
    w.alice
        .send_message(
            &room,
            json!({
                "msgtype": "m.text",
                "body": "* the build is green",
                "m.new_content": {"msgtype": "m.text", "body": "the build is green"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": typo},
            }),
        )
        .await;
    assert_eq!(
        bot_line(&mut dave).await,
        format!("<{ALICE}> s/bulid/build/")
    );

    // A reply to a message several lines back names its sender and quotes it.
    w.alice
        .send_message(
            &room,
            json!({
                "msgtype": "m.text",
                "body": "still true",
                "m.relates_to": {"m.in_reply_to": {"event_id": hello}},
            }),
        )
        .await;
    assert_eq!(
        bot_line(&mut dave).await,
        format!("<{ALICE}> alice: still true (re \"hello from matrix\")")
    );

    // An image: a link to the bot's web site, which fetches it with the bot's login.
    let png: Vec<u8> = b"\x89PNG\r\n\x1a\n"
        .iter()
        .copied()
        .chain((0..2000u32).map(|i| (i % 251) as u8))
        .collect();
    let upload: Value = w
        .alice
        .request(
            reqwest::Method::POST,
            "/_matrix/media/v3/upload?filename=cat.png",
        )
        .header("content-type", "image/png")
        .body(png.clone())
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("upload reply");
    let mxc = upload["content_uri"].as_str().expect("content_uri");
    w.alice
        .send_message(
            &room,
            json!({
                "msgtype": "m.image",
                "body": "cat.png",
                "url": mxc,
                "info": {"mimetype": "image/png", "size": png.len()},
            }),
        )
        .await;
    let line = bot_line(&mut dave).await;
    let prefix = format!(
        "* {ALICE} sent cat.png (2 KB): http://127.0.0.1:{}/media/",
        w.web
    );
    let id = line
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("not a media line: {line:?}"));
    assert!(id.len() >= 20, "{id}");
    let resp = reqwest::get(format!("http://127.0.0.1:{}/media/{id}", w.web))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), png.as_slice());
    let resp = reqwest::get(format!(
        "http://127.0.0.1:{}/media/aaaaaaaaaaaaaaaaaaaa",
        w.web
    ))
    .await
    .unwrap();
    assert_eq!(resp.status(), 404);

    assert_eq!(bot.terminate(WAIT).await, Some(0));
}

#[tokio::test]
async fn irc_lines_said_while_synapse_restarts_arrive_afterwards_in_order() {
    let mut w = World::new().await;
    let dir = temp_dir("bridge-matrix-synapse-down");
    let (mut bot, dave) = w.start(dir.path()).await;

    dave.privmsg(CHANNEL, "before").await;
    assert_eq!(w.bot_says().await["body"], "dave: before");

    w.synapse.stop();
    for i in 1..=5 {
        dave.privmsg(CHANNEL, &format!("while down {i}")).await;
    }
    for _ in 1..=5 {
        bot.wait_log(WAIT, "bridged message stored").await;
    }
    w.synapse.restart().await;
    // The first line was being sent when Synapse went; the four behind it waited together
    // and go in the next event, one a line.
    let events = w.bot_says_lines(5).await;
    let line = |i| format!("dave: while down {i}");
    assert_eq!(
        events,
        [vec![line(1)], (2..=5).map(line).collect::<Vec<_>>()],
        "{events:?}"
    );
    assert_eq!(bot.terminate(WAIT).await, Some(0));
}

#[tokio::test]
async fn matrix_lines_sent_while_the_bot_is_down_arrive_after_its_restart() {
    let mut w = World::new().await;
    let dir = temp_dir("bridge-matrix-bot-down");
    let (mut bot, mut dave) = w.start(dir.path()).await;
    let room = w.room.clone();

    w.alice.send_text(&room, "before").await;
    assert_eq!(bot_line(&mut dave).await, format!("<{ALICE}> before"));
    // Killed once "before" has left the outbox: the line being written at a crash is the one
    // that may come twice, and that is not what this test is about.
    bot.wait_log(WAIT, "queued messages done").await;

    bot.kill().await;
    for i in 1..=3 {
        w.alice.send_text(&room, &format!("while away {i}")).await;
    }
    bot.restart();
    for i in 1..=3 {
        let got = dave.wait_for(WAIT * 2, from_bot).await;
        assert!(
            got.is_privmsg(CHANNEL, &format!("<{ALICE}> while away {i}")),
            "line {i} in order: {}\nbot log:\n{}",
            got.raw,
            bot.log_tail(80)
        );
    }
    // Once each: the next line is one sent after the restart.
    w.alice.send_text(&room, "after").await;
    assert_eq!(bot_line(&mut dave).await, format!("<{ALICE}> after"));
}

#[tokio::test]
async fn matrix_lines_said_while_the_irc_server_restarts_arrive_afterwards_in_order() {
    let mut w = World::new().await;
    let dir = temp_dir("bridge-matrix-irc-down");
    let (mut bot, mut dave) = w.start(dir.path()).await;
    let room = w.room.clone();

    w.alice.send_text(&room, "before").await;
    assert_eq!(bot_line(&mut dave).await, format!("<{ALICE}> before"));

    w.irc.stop();
    bot.wait_log(WAIT, "connection lost").await;
    for i in 1..=5 {
        w.alice.send_text(&room, &format!("while down {i}")).await;
    }
    for _ in 1..=5 {
        bot.wait_log(WAIT, "bridged message stored").await;
    }
    w.irc.restart().await;
    // dave comes back once the bot is in the channel again, then reads the backlog.
    let mut dave = irc_user_with_bot(&w.irc, "dave").await;
    for i in 1..=5 {
        assert_eq!(
            bot_line(&mut dave).await,
            format!("<{ALICE}> while down {i}"),
            "line {i} in order"
        );
    }
    assert_eq!(bot.terminate(WAIT).await, Some(0));
}

/// The text of a line the bot relayed from alice, without its `<alice> ` prefix.
fn from_alice(line: &str) -> &str {
    line.strip_prefix(&format!("<{ALICE}> "))
        .unwrap_or_else(|| panic!("not a line from alice: {line:?}"))
}

/// The whole text behind a `(full message: URL)` or `(code: URL)` link.
async fn paste_text(url: &str) -> String {
    let resp = reqwest::get(url).await.expect("paste link answers");
    assert_eq!(resp.status(), 200, "{url}");
    resp.text().await.unwrap()
}

/// The URL inside `(<what>: URL)`.
fn link_in(text: &str, what: &str) -> Option<String> {
    let rest = text.strip_prefix(&format!("({what}: "))?;
    Some(rest.strip_suffix(')')?.to_owned())
}

#[tokio::test]
async fn long_and_multi_line_matrix_messages_reach_irc_whole_and_in_order() {
    let mut w = World::new().await;
    let dir = temp_dir("bridge-matrix-long");
    let (mut bot, mut dave) = w.start(dir.path()).await;
    let room = w.room.clone();

    // Ten lines (max_lines = 3): the first two, then a link to all ten.
    let ten: Vec<String> = (1..=10)
        .map(|i| format!("paste line {i:02} of 10"))
        .collect();
    w.alice.send_text(&room, &ten.join("\n")).await;
    assert_eq!(from_alice(&bot_line(&mut dave).await), ten[0]);
    assert_eq!(from_alice(&bot_line(&mut dave).await), ten[1]);
    let last = bot_line(&mut dave).await;
    let url = link_in(from_alice(&last), "full message")
        .unwrap_or_else(|| panic!("no paste link: {last:?}"));
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{}/paste/", w.web)),
        "{url}"
    );
    assert_eq!(paste_text(&url).await, ten.join("\n"));

    // One line of about 1,500 bytes of multi-byte text: parts that each fit on the wire,
    // every word once and in order, and a link to the rest.
    let words: Vec<String> = (0..170).map(|i| format!("kůň{i:03}")).collect();
    let long = words.join(" ");
    assert!(long.len() > 1_500, "{}", long.len());
    w.alice.send_text(&room, &long).await;
    let mut seen: Vec<String> = Vec::new();
    let mut parts = 0;
    loop {
        let got = dave.wait_for(WAIT, from_bot).await;
        assert!(
            got.raw.len() + 2 <= 512,
            "{} bytes: {}",
            got.raw.len(),
            got.raw
        );
        let text = from_alice(got.text()).to_owned();
        if let Some(url) = link_in(&text, "full message") {
            assert_eq!(paste_text(&url).await, long);
            break;
        }
        parts += 1;
        seen.extend(text.split(' ').map(str::to_owned));
        if seen.len() >= words.len() {
            break;
        }
    }
    assert!(parts >= 2, "the long line was not split: {parts} part(s)");
    assert_eq!(
        seen,
        words[..seen.len()],
        "words lost, doubled or out of order"
    );

    // An emote of two lines: both, as `* alice ...`.
    w.alice
        .send_message(
            &room,
            json!({"msgtype": "m.emote", "body": "waves\nand dances"}),
        )
        .await;
    assert_eq!(bot_line(&mut dave).await, format!("* {ALICE} waves"));
    assert_eq!(bot_line(&mut dave).await, format!("* {ALICE} and dances"));

    // A code block of several lines: the text around it and a link to the code.
    let code = "make clean\nmake -j4 rpm";
    w.alice
        .send_message(
            &room,
            json!({
                "msgtype": "m.text",
                "body": format!("try:\n```\n{code}\n```\nthen tell me"),
                "format": "org.matrix.custom.html",
                "formatted_body": format!(
                    "<p>try:</p><pre><code>{code}\n</code></pre><p>then tell me</p>"
                ),
            }),
        )
        .await;
    assert_eq!(from_alice(&bot_line(&mut dave).await), "try:");
    let line = bot_line(&mut dave).await;
    let url = link_in(from_alice(&line), "code").unwrap_or_else(|| panic!("{line:?}"));
    assert_eq!(paste_text(&url).await, code);
    assert_eq!(from_alice(&bot_line(&mut dave).await), "then tell me");

    // An edit of a two-line message: every line of the edit arrives.
    let orig = w
        .alice
        .send_text(&room, "the mirror is down\nsince noon")
        .await;
    assert_eq!(from_alice(&bot_line(&mut dave).await), "the mirror is down");
    assert_eq!(from_alice(&bot_line(&mut dave).await), "since noon");
    w.alice
        .send_message(
            &room,
            json!({
                "msgtype": "m.text",
                "body": "* the mirror is up\nsince one",
                "m.new_content": {"msgtype": "m.text", "body": "the mirror is up\nsince one"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": orig},
            }),
        )
        .await;
    let mut edit = vec![from_alice(&bot_line(&mut dave).await).to_owned()];
    edit.push(from_alice(&bot_line(&mut dave).await).to_owned());
    let edit = edit.join("\n");
    assert!(
        edit.contains("up") && edit.contains("one"),
        "both changed lines of the edit: {edit:?}"
    );

    // Once each: the next line is the marker.
    w.alice.send_text(&room, "marker").await;
    assert_eq!(from_alice(&bot_line(&mut dave).await), "marker");

    // IRC -> Matrix: a full-length IRC line of multi-byte text arrives whole, once.
    let irc_words: Vec<String> = (0..45).map(|i| format!("čau{i:02}")).collect();
    let irc_long = irc_words.join(" ");
    dave.privmsg(CHANNEL, &irc_long).await;
    let got = w.bot_says().await;
    assert_eq!(got["body"], format!("dave: {irc_long}"), "{got}");

    assert_eq!(bot.terminate(WAIT).await, Some(0));
}

#[tokio::test]
async fn a_long_matrix_message_replayed_after_a_crash_is_relayed_once_and_whole() {
    let mut w = World::new().await;
    let dir = temp_dir("bridge-matrix-replay");
    let (mut bot, mut dave) = w.start(dir.path()).await;
    let room = w.room.clone();
    w.alice.send_text(&room, "before").await;
    assert_eq!(bot_line(&mut dave).await, format!("<{ALICE}> before"));
    drop(dave);

    // The sync position as it was before the long message: restoring it after the crash is
    // a crash between storing the message and saving the position.
    assert_eq!(bot.terminate(WAIT).await, Some(0));
    let sync_db = dir.path().join("data/matrix/hs/sync.db");
    let saved = dir.path().join("saved");
    std::fs::create_dir(&saved).unwrap();
    // The database and its write-ahead log, which holds the newest commits.
    let files = ["sync.db", "sync.db-wal"];
    for f in files {
        let from = sync_db.with_file_name(f);
        if from.exists() {
            std::fs::copy(&from, saved.join(f)).unwrap();
        }
    }
    assert!(saved.join("sync.db").exists(), "sync.db after a clean stop");

    w.irc.stop();
    bot.restart();
    bot.wait_log(WAIT, "first sync completed").await;
    let lines: Vec<String> = (1..=6).map(|i| format!("replayed line {i} of 6")).collect();
    w.alice.send_text(&room, &lines.join("\n")).await;
    for _ in 0..3 {
        bot.wait_log(WAIT, "bridged message stored").await;
    }
    bot.kill().await;
    for f in ["sync.db", "sync.db-wal", "sync.db-shm"] {
        let _ = std::fs::remove_file(sync_db.with_file_name(f));
    }
    for f in files {
        if saved.join(f).exists() {
            std::fs::copy(saved.join(f), sync_db.with_file_name(f)).unwrap();
        }
    }

    w.irc.restart().await;
    bot.restart();
    // The message came back from the homeserver, and none of its lines was stored again.
    for _ in 0..3 {
        bot.wait_log(WAIT, "bridged message seen before").await;
    }
    let mut dave = irc_user_with_bot(&w.irc, "dave").await;
    assert_eq!(from_alice(&bot_line(&mut dave).await), lines[0]);
    assert_eq!(from_alice(&bot_line(&mut dave).await), lines[1]);
    let last = bot_line(&mut dave).await;
    let url = link_in(from_alice(&last), "full message").unwrap_or_else(|| panic!("{last:?}"));
    assert_eq!(paste_text(&url).await, lines.join("\n"));
    w.alice.send_text(&room, "after").await;
    assert_eq!(from_alice(&bot_line(&mut dave).await), "after");
    assert_eq!(bot.terminate(WAIT).await, Some(0));
}

/// Ten bridged rooms at once (issue 16): lines written to the ten channels in turn reach
/// each Matrix room in the order they were written there, the Matrix sender working on
/// several rooms at a time.
#[tokio::test]
async fn ten_bridged_rooms_each_keep_their_order() {
    const ROOMS: usize = 10;
    const LINES: usize = 10;
    let synapse = SynapseServer::start().await;
    let irc = IrcServer::start(IrcClass::Unlimited).await;
    let bot_user = synapse.register_user("sigbot", "bot-secret-pw").await;
    let alice_user = synapse.register_user("alice", "alice-secret-pw").await;
    let mut alice = synapse.client(&alice_user);
    let mut config = BotConfig::new().irc(Section::irc("testnet", &irc));
    let mut rooms = Vec::new();
    let mut aliases = Vec::new();
    for r in 0..ROOMS {
        let room = alice
            .create_room(RoomSpec {
                alias: Some(format!("order{r}")),
                public: true,
                ..RoomSpec::default()
            })
            .await;
        rooms.push(room);
        aliases.push(format!("#order{r}:{}", synapse.server_name()));
    }
    config =
        config.matrix(Section::matrix("hs", &synapse, &bot_user).set("rooms", aliases.clone()));
    for (r, alias) in aliases.iter().enumerate() {
        let irc_room = format!("testnet/#order{r}");
        let matrix_room = format!("hs/{alias}");
        config = config.bridge(Section::bridge(
            &format!("order{r}"),
            &[&irc_room, &matrix_room],
        ));
    }
    let dir = temp_dir("bridge-ten-rooms");
    let mut bot = Bot::start(dir.path(), &config.build());
    for room in &rooms {
        let bot_id = bot_user.user_id.clone();
        alice
            .wait_for_event(room, WAIT, |ev| {
                ev["type"] == "m.room.member"
                    && ev["state_key"] == bot_id
                    && ev["content"]["membership"] == "join"
            })
            .await;
    }
    let mut carol = IrcClient::connect(&irc, "carol").await;
    for r in 0..ROOMS {
        carol
            .join_and_wait_for(&format!("#order{r}"), BOT_NICK, WAIT * 2)
            .await;
    }
    // Interleaved: line k of every room before line k + 1 of any.
    for k in 0..LINES {
        for r in 0..ROOMS {
            carol
                .privmsg(&format!("#order{r}"), &format!("room{r}-line{k}"))
                .await;
        }
    }
    for (r, room) in rooms.iter().enumerate() {
        // Lines that wait for their room together go in one event, one a line.
        let mut k = 0;
        while k < LINES {
            let bot_id = bot_user.user_id.clone();
            let ev = alice
                .wait_for_event(room, WAIT, |ev| {
                    ev["type"] == "m.room.message" && ev["sender"] == bot_id
                })
                .await;
            let body = ev["content"]["body"].as_str().unwrap_or_default();
            for line in body.lines() {
                assert_eq!(
                    line,
                    format!("carol: room{r}-line{k}"),
                    "room {r}: line {k} expected in {body:?}"
                );
                k += 1;
            }
        }
    }
    bot.terminate(WAIT).await;
}
