use super::*;
use crate::core::event::{Activity, Media, Member, RichMessage, RoomActivity};
use crate::core::event::{Principal, Sender};
use crate::core::format::irc_text;
use chrono::TimeZone as _;
use proptest::prelude::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
}

fn irc() -> RoomRef {
    RoomRef::new("libera", "#sig")
}
fn oftc() -> RoomRef {
    RoomRef::new("oftc", "#sig")
}
fn mx() -> RoomRef {
    RoomRef::new("fedora", "#sig:example.org")
}
fn console() -> RoomRef {
    RoomRef::new("console", "#local")
}

fn spec() -> BridgeSpec {
    BridgeSpec {
        name: "sig".into(),
        rooms: vec![irc(), mx(), console(), oftc()],
        max_lines: 3,
        ignore_nicks: vec!["OtherBot".into()],
        ignore_users: vec!["@hookshot:example.org".into()],
        ignore_regex: vec![
            Regex::new("(?i)^github bot").unwrap(),
            Regex::new(r"^\[ci\] ").unwrap(),
        ],
        staleness: Duration::from_secs(600),
        max_mentions: 3,
        presence: Default::default(),
        matrix: MatrixRelay {
            reactions: true,
            redactions: true,
            ..MatrixRelay::default()
        },
    }
}

fn bridges() -> Bridges {
    let irc_side = SideKind::Irc {
        nick_len: 9,
        user_len: 10,
    };
    Bridges::new(
        BridgeSettings {
            bridges: vec![spec()],
            sides: [
                ("libera".to_owned(), irc_side.clone()),
                ("oftc".to_owned(), irc_side),
                ("fedora".to_owned(), SideKind::Matrix),
                ("console".to_owned(), SideKind::Console),
            ]
            .into_iter()
            .collect(),
            public_url: Some("https://bot.example.org".into()),
        },
        7,
    )
}

fn msg(room: RoomRef, nick: &str, text: &str) -> IncomingMessage {
    let principal = if room.network == "fedora" {
        Some(Principal::new(
            "fedora",
            format!("@{}:example.org", nick.to_lowercase().replace(' ', "")),
        ))
    } else {
        None
    };
    IncomingMessage {
        room,
        sender: Sender {
            nick: nick.into(),
            principal,
            mask: None,
        },
        kind: MessageKind::Text,
        text: text.into(),
        id: None,
        sent_at: None,
    }
}

fn sent(actions: &[Action]) -> Vec<(String, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Bridged(b) => Some((b.room.to_string(), b.text.clone())),
            _ => None,
        })
        .collect()
}

fn to(actions: &[Action], room: &RoomRef) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Bridged(b) if &b.room == room => Some(b.text.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_message_goes_to_every_other_room_and_never_back() {
    let mut b = bridges();
    let out = b.relay(&msg(irc(), "alice", "hello"), t0());
    assert_eq!(
        sent(&out),
        [
            ("fedora/#sig:example.org".into(), "alice: hello".into()),
            ("console/#local".into(), "<a\u{200B}lice> hello".into()),
            ("oftc/#sig".into(), "<a\u{200B}lice> hello".into()),
        ]
    );
    for a in &out {
        let Action::Bridged(m) = a else { panic!() };
        assert_eq!(m.kind, SendKind::Relay);
        assert_eq!(m.at, t0());
        assert_eq!(m.staleness, Duration::from_secs(600));
        assert_eq!(m.bridge, "sig");
    }
}

#[test]
fn rooms_outside_bridges_relay_nothing() {
    let mut b = bridges();
    assert!(
        b.relay(&msg(RoomRef::new("libera", "#other"), "a", "hi"), t0())
            .is_empty()
    );
}

#[test]
fn matrix_side_gets_a_bold_name_and_escaped_html() {
    let mut b = bridges();
    let out = b.relay(&msg(irc(), "al<i>ce", "1 < 2 & \x02bold\x02"), t0());
    let m = out
        .iter()
        .find_map(|a| match a {
            Action::Bridged(m) if m.room == mx() => Some(m.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(m.text, "alice: 1 < 2 & bold");
    assert_eq!(
        m.html.as_deref(),
        Some("<b>alice</b>: 1 &lt; 2 &amp; <b>bold</b>")
    );
}

#[test]
fn emotes_are_plain_star_lines_never_ctcp() {
    let mut b = bridges();
    let mut m = msg(mx(), "Bob", "waves");
    m.kind = MessageKind::Emote;
    let out = b.relay(&m, t0());
    assert_eq!(to(&out, &irc()), ["* B\u{200B}ob waves"]);
    let mut m = msg(irc(), "carol", "\x01ACTION x\x01 waves back");
    m.kind = MessageKind::Emote;
    let out = b.relay(&m, t0());
    assert_eq!(to(&out, &mx()), ["* carol ACTION x waves back"]);
    for l in to(&out, &oftc()) {
        assert!(!l.contains('\x01'), "{l:?}");
    }
}

#[test]
fn notices_and_other_bots_are_not_relayed() {
    let mut b = bridges();
    let mut n = msg(irc(), "alice", "hi");
    n.kind = MessageKind::Notice;
    assert!(b.relay(&n, t0()).is_empty());
    assert!(b.relay(&msg(irc(), "otherbot", "hi"), t0()).is_empty());
    assert!(
        b.relay(&msg(mx(), "hookshot", "PR opened"), t0())
            .is_empty()
    );
    assert!(
        b.relay(&msg(mx(), "GitHub Bot (x)", "PR opened"), t0())
            .is_empty()
    );
    assert!(
        b.relay(&msg(irc(), "jenkins", "[ci] build 7 passed"), t0())
            .is_empty()
    );
    assert!(
        !b.relay(&msg(irc(), "jenkins", "ci [ci] is fine"), t0())
            .is_empty()
    );
}

#[test]
fn display_names_are_cleaned_and_shortened() {
    assert_eq!(
        clean_display_name("  ev\u{202E}il <b>\x02name\r\n "),
        "evil bname"
    );
    assert_eq!(clean_display_name("a\u{200B}b\u{FEFF}c"), "abc");
    let long = "x".repeat(50);
    let short = clean_display_name(&long);
    assert_eq!(short.chars().count(), MAX_NAME_CHARS);
    assert!(short.ends_with('…'));
    // A name that cleans to nothing: the user ID's local part instead.
    let mut b = bridges();
    let mut m = msg(mx(), "\u{200B}\u{202E}", "hi");
    m.sender.principal = Some(Principal::new("fedora", "@ghost:example.org"));
    assert_eq!(to(&b.relay(&m, t0()), &irc()), ["<g\u{200B}host> hi"]);
}

#[test]
fn two_matrix_users_with_one_name_are_told_apart_by_user_id() {
    let mut b = bridges();
    let mut first = msg(mx(), "Sam", "hi");
    first.sender.principal = Some(Principal::new("fedora", "@sam1:example.org"));
    let mut second = msg(mx(), "Sam", "me too");
    second.sender.principal = Some(Principal::new("fedora", "@sam2:example.org"));
    assert_eq!(to(&b.relay(&first, t0()), &irc()), ["<S\u{200B}am> hi"]);
    assert_eq!(
        to(&b.relay(&second, t0()), &irc()),
        ["<S\u{200B}am (@sam2:example.org)> me too"]
    );
    // A Matrix name equal to an IRC nick present in a linked channel: shown with the ID.
    b.relay(&msg(irc(), "dana", "here"), t0());
    let mut fake = msg(mx(), "dana", "I am dana");
    fake.sender.principal = Some(Principal::new("fedora", "@mallory:example.org"));
    assert_eq!(
        to(&b.relay(&fake, t0()), &oftc()),
        ["<d\u{200B}ana (@mallory:example.org)> I am dana"]
    );
}

#[test]
fn multi_line_messages_carry_the_prefix_on_every_line() {
    let mut b = bridges();
    let out = b.relay(&msg(mx(), "Bob", "one\r\ntwo\rthree"), t0());
    assert_eq!(
        to(&out, &irc()),
        [
            "<B\u{200B}ob> one",
            "<B\u{200B}ob> two",
            "<B\u{200B}ob> three"
        ]
    );
}

#[test]
fn past_max_lines_a_paste_link_replaces_the_rest() {
    let mut b = bridges();
    let text = "l1\nl2\nl3\nl4\nl5";
    // Matrix, from another side, gets the whole message.
    let out = b.relay(&msg(console(), "Bob", text), t0());
    assert_eq!(to(&out, &mx()), ["Bob: l1\nl2\nl3\nl4\nl5"]);
    let mut b = bridges();
    let out = b.relay(&msg(mx(), "Bob", text), t0());
    let pastes: Vec<_> = out
        .iter()
        .filter_map(|a| match a {
            Action::Paste { id, text } => Some((id.clone(), text.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(pastes.len(), 1, "one paste for every IRC room");
    let (id, pasted) = &pastes[0];
    assert_eq!(pasted, text);
    assert_eq!(id.len(), 20);
    let lines = to(&out, &irc());
    assert_eq!(
        lines,
        [
            "<B\u{200B}ob> l1".to_owned(),
            "<B\u{200B}ob> l2".to_owned(),
            format!("<B\u{200B}ob> (full message: https://bot.example.org/paste/{id})"),
        ]
    );
    assert_eq!(to(&out, &oftc()), lines);
    // The paste comes before the lines that link to it.
    let paste_at = out
        .iter()
        .position(|a| matches!(a, Action::Paste { .. }))
        .unwrap();
    let first_link = out
        .iter()
        .position(|a| matches!(a, Action::Bridged(m) if m.text.contains("/paste/")))
        .unwrap();
    assert!(paste_at < first_link);
    assert_eq!(to(&out, &console()).len(), 3);
    // Paste IDs differ each time.
    let again = b.relay(&msg(mx(), "Bob", text), t0());
    assert!(
        !again
            .iter()
            .any(|a| matches!(a, Action::Paste { id: i, .. } if i == id))
    );
}

#[test]
fn long_lines_split_on_words_within_the_budget() {
    let mut b = bridges();
    let word = "word ";
    let text = word.repeat(150); // 750 bytes
    let out = b.relay(&msg(mx(), "Bob", &text), t0());
    let lines = to(&out, &irc());
    assert_eq!(lines.len(), 2);
    let budget = irc_text::relay_budget(9, 10, "#sig");
    for l in &lines {
        assert!(l.len() <= budget, "{} > {budget}", l.len());
        assert!(l.starts_with("<B\u{200B}ob> word"));
        assert!(l.ends_with("word"));
    }
}

#[test]
fn mass_mentions_are_defused() {
    let mut b = bridges();
    for n in ["ann", "ben", "cat", "dan"] {
        b.relay(&msg(irc(), n, "hi"), t0());
    }
    let out = b.relay(&msg(mx(), "Spammer", "ann ben cat dan: free stuff"), t0());
    assert_eq!(
        to(&out, &irc()),
        ["<S\u{200B}pammer> a\u{200B}nn b\u{200B}en c\u{200B}at d\u{200B}an: free stuff"]
    );
    // Up to max_mentions is a normal conversation.
    let out = b.relay(&msg(mx(), "Friend", "ann, ben: lunch?"), t0());
    assert_eq!(to(&out, &irc()), ["<F\u{200B}riend> ann, ben: lunch?"]);
}

#[test]
fn the_bots_answers_are_copied_to_every_other_room_once() {
    let b = bridges();
    let answer = vec![
        Action::reply(&irc(), "pong"),
        // Another part already says the same in the console room: no second copy there.
        Action::reply(&console(), "pong"),
    ];
    let copies = b.fan_out(&answer, t0());
    assert_eq!(
        sent(&copies),
        [
            ("fedora/#sig:example.org".into(), "pong".into()),
            ("oftc/#sig".into(), "pong".into()),
        ]
    );
    for c in &copies {
        let Action::Bridged(m) = c else { panic!() };
        assert_eq!(m.kind, SendKind::Reply);
    }
    assert!(
        b.fan_out(&[Action::reply(&RoomRef::new("x", "#y"), "hi")], t0())
            .is_empty()
    );
}

fn rich(text: &str, html: Option<&str>, id: &str, reply_to: Option<&str>) -> RichMessage {
    let mut message = msg(mx(), "Bob", text);
    message.id = Some(id.into());
    RichMessage {
        message,
        html: html.map(str::to_owned),
        reply_to: reply_to.map(str::to_owned),
        encrypted: false,
    }
}

fn bob_did(what: Activity) -> RoomActivity {
    RoomActivity {
        room: mx(),
        sender: Sender {
            nick: "Bob".into(),
            principal: Some(Principal::new("fedora", "@bob:example.org")),
            mask: None,
        },
        id: Some("$act".into()),
        sent_at: None,
        what,
        encrypted: false,
    }
}

#[test]
fn formatted_matrix_messages_arrive_as_mirc_and_long_code_as_a_paste() {
    let mut b = bridges();
    let out = b.relay_rich(
        &rich(
            "**hi** and code",
            Some(
                "<strong>hi</strong> <em>there</em><pre><code>fn a() {}\nfn b() {}\n</code></pre>",
            ),
            "$1",
            None,
        ),
        t0(),
    );
    let lines = to(&out, &irc());
    assert_eq!(lines[0], "<B\u{200B}ob> \x02hi\x02 \x1dthere\x1d");
    let paste = out.iter().find_map(|a| match a {
        Action::Paste { id, text } => Some((id.clone(), text.clone())),
        _ => None,
    });
    let (id, text) = paste.expect("a paste for the code block");
    assert_eq!(text, "fn a() {}\nfn b() {}");
    assert_eq!(
        lines[1],
        format!("<B\u{200B}ob> (code: https://bot.example.org/paste/{id})")
    );
    // Another Matrix room would get the HTML itself (here: none but the source).
    assert!(to(&out, &mx()).is_empty());
}

#[test]
fn matrix_pills_become_display_names_on_irc() {
    let mut b = bridges();
    let out = b.relay_rich(
        &rich(
            "Alice Smith: look",
            Some(r#"<a href="https://matrix.to/#/@alice:example.org">Alice Smith</a>: look"#),
            "$1",
            None,
        ),
        t0(),
    );
    assert_eq!(to(&out, &irc()), ["<B\u{200B}ob> Alice Smith: look"]);
}

#[test]
fn irc_mentions_of_matrix_members_become_pills_with_m_mentions() {
    let mut b = bridges();
    b.set_room_members(
        &mx(),
        vec![
            Member {
                id: Some("@alice:example.org".into()),
                name: "Alice Smith".into(),
            },
            Member {
                id: Some("@al:example.org".into()),
                name: "Al <x>".into(),
            },
        ],
    );
    let out = b.relay(
        &msg(
            irc(),
            "dave",
            "Alice Smith: ping, also al and alice; not malice or al2",
        ),
        t0(),
    );
    let m = out
        .iter()
        .find_map(|a| match a {
            Action::Bridged(m) if m.room == mx() => Some(m.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        m.text,
        "dave: Alice Smith: ping, also al and alice; not malice or al2"
    );
    let alice = r#"<a href="https://matrix.to/#/@alice:example.org">Alice Smith</a>"#;
    let al = r#"<a href="https://matrix.to/#/@al:example.org">Al x</a>"#;
    assert_eq!(
        m.html.as_deref().unwrap(),
        format!("<b>dave</b>: {alice}: ping, also {al} and {alice}; not malice or al2")
    );
    assert_eq!(m.mentions, ["@alice:example.org", "@al:example.org"]);
    // The IRC side is left alone.
    assert!(
        to(&out, &oftc())[0].ends_with("Alice Smith: ping, also al and alice; not malice or al2")
    );
    // Matrix users' own messages get no pills from the bridge, and the sender's name none.
    let out = b.relay(&msg(irc(), "alice", "hello"), t0());
    let m = out
        .iter()
        .find_map(|a| match a {
            Action::Bridged(m) if m.room == mx() => Some(m.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(m.html.as_deref(), Some("<b>alice</b>: hello"));
    assert!(m.mentions.is_empty());
}

#[test]
fn mass_pills_are_not_made() {
    let mut b = bridges();
    let members = (0..5)
        .map(|i| Member {
            id: Some(format!("@user{i}:example.org")),
            name: format!("user{i}"),
        })
        .collect();
    b.set_room_members(&mx(), members);
    let out = b.relay(&msg(irc(), "spam", "user0 user1 user2 user3 user4"), t0());
    let Some(Action::Bridged(m)) = out
        .iter()
        .find(|a| matches!(a, Action::Bridged(m) if m.room == mx()))
    else {
        panic!()
    };
    assert!(m.mentions.is_empty());
    assert!(!m.html.as_deref().unwrap().contains("<a "));
}

#[test]
fn a_matrix_name_equal_to_another_members_name_shows_the_user_id() {
    let mut b = bridges();
    b.set_room_members(
        &mx(),
        vec![
            Member {
                id: Some("@bob:example.org".into()),
                name: "Bob".into(),
            },
            Member {
                id: Some("@impostor:example.org".into()),
                name: "bob".into(),
            },
        ],
    );
    // Bob has not spoken yet, but is in the room: the impostor is told apart at once.
    let mut m = msg(mx(), "bob", "send me your password");
    m.sender.principal = Some(Principal::new("fedora", "@impostor:example.org"));
    assert_eq!(
        to(&b.relay(&m, t0()), &irc()),
        ["<b\u{200B}ob (@impostor:example.org)> send me your password"]
    );
}

#[test]
fn small_edits_are_substitutions_larger_ones_the_new_text() {
    let mut b = bridges();
    b.relay_rich(&rich("the bulid is broken again", None, "$1", None), t0());
    let edit = |of: &str, text: &str| {
        bob_did(Activity::Edit {
            of: of.into(),
            text: text.into(),
            html: None,
        })
    };
    let out = b.relay_activity(&edit("$1", "the build is broken again"), t0());
    assert_eq!(to(&out, &irc()), ["<B\u{200B}ob> s/bulid/build/"]);
    // The next edit compares with the edited text.
    let out = b.relay_activity(&edit("$1", "all fine now, sorry"), t0());
    assert_eq!(to(&out, &irc()), ["<B\u{200B}ob> * all fine now, sorry"]);
    // An edit of a message not remembered: the new text.
    let out = b.relay_activity(&edit("$unknown", "hello"), t0());
    assert_eq!(to(&out, &irc()), ["<B\u{200B}ob> * hello"]);
}

#[test]
fn edit_modes_full_and_ignore() {
    let mut b = bridges();
    b.settings.bridges[0].matrix.edits = EditMode::Full;
    b.relay_rich(&rich("teh cat", None, "$1", None), t0());
    let edit = bob_did(Activity::Edit {
        of: "$1".into(),
        text: "the cat".into(),
        html: None,
    });
    assert_eq!(
        to(&b.relay_activity(&edit, t0()), &irc()),
        ["<B\u{200B}ob> * the cat"]
    );
    b.settings.bridges[0].matrix.edits = EditMode::Ignore;
    assert!(b.relay_activity(&edit, t0()).is_empty());
}

#[test]
fn substitution_cases() {
    assert_eq!(
        substitution("hello wrold", "hello world").as_deref(),
        Some("s/wrold/world/")
    );
    // Insertions, several lines, ambiguous or slashed parts, big changes: the new text.
    assert_eq!(substitution("hello world", "hello big world"), None);
    assert_eq!(substitution("a b", "a c\nd"), None);
    assert_eq!(substitution("ab ab x", "ab ac x"), None);
    assert_eq!(substitution("see a/b here", "see a/c here"), None);
    assert_eq!(substitution("short", "other"), None);
    assert_eq!(substitution("same", "same"), None);
}

#[test]
fn replies_name_the_original_sender_and_quote_it_when_not_recent() {
    let mut b = bridges();
    let mut first = msg(mx(), "alice", "is the mirror up?");
    first.id = Some("$q".into());
    b.relay(&first, t0());
    let out = b.relay_rich(&rich("yes", None, "$r1", Some("$q")), t0());
    assert_eq!(to(&out, &oftc()), ["<B\u{200B}ob> alice: yes"]);
    // Four messages later, or much later: with a snippet of what is answered.
    for i in 0..4 {
        let mut m = msg(mx(), "carol", &format!("chatter {i}"));
        m.id = Some(format!("$c{i}"));
        b.relay(&m, t0());
    }
    let out = b.relay_rich(&rich("it is", None, "$r2", Some("$q")), t0());
    assert_eq!(
        to(&out, &oftc()),
        ["<B\u{200B}ob> alice: it is (re \"is the mirror up?\")"]
    );
    let later = t0() + chrono::TimeDelta::minutes(30);
    let out = b.relay_rich(&rich("still", None, "$r3", Some("$r2")), later);
    assert_eq!(
        to(&out, &oftc()),
        ["<B\u{200B}ob> Bob: still (re \"it is\")"]
    );
    // A reply to something unknown is relayed as it is.
    let out = b.relay_rich(&rich("what?", None, "$r4", Some("$nope")), t0());
    assert_eq!(to(&out, &oftc()), ["<B\u{200B}ob> what?"]);
}

#[test]
fn replies_and_reactions_to_relayed_irc_lines_name_their_irc_author() {
    let mut b = bridges();
    // dave's line was written to the Matrix room as `$m1`.
    b.remember_delivered(&mx(), "$m1", "dave: is the mirror up?", t0());
    let out = b.relay_rich(&rich("yes", None, "$r", Some("$m1")), t0());
    assert_eq!(to(&out, &irc()), ["<B\u{200B}ob> dave: yes"]);
    let react = bob_did(Activity::Reaction {
        to: "$m1".into(),
        key: "👍".into(),
    });
    assert_eq!(
        to(&b.relay_activity(&react, t0()), &irc()),
        ["* B\u{200B}ob reacted 👍 to \"is the mirror up?\""]
    );
    // Rooms outside bridges are not remembered.
    b.remember_delivered(&RoomRef::new("fedora", "!other"), "$x", "a: b", t0());
    assert!(b.recall(&RoomRef::new("fedora", "!other"), "$x").is_none());
}

#[test]
fn reactions_and_redactions_are_notices_when_enabled() {
    let mut b = bridges();
    b.relay_rich(
        &rich(
            "a rather long message that will be cut in the quote",
            None,
            "$1",
            None,
        ),
        t0(),
    );
    let react = bob_did(Activity::Reaction {
        to: "$1".into(),
        key: "👍".into(),
    });
    assert_eq!(
        to(&b.relay_activity(&react, t0()), &irc()),
        ["* B\u{200B}ob reacted 👍 to \"a rather long message that will be cut…\""]
    );
    let redact = bob_did(Activity::Redaction {
        of: "$1".into(),
        reason: None,
    });
    assert_eq!(
        to(&b.relay_activity(&redact, t0()), &irc()),
        ["* B\u{200B}ob deleted \"a rather long message that will be cut…\""]
    );
    // Removing something the other side never saw says nothing.
    let unknown = bob_did(Activity::Redaction {
        of: "$x".into(),
        reason: None,
    });
    assert!(b.relay_activity(&unknown, t0()).is_empty());
    b.settings.bridges[0].matrix.reactions = false;
    b.settings.bridges[0].matrix.redactions = false;
    assert!(b.relay_activity(&react, t0()).is_empty());
    assert!(b.relay_activity(&redact, t0()).is_empty());
}

#[test]
fn media_becomes_a_link_to_the_bots_web_site() {
    let mut b = bridges();
    let media = |url: &str, encrypted: bool| {
        bob_did(Activity::Media(Media {
            kind: crate::core::MediaKind::Image,
            body: "cat.png".into(),
            url: url.into(),
            mimetype: Some("image/png".into()),
            size: Some(120 * 1024),
            encrypted,
        }))
    };
    let out = b.relay_activity(&media("mxc://example.org/abc", false), t0());
    let Some(Action::MediaLink {
        id,
        network,
        uri,
        mimetype,
        ..
    }) = out.first()
    else {
        panic!("the link is stored first: {out:?}")
    };
    assert_eq!(
        (network.as_str(), uri.as_str(), mimetype.as_deref()),
        ("fedora", "mxc://example.org/abc", Some("image/png"))
    );
    assert_eq!(id.len(), 20);
    assert_eq!(
        to(&out, &irc()),
        [format!(
            "* B\u{200B}ob sent cat.png (120 KB): https://bot.example.org/media/{id}"
        )]
    );
    let out = b.relay_activity(&media("mxc://example.org/abc", true), t0());
    assert!(!out.iter().any(|a| matches!(a, Action::MediaLink { .. })));
    assert_eq!(
        to(&out, &irc()),
        ["* B\u{200B}ob sent cat.png (120 KB) (end-to-end encrypted, not shown here)"]
    );
    assert_eq!(human_size(900), "900 B");
    assert_eq!(human_size(3 * 1024 * 1024 + 400_000), "3.4 MB");
}

#[test]
fn encrypted_rooms_are_relayed_only_when_the_bridge_says_so() {
    let mut b = bridges();
    let mut m = rich("secret", None, "$1", None);
    m.encrypted = true;
    assert!(b.relay_rich(&m, t0()).is_empty());
    let mut react = bob_did(Activity::Reaction {
        to: "$1".into(),
        key: "x".into(),
    });
    react.encrypted = true;
    assert!(b.relay_activity(&react, t0()).is_empty());
    b.settings.bridges[0].matrix.encrypted = true;
    assert_eq!(
        to(&b.relay_rich(&m, t0()), &irc()),
        ["<B\u{200B}ob> secret"]
    );
}

#[test]
fn stale_notice_sums_up() {
    assert_eq!(
        stale_notice(3, Duration::from_secs(600)),
        "3 relayed messages older than 10 min could not be delivered while this network was unreachable, and were dropped"
    );
    assert!(
        stale_notice(1, Duration::from_secs(30)).contains("1 relayed message older than 1 min")
    );
}

proptest! {
    /// Whatever anyone types or calls themselves, every IRC line the bridge makes is one
    /// safe protocol line: no CR, LF, NUL or CTCP, within the budget, with the prefix.
    #[test]
    fn irc_output_is_always_safe(
        nick in "(?s).{0,40}",
        text in "(?s).{0,1500}",
        emote in any::<bool>(),
    ) {
        let mut b = bridges();
        let mut m = msg(mx(), &nick, &text);
        if emote { m.kind = MessageKind::Emote; }
        let out = b.relay(&m, t0());
        let budget = irc_text::relay_budget(9, 10, "#sig");
        let lines = to(&out, &irc());
        prop_assert!(lines.len() <= 3);
        for l in &lines {
            prop_assert!(!l.contains(['\r', '\n', '\0', '\x01']), "{l:?}");
            prop_assert!(l.len() <= budget, "{} > {budget}", l.len());
            let start = if emote { "* " } else { "<" };
            prop_assert!(l.starts_with(start), "{l:?}");
        }
        for a in &out {
            if let Action::Bridged(m) = a
                && let Some(html) = &m.html
            {
                // The only markup is the bridge's own.
                let stripped = html.replace("<b>", "").replace("</b>", "").replace("<br>", "");
                prop_assert!(!stripped.contains('<'), "{html:?}");
            }
        }
    }
}
