//! The Matrix network against a real Synapse: commands in rooms and DMs, roles by user ID,
//! invitations, exactly-once catch-up across restarts, the saved device, and encrypted rooms
//! with a second matrix-sdk client.

use std::path::Path;
use std::time::{Duration, Instant};

use matrix_sdk::config::SyncSettings;
use matrix_sdk::ruma::events::room::message::RoomMessageEventContent;
use matrix_sdk::ruma::{OwnedRoomId, RoomId};
use serde_json::{Value, json};

use crate::support::bot::Bot;
use crate::support::{
    BotConfig, MatrixClient, MatrixUser, RoomSpec, Section, SynapseServer, temp_dir,
};

/// Long enough for a debug-build bot to log in and sync on a busy 2-core machine.
const WAIT: Duration = Duration::from_secs(60);
const NETWORK: &str = "hs";

struct World {
    synapse: SynapseServer,
    bot_user: MatrixUser,
    /// Has the `admin` role and may invite the bot.
    alice: MatrixUser,
    /// No role, may not invite the bot.
    bob: MatrixUser,
}

impl World {
    async fn new() -> World {
        let synapse = SynapseServer::start().await;
        let bot_user = synapse.register_user("sigbot", "bot-secret-pw").await;
        let alice = synapse.register_user("alice", "alice-secret-pw").await;
        let bob = synapse.register_user("bob", "bob-secret-pw").await;
        World {
            synapse,
            bot_user,
            alice,
            bob,
        }
    }

    /// The bot's network, logged in with its password, in `rooms`, taking invitations from
    /// alice.
    fn network(&self, rooms: &[&str]) -> Section {
        Section::matrix(NETWORK, &self.synapse, &self.bot_user)
            .set("rooms", rooms.to_vec())
            .set("encrypted_rooms", true)
            .set("invites_from", vec![self.alice.user_id.as_str()])
    }

    fn config(&self, rooms: &[&str]) -> BotConfig {
        self.config_with(self.network(rooms))
    }

    /// The bot on `network`, with alice as admin.
    fn config_with(&self, network: Section) -> BotConfig {
        BotConfig::new()
            .bot("prefix", "!")
            .matrix(network)
            .role("admin", &[&format!("{NETWORK}:{}", self.alice.user_id)])
    }

    fn client(&self, user: &MatrixUser) -> MatrixClient {
        self.synapse.client(user)
    }
}

/// Starts the bot and waits for its first completed sync; returns the time that took.
/// The time from the bot's start to its first completed sync: as the test saw it (process
/// start included), and as the bot's adapter logged it (`elapsed_ms`).
struct FirstSync {
    seen: Duration,
    logged_ms: u64,
}

impl std::fmt::Display for FirstSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ms (process start to log line), {} ms (adapter start to sync, as logged)",
            self.seen.as_millis(),
            self.logged_ms
        )
    }
}

async fn first_sync(bot: &mut Bot, t0: Instant) -> FirstSync {
    let line = bot.wait_log(WAIT, "first sync completed").await;
    let seen = t0.elapsed();
    let logged_ms = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("elapsed_ms="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no elapsed_ms in {line:?}"));
    FirstSync { seen, logged_ms }
}

async fn start_bot(dir: &Path, config: &str) -> (Bot, FirstSync) {
    let t0 = Instant::now();
    let mut bot = Bot::start(dir, config);
    let took = first_sync(&mut bot, t0).await;
    (bot, took)
}

async fn restart_bot(bot: &mut Bot) -> FirstSync {
    let t0 = Instant::now();
    bot.restart();
    first_sync(bot, t0).await
}

/// Waits until `user_id`'s membership in `room` becomes `membership`.
async fn wait_membership(client: &mut MatrixClient, room: &str, user_id: &str, membership: &str) {
    client
        .wait_for_event(room, WAIT, |ev| {
            ev["type"] == "m.room.member"
                && ev["state_key"] == user_id
                && ev["content"]["membership"] == membership
        })
        .await;
}

/// Waits for the bot's next message in `room` and returns its content.
async fn bot_says(client: &mut MatrixClient, room: &str, bot: &str) -> Value {
    let ev = client
        .wait_for_event(room, WAIT, |ev| {
            ev["type"] == "m.room.message" && ev["sender"] == bot
        })
        .await;
    ev["content"].clone()
}

fn assert_notice(content: &Value, body: &str) {
    assert_eq!(content["body"], body, "{content}");
    assert_eq!(content["msgtype"], "m.notice", "{content}");
    assert_eq!(content["m.mentions"], json!({}), "{content}");
}

/// A direct-message room from `client` to `user_id`.
async fn create_dm(client: &MatrixClient, user_id: &str) -> String {
    let reply: Value = client
        .request(reqwest::Method::POST, "/_matrix/client/v3/createRoom")
        .json(&json!({"preset": "trusted_private_chat", "is_direct": true, "invite": [user_id]}))
        .send()
        .await
        .expect("createRoom")
        .json()
        .await
        .expect("createRoom reply");
    reply["room_id"].as_str().expect("room_id").to_owned()
}

#[tokio::test]
async fn ping_in_a_room_and_a_dm_roles_by_user_id_and_invites() {
    let w = World::new().await;
    let mut alice = w.client(&w.alice);
    let mut bob = w.client(&w.bob);
    let bot_id = w.bot_user.user_id.clone();
    let room = alice
        .create_room(RoomSpec {
            alias: Some("sig".into()),
            public: true,
            ..RoomSpec::default()
        })
        .await;
    bob.join(&room).await;

    // The room is configured by alias; the bot joins it at start.
    let dir = temp_dir("bot");
    let (mut bot, _) = start_bot(dir.path(), &w.config(&["#sig:sigbot.test"]).build()).await;
    wait_membership(&mut alice, &room, &bot_id, "join").await;

    let ping = alice.send_text(&room, "!ping").await;
    assert_notice(&bot_says(&mut alice, &room, &bot_id).await, "pong");
    // A formatted reply with the usual quoted fallback is a command all the same.
    alice
        .send_message(
            &room,
            json!({
                "msgtype": "m.text",
                "body": "> <@alice:sigbot.test> !ping\n\n!version",
                "format": "org.matrix.custom.html",
                "formatted_body": "<mx-reply><blockquote>!ping</blockquote></mx-reply><code>!version</code>",
                "m.relates_to": {"m.in_reply_to": {"event_id": ping}},
            }),
        )
        .await;
    let version = bot_says(&mut alice, &room, &bot_id).await;
    assert!(
        version["body"].as_str().unwrap().starts_with("sigbot "),
        "{version}"
    );

    // A DM from an allowed user: accepted, answered there.
    let dm = create_dm(&alice, &bot_id).await;
    wait_membership(&mut alice, &dm, &bot_id, "join").await;
    alice.send_text(&dm, "!ping").await;
    assert_notice(&bot_says(&mut alice, &dm, &bot_id).await, "pong");

    // The guarded built-in: alice holds the role by user ID, bob does not.
    alice
        .send_text(&room, &format!("!say {NETWORK}/{dm} said by alice"))
        .await;
    assert_notice(&bot_says(&mut alice, &dm, &bot_id).await, "said by alice");
    bob.send_text(&room, &format!("!say {NETWORK}/{room} said by bob"))
        .await;
    // (Read with alice's client, which has seen the room's earlier answers already.)
    assert_notice(
        &bot_says(&mut alice, &room, &bot_id).await,
        "bob: say needs the admin role",
    );
    // whoami shows the principal with the Matrix user ID.
    alice.send_text(&room, "!whoami").await;
    let who = bot_says(&mut alice, &room, &bot_id).await;
    assert_eq!(
        who["body"],
        format!(
            "alice: you are {NETWORK}:{}, with roles: admin",
            w.alice.user_id
        )
    );

    // An invitation from someone not in invites_from is declined.
    let bobs = bob
        .create_room(RoomSpec {
            invite: vec![bot_id.clone()],
            ..RoomSpec::default()
        })
        .await;
    wait_membership(&mut bob, &bobs, &bot_id, "leave").await;
    bot.wait_log(WAIT, "invitation declined").await;

    assert_eq!(bot.terminate(WAIT).await, Some(0));
}

/// The device ID and access token the bot saved.
fn saved_session(dir: &Path) -> (String, String) {
    let path = dir.join(format!("data/matrix/{NETWORK}/session.json"));
    let text = std::fs::read_to_string(&path).expect("session.json");
    let saved: Value = serde_json::from_str(&text).expect("session JSON");
    let field = |name: &str| saved["session"][name].as_str().expect(name).to_owned();
    (field("device_id"), field("access_token"))
}

async fn devices(w: &World, bot_token: &str) -> Vec<String> {
    let client = MatrixClient::with_token(&w.synapse.url(), &w.bot_user.user_id, bot_token);
    client.device_ids().await
}

#[tokio::test]
async fn restart_handles_what_was_sent_while_down_exactly_once_on_the_same_device() {
    let w = World::new().await;
    let mut alice = w.client(&w.alice);
    let bot_id = w.bot_user.user_id.clone();
    let room = alice
        .create_room(RoomSpec {
            public: true,
            ..RoomSpec::default()
        })
        .await;
    // Sent before the bot ever started: history, never answered.
    alice.send_text(&room, "!ping").await;

    let dir = temp_dir("bot");
    let (mut bot, took) = start_bot(dir.path(), &w.config(&[&room]).build()).await;
    eprintln!("MEASURE time from bot start to first completed sync (first start): {took}");
    wait_membership(&mut alice, &room, &bot_id, "join").await;
    alice.send_text(&room, "!version").await;
    let first = bot_says(&mut alice, &room, &bot_id).await;
    assert!(
        first["body"].as_str().unwrap().starts_with("sigbot "),
        "the old !ping was answered: {first}"
    );
    let (device, token) = saved_session(dir.path());
    let devices_before = devices(&w, &token).await;
    assert!(devices_before.contains(&device), "{devices_before:?}");

    // A crash: nothing flushed. Three commands while it is down.
    bot.kill().await;
    for _ in 0..3 {
        alice.send_text(&room, "!ping").await;
    }
    restart_bot(&mut bot).await;
    for _ in 0..3 {
        assert_notice(&bot_says(&mut alice, &room, &bot_id).await, "pong");
    }
    // Anything handled twice would be answered before this.
    alice.send_text(&room, "!version").await;
    let next = bot_says(&mut alice, &room, &bot_id).await;
    assert!(
        next["body"].as_str().unwrap().starts_with("sigbot "),
        "a fourth answer: {next}"
    );

    // Same device, and no new device on the account.
    assert_eq!(saved_session(dir.path()).0, device);
    assert_eq!(devices(&w, &token).await, devices_before);
    assert!(
        !bot.log()
            .iter()
            .any(|l| l.contains("logged in as a new device")),
        "the restart logged in again"
    );

    // The device is logged out behind the bot's back: it logs in again as a new device and
    // keeps answering (its sender follows the new login).
    let revoked = MatrixClient::with_token(&w.synapse.url(), &bot_id, &token);
    let status = revoked
        .request(reqwest::Method::POST, "/_matrix/client/v3/logout")
        .json(&json!({}))
        .send()
        .await
        .expect("logout")
        .status();
    assert!(status.is_success(), "logout: {status}");
    bot.wait_log(WAIT, "logged in as a new device").await;
    alice.send_text(&room, "!ping").await;
    assert_notice(&bot_says(&mut alice, &room, &bot_id).await, "pong");
    let (new_device, _) = saved_session(dir.path());
    assert_ne!(new_device, device);

    // A clean stop and start: still nothing replayed.
    assert_eq!(bot.terminate(WAIT).await, Some(0));
    restart_bot(&mut bot).await;
    alice.send_text(&room, "!version").await;
    let again = bot_says(&mut alice, &room, &bot_id).await;
    assert!(
        again["body"].as_str().unwrap().starts_with("sigbot "),
        "{again}"
    );
    assert_eq!(bot.terminate(WAIT).await, Some(0));
}

#[tokio::test]
async fn access_token_login_uses_the_token_s_device() {
    let w = World::new().await;
    let mut alice = w.client(&w.alice);
    let bot_id = w.bot_user.user_id.clone();
    let room = alice
        .create_room(RoomSpec {
            public: true,
            ..RoomSpec::default()
        })
        .await;
    let dir = temp_dir("bot");
    let network = w
        .network(&[&room])
        .remove("password")
        .set("access_token", w.bot_user.access_token.as_str());
    let (mut bot, _) = start_bot(dir.path(), &w.config_with(network).build()).await;
    wait_membership(&mut alice, &room, &bot_id, "join").await;
    alice.send_text(&room, "!ping").await;
    assert_notice(&bot_says(&mut alice, &room, &bot_id).await, "pong");
    assert_eq!(saved_session(dir.path()).0, w.bot_user.device_id);
    assert_eq!(
        devices(&w, &w.bot_user.access_token).await,
        vec![w.bot_user.device_id.clone()]
    );
    assert_eq!(bot.terminate(WAIT).await, Some(0));
}

/// A matrix-sdk client for `user`, with its own device and crypto store.
async fn sdk_client(w: &World, user: &MatrixUser, store: &Path) -> matrix_sdk::Client {
    let client = matrix_sdk::Client::builder()
        .homeserver_url(w.synapse.url())
        .sqlite_store(store, None)
        .build()
        .await
        .expect("build matrix-sdk client");
    client
        .matrix_auth()
        .login_username(&user.localpart, &user.password)
        .initial_device_display_name("test")
        .send()
        .await
        .expect("log in with matrix-sdk");
    client
        .sync_once(SyncSettings::default())
        .await
        .expect("first sync");
    client
}

/// Syncs `client` until the bot sends a message in `room` that decrypts; returns its content.
async fn sdk_wait_for_bot(client: &matrix_sdk::Client, room: &RoomId, bot: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no decrypted answer from the bot within {WAIT:?}"
        );
        let settings = SyncSettings::default().timeout(Duration::from_secs(2));
        let response = client.sync_once(settings).await.expect("sync");
        let Some(update) = response.rooms.joined.get(room) else {
            continue;
        };
        for ev in &update.timeline.events {
            let v: Value = serde_json::from_str(ev.raw().json().get()).unwrap();
            let is_message = v["type"] == "m.room.message" || v["type"] == "m.room.encrypted";
            if v["sender"] != bot || !is_message {
                continue;
            }
            assert_eq!(
                v["type"], "m.room.message",
                "the bot's message did not decrypt: {v}"
            );
            assert!(ev.encryption_info().is_some(), "not encrypted: {v}");
            return v["content"].clone();
        }
    }
}

#[tokio::test]
async fn encrypted_room_is_read_and_answered_across_a_restart() {
    let w = World::new().await;
    let bot_id = w.bot_user.user_id.clone();
    let dir = temp_dir("bot");
    let (mut bot, _) = start_bot(dir.path(), &w.config(&[]).build()).await;

    let store = temp_dir("sdk-client");
    let sdk = sdk_client(&w, &w.alice, store.path()).await;
    let mut alice = w.client(&w.alice);
    let room_id = alice
        .create_room(RoomSpec {
            encrypted: true,
            invite: vec![bot_id.clone()],
            ..RoomSpec::default()
        })
        .await;
    wait_membership(&mut alice, &room_id, &bot_id, "join").await;
    let room_id: OwnedRoomId = room_id.try_into().unwrap();
    // The SDK client learns the room (and that it is encrypted) from its sync.
    let room = loop {
        sdk.sync_once(SyncSettings::default().timeout(Duration::from_secs(1)))
            .await
            .expect("sync");
        if let Some(room) = sdk.get_room(&room_id) {
            break room;
        }
    };
    assert!(room.latest_encryption_state().await.unwrap().is_encrypted());

    room.send(RoomMessageEventContent::text_plain("!ping"))
        .await
        .expect("send encrypted !ping");
    assert_notice(&sdk_wait_for_bot(&sdk, &room_id, &bot_id).await, "pong");

    // The bot keeps its keys across a restart and still reads and answers.
    assert_eq!(bot.terminate(WAIT).await, Some(0));
    restart_bot(&mut bot).await;
    room.send(RoomMessageEventContent::text_plain("!ping"))
        .await
        .expect("send encrypted !ping");
    assert_notice(&sdk_wait_for_bot(&sdk, &room_id, &bot_id).await, "pong");
    assert_eq!(bot.terminate(WAIT).await, Some(0));
}

async fn bot_answer(client: &mut MatrixClient, room: &str, bot: &str) {
    client
        .wait_for_event(room, WAIT, |ev| {
            ev["sender"] == bot
                && (ev["type"] == "m.room.message" || ev["type"] == "m.room.encrypted")
        })
        .await;
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A measurement more than a test: prints the bot's resident memory with 20 joined rooms
/// and its time to the first completed sync. Run with `--nocapture` to see the numbers.
#[tokio::test]
async fn measure_memory_with_20_rooms() {
    let w = World::new().await;
    let mut alice = w.client(&w.alice);
    let bot_id = w.bot_user.user_id.clone();
    let dir = temp_dir("bot");
    let (mut bot, took) = start_bot(dir.path(), &w.config(&[]).build()).await;
    let mut rooms = Vec::new();
    for i in 0..20 {
        rooms.push(
            alice
                .create_room(RoomSpec {
                    name: Some(format!("room {i}")),
                    invite: vec![bot_id.clone()],
                    encrypted: i % 2 == 0,
                    ..RoomSpec::default()
                })
                .await,
        );
    }
    // Twenty pings at once would be past a caller's allowance; an admin's `say` is not an
    // answer and spends none.
    for room in &rooms {
        wait_membership(&mut alice, room, &bot_id, "join").await;
        alice
            .send_text(room, &format!("!say {NETWORK}/{room} pong"))
            .await;
    }
    // Half the rooms are encrypted, which this client cannot read: any answer will do.
    for room in &rooms {
        bot_answer(&mut alice, room, &bot_id).await;
    }
    let rss_cold = vm_rss_kib(bot.pid().expect("bot pid"));
    assert_eq!(bot.terminate(WAIT).await, Some(0));
    let restart_sync = restart_bot(&mut bot).await;
    alice.send_text(&rooms[1], "!ping").await;
    bot_answer(&mut alice, &rooms[1], &bot_id).await;
    let rss_warm = vm_rss_kib(bot.pid().expect("bot pid"));
    eprintln!(
        "MEASURE first sync: first start {took}; restart with 20 rooms {restart_sync}; \
         VmRSS with 20 joined rooms (10 encrypted): {rss_cold} kB after joining, \
         {rss_warm} kB after a restart"
    );
    assert!(rss_warm < 512 * 1024, "VmRSS {rss_warm} kB");
    assert_eq!(bot.terminate(WAIT).await, Some(0));
}

/// A confirmed release over Matrix: the bot's prompt is edited (`m.replace`) once settled and
/// the `!confirm` message gets a reaction, so the room never shows a live code that is spent.
#[tokio::test]
async fn confirmation_prompt_is_edited_and_the_confirm_gets_a_reaction() {
    let w = World::new().await;
    let mut alice = w.client(&w.alice);
    let bot_id = w.bot_user.user_id.clone();
    let room = alice
        .create_room(RoomSpec {
            alias: Some("rel".into()),
            public: true,
            ..RoomSpec::default()
        })
        .await;
    let base = format!("http://{}", crate::commands::fake_services().await);
    let dir = temp_dir("matrix-confirm");
    crate::commands::shipped_commands(&dir.path().join("commands"), &base);
    let config = w
        .config(&[&room])
        .role("releng", &[&format!("{NETWORK}:{}", w.alice.user_id)])
        .build();
    let (_bot, _) = {
        let env = [("SIGBOT_RELEASE_TOKEN", "tok-matrix-test")];
        let t0 = Instant::now();
        let mut bot = Bot::start_with_env(dir.path(), &config, &env);
        let took = first_sync(&mut bot, t0).await;
        (bot, took)
    };
    wait_membership(&mut alice, &room, &bot_id, "join").await;

    alice.send_text(&room, "!release 1.2").await;
    let prompt = alice
        .wait_for_event(&room, WAIT, |ev| {
            ev["sender"] == bot_id.as_str()
                && ev["content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.contains("!confirm "))
        })
        .await;
    let prompt_id = prompt["event_id"].as_str().unwrap().to_owned();
    let body = prompt["content"]["body"].as_str().unwrap();
    let code: String = body
        .split("!confirm ")
        .nth(1)
        .unwrap()
        .chars()
        .take(6)
        .collect();

    let confirm_id = alice.send_text(&room, &format!("!confirm {code}")).await;
    let mut edited = false;
    let mut reacted = false;
    while !(edited && reacted) {
        let ev = alice
            .wait_for_event(&room, WAIT, |ev| ev["sender"] == bot_id.as_str())
            .await;
        let rel = &ev["content"]["m.relates_to"];
        if ev["type"] == "m.room.message" && rel["rel_type"] == "m.replace" {
            assert_eq!(rel["event_id"], prompt_id.as_str(), "{ev}");
            let new = ev["content"]["m.new_content"]["body"].as_str().unwrap();
            assert!(new.ends_with("confirmed by alice"), "{ev}");
            assert!(
                !new.contains(&code),
                "the edited prompt shows no code: {ev}"
            );
            edited = true;
        } else if ev["type"] == "m.reaction" {
            assert_eq!(rel["rel_type"], "m.annotation", "{ev}");
            assert_eq!(rel["event_id"], confirm_id.as_str(), "{ev}");
            assert_eq!(rel["key"], "\u{2705}", "{ev}");
            reacted = true;
        }
    }
}

/// A homeserver that rate-limits messages: the bot's replies get `429 M_LIMIT_EXCEEDED`, waits
/// `retry_after_ms`, and still delivers every one, in order.
#[tokio::test]
async fn rate_limited_replies_are_retried_and_keep_their_order() {
    let synapse = SynapseServer::start_with_message_rate(Some((1.0, 2))).await;
    let bot_user = synapse.register_user("sigbot", "bot-secret-pw").await;
    let admin = synapse.register_admin("alice", "alice-secret-pw").await;
    synapse
        .exempt_from_rate_limits(&admin, &admin.user_id)
        .await;
    let w = World {
        synapse,
        bot_user,
        alice: admin.clone(),
        bob: admin,
    };
    let mut alice = w.client(&w.alice);
    let bot_id = w.bot_user.user_id.clone();
    let room = alice
        .create_room(RoomSpec {
            alias: Some("busy".into()),
            public: true,
            ..RoomSpec::default()
        })
        .await;
    let dir = temp_dir("matrix-429");
    let (mut bot, _) = start_bot(dir.path(), &w.config(&[&room]).build()).await;
    wait_membership(&mut alice, &room, &bot_id, "join").await;
    for i in 0..8 {
        alice
            .send_text(&room, &format!("!say {NETWORK}/{room} reply {i}"))
            .await;
    }
    for i in 0..8 {
        let content = bot_says(&mut alice, &room, &bot_id).await;
        assert_eq!(content["body"], format!("reply {i}"), "{content}");
    }
    // The scenario really happened: Synapse turned some of the bot's sends away.
    let synapse_log =
        std::fs::read_to_string(w.synapse.dir().join("synapse.log")).unwrap_or_default();
    assert!(
        synapse_log
            .lines()
            .any(|l| l.contains(&format!("{{{bot_id}}}")) && l.contains(" 429 ")),
        "the homeserver should have rate-limited the bot at least once"
    );
    bot.terminate(WAIT).await;
}

/// Sets `client`'s display name (before it joins, so that its join carries it).
async fn set_display_name(client: &MatrixClient, name: &str) {
    let path = format!(
        "/_matrix/client/v3/profile/{}/displayname",
        crate::support::matrix::encode(client.user_id())
    );
    let status = client
        .request(reqwest::Method::PUT, &path)
        .json(&json!({ "displayname": name }))
        .send()
        .await
        .expect("set the display name")
        .status();
    assert!(status.is_success(), "PUT {path}: {status}");
}

/// Every file below `dir`.
/// Ends the meeting in `room`, waits for the bot's "Minutes:" line, and reads the meeting's
/// file whose name ends with `ext`.
async fn end_meeting_and_read(
    alice: &mut MatrixClient,
    room: &str,
    bot_id: &str,
    data: &Path,
    ext: &str,
) -> String {
    alice.send_text(room, "#endmeeting").await;
    alice
        .wait_for_event(room, WAIT, |ev| {
            ev["sender"] == bot_id
                && ev["content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.contains("Minutes:"))
        })
        .await;
    let files = files_below(&data.join("data/meetings/meet_matrix_sigbot-test"));
    let file = files
        .iter()
        .find(|p| p.to_string_lossy().ends_with(ext))
        .unwrap_or_else(|| panic!("no {ext} file among {files:?}"));
    std::fs::read_to_string(file).unwrap()
}

fn files_below(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Issue 5, point 7: a meeting in a Matrix room, where two people call themselves "Alice".
/// The minutes list them as two attendees told apart by user ID, with their own line counts
/// and action items.
#[tokio::test]
async fn a_meeting_in_a_matrix_room_tells_namesakes_apart_by_user_id() {
    let w = World::new().await;
    let other = w.synapse.register_user("alice2", "alice2-secret-pw").await;
    let mut alice = w.client(&w.alice);
    let mut alice2 = w.client(&other);
    let mut bob = w.client(&w.bob);
    set_display_name(&alice, "Alice").await;
    set_display_name(&alice2, "Alice").await;
    set_display_name(&bob, "Bob").await;
    let room = alice
        .create_room(RoomSpec {
            alias: Some("meet".into()),
            public: true,
            ..RoomSpec::default()
        })
        .await;
    alice2.join(&room).await;
    bob.join(&room).await;

    let bot_id = w.bot_user.user_id.clone();
    let dir = temp_dir("matrix-meeting");
    let config = w
        .config(&["#meet:sigbot.test"])
        .meetings(&[&format!("{NETWORK}/#meet:sigbot.test")])
        .build();
    let (_bot, _) = start_bot(dir.path(), &config).await;
    wait_membership(&mut alice, &room, &bot_id, "join").await;

    let (a1, a2) = (
        format!("Alice ({})", w.alice.user_id),
        format!("Alice ({})", other.user_id),
    );
    alice.send_text(&room, "#startmeeting Namesakes").await;
    let started = bot_says(&mut alice, &room, &bot_id).await;
    let started = started["body"].as_str().unwrap();
    assert!(started.contains("Meeting started"), "{started}");
    assert!(
        started.contains(&a1),
        "the chair is named by user ID: {started}"
    );

    alice2.send_text(&room, "hello from the other Alice").await;
    alice2.send_text(&room, "I can write the docs").await;
    bob.send_text(&room, "hi").await;
    alice
        .send_text(&room, &format!("#action {} writes the docs", other.user_id))
        .await;
    alice
        .send_text(&room, &format!("#action {a1} reviews them"))
        .await;
    alice.send_text(&room, "#action Bob buys cake").await;
    let json = end_meeting_and_read(&mut alice, &room, &bot_id, dir.path(), ".json").await;
    let minutes: Value = serde_json::from_str(&json).expect("JSON minutes");

    // People present, with the lines each said.
    let mut people: Vec<(String, u64)> = minutes["attendees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["nick"].as_str().unwrap().to_owned(),
                a["lines"].as_u64().unwrap(),
            )
        })
        .filter(|(nick, _)| nick != "sigbot")
        .collect();
    people.sort();
    let mut expected = vec![(a1.clone(), 5), (a2.clone(), 2), ("Bob".to_owned(), 1)];
    expected.sort();
    assert_eq!(people, expected, "{minutes:#}");

    // Action items by person: by user ID or the whole disambiguated name.
    let mut by_person: Vec<(String, Vec<String>)> = minutes["action_items_by_person"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["nick"].as_str().unwrap().to_owned(),
                p["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["text"].as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect();
    by_person.sort();
    let mut expected = vec![
        (a1.clone(), vec![format!("{a1} reviews them")]),
        (
            a2.clone(),
            vec![format!("{} writes the docs", other.user_id)],
        ),
        ("Bob".to_owned(), vec!["Bob buys cake".to_owned()]),
    ];
    expected.sort();
    assert_eq!(by_person, expected, "{minutes:#}");
    assert_eq!(minutes["unassigned_action_items"], json!([]), "{minutes:#}");

    // The text minutes keep MeetBot's sections with these names.
    let files = files_below(&dir.path().join("data/meetings/meet_matrix_sigbot-test"));
    let txt = files
        .iter()
        .find(|p| {
            let p = p.to_string_lossy();
            p.ends_with(".txt") && !p.ends_with(".log.txt")
        })
        .expect("text minutes");
    let txt = std::fs::read_to_string(txt).unwrap();
    assert!(txt.contains(&format!("* {a2} (2)")), "{txt}");
}

/// `origin_server_ts` of `event_id` in `room`, as Synapse has it.
async fn server_time(
    client: &MatrixClient,
    room: &str,
    event_id: &str,
) -> chrono::DateTime<chrono::Utc> {
    let path = format!(
        "/_matrix/client/v3/rooms/{}/event/{}",
        crate::support::matrix::encode(room),
        crate::support::matrix::encode(event_id)
    );
    let ev: Value = client
        .request(reqwest::Method::GET, &path)
        .send()
        .await
        .expect("get the event")
        .json()
        .await
        .expect("the event");
    let ms = ev["origin_server_ts"].as_i64().expect("origin_server_ts");
    chrono::DateTime::from_timestamp_millis(ms).unwrap()
}

/// Lines said while the bot is down are caught up after its restart and logged at the times
/// they were said (the server's), in their order.
#[tokio::test]
async fn lines_said_while_the_bot_is_down_are_logged_at_their_real_times() {
    let w = World::new().await;
    let mut alice = w.client(&w.alice);
    let room = alice
        .create_room(RoomSpec {
            alias: Some("meet".into()),
            public: true,
            ..RoomSpec::default()
        })
        .await;
    let bot_id = w.bot_user.user_id.clone();
    let dir = temp_dir("matrix-meeting-times");
    let config = w
        .config(&["#meet:sigbot.test"])
        .meetings(&[&format!("{NETWORK}/#meet:sigbot.test")])
        .build();
    let (mut bot, _) = start_bot(dir.path(), &config).await;
    wait_membership(&mut alice, &room, &bot_id, "join").await;
    alice.send_text(&room, "#startmeeting Catch up").await;
    let started = bot_says(&mut alice, &room, &bot_id).await;
    assert!(
        started["body"]
            .as_str()
            .unwrap()
            .contains("Meeting started")
    );

    assert_eq!(bot.terminate(WAIT).await, Some(0));
    let mut said = Vec::new();
    for text in ["said while down one", "said while down two"] {
        let id = alice.send_text(&room, text).await;
        said.push((text, server_time(&alice, &room, &id).await));
    }
    // The bot's clock must have moved on to a later second than the lines' before it
    // handles them, or the old behaviour would pass too: wait for the clock, not for a
    // fixed time.
    // That moment is the event waited for; a timer is the only thing that tells it.
    let last = said.last().unwrap().1;
    let ahead = (last + chrono::TimeDelta::seconds(2) - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep_until(tokio::time::Instant::now() + ahead).await;
    assert!(chrono::Utc::now() >= last + chrono::TimeDelta::seconds(2));
    restart_bot(&mut bot).await;
    let log = end_meeting_and_read(&mut alice, &room, &bot_id, dir.path(), ".log.txt").await;
    println!("MEASURE log:\n{log}");
    let mut at = Vec::new();
    for (text, time) in &said {
        let line = log
            .lines()
            .position(|l| l.ends_with(text))
            .unwrap_or_else(|| panic!("{text:?} not in the log:\n{log}"));
        let stamp = time.format("%H:%M:%S").to_string();
        assert!(
            log.lines().nth(line).unwrap().starts_with(&stamp),
            "{text:?} should be logged at {stamp}:\n{log}"
        );
        at.push(line);
    }
    assert!(at[0] < at[1], "in the order said:\n{log}");
    // Every line of alice's is at or after the one before it (the bot's notice that it
    // resumed is logged when it said it, before the lines it caught up).
    let stamps: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" <alice> "))
        .filter_map(|l| l.get(..8))
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{log}");
}

/// Issue 15, series: the second meeting of a name in a Matrix room starts with the first's
/// action items by person and its minutes link; `#endmeeting` tells the agreed items and
/// action items in the room.
#[tokio::test]
async fn a_series_second_meeting_in_a_matrix_room_recalls_the_first() {
    let w = World::new().await;
    let mut alice = w.client(&w.alice);
    set_display_name(&alice, "Alice").await;
    let room = alice
        .create_room(RoomSpec {
            alias: Some("meet".into()),
            public: true,
            ..RoomSpec::default()
        })
        .await;
    let bot_id = w.bot_user.user_id.clone();
    let dir = temp_dir("matrix-series");
    let config = w
        .config(&["#meet:sigbot.test"])
        .meetings(&[&format!("{NETWORK}/#meet:sigbot.test")])
        .build();
    let (_bot, _) = start_bot(dir.path(), &config).await;
    wait_membership(&mut alice, &room, &bot_id, "join").await;
    let from_bot_with = |text: &'static str| {
        let bot_id = bot_id.clone();
        move |ev: &Value| {
            ev["sender"] == bot_id.as_str()
                && ev["content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.contains(text))
        }
    };

    alice.send_text(&room, "#startmeeting Planning").await;
    alice
        .wait_for_event(&room, WAIT, from_bot_with("Meeting started"))
        .await;
    alice.send_text(&room, "#agreed we meet monthly").await;
    alice.send_text(&room, "#action Alice books the room").await;
    alice.send_text(&room, "#endmeeting").await;
    let post = alice
        .wait_for_event(&room, WAIT, from_bot_with("AGREED:"))
        .await;
    assert_eq!(
        post["content"]["body"], "AGREED: we meet monthly\nACTION Alice: Alice books the room",
        "{post}"
    );
    let minutes = alice
        .wait_for_event(&room, WAIT, from_bot_with("Minutes:"))
        .await;
    let first = minutes["content"]["body"]
        .as_str()
        .unwrap()
        .trim_start_matches("Minutes:")
        .trim()
        .to_owned();

    alice.send_text(&room, "#startmeeting Planning").await;
    let recalled = alice
        .wait_for_event(&room, WAIT, from_bot_with("Previous 'planning' meeting"))
        .await;
    let body = recalled["content"]["body"].as_str().unwrap();
    println!("Matrix post at the second #startmeeting:\n{body}");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 2, "{body}");
    assert!(
        lines[0].ends_with(&format!("1 action item. Minutes: {first}")),
        "{body}"
    );
    assert!(
        first.contains("/meetings/meet_matrix_sigbot-test/"),
        "{first}"
    );
    assert_eq!(lines[1], "ACTION Alice: Alice books the room");
    assert_eq!(recalled["content"]["msgtype"], "m.notice", "{recalled}");
}
