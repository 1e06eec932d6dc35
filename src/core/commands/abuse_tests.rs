//! The bot as someone would use it to flood or mass-highlight a channel: short quotes of
//! callers' text, one allowance per caller, and every line to IRC defused and capped.

use chrono::{DateTime, TimeZone, Utc};

use super::allowance::{BURST, REFILL};
use crate::core::bridge::{MAX_NAME_CHARS, ZWSP};
use crate::core::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
}

fn room() -> RoomRef {
    RoomRef::new("libera", "#sig")
}

/// The core with an IRC network (no bridge) and a paste site.
fn core() -> Core {
    let mut c = Core::new(
        CoreSettings {
            nick: "sigbot".into(),
            prefix: "!".into(),
            roles: Roles::new([(
                "admin".to_owned(),
                vec![Principal::new("libera", "dcavalca")],
            )]),
            networks: vec!["libera".into(), "hs".into()],
            version: "1".into(),
        },
        t0(),
    );
    c.enable_bridges(
        BridgeSettings {
            bridges: Vec::new(),
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
        3,
    );
    c
}

fn from(nick: &str, account: Option<&str>, mask: Option<&str>, text: &str) -> Event {
    Event::Message(IncomingMessage {
        room: room(),
        sender: Sender {
            nick: nick.into(),
            principal: account.map(|a| Principal::new("libera", a)),
            mask: mask.map(str::to_owned),
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

/// Ten members of `#sig`, as NAMES gives them.
fn crowd(c: &mut Core) -> Vec<String> {
    let nicks: Vec<String> = (0..10).map(|i| format!("member{i}")).collect();
    c.handle(
        Event::Members {
            room: room(),
            nicks: nicks.clone(),
        },
        t0(),
    );
    nicks
}

#[test]
fn replies_quote_a_short_excerpt_and_a_short_name() {
    let mut c = core();
    let long_name = "x".repeat(256);
    let long_text = "word ".repeat(100);
    for cmd in ["help", "confirm"] {
        let out = texts(&c.handle(
            from(
                &long_name,
                None,
                Some("u@h"),
                &format!("!{cmd} {long_text}"),
            ),
            t0(),
        ));
        assert_eq!(out.len(), 1, "{out:?}");
        // The name (30), the fixed words and the quote (40): far from the 756 typed.
        assert!(out[0].chars().count() < 160, "{cmd}: {}", out[0]);
        assert!(out[0].contains("word word"), "{}", out[0]);
        assert!(out[0].contains('…'), "{}", out[0]);
    }
    let out = texts(&c.handle(from(&long_name, None, Some("u@h"), "!whoami"), t0()));
    let name = out[0].split(": ").next().unwrap();
    assert!(name.chars().count() <= MAX_NAME_CHARS, "{name}");
}

#[test]
fn builtins_and_refusals_share_one_allowance_that_a_nick_change_keeps() {
    let mut c = core();
    let mut answered = 0;
    for i in 0..BURST {
        // Ping, then a refused say: both come out of the same allowance.
        let text = if i % 2 == 0 {
            "!ping"
        } else {
            "!say libera/#sig hi"
        };
        answered += texts(&c.handle(from(&format!("m{i}"), None, Some("u@h"), text), t0())).len();
    }
    assert_eq!(answered, BURST as usize);
    // Past it: one "slow down", then silence, whatever nick the same user@host takes.
    assert_eq!(
        texts(&c.handle(from("mallory", None, Some("u@h"), "!ping"), t0())),
        ["mallory: slow down; try again in 4s"]
    );
    for nick in ["mallory", "mallory_", "someoneelse"] {
        assert!(texts(&c.handle(from(nick, None, Some("u@h"), "!help x"), t0())).is_empty());
    }
    // Others are not held back; the allowance refills.
    assert_eq!(
        texts(&c.handle(from("bob", None, Some("b@h2"), "!ping"), t0())),
        ["pong"]
    );
    assert_eq!(
        texts(&c.handle(from("mallory", None, Some("u@h"), "!ping"), t0() + REFILL)),
        ["pong"]
    );
    // What an admin makes the bot say is the admin's own word, not an answer.
    for i in 0..BURST * 2 {
        let out = c.handle(
            from(
                "dc",
                Some("dcavalca"),
                None,
                &format!("!say libera/#sig line {i}"),
            ),
            t0(),
        );
        assert_eq!(texts(&out), [format!("line {i}")]);
    }
    // With an account, the account is the key, wherever the user connects from.
    for i in 0..BURST {
        let mask = format!("u{i}@elsewhere");
        let out = c.handle(from("dc", Some("dcavalca"), Some(&mask), "!ping"), t0());
        assert_eq!(texts(&out), ["pong"]);
    }
    assert_eq!(
        texts(&c.handle(
            from("dc", Some("dcavalca"), Some("new@host"), "!ping"),
            t0()
        )),
        ["dc: slow down; try again in 4s"]
    );
}

#[test]
fn every_line_to_irc_is_defused_like_a_bridged_line() {
    let mut c = core();
    let nicks = crowd(&mut c);
    let all = nicks.join(" ");
    let out = c.handle(
        from(
            "dc",
            Some("dcavalca"),
            None,
            &format!("!say libera/#sig hello {all}"),
        ),
        t0(),
    );
    let said = texts(&out);
    assert_eq!(said.len(), 1);
    for n in &nicks {
        assert!(
            !said[0].contains(n.as_str()),
            "{n} not defused: {}",
            said[0]
        );
    }
    assert_eq!(said[0].matches(ZWSP).count(), nicks.len());
    // A few mentions are a conversation, not a mass highlight.
    let out = c.handle(
        from(
            "dc",
            Some("dcavalca"),
            None,
            "!say libera/#sig member1 member2",
        ),
        t0() + REFILL,
    );
    assert_eq!(texts(&out), ["member1 member2"]);
    // Matrix rooms have pills and their own rules: left alone.
    let out = c.handle(
        from("dc", Some("dcavalca"), None, &format!("!say hs/!r:x {all}")),
        t0() + REFILL * 2,
    );
    assert_eq!(texts(&out), [all]);
}

#[test]
fn a_long_message_to_irc_is_cut_to_max_lines_with_a_paste_of_all_of_it() {
    let mut c = core();
    // One long line of the admin's `say` becomes several IRC lines: capped all the same.
    let words = "abcdefghi ".repeat(200);
    let out = c.handle(
        from(
            "dc",
            Some("dcavalca"),
            None,
            &format!("!say libera/#sig {words}"),
        ),
        t0(),
    );
    let Action::Paste { id, text } = &out[0] else {
        panic!("the paste first: {out:?}")
    };
    assert_eq!(text, words.trim());
    let said = texts(&out);
    let lines: Vec<&str> = said[0].lines().collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(
        lines[2],
        format!("(full message: https://bot.example.org/paste/{id})")
    );
    // A relayed event with many lines.
    let long: Vec<String> = (1..=6).map(|i| format!("line {i}")).collect();
    let long = long.join("\n");
    let batch = relay::RelayBatch {
        messages: vec![relay::RelayMessage {
            route: "r".into(),
            room: room(),
            text: long.clone(),
            html: None,
        }],
        ..Default::default()
    };
    let mut c = core();
    let shaped = c.bridges.shape_for_irc(vec![Action::Relay(batch)]);
    let [Action::Paste { id, text }, Action::Relay(batch)] = shaped.as_slice() else {
        panic!("a paste, then the relay: {shaped:?}")
    };
    assert_eq!(text, &long);
    let lines: Vec<&str> = batch.messages[0].text.lines().collect();
    assert_eq!(
        lines,
        [
            "line 1",
            "line 2",
            &format!("(full message: https://bot.example.org/paste/{id})")
        ]
    );
    // Within the cap, or to Matrix: as it was.
    let short = Action::reply(&room(), "line 1\nline 2\nline 3");
    assert_eq!(c.bridges.shape_for_irc(vec![short.clone()]), vec![short]);
    let to_matrix = Action::reply(&RoomRef::new("hs", "!r:x"), long.clone());
    assert_eq!(
        c.bridges.shape_for_irc(vec![to_matrix.clone()]),
        vec![to_matrix]
    );
}
