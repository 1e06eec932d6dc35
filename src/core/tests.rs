//! The core through `Core::handle`: built-in commands, and how they meet bridges and meetings.

use super::*;
use chrono::TimeZone;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
}

fn core() -> Core {
    Core::new(
        CoreSettings {
            nick: "sigbot".into(),
            prefix: "!".into(),
            roles: Roles::new([(
                "admin".to_owned(),
                vec![Principal::new("libera", "dcavalca")],
            )]),
            networks: vec!["console".into(), "libera".into()],
            version: "1.2.3".into(),
        },
        t0(),
    )
}

fn room() -> RoomRef {
    RoomRef::new("libera", "#sig")
}

fn msg(nick: &str, account: Option<&str>, text: &str) -> Event {
    Event::Message(IncomingMessage {
        room: room(),
        sender: Sender {
            nick: nick.into(),
            principal: account.map(|a| Principal::new("libera", a)),
            mask: None,
        },
        kind: MessageKind::Text,
        text: text.into(),
        id: None,
        sent_at: None,
    })
}

fn texts(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn ping_answers_pong_in_the_same_room() {
    let mut c = core();
    let out = c.handle(msg("alice", None, "!ping"), t0());
    assert_eq!(out, vec![Action::reply(&room(), "pong")]);
    let out = c.handle(msg("alice", None, "sigbot: ping"), t0());
    assert_eq!(texts(&out), ["pong"]);
}

#[test]
fn unknown_commands_and_chatter_get_no_reply() {
    let mut c = core();
    assert!(c.handle(msg("alice", None, "!frobnicate"), t0()).is_empty());
    assert!(c.handle(msg("alice", None, "hello all"), t0()).is_empty());
}

#[test]
fn notices_are_never_answered() {
    let mut c = core();
    let Event::Message(mut m) = msg("otherbot", None, "!ping") else {
        unreachable!()
    };
    m.kind = MessageKind::Notice;
    assert!(c.handle(Event::Message(m), t0()).is_empty());
}

#[test]
fn whoami_shows_principal_and_roles() {
    let mut c = core();
    let out = c.handle(msg("dc", Some("dcavalca"), "!whoami"), t0());
    assert_eq!(
        texts(&out),
        ["dc: you are libera:dcavalca, with roles: admin"]
    );
    let out = c.handle(msg("bob", Some("bob"), "!whoami"), t0());
    assert_eq!(texts(&out), ["bob: you are libera:bob, with no roles"]);
    let out = c.handle(msg("dcavalca", None, "!whoami"), t0());
    assert!(texts(&out)[0].contains("not identified"));
}

#[test]
fn guarded_command_runs_only_for_the_role() {
    let mut c = core();
    // Same nick as the admin, but no account: refused.
    let out = c.handle(msg("dcavalca", None, "!say console/#local hi"), t0());
    assert_eq!(texts(&out), ["dcavalca: say needs the admin role"]);
    // Another account: refused.
    let out = c.handle(
        msg("dcavalca", Some("mallory"), "!say console/#local hi"),
        t0(),
    );
    assert_eq!(texts(&out), ["dcavalca: say needs the admin role"]);
    // The admin, logged in: runs, in the target room.
    let out = c.handle(
        msg("dc", Some("dcavalca"), "!say console/#local hi there"),
        t0(),
    );
    assert_eq!(
        out,
        vec![Action::reply(
            &RoomRef::new("console", "#local"),
            "hi there"
        )]
    );
}

#[test]
fn say_rejects_unknown_networks() {
    let mut c = core();
    let out = c.handle(msg("dc", Some("dcavalca"), "!say nowhere/#x hi"), t0());
    assert_eq!(texts(&out), ["no network named \"nowhere\""]);
}

#[test]
fn help_lists_only_what_the_caller_may_run() {
    let mut c = core();
    let anon = texts(&c.handle(msg("a", None, "!help"), t0()));
    assert!(anon[0].contains("!ping"));
    assert!(!anon[0].contains("!say"));
    let admin = texts(&c.handle(msg("a", Some("dcavalca"), "!help"), t0()));
    assert!(admin[0].contains("!say"));
    let usage = texts(&c.handle(msg("a", None, "!help say"), t0()));
    assert_eq!(
        usage,
        ["!say <network>/<room> <text>: make the bot say something in a room (role admin)"]
    );
}

#[test]
fn status_reports_networks_queues_and_uptime() {
    let mut c = core();
    c.handle(
        Event::NetworkState {
            network: "libera".into(),
            state: LinkState::Connected,
            queue_len: 7,
        },
        t0(),
    );
    let later = t0() + chrono::TimeDelta::seconds(3725);
    let out = c.handle(msg("a", None, "!status"), later);
    assert_eq!(
        texts(&out),
        ["networks: console starting (queue 0), libera connected (queue 7); uptime 1h 2m 5s"]
    );
}

fn bridged_core() -> Core {
    let mut c = core();
    let irc = SideKind::Irc {
        nick_len: 9,
        user_len: 8,
    };
    c.enable_bridges(
        BridgeSettings {
            bridges: vec![BridgeSpec {
                name: "b".into(),
                rooms: vec![room(), RoomRef::new("console", "#local")],
                max_lines: 3,
                ignore_nicks: vec![],
                ignore_users: vec![],
                ignore_regex: vec![],
                staleness: std::time::Duration::from_secs(600),
                max_mentions: 5,
                presence: Default::default(),
                matrix: MatrixRelay::default(),
            }],
            sides: [
                ("libera".to_owned(), irc),
                ("console".to_owned(), SideKind::Console),
            ]
            .into_iter()
            .collect(),
            public_url: None,
        },
        1,
    );
    c
}

fn bridged(actions: &[Action]) -> Vec<(String, String, SendKind)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Bridged(b) => Some((b.room.to_string(), b.text.clone(), b.kind)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_command_in_a_bridged_room_is_relayed_then_answered_in_every_room_once() {
    let mut c = bridged_core();
    let out = c.handle(msg("alice", None, "!ping"), t0());
    // The answer where it was asked, directly; the question and the answer, in that
    // order, for the other room.
    assert_eq!(texts(&out), ["pong"]);
    assert_eq!(
        bridged(&out),
        [
            (
                "console/#local".into(),
                "<a\u{200B}lice> !ping".into(),
                SendKind::Relay
            ),
            ("console/#local".into(), "pong".into(), SendKind::Reply),
        ]
    );
}

#[test]
fn relayed_text_never_carries_the_typists_principal() {
    let mut c = bridged_core();
    // Someone on the console without the admin role types a guarded command: refused
    // for them; nothing is run for anyone else on the other side.
    let Event::Message(mut m) = msg("tester", None, "!say libera/#sig hi") else {
        unreachable!()
    };
    m.room = RoomRef::new("console", "#local");
    m.sender.principal = Some(Principal::new("console", "tester"));
    let out = c.handle(Event::Message(m), t0());
    assert_eq!(texts(&out), ["tester: say needs the admin role"]);
    assert!(bridged(&out).iter().all(|(_, t, _)| !t.starts_with("hi")));
    // The admin on IRC runs it with their own principal.
    let out = c.handle(msg("dc", Some("dcavalca"), "!say libera/#sig hi"), t0());
    assert_eq!(texts(&out), ["hi"]);
}

#[test]
fn a_meeting_in_a_bridge_is_one_meeting_with_lines_and_chairs_from_every_side() {
    let mut c = bridged_core();
    let _ = c.enable_meetings(
        MeetingSettings {
            scope: MeetingScope::Rooms(vec![room()]),
            public_url: "http://x".into(),
            bot_nick: "sigbot".into(),
            prefix: "!".into(),
            display_name_networks: vec![],
            enders: vec![],
            idle_timeout: None,
            keep_lines: true,
        },
        Vec::new(),
        t0(),
    );
    let console_msg = |nick: &str, text: &str| {
        Event::Message(IncomingMessage {
            room: RoomRef::new("console", "#local"),
            sender: Sender {
                nick: nick.into(),
                principal: None,
                mask: None,
            },
            kind: MessageKind::Text,
            text: text.into(),
            id: None,
            sent_at: None,
        })
    };
    // Started from the console (not itself a meeting room), it is the bridge's meeting.
    let out = c.handle(console_msg("carol", "#startmeeting sync"), t0());
    assert!(texts(&out).iter().any(|t| t.contains("Meeting started")));
    // The answer goes to the IRC side too, through the bridge.
    assert!(
        bridged(&out)
            .iter()
            .any(|(r, t, _)| r == "libera/#sig" && t.contains("Meeting started"))
    );
    c.handle(console_msg("carol", "#chair alice"), t0());
    // alice chairs from IRC: her topic is taken.
    c.handle(msg("alice", None, "#topic from irc"), t0());
    let m = c.meetings().running().next().unwrap();
    assert_eq!(m.current_topic.as_deref(), Some("from irc"));
    assert_eq!(c.meetings().running().count(), 1);
    assert_eq!(m.room, room());
    let speakers: Vec<&str> = m.lines.iter().map(|l| l.nick.as_str()).collect();
    assert!(speakers.contains(&"carol") && speakers.contains(&"alice"));
}

#[test]
fn version_names_the_version() {
    let mut c = core();
    assert_eq!(
        texts(&c.handle(msg("a", None, "!version"), t0())),
        ["sigbot 1.2.3"]
    );
}

/// A Matrix room bridged to an IRC channel, as `max_lines = 3` and a paste site.
fn matrix_bridged_core() -> Core {
    let mut c = core();
    let irc = RoomRef::new("libera", "#sig");
    let mx = RoomRef::new("hs", "!room:example.org");
    c.enable_bridges(
        BridgeSettings {
            bridges: vec![BridgeSpec {
                name: "sig".into(),
                rooms: vec![irc, mx],
                max_lines: 3,
                ignore_nicks: Vec::new(),
                ignore_users: Vec::new(),
                ignore_regex: Vec::new(),
                staleness: std::time::Duration::from_secs(600),
                max_mentions: 3,
                presence: Default::default(),
                matrix: MatrixRelay::default(),
            }],
            sides: [
                (
                    "libera".to_owned(),
                    SideKind::Irc {
                        nick_len: 9,
                        user_len: 10,
                    },
                ),
                ("hs".to_owned(), SideKind::Matrix),
            ]
            .into_iter()
            .collect(),
            public_url: Some("https://bot.example.org".into()),
        },
        7,
    );
    c
}

fn matrix_message(id: &str, text: &str) -> Event {
    Event::Message(IncomingMessage {
        room: RoomRef::new("hs", "!room:example.org"),
        sender: Sender {
            nick: "alice".into(),
            principal: Some(Principal::new("hs", "@alice:example.org")),
            mask: None,
        },
        kind: MessageKind::Text,
        text: text.into(),
        id: Some(id.into()),
        sent_at: None,
    })
}

fn bridged_sources(actions: &[Action]) -> Vec<(String, Option<String>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Bridged(b) => Some((b.text.clone(), b.source.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn every_line_of_a_relayed_message_has_its_own_source_key() {
    let mut c = matrix_bridged_core();
    let text: Vec<String> = (1..=10)
        .map(|i| format!("paste line {i:02} of 10"))
        .collect();
    let out = c.handle(matrix_message("$ten", &text.join("\n")), t0());
    let got = bridged_sources(&out);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got[0].0.ends_with("paste line 01 of 10"), "{got:?}");
    assert!(got[1].0.ends_with("paste line 02 of 10"), "{got:?}");
    assert!(
        got[2]
            .0
            .contains("(full message: https://bot.example.org/paste/"),
        "{got:?}"
    );
    let keys: Vec<_> = got.iter().map(|(_, s)| s.clone().unwrap()).collect();
    assert_eq!(keys, ["hs/$ten#1", "hs/$ten#2", "hs/$ten#3"]);
    // Handled again (a replay after a crash), the same lines get the same keys.
    let again = bridged_sources(&c.handle(matrix_message("$ten", &text.join("\n")), t0()));
    let again: Vec<_> = again.iter().map(|(_, s)| s.clone().unwrap()).collect();
    assert_eq!(again, keys);
}

#[test]
fn an_edit_with_an_id_names_its_lines_too() {
    let mut c = matrix_bridged_core();
    c.handle(matrix_message("$orig", "one\ntwo"), t0());
    let edit = Event::Activity(RoomActivity {
        room: RoomRef::new("hs", "!room:example.org"),
        sender: Sender {
            nick: "alice".into(),
            principal: Some(Principal::new("hs", "@alice:example.org")),
            mask: None,
        },
        id: Some("$edit".into()),
        sent_at: None,
        what: Activity::Edit {
            of: "$orig".into(),
            text: "one\ntwo\nthree".into(),
            html: None,
        },
        encrypted: false,
    });
    let got = bridged_sources(&c.handle(edit, t0()));
    assert!(!got.is_empty());
    for (i, (_, s)) in got.iter().enumerate() {
        assert_eq!(s.as_deref(), Some(format!("hs/$edit#{}", i + 1).as_str()));
    }
}

#[test]
fn builtin_invocations_are_counted_by_outcome() {
    let mut c = core();
    c.handle(msg("alice", None, "!ping"), t0());
    c.handle(msg("alice", None, "!say console/#local hi"), t0());
    // Chatter and unknown commands are no invocation.
    c.handle(msg("alice", None, "!nosuchcommand"), t0());
    c.handle(msg("alice", None, "hello"), t0());
    // Past the caller's allowance: held back.
    for _ in 0..20 {
        c.handle(msg("bob", None, "!ping"), t0());
    }
    let counts = c.command_counts();
    let get = |cmd: &str, outcome: &'static str| {
        counts.get(&(cmd.to_owned(), outcome)).copied().unwrap_or(0)
    };
    assert_eq!(get("ping", "ok"), 1 + 8, "{counts:?}");
    assert_eq!(get("ping", "cooldown"), 12, "{counts:?}");
    assert_eq!(get("say", "refused"), 1, "{counts:?}");
    assert_eq!(counts.len(), 3, "{counts:?}");
}

#[test]
fn bridged_copies_carry_the_time_the_network_says_the_message_was_sent() {
    let mut c = bridged_core();
    let sent = t0() - chrono::TimeDelta::seconds(2);
    let Event::Message(mut m) = msg("alice", None, "!ping") else {
        unreachable!()
    };
    m.sent_at = Some(sent);
    let out = c.handle(Event::Message(m), t0());
    let times: Vec<_> = out
        .iter()
        .filter_map(|a| match a {
            Action::Bridged(b) => Some((b.text.clone(), b.sent_at, b.at)),
            _ => None,
        })
        .collect();
    // The question has the network's time; the copy of the bot's answer has none (it was
    // never on a network before).
    assert_eq!(
        times,
        [
            ("<a\u{200B}lice> !ping".to_owned(), Some(sent), t0()),
            ("pong".to_owned(), None, t0()),
        ]
    );
    // Without a server time, nothing is made up.
    let out = c.handle(msg("alice", None, "hi"), t0());
    assert!(
        out.iter()
            .all(|a| !matches!(a, Action::Bridged(b) if b.sent_at.is_some()))
    );
}
