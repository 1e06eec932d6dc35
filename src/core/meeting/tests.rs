use super::*;
use crate::core::action::Action;
use crate::core::event::{IncomingMessage, MessageKind};
use crate::core::{Core, CoreSettings, Event, MeetingClaims, Principal, Roles, Sender};
use chrono::{TimeDelta, TimeZone};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 15, 0, 0).unwrap()
}

fn room() -> RoomRef {
    RoomRef::new("libera", "#centos-meeting")
}

fn meeting() -> Meeting {
    let mut m = Meeting::new(room(), "alice", t0(), "!");
    m.add_line("alice", "#startmeeting SIG Weekly", t0(), false);
    m
}

fn settings() -> MeetingSettings {
    MeetingSettings {
        scope: MeetingScope::Rooms(vec![room()]),
        public_url: "https://meetbot.example.org".into(),
        bot_nick: "sigbot".into(),
        prefix: "!".into(),
        display_name_networks: vec![],
        enders: vec![],
        idle_timeout: None,
        keep_lines: true,
    }
}

fn core() -> Core {
    let mut c = Core::new(
        CoreSettings {
            nick: "sigbot".into(),
            prefix: "!".into(),
            roles: Roles::new([]),
            networks: vec!["libera".into()],
            version: "1.0".into(),
        },
        t0(),
    );
    assert!(c.enable_meetings(settings(), vec![], t0()).is_empty());
    c
}

fn say(c: &mut Core, nick: &str, text: &str, secs: i64) -> Vec<Action> {
    c.handle(
        Event::Message(IncomingMessage {
            room: room(),
            sender: Sender {
                nick: nick.into(),
                principal: Some(Principal::new("libera", nick)),
                mask: None,
            },
            kind: MessageKind::Text,
            text: text.into(),
            id: None,
            sent_at: None,
        }),
        t0() + TimeDelta::seconds(secs),
    )
}

fn sent(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn journaled(actions: &[Action]) -> Vec<JournalLine> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::MeetingJournal { line, .. } => Some(line.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn commands_are_found_with_hash_or_prefix_and_unknown_words_are_text() {
    assert_eq!(
        parse_meeting_command("#topic  Roll call ", "!"),
        Some((MeetingCommand::Topic, "Roll call"))
    );
    assert_eq!(
        parse_meeting_command("!TOPIC x", "!"),
        Some((MeetingCommand::Topic, "x"))
    );
    assert_eq!(
        parse_meeting_command("#agree ok", "!"),
        Some((MeetingCommand::Agreed, "ok"))
    );
    assert_eq!(parse_meeting_command("#item blah", "!"), None);
    assert_eq!(parse_meeting_command("#unchar x", "!"), None);
    assert_eq!(parse_meeting_command("#topic: x", "!"), None);
    assert_eq!(parse_meeting_command("proposed #agreed x", "!"), None);
    // The bot's own help keeps working with the prefix; MeetBot's is #help or !halp.
    assert_eq!(parse_meeting_command("!help", "!"), None);
    assert_eq!(
        parse_meeting_command("#help me", "!"),
        Some((MeetingCommand::Help, "me"))
    );
    assert_eq!(
        parse_meeting_command("!halp me", "!"),
        Some((MeetingCommand::Help, "me"))
    );
    for c in MeetingCommand::ALL {
        for n in c.names() {
            assert_eq!(MeetingCommand::lookup(n), Some(c));
        }
    }
}

#[test]
fn start_sets_owner_title_and_name() {
    let m = meeting();
    assert_eq!(m.owner, "alice");
    assert_eq!(m.title.as_deref(), Some("SIG Weekly"));
    assert_eq!(m.name.as_deref(), Some("sig_weekly"));
    assert_eq!(
        m.base_path(),
        "centos-meeting/2026-11-26/sig_weekly.2026-11-26-15.00"
    );
    assert_eq!(m.page_title(), "#centos-meeting: SIG Weekly");
}

#[test]
fn chair_only_commands_are_refused_to_others_with_a_short_reply() {
    let mut m = meeting();
    let out = m.add_line("bob", "#topic Hijack", t0(), false);
    assert_eq!(
        out.replies,
        ["bob: only the chairs can use #topic (chairs: alice)"]
    );
    assert!(m.items.is_empty());
    // Anyone may add info, ideas, actions, links.
    m.add_line("bob", "#info fine", t0(), false);
    assert_eq!(m.items.len(), 1);
    let out = m.add_line("alice", "#chair bob, carol", t0(), false);
    assert_eq!(out.replies, ["Current chairs: alice bob carol"]);
    m.add_line("bob", "#topic Now allowed", t0(), false);
    assert_eq!(m.current_topic.as_deref(), Some("Now allowed"));
    let out = m.add_line("bob", "#unchair alice carol", t0(), false);
    // The owner cannot be unchaired.
    assert_eq!(out.replies, ["Current chairs: alice bob"]);
    let out = m.add_line("carol", "#endmeeting", t0(), false);
    assert!(out.replies[0].starts_with("carol: only the chairs"));
    assert!(m.ended.is_none());
}

#[test]
fn undo_removes_the_last_item_and_says_which() {
    let mut m = meeting();
    let t = t0() + TimeDelta::seconds(37);
    m.add_line("alice", "#action bob to edit #175", t, false);
    let out = m.add_line("alice", "#undo", t, false);
    assert_eq!(
        out.replies,
        ["Removing item from minutes: ACTION by alice at 15:00:37 : bob to edit #175"]
    );
    assert!(m.items.is_empty());
    let out = m.add_line("alice", "#undo", t, false);
    assert_eq!(out.replies, ["alice: there is nothing to undo"]);
}

#[test]
fn actions_are_listed_by_person_as_whole_words_case_insensitively() {
    let mut m = meeting();
    m.add_line("Bob", "hi", t0(), false);
    m.add_line("alice", "#nick carol dave", t0(), false);
    m.add_line(
        "alice",
        "#action BOB and Carol review the docs",
        t0(),
        false,
    );
    m.add_line("alice", "#action bobby writes tests", t0(), false);
    m.add_line("alice", "#action someone fixes CI", t0(), false);
    let (by, un) = m.actions_by_person();
    let by: Vec<(String, Vec<&str>)> = by
        .into_iter()
        .map(|(n, items)| (n, items.iter().map(|i| i.text.as_str()).collect()))
        .collect();
    assert_eq!(
        by,
        vec![
            ("Bob".to_owned(), vec!["BOB and Carol review the docs"]),
            ("carol".to_owned(), vec!["BOB and Carol review the docs"]),
        ]
    );
    let un: Vec<&str> = un.iter().map(|i| i.text.as_str()).collect();
    assert_eq!(un, ["bobby writes tests", "someone fixes CI"]);
}

#[test]
fn a_line_beginning_with_a_url_is_a_link_and_a_line_with_one_later_is_not() {
    let mut m = meeting();
    m.add_line("bob", "https://pagure.io/x see this", t0(), false);
    m.add_line("bob", "see https://pagure.io/y", t0(), false);
    assert_eq!(m.items.len(), 1);
    assert_eq!(m.items[0].kind, ItemKind::Link);
    assert_eq!(m.items[0].text, "https://pagure.io/x see this");
    assert_eq!(m.items[0].line, 2);
}

#[test]
fn attendees_count_lines_and_nick_adds_people_who_said_nothing() {
    let mut m = meeting();
    m.add_line("bob", "hello", t0(), false);
    m.add_line("bob", "waves", t0(), true);
    m.add_line("alice", "#nick dave", t0(), false);
    let a: Vec<(String, usize)> = m
        .attendees()
        .into_iter()
        .map(|a| (a.nick, a.lines))
        .collect();
    assert_eq!(
        a,
        vec![("alice".into(), 2), ("bob".into(), 2), ("dave".into(), 0)]
    );
}

#[test]
fn commands_without_argument_get_a_usage_line_and_add_nothing() {
    let mut m = meeting();
    for (line, usage) in [
        ("#info", "usage: #info <text>"),
        ("#topic   ", "usage: #topic <topic>"),
        ("#action", "usage: #action <nick> <what they will do>"),
        ("#nick", "usage: #nick <nick> [<nick>...]"),
        ("#meetingname ../..", "usage: #meetingname <name>"),
    ] {
        let out = m.add_line("alice", line, t0(), false);
        assert_eq!(out.replies, [usage], "{line}");
    }
    assert!(m.items.is_empty());
}

#[test]
fn names_never_leave_the_meetings_directory() {
    assert_eq!(sanitize_name("../../etc/passwd"), Some("etcpasswd".into()));
    assert_eq!(sanitize_name(".hidden"), Some("hidden".into()));
    assert_eq!(sanitize_name("a\0b\x07c/d"), Some("abcd".into()));
    assert_eq!(
        sanitize_name("Fedora Magazine  Board"),
        Some("fedora_magazine_board".into())
    );
    assert_eq!(sanitize_name("..."), None);
    assert_eq!(sanitize_name(&"x".repeat(500)).unwrap().len(), 100);
    assert_eq!(
        room_slug(&RoomRef::new("libera", "#CentOS-Meeting")),
        "centos-meeting"
    );
    assert_eq!(
        room_slug(&RoomRef::new(
            "fedora",
            "#centos-hyperscale:fedoraproject.org"
        )),
        "centos-hyperscale_matrix_fedoraproject-org"
    );
    assert_eq!(room_slug(&RoomRef::new("x", "#../..")), "room");
}

#[test]
fn meetingname_renames_and_reports_the_stale_files_of_an_earlier_save() {
    let mut m = meeting();
    let out = m.add_line("alice", "#save", t0(), false);
    assert_eq!(out.effect, Some(Effect::Save));
    assert_eq!(out.stale_base, None);
    m.add_line("alice", "#meetingname Other Name", t0(), false);
    let out = m.add_line("alice", "#endmeeting", t0(), false);
    assert_eq!(out.effect, Some(Effect::End));
    assert_eq!(
        out.stale_base.as_deref(),
        Some("centos-meeting/2026-11-26/sig_weekly.2026-11-26-15.00")
    );
    assert_eq!(
        m.base_path(),
        "centos-meeting/2026-11-26/other_name.2026-11-26-15.00"
    );
}

#[test]
fn a_huge_line_and_html_are_logged_as_they_are() {
    let mut m = meeting();
    let big = "<script>".repeat(12_500);
    m.add_line("bob", &big, t0(), false);
    assert_eq!(m.lines[1].text.len(), 100_000);
    m.add_line(
        "bob",
        "\x02bold\x02 \x0304,12red\x03 tab\there\x01",
        t0(),
        false,
    );
    assert_eq!(m.lines[2].text, "bold red tab here");
}

#[test]
fn the_core_runs_a_meeting_and_logs_the_bots_own_replies() {
    let mut c = core();
    let out = say(&mut c, "alice", "#startmeeting SIG", 0);
    let texts = sent(&out);
    assert!(
        texts[0].starts_with("Meeting started Thu Nov 26 15:00:00 2026 UTC. The chair is alice."),
        "{texts:?}"
    );
    // The line itself, then each reply, is journaled before it is sent.
    let j = journaled(&out);
    assert_eq!(j[0].text, "#startmeeting SIG");
    assert!(!j[0].bot);
    assert_eq!(j.len(), 1 + texts.len());
    assert!(j[1..].iter().all(|l| l.bot && l.nick == "sigbot"));
    assert!(matches!(out[0], Action::MeetingJournal { .. }));

    // Built-in commands keep working during a meeting, and their answers are logged too.
    let out = say(&mut c, "bob", "!ping", 5);
    assert_eq!(sent(&out), ["pong"]);
    assert_eq!(journaled(&out).len(), 2);
    // Meeting commands are not taken for bot commands.
    let out = say(&mut c, "alice", "!topic Budget", 6);
    assert!(sent(&out).is_empty());
    let out = say(&mut c, "alice", "#endmeeting", 60);
    let texts = sent(&out);
    assert_eq!(texts[0], "Meeting ended Thu Nov 26 15:01:00 2026 UTC.");
    assert_eq!(
        texts[1],
        "Minutes:        https://meetbot.example.org/meetings/centos-meeting/2026-11-26/sig.2026-11-26-15.00.html"
    );
    let files: Vec<&Meeting> = out
        .iter()
        .filter_map(|a| match a {
            Action::MeetingFiles {
                meeting,
                finished: true,
                ..
            } => Some(&**meeting),
            _ => None,
        })
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].items.len(), 1);
    // Lines after the end are not journaled, and nothing is running any more.
    assert!(journaled(&say(&mut c, "bob", "bye", 61)).is_empty());
    assert_eq!(c.meetings().running().count(), 0);
}

#[test]
fn lines_outside_a_meeting_or_outside_meeting_rooms_are_not_journaled() {
    let mut c = core();
    assert!(say(&mut c, "bob", "hello", 0).is_empty());
    assert!(say(&mut c, "bob", "#topic x", 0).is_empty());
    let out = c.handle(
        Event::Message(IncomingMessage {
            room: RoomRef::new("libera", "#other"),
            sender: Sender {
                nick: "bob".into(),
                principal: None,
                mask: None,
            },
            kind: MessageKind::Text,
            text: "#startmeeting".into(),
            id: None,
            sent_at: None,
        }),
        t0(),
    );
    assert!(out.is_empty());
}

#[test]
fn lurk_silences_meeting_replies_but_keeps_minutes() {
    let mut c = core();
    say(&mut c, "alice", "#startmeeting", 0);
    assert!(sent(&say(&mut c, "alice", "#lurk", 1)).is_empty());
    assert!(sent(&say(&mut c, "alice", "#chair bob", 2)).is_empty());
    say(&mut c, "alice", "#unlurk", 3);
    assert_eq!(
        sent(&say(&mut c, "alice", "#chair carol", 4)),
        ["Current chairs: alice bob carol"]
    );
}

#[test]
fn a_journal_replays_into_the_same_meeting_and_resumes_it() {
    let mut c = core();
    let mut journal = Vec::new();
    for (i, line) in [
        "#startmeeting Weekly",
        "#topic One",
        "#info first",
        "hello https://x.org",
        "#action bob does it",
        "#undo",
        "#chair bob",
        "#meetingname weekly-sig",
    ]
    .iter()
    .enumerate()
    {
        journal.extend(journaled(&say(&mut c, "alice", line, i as i64)));
    }
    let live = c.meetings().running().next().unwrap().clone();
    let key = MeetingKey {
        room: room(),
        started: t0(),
        slug: "centos-meeting".into(),
        seq: 1,
    };

    let mut c2 = Core::new(
        CoreSettings {
            nick: "sigbot".into(),
            prefix: "!".into(),
            roles: Roles::new([]),
            networks: vec![],
            version: "1".into(),
        },
        t0(),
    );
    let out = c2.enable_meetings(settings(), vec![(key, journal)], t0() + TimeDelta::hours(1));
    let texts = sent(&out);
    assert_eq!(texts.len(), 1);
    assert!(texts[0].contains("is resumed"), "{texts:?}");
    let resumed = c2.meetings().running().next().unwrap();
    // Same meeting, plus the notice the bot just said.
    assert_eq!(resumed.items, live.items);
    assert_eq!(resumed.chairs, live.chairs);
    assert_eq!(resumed.name, live.name);
    assert_eq!(resumed.lines[..live.lines.len()], live.lines[..]);
    assert_eq!(resumed.lines.len(), live.lines.len() + 1);
}

#[test]
fn a_journal_that_ended_is_written_out_on_resume() {
    let mut c = core();
    let mut journal = Vec::new();
    for line in ["#startmeeting", "#info x", "#endmeeting"] {
        journal.extend(journaled(&say(&mut c, "alice", line, 0)));
    }
    let mut c2 = core();
    let key = MeetingKey {
        room: room(),
        started: t0(),
        slug: "centos-meeting".into(),
        seq: 1,
    };
    let out = c2.enable_meetings(settings(), vec![(key, journal)], t0());
    assert!(matches!(
        out.as_slice(),
        [Action::MeetingFiles { finished: true, .. }]
    ));
    assert_eq!(c2.meetings().running().count(), 0);
}

#[test]
fn commands_lists_every_command() {
    let mut m = meeting();
    let out = m.add_line("bob", "#commands", t0(), false);
    for c in MeetingCommand::ALL {
        assert!(out.replies[0].contains(&format!("#{}", c.names()[0])));
    }
}

#[test]
fn namesakes_from_matrix_are_two_attendees_named_and_chaired_by_user_id() {
    // The Matrix adapter gives two members who share the display name "Alice" these nicks.
    let (a1, a2) = ("Alice (@alice:example.org)", "Alice (@alice:other.net)");
    assert_eq!(user_id_of(a1), Some("@alice:example.org"));
    assert_eq!(user_id_of("Alice"), None);
    assert_eq!(user_id_of("bob (not an id)"), None);

    // Chaired by carol, whose nick is no part of the others' names.
    let mut m = Meeting::new(room(), "carol", t0(), "!");
    m.add_line("carol", "#startmeeting Namesakes", t0(), false);
    m.add_line(a1, "hello", t0(), false);
    m.add_line(a2, "hello too", t0(), false);
    m.add_line(a2, "and again", t0(), false);
    let people: Vec<(String, usize)> = m
        .attendees()
        .into_iter()
        .map(|a| (a.nick, a.lines))
        .collect();
    assert!(people.contains(&(a1.to_owned(), 1)), "{people:?}");
    assert!(people.contains(&(a2.to_owned(), 2)), "{people:?}");

    // Not a chair until made one by user ID; then chair-only commands work.
    let out = m.add_line(a2, "#topic Hers", t0(), false);
    assert_eq!(out.replies.len(), 1, "refused: {:?}", out.replies);
    m.add_line("carol", "#chair @alice:other.net", t0(), false);
    m.add_line(a2, "#topic Hers", t0(), false);
    assert_eq!(m.current_topic.as_deref(), Some("Hers"));
    assert!(!m.is_chair(a1));

    // Actions name a person by the whole disambiguated name or by user ID alone; the bare
    // shared display name names neither of them.
    m.add_line(
        "carol",
        "#action @alice:example.org reviews the patch",
        t0(),
        false,
    );
    m.add_line(
        "carol",
        "#action Alice (@alice:other.net) writes the docs",
        t0(),
        false,
    );
    m.add_line("carol", "#action Alice buys cake", t0(), false);
    let (by_person, unassigned) = m.actions_by_person();
    let by_person: Vec<(String, Vec<String>)> = by_person
        .into_iter()
        .map(|(n, items)| (n, items.into_iter().map(|i| i.text.clone()).collect()))
        .collect();
    assert!(
        by_person.contains(&(
            a1.to_owned(),
            vec!["@alice:example.org reviews the patch".to_owned()]
        )),
        "{by_person:?}"
    );
    assert!(
        by_person.contains(&(
            a2.to_owned(),
            vec!["Alice (@alice:other.net) writes the docs".to_owned()]
        )),
        "{by_person:?}"
    );
    let unassigned: Vec<&str> = unassigned.iter().map(|i| i.text.as_str()).collect();
    assert_eq!(unassigned, ["Alice buys cake"]);
}

#[test]
fn a_nick_inside_a_user_ids_server_name_is_not_named_there() {
    assert!(!mentions("@alice2:sigbot.test writes the docs", "sigbot"));
    assert!(!mentions("ask @bob:fedora.im", "fedora"));
    assert!(!mentions("Alice (@alice:sigbot.test) reviews", "sigbot"));
    // The user ID's local part, or the nick on its own, still name someone.
    assert!(mentions("@alice2:sigbot.test writes the docs", "alice2"));
    assert!(mentions("sigbot: ask @bob:fedora.im", "sigbot"));
    assert!(mentions("@bob please", "bob"));
}

fn message(room: &RoomRef, nick: &str, principal: Option<Principal>, text: &str) -> Event {
    Event::Message(IncomingMessage {
        room: room.clone(),
        sender: Sender {
            nick: nick.into(),
            principal,
            mask: None,
        },
        kind: MessageKind::Text,
        text: text.into(),
        id: None,
        sent_at: None,
    })
}

fn files(actions: &[Action]) -> Vec<(String, bool)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::MeetingFiles {
                meeting, finished, ..
            } => Some((meeting.base_path(), *finished)),
            _ => None,
        })
        .collect()
}

fn core_with(settings: MeetingSettings) -> Core {
    let mut c = Core::new(
        CoreSettings {
            nick: "sigbot".into(),
            prefix: "!".into(),
            roles: Roles::new([]),
            networks: vec!["libera".into(), "oftc".into(), "fedora".into()],
            version: "1.0".into(),
        },
        t0(),
    );
    let _ = c.enable_meetings(settings, vec![], t0());
    c
}

fn all_rooms() -> MeetingSettings {
    let mut s = MeetingSettings::new(MeetingScope::All, "http://m", "sigbot", "!");
    s.display_name_networks = vec!["fedora".into()];
    s.enders = vec![Principal::new("libera", "boss")];
    s.idle_timeout = Some(std::time::Duration::from_secs(3 * 3600));
    s
}

/// Runs one short meeting in `room`, started by `nick`, and returns where its files went.
fn short_meeting(c: &mut Core, room: &RoomRef, nick: &str, name: &str) -> String {
    let p = Some(Principal::new(&room.network, nick));
    c.handle(
        message(room, nick, p.clone(), &format!("#startmeeting {name}")),
        t0(),
    );
    let out = c.handle(message(room, nick, p, "#endmeeting"), t0());
    let f = files(&out);
    assert_eq!(f.len(), 1, "{out:?}");
    f[0].0.clone()
}

#[test]
fn meetings_in_rooms_with_one_slug_or_in_one_minute_never_share_files() {
    let mut c = core_with(all_rooms());
    let x = short_meeting(&mut c, &RoomRef::new("libera", "#x"), "alice", "same");
    let xx = short_meeting(&mut c, &RoomRef::new("libera", "##x"), "bob", "same");
    let other = short_meeting(&mut c, &RoomRef::new("oftc", "#x"), "carol", "same");
    let again = short_meeting(&mut c, &RoomRef::new("libera", "#x"), "alice", "same");
    assert_eq!(x, "x/2026-11-26/same.2026-11-26-15.00");
    assert_eq!(xx, "x-2/2026-11-26/same.2026-11-26-15.00");
    assert_eq!(other, "x-3/2026-11-26/same.2026-11-26-15.00");
    // The same room in the same minute: a number after the time.
    assert_eq!(again, "x/2026-11-26/same.2026-11-26-15.00-2");
    // A room keeps its directory.
    let later = c.handle(
        message(&RoomRef::new("libera", "##x"), "bob", None, "#startmeeting"),
        t0() + TimeDelta::minutes(5),
    );
    let key = match &later[0] {
        Action::MeetingJournal { key, .. } => key.clone(),
        a => panic!("{a:?}"),
    };
    assert_eq!((key.slug.as_str(), key.seq), ("x-2", 1));
}

#[test]
fn directories_of_earlier_runs_stay_theirs() {
    let mut c = core_with(all_rooms());
    c.claim_meeting_files(MeetingClaims {
        rooms: vec![
            (RoomRef::new("oftc", "#x"), "x".into()),
            // Two rooms that shared a directory before: the older keeps it.
            (RoomRef::new("libera", "##x"), "x".into()),
        ],
        recent: vec![("x".into(), t0(), 1)],
        sources: vec![],
    });
    let a = short_meeting(&mut c, &RoomRef::new("oftc", "#x"), "carol", "n");
    assert_eq!(a, "x/2026-11-26/n.2026-11-26-15.00-2");
    let b = short_meeting(&mut c, &RoomRef::new("libera", "##x"), "bob", "n");
    assert_eq!(b, "x-2/2026-11-26/n.2026-11-26-15.00");
}

#[test]
fn with_all_rooms_a_private_query_holds_no_meeting() {
    let mut c = core_with(all_rooms());
    let query = RoomRef::new("libera", "x");
    let out = c.handle(message(&query, "x", None, "#startmeeting"), t0());
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(c.meetings().running().count(), 0);
    assert!(MeetingScope::Rooms(vec![query.clone()]).contains(&query));
}

#[test]
fn a_matrix_display_name_never_makes_a_chair() {
    let mut c = core_with(all_rooms());
    let irc = RoomRef::new("libera", "#sig");
    let matrix = RoomRef::new("fedora", "#sig:fedora.im");
    // One meeting for both rooms, as a bridge would make it.
    c.meetings.link_rooms(&[vec![irc.clone(), matrix.clone()]]);
    let alice = Some(Principal::new("libera", "alice"));
    c.handle(message(&irc, "alice", alice.clone(), "#startmeeting"), t0());
    c.handle(
        message(&irc, "alice", alice, "#chair @chair:fedora.im"),
        t0(),
    );
    // Named like the IRC owner, or like the chaired Matrix user: refused.
    for name in ["alice", "Mallory (@chair:fedora.im)"] {
        let mallory = Some(Principal::new("fedora", "@mallory:fedora.im"));
        let out = c.handle(message(&matrix, name, mallory.clone(), "#topic mine"), t0());
        assert!(
            sent(&out)[0].contains("only the chairs can use #topic"),
            "{name}: {out:?}"
        );
        let out = c.handle(message(&matrix, name, mallory, "#endmeeting"), t0());
        assert!(files(&out).is_empty(), "{name} ended it: {out:?}");
    }
    // The chaired user, whatever they are called.
    let chair = Some(Principal::new("fedora", "@chair:fedora.im"));
    c.handle(message(&matrix, "Anything", chair, "#topic theirs"), t0());
    let m = c.meetings().running().next().unwrap();
    assert_eq!(m.current_topic.as_deref(), Some("theirs"));
}

#[test]
fn a_chair_named_by_nick_is_bound_to_the_first_account_that_answers_to_it() {
    let mut c = core_with(all_rooms());
    let irc = RoomRef::new("libera", "#sig");
    let alice = Some(Principal::new("libera", "alice"));
    c.handle(message(&irc, "alice", alice.clone(), "#startmeeting"), t0());
    c.handle(message(&irc, "alice", alice, "#chair bob"), t0());
    let bob = Some(Principal::new("libera", "bob"));
    c.handle(message(&irc, "bob", bob, "#topic bob's"), t0());
    // Someone else with that nick afterwards (bob left; another account took the nick).
    let other = Some(Principal::new("libera", "notbob"));
    let out = c.handle(message(&irc, "bob", other, "#topic other"), t0());
    assert!(sent(&out)[0].contains("only the chairs"), "{out:?}");
    let m = c.meetings().running().next().unwrap();
    assert_eq!(m.current_topic.as_deref(), Some("bob's"));
}

#[test]
fn an_admin_or_chair_role_holder_ends_anyones_meeting() {
    let mut c = core_with(all_rooms());
    let irc = RoomRef::new("libera", "#sig");
    c.handle(
        message(
            &irc,
            "squatter",
            Some(Principal::new("libera", "sq")),
            "#startmeeting mine",
        ),
        t0(),
    );
    // Other chair-only commands stay the chairs'.
    let boss = Some(Principal::new("libera", "boss"));
    let out = c.handle(message(&irc, "boss", boss.clone(), "#topic x"), t0());
    assert!(sent(&out)[0].contains("only the chairs"));
    let out = c.handle(message(&irc, "boss", boss, "#endmeeting"), t0());
    assert_eq!(
        files(&out),
        [("sig/2026-11-26/mine.2026-11-26-15.00".to_owned(), true)]
    );
    assert!(sent(&out).iter().any(|t| t.starts_with("Meeting ended")));
}

#[test]
fn an_idle_meeting_is_ended_with_its_reason_in_the_log_and_the_room() {
    let mut s = all_rooms();
    s.idle_timeout = Some(std::time::Duration::from_secs(600));
    let mut c = core_with(s.clone());
    let irc = RoomRef::new("libera", "#sig");
    let alice = Some(Principal::new("libera", "alice"));
    let mut journal =
        journaled(&c.handle(message(&irc, "alice", alice.clone(), "#startmeeting"), t0()));
    // The bot's own words do not keep a meeting going.
    let t = |secs| t0() + TimeDelta::seconds(secs);
    journal.extend(journaled(
        &c.handle(message(&irc, "alice", alice, "#info x"), t(300)),
    ));
    assert!(c.handle(Event::Tick, t(899)).is_empty());
    let out = c.handle(Event::Tick, t(900));
    let said = sent(&out);
    assert!(
        said[0].starts_with(
            "Ending the meeting: nobody has said anything since 2026-11-26 15:05:00 UTC (10m"
        ),
        "{said:?}"
    );
    assert!(said.iter().any(|l| l.starts_with("Meeting ended")));
    assert_eq!(files(&out).len(), 1);
    let Some(Action::MeetingFiles { meeting, .. }) = out
        .iter()
        .find(|a| matches!(a, Action::MeetingFiles { .. }))
    else {
        unreachable!()
    };
    assert_eq!(meeting.ended, Some(t(900)));
    assert!(
        meeting
            .lines
            .last()
            .unwrap()
            .text
            .starts_with("Ending the meeting")
    );
    assert!(
        journaled(&out)
            .iter()
            .any(|l| l.bot && l.text.starts_with("Ending"))
    );
    assert_eq!(c.meetings().running().count(), 0);

    // After a restart: a journal already idle is ended at start, not resumed.
    let key = MeetingKey {
        room: irc.clone(),
        started: t0(),
        slug: "sig".into(),
        seq: 1,
    };
    let mut c2 = core_with(MeetingSettings::new(MeetingScope::All, "", "x", "!"));
    let out = c2.enable_meetings(s, vec![(key, journal)], t(3600));
    let said = sent(&out);
    assert!(said[0].starts_with("Ending the meeting"), "{said:?}");
    assert!(!said.iter().any(|l| l.contains("is resumed")));
    assert_eq!(
        files(&out),
        [("sig/2026-11-26/sig.2026-11-26-15.00".to_owned(), true)]
    );
    assert_eq!(c2.meetings().running().count(), 0);
}

#[test]
fn a_message_handled_again_after_a_crash_is_not_acted_on_twice() {
    let mut c = core_with(all_rooms());
    let room = RoomRef::new("fedora", "#sig:fedora.im");
    let alice = Some(Principal::new("fedora", "@alice:fedora.im"));
    let with_id = |text: &str, id: &str| {
        let Event::Message(mut m) = message(&room, "Alice", alice.clone(), text) else {
            unreachable!()
        };
        m.id = Some(id.into());
        Event::Message(m)
    };
    let mut journal = journaled(&c.handle(with_id("#startmeeting", "$1"), t0()));
    journal.extend(journaled(
        &c.handle(with_id("#action bob\n#idea y", "$2"), t0()),
    ));
    let said: Vec<&JournalLine> = journal.iter().filter(|l| !l.bot).collect();
    assert_eq!(said[1].source.as_deref(), Some("fedora/$2#1"));
    assert_eq!(said[2].source.as_deref(), Some("fedora/$2#2"));
    assert_eq!(said[1].principal, alice);
    // The same event again, in this run or after a restart from the journal.
    assert!(journaled(&c.handle(with_id("#action bob\n#idea y", "$2"), t0())).is_empty());
    let key = MeetingKey::of(c.meetings().running().next().unwrap());
    let mut c2 = core_with(MeetingSettings::new(MeetingScope::All, "", "x", "!"));
    c2.enable_meetings(all_rooms(), vec![(key, journal)], t0());
    let out = c2.handle(with_id("#action bob\n#idea y", "$2"), t0());
    assert!(journaled(&out).is_empty(), "{out:?}");
    let m = c2.meetings().running().next().unwrap();
    assert_eq!(m.items.len(), 2);
    // The restarted meeting still knows its owner by user ID.
    c2.handle(with_id("#topic resumed", "$3"), t0());
    assert_eq!(
        c2.meetings()
            .running()
            .next()
            .unwrap()
            .current_topic
            .as_deref(),
        Some("resumed")
    );
}

/// Runs the same meeting with the log kept in memory or only in the journal, and returns
/// the meeting of the `#endmeeting` files action with what was journaled meanwhile.
fn run_meeting(keep_lines: bool) -> (Meeting, Vec<JournalLine>) {
    let mut s = settings();
    s.keep_lines = keep_lines;
    let mut c = core_with(s);
    let mut journal = Vec::new();
    let mut files = None;
    let script = [
        ("alice", "#startmeeting SIG"),
        ("bob", "hello"),
        ("alice", "#topic Budget"),
        ("bob", "!ping"),
        ("bob", "https://example.org/budget"),
        ("alice", "#action bob writes it down"),
        ("alice", "#endmeeting"),
    ];
    for (i, (nick, text)) in script.iter().enumerate() {
        let out = say(&mut c, nick, text, i as i64 * 10);
        journal.extend(journaled(&out));
        if !keep_lines && let Some(m) = c.meetings().running().next() {
            assert!(m.lines.is_empty(), "a running meeting keeps no line");
            assert_eq!(m.line_count(), journal.len());
        }
        for a in out {
            if let Action::MeetingFiles { meeting, .. } = a {
                files = Some(*meeting);
            }
        }
    }
    (files.expect("the files action"), journal)
}

#[test]
fn a_meeting_that_keeps_its_log_in_the_journal_writes_the_same_files() {
    let (kept, _) = run_meeting(true);
    let (mut from_journal, journal) = run_meeting(false);
    assert!(from_journal.lines_in_journal());
    assert!(from_journal.lines.is_empty());
    assert_eq!(from_journal.line_count(), kept.lines.len());
    from_journal.restore_lines(&journal);
    assert_eq!(from_journal.lines, kept.lines);
    // Everything else (items, attendees, chairs) was kept all along.
    assert_eq!(from_journal, kept);
}

fn say_sent(c: &mut Core, nick: &str, text: &str, sent: Option<i64>, now: i64) -> Vec<Action> {
    let secs = |s: i64| t0() + TimeDelta::seconds(s);
    c.handle(
        Event::Message(IncomingMessage {
            room: room(),
            sender: Sender {
                nick: nick.into(),
                principal: Some(Principal::new("libera", nick)),
                mask: None,
            },
            kind: MessageKind::Text,
            text: text.into(),
            id: None,
            sent_at: sent.map(secs),
        }),
        secs(now),
    )
}

#[test]
fn lines_are_logged_at_the_servers_time_in_the_order_they_came() {
    let mut c = core();
    let at = |s: i64| t0() + TimeDelta::seconds(s);
    // Caught up ten minutes late: the lines keep the times they were said at, and the bot's
    // answers come right after the line they answer.
    let out = say_sent(&mut c, "alice", "#startmeeting SIG", Some(10), 600);
    assert!(
        sent(&out)[0].starts_with("Meeting started Thu Nov 26 15:00:10 2026 UTC."),
        "{:?}",
        sent(&out)
    );
    let j = journaled(&out);
    assert!(j.iter().all(|l| l.time == at(10)), "{j:?}");
    let out = say_sent(&mut c, "bob", "hello", Some(20), 600);
    assert_eq!(journaled(&out)[0].time, at(20));
    let out = say_sent(&mut c, "alice", "#topic Budget", Some(30), 601);
    assert!(journaled(&out).iter().all(|l| l.time == at(30)));
    // No server time: the bot's clock.
    let out = say_sent(&mut c, "bob", "live now", None, 602);
    assert_eq!(journaled(&out)[0].time, at(602));
    // A server clock far ahead is not believed; one behind the last line does not reorder.
    let out = say_sent(&mut c, "bob", "from the future", Some(10_000), 603);
    assert_eq!(journaled(&out)[0].time, at(603));
    let out = say_sent(&mut c, "bob", "late echo", Some(40), 604);
    assert_eq!(journaled(&out)[0].time, at(603));
    // A few seconds ahead is skew, and kept.
    let out = say_sent(&mut c, "bob", "slightly ahead", Some(609), 605);
    assert_eq!(journaled(&out)[0].time, at(609));
    let out = say_sent(&mut c, "alice", "#endmeeting", Some(610), 611);
    let j = journaled(&out);
    assert!(j.iter().all(|l| l.time == at(610)), "{j:?}");
    let times: Vec<_> = j.iter().map(|l| l.time).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
}

fn recalls(actions: &[Action]) -> Vec<(MeetingKey, RoomRef, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::RecallSeries { key, room, name } => {
                Some((key.clone(), room.clone(), name.clone()))
            }
            _ => None,
        })
        .collect()
}

fn ended_meeting(lines: &[(&str, &str)]) -> Meeting {
    let mut m = Meeting::new(room(), "alice", t0(), "!");
    for (n, (nick, text)) in lines.iter().enumerate() {
        let at = t0() + TimeDelta::seconds(i64::try_from(n).unwrap());
        m.add_line(nick, text, at, false);
    }
    m.add_raw_line("sigbot", "Meeting started", t0(), false);
    m
}

#[test]
fn a_meetings_recap_has_people_without_the_bot_agreed_items_and_actions_by_person() {
    let m = ended_meeting(&[
        ("alice", "#startmeeting weekly"),
        ("bob", "hello"),
        ("bob", "I can do it"),
        ("alice", "#agreed we ship"),
        ("alice", "#action bob writes the notes"),
        ("alice", "#action bob and alice test it"),
        ("alice", "#action someone buys cake"),
    ]);
    let r = m.recap();
    let people: Vec<(&str, usize)> = r
        .people
        .iter()
        .map(|a| (a.nick.as_str(), a.lines))
        .collect();
    assert_eq!(people, [("alice", 5), ("bob", 2)]);
    assert_eq!(r.agreed, ["we ship"]);
    assert_eq!(
        r.actions,
        [
            PersonActions {
                nick: "alice".into(),
                items: vec!["bob and alice test it".into()]
            },
            PersonActions {
                nick: "bob".into(),
                items: vec![
                    "bob writes the notes".into(),
                    "bob and alice test it".into()
                ]
            },
        ]
    );
    assert_eq!(r.unassigned, ["someone buys cake"]);
    assert_eq!(r.action_count(), 4);
    // It survives the store's JSON.
    let back: Recap = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back, r);
}

fn previous(actions: &[(&str, &[&str])], unassigned: &[&str]) -> PreviousMeeting {
    PreviousMeeting {
        name: "weekly".into(),
        started: t0() - TimeDelta::days(7),
        base_path: "centos-meeting/2026-11-19/weekly.2026-11-19-15.00".into(),
        recap: Recap {
            people: vec![],
            agreed: vec![],
            actions: actions
                .iter()
                .map(|(nick, items)| PersonActions {
                    nick: (*nick).into(),
                    items: items.iter().map(|s| (*s).into()).collect(),
                })
                .collect(),
            unassigned: unassigned.iter().map(|s| (*s).into()).collect(),
        },
    }
}

const PREV_URL: &str =
    "https://meetbot.example.org/meetings/centos-meeting/2026-11-19/weekly.2026-11-19-15.00.html";

#[test]
fn the_start_post_names_the_previous_meeting_and_its_actions_by_person_within_max_lines() {
    let url = "https://meetbot.example.org/";
    let p = previous(&[("alice", &["a1", "a2"]), ("bob", &["b1"])], &["u1"]);
    // Room for everything: the head, one line per person, the unassigned ones.
    assert_eq!(
        start_post(&p, url, 5),
        format!(
            "Previous 'weekly' meeting (2026-11-19 15:00 UTC): 4 action items. Minutes: {PREV_URL}\n\
             ACTION alice: a1; a2\nACTION bob: b1\nACTION UNASSIGNED: u1"
        )
    );
    // Three lines: what does not fit is counted and left to the minutes link.
    assert_eq!(
        start_post(&p, url, 3),
        format!(
            "Previous 'weekly' meeting (2026-11-19 15:00 UTC): 4 action items. Minutes: {PREV_URL}\n\
             ACTION alice: a1; a2\n…and 2 more items in the minutes: {PREV_URL}"
        )
    );
    assert_eq!(start_post(&p, url, 1).lines().count(), 1);
    assert_eq!(
        start_post(&previous(&[], &[]), url, 3),
        format!(
            "Previous 'weekly' meeting (2026-11-19 15:00 UTC): no action items. Minutes: {PREV_URL}"
        )
    );
    // A long line is cut well within an IRC line.
    let long = "x".repeat(1000);
    let p = previous(&[("alice", &[long.as_str()])], &[]);
    let post = start_post(&p, url, 3);
    let line = post.lines().nth(1).unwrap();
    assert!(
        line.len() <= POST_LINE_BYTES && line.ends_with('…'),
        "{line}"
    );
}

#[test]
fn the_end_post_says_agreed_items_and_actions_by_person_within_max_lines() {
    let mut m = ended_meeting(&[
        ("alice", "#startmeeting weekly"),
        ("bob", "hi"),
        ("alice", "#agreed one"),
        ("alice", "#agreed two"),
        ("alice", "#action bob does it"),
    ]);
    let url = "https://meetbot.example.org";
    assert_eq!(
        end_post(&m, url, 3).unwrap(),
        "AGREED: one\nAGREED: two\nACTION bob: bob does it"
    );
    assert_eq!(
        end_post(&m, url, 2).unwrap(),
        "AGREED: one\n…and 2 more items in the minutes: \
         https://meetbot.example.org/meetings/centos-meeting/2026-11-26/weekly.2026-11-26-15.00.html"
    );
    // The minutes of a #restrictlogs meeting are not served: no link to them.
    m.restrict_logs = true;
    assert_eq!(
        end_post(&m, url, 2).unwrap(),
        "AGREED: one\n…and 2 more items in the minutes"
    );
    let quiet = ended_meeting(&[("alice", "#startmeeting"), ("alice", "#info x")]);
    assert_eq!(end_post(&quiet, url, 3), None);
}

#[test]
fn a_new_meeting_recalls_its_series_and_tells_the_answer_after_its_greeting() {
    let mut c = core();
    let out = say(&mut c, "alice", "#startmeeting Weekly", 0);
    let asked = recalls(&out);
    assert_eq!(asked.len(), 1, "{out:?}");
    let (key, at, name) = asked[0].clone();
    assert_eq!((at.clone(), name.as_str()), (room(), "weekly"));
    assert_eq!(key.slug, "centos-meeting");
    // The store found the previous one: the post goes to the room and into the log.
    let p = previous(&[("bob", &["bob writes the notes"])], &[]);
    let out = c.handle(
        Event::SeriesRecalled {
            key: key.clone(),
            room: room(),
            previous: Some(Box::new(p)),
        },
        t0() + TimeDelta::seconds(1),
    );
    assert_eq!(
        sent(&out),
        [format!(
            "Previous 'weekly' meeting (2026-11-19 15:00 UTC): 1 action item. Minutes: {PREV_URL}\n\
             ACTION bob: bob writes the notes"
        )]
    );
    assert_eq!(journaled(&out).len(), 2, "both lines are logged: {out:?}");
    // None found: nothing said. A second #startmeeting asks nothing.
    let none = Event::SeriesRecalled {
        key: key.clone(),
        room: room(),
        previous: None,
    };
    assert!(c.handle(none, t0()).is_empty());
    assert!(recalls(&say(&mut c, "alice", "#startmeeting again", 2)).is_empty());
    // The end post comes after "Meeting ended" and before the links.
    say(&mut c, "alice", "#action alice checks the mirror", 3);
    let out = say(&mut c, "alice", "#endmeeting", 60);
    let texts = sent(&out);
    assert!(texts[0].starts_with("Meeting ended"), "{texts:?}");
    assert_eq!(texts[1], "ACTION alice: alice checks the mirror");
    assert!(texts[2].starts_with("Minutes:"), "{texts:?}");
    // An answer for a meeting that has ended is dropped.
    let late = Event::SeriesRecalled {
        key,
        room: room(),
        previous: Some(Box::new(previous(&[], &[]))),
    };
    assert!(c.handle(late, t0()).is_empty());
}

#[test]
fn series_posts_fit_the_bridges_max_lines_and_a_lurking_meeting_says_nothing() {
    let mut c = core();
    c.meetings.set_post_lines([(room(), 2)]);
    let out = say(&mut c, "alice", "#startmeeting weekly", 0);
    let (key, _, _) = recalls(&out)[0].clone();
    let p = previous(&[("alice", &["a"]), ("bob", &["b"])], &[]);
    let recalled = |p: PreviousMeeting| Event::SeriesRecalled {
        key: key.clone(),
        room: room(),
        previous: Some(Box::new(p)),
    };
    let out = c.handle(recalled(p.clone()), t0());
    assert_eq!(sent(&out)[0].lines().count(), 2, "{out:?}");
    say(&mut c, "alice", "#lurk", 1);
    assert!(c.handle(recalled(p), t0()).is_empty());
    say(&mut c, "alice", "#agreed quietly", 2);
    let out = say(&mut c, "alice", "#endmeeting", 3);
    assert!(!sent(&out).iter().any(|t| t.contains("AGREED")), "{out:?}");
}
