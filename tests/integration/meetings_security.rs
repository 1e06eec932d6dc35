//! Meetings against someone who wants to take them over or read what they should not, with
//! the real servers: files of meetings in rooms with one slug (`#x`, `##x`, `#x` on a second
//! network) stay apart and a restricted log is served by no route; a Matrix display name never
//! makes a chair; holders of the `admin` or `chair` role end anyone's meeting from IRC and from
//! Matrix; an idle meeting is ended, after a restart too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::bot::Bot;
use crate::support::{
    BOT_NICK, BotConfig, IrcClass, IrcClient, IrcConnectOptions, IrcServer, MatrixClient, RoomSpec,
    Section, SynapseServer, free_port, from_bot, temp_dir,
};

/// Long enough for a debug-build bot to connect, log in and sync on a busy machine.
const T: Duration = Duration::from_secs(60);

/// The bot's second connection to the same IRC server, as a second network.
const OTHER_NICK: &str = "sigbot2";

/// The `Log:` link each of `bots` says in `channel` (in that order, whichever comes first),
/// as a path below the site: `/meetings/<slug>/<date>/<base>`.
async fn log_links(client: &mut IrcClient, bots: &[&str], channel: &str) -> Vec<String> {
    let mut links: Vec<Option<String>> = vec![None; bots.len()];
    while links.iter().any(Option::is_none) {
        let line = client
            .wait_for(T, |l| {
                l.param(0) == Some(channel)
                    && l.text().starts_with("Log:")
                    && bots.iter().any(|b| l.is_privmsg_from(b))
            })
            .await;
        let url = line.text().trim_start_matches("Log:").trim();
        let path = &url[url.find("/meetings/").expect("a meetings link")..];
        let who = bots.iter().position(|b| line.is_privmsg_from(b)).unwrap();
        links[who] = Some(path.trim_end_matches(".log.html").to_owned());
    }
    links.into_iter().flatten().collect()
}

async fn get(site: &str, path: &str) -> (u16, String) {
    let resp = reqwest::get(format!("{site}{path}")).await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn meetings_in_rooms_that_share_a_slug_keep_their_files_and_a_restricted_log_is_served_nowhere()
 {
    let server = IrcServer::start(IrcClass::Unlimited).await;
    let dir = temp_dir("meetings-apart");
    let web = free_port();
    let config = BotConfig::new()
        .web(web)
        .irc(Section::irc("testnet", &server).set("channels", vec!["#x", "##x"]))
        .irc(
            Section::irc("othernet", &server)
                .set("nick", OTHER_NICK)
                .set("channels", vec!["#x"]),
        )
        .raw("[meetings]\nrooms = \"all\"\n")
        .build();
    let mut bot = Bot::start(dir.path(), &config);
    // Both connections in #x, and the first in ##x.
    for _ in 0..3 {
        bot.wait_log(T, "joined").await;
    }
    let mut alice = IrcClient::connect(&server, "alice").await;
    alice.join("#x").await;
    let mut bob = IrcClient::connect(&server, "bob").await;
    bob.join("##x").await;

    // A private query is not a meeting room, even with rooms = "all": the pong comes
    // after the bot handled the line before it, and nothing was said in between.
    alice.privmsg(BOT_NICK, "#startmeeting x").await;
    alice.privmsg(BOT_NICK, "!ping").await;
    let first = alice
        .wait_for(T, |l| from_bot(l) && l.param(0) == Some("alice"))
        .await;
    assert_eq!(first.text(), "pong", "{}", first.raw);

    // One minute, one name: #x is seen by both networks (two meetings), ##x by one and
    // restricted; then #x again.
    alice.privmsg("#x", "#startmeeting same").await;
    alice.privmsg("#x", "#info public words").await;
    bob.privmsg("##x", "#startmeeting same").await;
    bob.privmsg("##x", "#info secret words").await;
    bob.privmsg("##x", "#restrictlogs").await;
    bob.privmsg("##x", "#endmeeting").await;
    let restricted = log_links(&mut bob, &[BOT_NICK], "##x").await.remove(0);
    alice.privmsg("#x", "#endmeeting").await;
    let both = [BOT_NICK, OTHER_NICK];
    let mut public = log_links(&mut alice, &both, "#x").await;
    alice.privmsg("#x", "#startmeeting same").await;
    alice.privmsg("#x", "#info second words").await;
    alice.privmsg("#x", "#endmeeting").await;
    public.extend(log_links(&mut alice, &both, "#x").await);
    println!("MEASURE meetings: restricted {restricted}, public {public:?}");

    let mut all = public.clone();
    all.push(restricted.clone());
    let distinct: std::collections::BTreeSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), 5, "five meetings, five places: {all:?}");

    // On disk: each meeting's log holds its own lines only.
    let data = dir.path().join("data");
    let log_of = |link: &str| -> String {
        let p = data.join(format!("{}.log.txt", link.trim_start_matches('/')));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let secret = log_of(&restricted);
    assert!(secret.contains("secret words"), "{secret}");
    assert!(!secret.contains("public words"), "{secret}");
    for (i, link) in public.iter().enumerate() {
        let log = log_of(link);
        let own = if i < 2 {
            "public words"
        } else {
            "second words"
        };
        assert!(log.contains(own), "{link}: {log}");
        assert!(!log.contains("secret words"), "{link}: {log}");
    }
    assert_eq!(
        walk(&data.join("meetings")).len(),
        5 * 6,
        "six files per meeting, none written over"
    );

    // On the web: the public meetings are there, the restricted one is nowhere.
    let site = format!("http://127.0.0.1:{web}");
    let (status, index) = get(&site, "/").await;
    assert_eq!(status, 200);
    for link in &public {
        assert!(index.contains(link.as_str()), "{link} not on /:\n{index}");
        let (status, page) = get(&site, &format!("{link}.log.html")).await;
        assert_eq!(status, 200, "{link}");
        assert!(!page.contains("secret words"), "{link}: {page}");
    }
    assert!(!index.contains(&restricted), "{index}");
    let slug_dir = |link: &str| link.rsplitn(3, '/').nth(2).unwrap().to_owned();
    let restricted_room = slug_dir(&restricted);
    assert!(public.iter().all(|l| slug_dir(l) != restricted_room));
    let (status, _) = get(&site, &format!("{restricted_room}/")).await;
    assert_eq!(
        status, 404,
        "{restricted_room}/ lists the restricted meeting"
    );
    for room in public.iter().map(|l| slug_dir(l)) {
        let (status, page) = get(&site, &format!("{room}/")).await;
        assert_eq!(status, 200, "{room}/");
        assert!(!page.contains(&restricted), "{room}/: {page}");
    }
    for ext in ["log.txt", "log.html", "html", "txt", "md", "json"] {
        let (status, body) = get(&site, &format!("{restricted}.{ext}")).await;
        assert_eq!(status, 404, "{restricted}.{ext}: {body}");
    }
    let (status, results) = get(&site, "/search?q=secret").await;
    assert_eq!(status, 200);
    assert!(results.contains("0 result(s)"), "{results}");
    let (_, results) = get(&site, "/search?q=public").await;
    assert!(
        results.contains("2 result(s)") || results.contains("4 result(s)"),
        "{results}"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
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

/// Sets `client`'s display name (before it joins, so that its join carries it).
async fn set_display_name(client: &MatrixClient, name: &str) {
    let path = format!(
        "/_matrix/client/v3/profile/{}/displayname",
        crate::support::matrix::encode(client.user_id())
    );
    let status = client
        .request(reqwest::Method::PUT, &path)
        .json(&serde_json::json!({ "displayname": name }))
        .send()
        .await
        .expect("set the display name")
        .status();
    assert!(status.is_success(), "PUT {path}: {status}");
}

/// The bot's next message in `room` whose text contains `needle`, as `client` sees it.
async fn bot_says(client: &mut MatrixClient, room: &str, bot: &str, needle: &str) -> String {
    let ev: Value = client
        .wait_for_event(room, T, |ev| {
            ev["type"] == "m.room.message"
                && ev["sender"] == bot
                && ev["content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.contains(needle))
        })
        .await;
    ev["content"]["body"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn display_names_never_chair_and_role_holders_end_meetings_from_irc_and_matrix() {
    let synapse = SynapseServer::start().await;
    let irc = IrcServer::start(IrcClass::Unlimited).await;
    irc.register_account("boss", "bosspass12").await;
    let bot_user = synapse.register_user("sigbot", "bot-secret-pw").await;
    let owner = synapse.register_user("owner", "owner-secret-pw").await;
    let mallory = synapse.register_user("mallory", "mallory-secret-pw").await;
    let eve = synapse.register_user("eve", "eve-secret-pw").await;
    let chair = synapse.register_user("chair", "chair-secret-pw").await;
    let boss = synapse.register_user("boss", "boss-secret-pw").await;
    let mut owner = synapse.client(&owner);
    let room = owner
        .create_room(RoomSpec {
            alias: Some("sig".into()),
            public: true,
            ..RoomSpec::default()
        })
        .await;
    // One is named like the IRC chair, one like the Matrix chair's disambiguated name.
    let mallory = synapse.client(&mallory);
    set_display_name(&mallory, "alice").await;
    let eve = synapse.client(&eve);
    set_display_name(&eve, "Eve (@chair:sigbot.test)").await;
    let chair = synapse.client(&chair);
    let boss_mx = synapse.client(&boss);
    for c in [&mallory, &eve, &chair, &boss_mx] {
        c.join(&room).await;
    }

    let dir = temp_dir("meetings-chairs");
    let config = BotConfig::new()
        .web(free_port())
        .irc(Section::irc("testnet", &irc).set("channels", vec!["#sig"]))
        .matrix(Section::matrix("hs", &synapse, &bot_user).set("rooms", vec!["#sig:sigbot.test"]))
        .bridge(Section::bridge(
            "sig",
            &["testnet/#sig", "hs/#sig:sigbot.test"],
        ))
        .meetings(&["testnet/#sig"])
        .role("admin", &["hs:@boss:sigbot.test"])
        .role("chair", &["testnet:boss"])
        .build();
    let _bot = Bot::start(dir.path(), &config);
    let bot_id = bot_user.user_id.clone();
    owner
        .wait_for_event(&room, T, |ev| {
            ev["type"] == "m.room.member"
                && ev["state_key"] == bot_id.as_str()
                && ev["content"]["membership"] == "join"
        })
        .await;
    let mut alice = IrcClient::connect(&irc, "alice").await;
    alice.join_and_wait_for("#sig", BOT_NICK, T * 2).await;

    alice.privmsg("#sig", "#startmeeting chairs").await;
    bot_says(&mut owner, &room, &bot_id, "Meeting started").await;
    alice.privmsg("#sig", "#chair @chair:sigbot.test").await;
    bot_says(&mut owner, &room, &bot_id, "Current chairs").await;

    // Named like the chairs, they are refused, and the meeting goes on.
    let mut mallory = mallory;
    mallory.send_text(&room, "#topic mallory's").await;
    let refused = bot_says(&mut owner, &room, &bot_id, "only the chairs can use #topic").await;
    assert!(refused.contains("alice"), "{refused}");
    mallory.send_text(&room, "#endmeeting").await;
    bot_says(
        &mut owner,
        &room,
        &bot_id,
        "only the chairs can use #endmeeting",
    )
    .await;
    let mut eve = eve;
    eve.send_text(&room, "#endmeeting").await;
    let refused = bot_says(
        &mut owner,
        &room,
        &bot_id,
        "only the chairs can use #endmeeting",
    )
    .await;
    assert!(refused.starts_with("Eve"), "{refused}");
    // The chair by user ID is one, whatever their name.
    let mut chair = chair;
    chair.send_text(&room, "#chair carol").await;
    let chairs = bot_says(&mut owner, &room, &bot_id, "Current chairs").await;
    assert!(chairs.contains("carol"), "{chairs}");

    // An admin on Matrix ends it.
    let mut boss_mx = boss_mx;
    boss_mx.send_text(&room, "#endmeeting").await;
    bot_says(&mut owner, &room, &bot_id, "Meeting ended").await;
    let log = alice
        .wait_for(T, |l| from_bot(l) && l.text().starts_with("Log:"))
        .await;
    let log = log.text().to_owned();
    let minutes = walk(&dir.path().join("data/meetings"))
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".log.txt"))
        .unwrap_or_else(|| panic!("no log written; the bot said {log}"));
    let text = std::fs::read_to_string(minutes).unwrap();
    assert!(text.contains("#topic mallory's"), "{text}");
    let json = walk(&dir.path().join("data/meetings"))
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".json"))
        .unwrap();
    let json: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert!(
        json["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["type"] != "topic"),
        "{json}"
    );

    // A second meeting, ended from IRC: not by a nick without the role, but by the
    // account holding the chair role.
    alice.privmsg("#sig", "#startmeeting second").await;
    alice
        .wait_for(T, |l| {
            from_bot(l) && l.text().starts_with("Meeting started")
        })
        .await;
    let mut dave = IrcClient::connect(&irc, "dave").await;
    dave.join("#sig").await;
    dave.privmsg("#sig", "#endmeeting").await;
    let refused = dave
        .wait_for(T, |l| from_bot(l) && l.text().contains("only the chairs"))
        .await;
    assert!(refused.text().starts_with("dave"), "{}", refused.raw);
    let mut boss_irc = IrcClient::connect_with(
        irc.addr(),
        IrcConnectOptions::new("boss").sasl("boss", "bosspass12"),
    )
    .await;
    boss_irc.join("#sig").await;
    boss_irc.privmsg("#sig", "#endmeeting").await;
    boss_irc
        .wait_for(T, |l| from_bot(l) && l.text().starts_with("Meeting ended"))
        .await;
    bot_says(&mut owner, &room, &bot_id, "Meeting ended").await;
}

fn console_config(dir: &Path, idle: &str) -> String {
    BotConfig::new()
        .data_dir(&dir.join("data"))
        .console()
        .meetings(&["console/#local"])
        .raw(&format!("[meetings]\nidle_timeout = \"{idle}\"\n"))
        .build()
}

#[tokio::test]
async fn an_idle_meeting_is_ended_with_its_minutes_and_so_is_one_left_idle_by_a_restart() {
    let dir = temp_dir("meetings-idle");
    let mut bot = Bot::start(dir.path(), &console_config(dir.path(), "2s"));
    bot.say("#startmeeting idle one").await;
    bot.wait_stdout(T, "Meeting started").await;
    bot.say("#info then silence").await;
    let why = bot.wait_stdout(T, "Ending the meeting").await;
    assert!(why.contains("nobody has said anything since"), "{why}");
    assert!(why.contains("(2s without a line"), "{why}");
    bot.wait_stdout(T, "Meeting ended").await;
    bot.wait_log(T, "meeting files written").await;
    let log = walk(&dir.path().join("data/meetings"))
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".log.txt"))
        .expect("the log is written");
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains("then silence"), "{log}");
    assert!(
        log.lines().last().unwrap().contains("Ending the meeting"),
        "the reason ends the log:\n{log}"
    );

    // A meeting journaled under a long timeout, killed, and started again with a short one:
    // it is over on the restart, with its files, whichever came first (the start or a tick).
    bot.terminate(T).await;
    std::fs::write(
        dir.path().join("sigbot.toml"),
        console_config(dir.path(), "1h"),
    )
    .unwrap();
    bot.restart();
    bot.say("#startmeeting idle two").await;
    bot.wait_stdout(T, "Meeting started").await;
    bot.say("!ping").await;
    bot.wait_stdout(T, "pong").await;
    bot.kill().await;
    std::fs::write(
        dir.path().join("sigbot.toml"),
        console_config(dir.path(), "1s"),
    )
    .unwrap();
    bot.restart();
    bot.wait_stdout(T, "Ending the meeting").await;
    bot.wait_stdout(T, "Meeting ended").await;
    bot.wait_log(T, "meeting files written").await;
    let logs: Vec<PathBuf> = walk(&dir.path().join("data/meetings"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".log.txt"))
        .collect();
    assert_eq!(logs.len(), 2, "{logs:?}");
    bot.terminate(T).await;
}
