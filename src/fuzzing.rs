//! The bodies of the fuzz targets (`fuzz/fuzz_targets/<name>.rs` call them, and
//! `tests/fuzz_corpus.rs` replays `fuzz/corpus/<name>/` through them on stable), one per
//! parser that reads what others send: servers, hubs, mirrors, MQTT publishers, chat users
//! and config authors. Each takes raw bytes, must not panic, and asserts the invariants that
//! are cheap to check. Not part of the bot; hidden from the docs.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use crate::core::bridge::{MAX_NAME_CHARS, irc_lines};
use crate::core::format::irc_text::{clean, relay_budget, split_lines as split};
use crate::core::format::{html_to_irc as to_irc, irc_to_html as to_html, strip_irc_formatting};
use crate::core::relay::{Delivery, MqttMessage, MqttPayload, Relay, RelaySpec};
use crate::core::{
    Action, Core, CoreSettings, Event, IncomingMessage, JournalLine, MeetingKey, MeetingScope,
    MeetingSettings, Principal, Roles, RoomRef, Sender,
};

/// A target's body: bytes in, a panic for a bug.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("irc_session", irc_session),
    ("split_lines", split_lines),
    ("html_to_irc", html_to_irc),
    ("irc_to_html", irc_to_html),
    ("koji_response", koji_response),
    ("repodata", repodata),
    ("relay", relay),
    ("config_toml", config_toml),
    ("command_toml", command_toml),
    ("meeting", meeting),
];

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// Text without its whitespace and without what [`clean`] removes: what must survive
/// splitting.
fn squash(s: &str) -> String {
    clean(s).chars().filter(|c| !c.is_whitespace()).collect()
}

/// Server lines through an IRC session's identity and membership state.
pub fn irc_session(data: &[u8]) {
    crate::adapters::irc::fuzz::session(data);
}

/// Input: two bytes of line budget, one byte of sender shape (nick, user and channel name
/// lengths, `/me`), one byte of display-name length, the display name, then the text.
///
/// The splitter lets no protocol line through, never exceeds its budget and loses no
/// visible text; the bridge's lines, sender prefix included, fit the PRIVMSG a relaying
/// bot may send.
pub fn split_lines(data: &[u8]) {
    let (b0, b1, shape, name_len, rest) = match data {
        [b0, b1, shape, n, rest @ ..] => (*b0, *b1, *shape, usize::from(*n), rest),
        _ => return,
    };
    let (name, body) = rest.split_at(name_len.min(rest.len()));
    let body = text(body);
    let budget = usize::from(u16::from_le_bytes([b0, b1]) % 600).max(4);
    let out = split(&body, budget);
    for l in &out {
        assert!(l.len() <= budget, "{l:?} over {budget}");
        assert!(!l.is_empty());
        assert!(!l.contains(['\r', '\n', '\0', '\x01']), "{l:?}");
    }
    assert_eq!(squash(&out.concat()), squash(&body));

    // The bridge: a cleaned display name, a nick of up to 33 bytes, a user name of up to
    // 13, and a channel name of up to 50, as servers allow.
    let nick_len = 1 + usize::from(shape & 0x1f);
    let user_len = 1 + usize::from((shape >> 5) & 0x07) * 2;
    let target = format!("#{}", "c".repeat(usize::from(b1 % 50)));
    let emote = b0 & 1 == 1;
    let budget = relay_budget(nick_len, user_len, &target);
    let name = crate::core::bridge::clean_display_name(&text(name));
    assert!(name.chars().count() <= MAX_NAME_CHARS);
    let lines = irc_lines(&name, &body, emote, budget);
    let prefix = if emote {
        format!("* {} ", crate::core::bridge::unhighlight(&name))
    } else {
        format!("<{}> ", crate::core::bridge::unhighlight(&name))
    };
    let mut said = String::new();
    for l in &lines {
        assert!(l.len() <= budget, "{l:?} over {budget}");
        assert!(!l.contains(['\r', '\n', '\0', '\x01']), "{l:?}");
        said.push_str(
            l.strip_prefix(&prefix)
                .expect("every line names its sender"),
        );
    }
    assert_eq!(squash(&said), squash(&body));
}

/// Matrix HTML from anyone in a bridged room becomes IRC lines that are protocol-safe.
pub fn html_to_irc(data: &[u8]) {
    let html = text(data);
    let Some(out) = to_irc(&html, &mut |_code| "(code)".to_owned()) else {
        return;
    };
    assert!(!out.contains(['\0', '\r']), "{out:?}");
    for line in split(&out, 400) {
        assert!(line.len() <= 400);
        assert!(!line.contains(['\r', '\n', '\0', '\x01']));
    }
}

/// The tags [`to_html`] writes; no other may come out of it.
const OWN_TAGS: &[&str] = &[
    "b>", "/b>", "i>", "/i>", "u>", "/u>", "del>", "/del>", "code>", "/code>", "font ", "/font>",
    "br>",
];

/// IRC text with mIRC codes becomes HTML with only the converter's own tags, and reading
/// that HTML back gives the same visible text.
pub fn irc_to_html(data: &[u8]) {
    let irc = text(data);
    let plain = strip_irc_formatting(&irc);
    let Some(html) = to_html(&irc) else {
        return;
    };
    let mut rest = html.as_str();
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        assert!(
            OWN_TAGS.iter().any(|t| rest.starts_with(t)),
            "a tag not ours in {html:?}"
        );
    }
    // Past `MAX_TAGS` the reader refuses, and the bridge shows the plain body instead.
    if let Some(back) = to_irc(&html, &mut |code| code.to_owned()) {
        let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(words(&strip_irc_formatting(&back)), words(&plain));
    }
}

/// A Koji hub's answer, whatever it is. A value read from it, written back as a response,
/// reads the same.
pub fn koji_response(data: &[u8]) {
    use crate::lookup::koji::{method_call, parse_response};
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(Ok(value)) = parse_response(xml) else {
        return;
    };
    // The request writer and a response differ only in their envelope.
    let call = method_call("m", std::slice::from_ref(&value));
    let response = call
        .replacen(
            "<methodCall>\n<methodName>m</methodName>",
            "<methodResponse>",
            1,
        )
        .replacen("</methodCall>", "</methodResponse>", 1);
    match parse_response(&response) {
        Ok(Ok(again)) => assert_eq!(again, value, "{response}"),
        other => panic!("{value:?} written as {response:?} reads as {other:?}"),
    }
}

/// Input: one byte choosing the file (`repomd.xml`, or primary metadata plain, gzip, xz or
/// zstd), then its bytes. Plain primary metadata reads the same once gzipped.
pub fn repodata(data: &[u8]) {
    use crate::lookup::repodata::{parse_primary, parse_repomd};
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let href = match kind % 5 {
        0 => {
            let _ = parse_repomd(body);
            return;
        }
        1 => "repodata/x-primary.xml",
        2 => "repodata/x-primary.xml.gz",
        3 => "repodata/x-primary.xml.xz",
        _ => "repodata/x-primary.xml.zst",
    };
    let read = parse_primary(href, body);
    if let Ok(packages) = &read {
        for (name, p) in packages {
            assert_eq!(name, &p.name);
            let _ = crate::core::package::display_evr(p);
        }
    }
    if kind % 5 == 1 {
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(body).unwrap();
        let gzipped = gz.finish().unwrap();
        // Error messages may name positions differently; what is read may not differ.
        assert_eq!(
            parse_primary("repodata/x-primary.xml.gz", &gzipped).ok(),
            read.ok(),
            "gzip changed the reading"
        );
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
}

/// The topics the relay input chooses from: those of the shipped routes, and others.
const TOPICS: &[&str] = &[
    "git.centos.org/git.receive",
    "git.centos.org/pull-request.new",
    "git.centos.org/pull-request.comment.added",
    "git.centos.org/issue.new",
    "git.centos.org/commit.flag.added",
    "pagure.io/pull-request.flag.added",
    "cbs-signing",
    "cbs-signing/x",
];

fn relay_routes() -> Vec<RelaySpec> {
    let room = RoomRef::new("libera", "#sig");
    let route = |name: &str, topic: &str, template: &str| RelaySpec {
        name: name.to_owned(),
        from: "centos".to_owned(),
        topic: topic.to_owned(),
        when: None,
        template: template.to_owned(),
        html_template: None,
        to: vec![room.clone()],
        max_per_minute: None,
        dedup_key: None,
        dedup_window: Duration::from_secs(3600),
        digest_label: None,
    };
    vec![
        RelaySpec {
            html_template: Some(r#"{% include "pagure.html.j2" %}"#.to_owned()),
            max_per_minute: Some(3),
            ..route("pagure", "git.centos.org/#", r#"{% include "pagure.j2" %}"#)
        },
        route("cbs", "cbs-signing/#", r#"{% include "cbs-signing.j2" %}"#),
        RelaySpec {
            when: Some("msg.repo and msg.repo.namespace == 'rpms'".to_owned()),
            dedup_key: Some("msg.id".to_owned()),
            digest_label: Some("{{ msg.repo.fullname }}".to_owned()),
            max_per_minute: Some(2),
            ..route("rpms", "+/+", "{{ msg.repo.fullname }}: {{ msg.msg }}")
        },
    ]
}

/// Input: MQTT messages separated by NUL bytes, each a topic byte (an index into
/// [`TOPICS`]; its top bit waits a minute first) and a JSON (or not) payload, through the
/// shipped templates and a route with `when`, `dedup_key` and a digest.
///
/// Every message is acknowledged; nothing empty is said; the HTML form carries no markup
/// but the template's own link.
pub fn relay(data: &[u8]) {
    static ROUTES: OnceLock<Vec<RelaySpec>> = OnceLock::new();
    let routes = ROUTES.get_or_init(relay_routes);
    let mut relay = Relay::new(routes).expect("the fuzz routes compile");
    let mut now = t0();
    let mut batches = Vec::new();
    for (pkid, chunk) in data.split(|b| *b == 0).enumerate() {
        let Some((&t, payload)) = chunk.split_first() else {
            continue;
        };
        if t & 0x80 != 0 {
            now += TimeDelta::minutes(1);
        }
        let msg = MqttMessage {
            network: "centos".to_owned(),
            topic: TOPICS[usize::from(t & 0x7f) % TOPICS.len()].to_owned(),
            payload: MqttPayload::Bytes(payload.to_vec()),
            delivery: Some(Delivery {
                connection: 1,
                pkid: pkid as u16,
            }),
        };
        let batch = relay.on_message(msg, now);
        let ack = batch.ack.as_ref().expect("every message is acknowledged");
        assert_eq!(ack.delivery.pkid, pkid as u16);
        batches.push(batch);
    }
    batches.push(relay.on_tick(now + TimeDelta::hours(1)));
    batches.push(relay.on_shutdown());
    for m in batches.iter().flat_map(|b| &b.messages) {
        assert!(!m.text.trim().is_empty(), "an empty message: {m:?}");
        if let Some(html) = &m.html {
            let mut rest = html.as_str();
            while let Some(i) = rest.find('<') {
                rest = &rest[i + 1..];
                assert!(
                    rest.starts_with("a href=\"") || rest.starts_with("/a>"),
                    "markup from the payload in {html:?}"
                );
            }
        }
    }
}

/// An environment variable for `${NAME}` in configs: some set, some not.
fn fuzz_env(name: &str) -> Option<String> {
    (!name.starts_with('U')).then(|| format!("value-of-{name}"))
}

/// A config file: read, checked, summarized.
pub fn config_toml(data: &[u8]) {
    let Ok(toml) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = crate::config::Config::from_str_with_env(toml, Path::new("f.toml"), &fuzz_env)
    {
        let _ = cfg.summary();
        let _ = cfg.networks();
    }
}

/// A command file: read, checked, put in a set, summarized.
pub fn command_toml(data: &[u8]) {
    let Ok(toml) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(spec) = crate::config::commands::parse_str(toml, Path::new("f.toml"), &fuzz_env) else {
        return;
    };
    let set = crate::core::CommandSet::new(vec![spec]).expect("one command has unique names");
    let _ = crate::config::commands::summary(&set);
}

const NICKS: [&str; 4] = ["alice", "bob", "carol", "Alice"];

fn meeting_rooms() -> [RoomRef; 2] {
    [RoomRef::new("net", "#x"), RoomRef::new("net", "##x")]
}

/// Input: lines, each a header byte (sender, room, kind; its top bit waits two hours) and
/// the text (`\x1e` stands for a line break inside one message), through a core with
/// meetings on.
///
/// Files never leave their meeting's directory and minutes render; the JSON minutes are
/// JSON; each meeting still running resumes from its journal as the same meeting.
pub fn meeting(data: &[u8]) {
    let mut settings = MeetingSettings::new(
        MeetingScope::All,
        "https://meetbot.example.org",
        "sigbot",
        "!",
    );
    settings.enders = vec![Principal::new("net", "carol")];
    settings.idle_timeout = Some(Duration::from_secs(3 * 3600));
    let mut core = Core::new(
        CoreSettings {
            nick: "sigbot".to_owned(),
            prefix: "!".to_owned(),
            roles: Roles::new([]),
            networks: vec!["net".to_owned()],
            version: "1".to_owned(),
        },
        t0(),
    );
    let _ = core.enable_meetings(settings.clone(), Vec::new(), t0());
    let mut journals: BTreeMap<MeetingKey, Vec<JournalLine>> = BTreeMap::new();
    let mut now = t0();
    for line in data.split(|b| *b == b'\n') {
        let Some((&h, body)) = line.split_first() else {
            continue;
        };
        now += if h & 0x80 != 0 {
            TimeDelta::hours(2)
        } else {
            TimeDelta::seconds(1)
        };
        let nick = NICKS[usize::from(h & 3)];
        let kind = match (h >> 3) & 3 {
            1 => crate::core::MessageKind::Emote,
            2 => crate::core::MessageKind::Notice,
            _ => crate::core::MessageKind::Text,
        };
        let msg = IncomingMessage {
            room: meeting_rooms()[usize::from((h >> 2) & 1)].clone(),
            sender: Sender {
                nick: nick.to_owned(),
                principal: Some(Principal::new("net", nick.to_lowercase())),
                mask: Some(format!("{nick}@host")),
            },
            kind,
            text: text(body).replace('\x1e', "\n"),
            id: None,
            sent_at: None,
        };
        // The bot's ticker runs between messages: a meeting idle past its timeout ends live,
        // as it would at a restart.
        let mut actions = core.handle(Event::Tick, now);
        actions.extend(core.handle(Event::Message(msg), now));
        for action in actions {
            match action {
                Action::MeetingJournal { key, line } => {
                    journals.entry(key).or_default().push(line);
                }
                Action::MeetingFiles { meeting, .. } => check_minutes(&meeting),
                _ => {}
            }
        }
    }
    let _ = core.handle(Event::Tick, now + TimeDelta::seconds(1));
    // A restart: the journals of the meetings still running resume them.
    let mut running = Vec::new();
    for live in core.meetings().running() {
        check_minutes(live);
        let key = MeetingKey::of(live);
        let journal = journals.get(&key).expect("a running meeting has a journal");
        running.push((key, journal.clone()));
    }
    let mut restarted = Core::new(core.settings().clone(), now);
    let _ = restarted.enable_meetings(settings, running, now + TimeDelta::seconds(1));
    for live in core.meetings().running() {
        let resumed = restarted
            .meetings()
            .running()
            .find(|m| m.room == live.room && m.started == live.started)
            .expect("a running meeting resumes");
        assert_eq!(resumed.items, live.items, "the items of a resumed meeting");
        assert_eq!(
            resumed.chairs, live.chairs,
            "the chairs of a resumed meeting"
        );
        assert_eq!(
            (&resumed.name, &resumed.title),
            (&live.name, &live.title),
            "the name of a resumed meeting"
        );
        assert_eq!(
            resumed.lines.get(..live.lines.len()),
            Some(&live.lines[..]),
            "the log of a resumed meeting"
        );
    }
}

fn check_minutes(m: &crate::core::Meeting) {
    let base = m.base_path();
    assert!(!base.starts_with('/'), "{base:?}");
    for part in base.split('/') {
        assert!(
            !matches!(part, "" | "." | "..") && !part.contains('\\'),
            "{base:?} leaves the meetings directory"
        );
    }
    for (ext, body) in crate::minutes::render_all(m) {
        if ext == "json" {
            serde_json::from_str::<serde_json::Value>(&body).expect("the JSON minutes are JSON");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::TARGETS;

    fn corpus() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
    }

    /// Every input kept in `fuzz/corpus/<target>/` (the seeds, and each input that once
    /// made a target fail) passes its target on stable.
    #[test]
    fn the_fuzz_corpus_replays() {
        let mut failed = Vec::new();
        for (name, target) in TARGETS {
            let dir = corpus().join(name);
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            assert!(!files.is_empty(), "no seeds in {}", dir.display());
            for file in files {
                let data = std::fs::read(&file).unwrap();
                if std::panic::catch_unwind(|| target(&data)).is_err() {
                    failed.push(file.display().to_string());
                }
            }
        }
        assert!(failed.is_empty(), "inputs that fail: {failed:#?}");
    }

    #[test]
    fn every_corpus_directory_is_a_target_and_every_target_a_fuzz_binary() {
        let manifest = std::fs::read_to_string(corpus().join("../Cargo.toml")).unwrap();
        for (name, _) in TARGETS {
            assert!(
                manifest.contains(&format!("name = \"{name}\"")),
                "{name} is not in fuzz/Cargo.toml"
            );
        }
        for entry in std::fs::read_dir(corpus()).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                TARGETS.iter().any(|(t, _)| *t == name),
                "fuzz/corpus/{name} is no target"
            );
        }
    }
}
