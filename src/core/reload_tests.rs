//! A config reload through `Core::handle`: new settings at once, and what runs kept.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone;

use super::relay::{Delivery, MqttMessage, MqttPayload, RelaySpec};
use super::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
}

fn sig() -> RoomRef {
    RoomRef::new("libera", "#sig")
}

fn local() -> RoomRef {
    RoomRef::new("console", "#local")
}

fn settings(networks: &[&str]) -> CoreSettings {
    CoreSettings {
        nick: "sigbot".into(),
        prefix: "!".into(),
        roles: Roles::default(),
        networks: networks.iter().map(|n| (*n).to_owned()).collect(),
        version: "1.2.3".into(),
    }
}

fn bridges(specs: Vec<BridgeSpec>) -> BridgeSettings {
    BridgeSettings {
        bridges: specs,
        sides: [
            (
                "libera".to_owned(),
                SideKind::Irc {
                    nick_len: 9,
                    user_len: 8,
                },
            ),
            ("console".to_owned(), SideKind::Console),
        ]
        .into_iter()
        .collect(),
        public_url: None,
    }
}

fn bridge(name: &str) -> BridgeSpec {
    BridgeSpec {
        name: name.into(),
        rooms: vec![sig(), local()],
        max_lines: 3,
        ignore_nicks: vec![],
        ignore_users: vec![],
        ignore_regex: vec![],
        staleness: Duration::from_secs(600),
        max_mentions: 5,
        presence: Default::default(),
        matrix: MatrixRelay::default(),
    }
}

fn meetings(rooms: Vec<RoomRef>) -> MeetingSettings {
    MeetingSettings::new(MeetingScope::Rooms(rooms), "http://x", "sigbot", "!")
}

fn route(name: &str, max_per_minute: Option<u32>) -> RelaySpec {
    RelaySpec {
        name: name.into(),
        from: "forge".into(),
        topic: "git/#".into(),
        when: None,
        template: "push {{ msg.n }}".into(),
        html_template: None,
        to: vec![sig()],
        max_per_minute,
        dedup_key: Some("msg.n".into()),
        dedup_window: Duration::from_secs(3600),
        digest_label: None,
    }
}

fn reload(
    networks: &[&str],
    bridge_specs: Vec<BridgeSpec>,
    meeting_settings: Option<MeetingSettings>,
    relays: Vec<RelaySpec>,
) -> Event {
    Event::Reloaded(ReloadHandle(Arc::new(Reload {
        settings: settings(networks),
        bridges: bridges(bridge_specs),
        meetings: meeting_settings,
        relays,
        commands: Arc::new(CommandSet::default()),
        schedules: Vec::new(),
    })))
}

fn core(relays: &[RelaySpec]) -> Core {
    let mut c = Core::new(settings(&["console", "libera"]), t0())
        .with_relay(relay::Relay::new(relays).unwrap());
    c.enable_bridges(bridges(vec![]), 1);
    c
}

fn say(room: &RoomRef, nick: &str, text: &str) -> Event {
    Event::Message(IncomingMessage {
        room: room.clone(),
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
}

fn push(n: u32) -> Event {
    Event::Mqtt(MqttMessage {
        network: "forge".into(),
        topic: "git/push".into(),
        payload: MqttPayload::Bytes(format!("{{\"n\": {n}}}").into_bytes()),
        delivery: Some(Delivery {
            connection: 1,
            pkid: n as u16,
        }),
    })
}

fn bridged_texts(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Bridged(b) => Some(format!("{} {}", b.room, b.text)),
            _ => None,
        })
        .collect()
}

fn relayed_texts(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Relay(b) => Some(b.messages.iter().map(|m| m.text.clone())),
            _ => None,
        })
        .flatten()
        .collect()
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
fn a_bridge_added_by_a_reload_relays_at_once_and_one_removed_stops() {
    let mut c = core(&[]);
    assert!(bridged_texts(&c.handle(say(&sig(), "alice", "before"), t0())).is_empty());
    assert!(
        c.handle(
            reload(&["console", "libera"], vec![bridge("b")], None, vec![]),
            t0()
        )
        .is_empty()
    );
    assert_eq!(
        bridged_texts(&c.handle(say(&sig(), "alice", "after"), t0())),
        ["console/#local <a\u{200B}lice> after"]
    );
    c.handle(reload(&["console", "libera"], vec![], None, vec![]), t0());
    assert!(bridged_texts(&c.handle(say(&sig(), "alice", "gone"), t0())).is_empty());
}

#[test]
fn a_running_meeting_goes_on_when_a_reload_leaves_its_room_out() {
    let mut c = core(&[]);
    let _ = c.enable_meetings(meetings(vec![sig()]), Vec::new(), t0());
    let out = c.handle(say(&sig(), "carol", "#startmeeting sync"), t0());
    assert!(texts(&out).iter().any(|t| t.contains("Meeting started")));
    c.handle(
        reload(
            &["console", "libera"],
            vec![],
            Some(meetings(vec![])),
            vec![],
        ),
        t0(),
    );
    c.handle(say(&sig(), "carol", "#topic after the reload"), t0());
    let m = c.meetings().running().next().expect("still running");
    assert_eq!(m.current_topic.as_deref(), Some("after the reload"));
    let out = c.handle(say(&sig(), "carol", "#endmeeting"), t0());
    assert!(
        texts(&out).iter().any(|t| t.contains("Meeting ended")),
        "{out:?}"
    );
    // Out of scope now: no new meeting there.
    c.handle(say(&sig(), "carol", "#startmeeting again"), t0());
    assert_eq!(c.meetings().running().count(), 0);
}

#[test]
fn a_route_that_keeps_its_name_keeps_its_dedup_keys_and_its_window() {
    let mut c = core(&[route("pushes", Some(1))]);
    assert_eq!(relayed_texts(&c.handle(push(1), t0())), ["push 1"]);
    // Past max_per_minute: folded into the window.
    assert!(relayed_texts(&c.handle(push(2), t0())).is_empty());
    let out = c.handle(
        reload(
            &["console", "libera"],
            vec![],
            None,
            vec![route("pushes", Some(1))],
        ),
        t0(),
    );
    assert!(
        relayed_texts(&out).is_empty(),
        "the window stays open: {out:?}"
    );
    // A duplicate is still known.
    assert!(relayed_texts(&c.handle(push(1), t0())).is_empty());
    let later = t0() + chrono::TimeDelta::seconds(61);
    let digest = relayed_texts(&c.handle(Event::Tick, later));
    assert_eq!(digest.len(), 1, "{digest:?}");
    assert!(digest[0].starts_with("1 more git/push event"), "{digest:?}");
}

#[test]
fn a_route_removed_by_a_reload_tells_its_open_digest_and_a_new_one_relays() {
    let mut c = core(&[route("pushes", Some(1))]);
    c.handle(push(1), t0());
    c.handle(push(2), t0());
    let out = c.handle(
        reload(
            &["console", "libera"],
            vec![],
            None,
            vec![route("other", None)],
        ),
        t0(),
    );
    let digest = relayed_texts(&out);
    assert_eq!(digest.len(), 1, "{out:?}");
    assert!(digest[0].starts_with("1 more git/push event"), "{digest:?}");
    // The new route has its own dedup keys: event 1 is news to it.
    assert_eq!(relayed_texts(&c.handle(push(1), t0())), ["push 1"]);
}

#[test]
fn networks_follow_the_reload_and_a_stopped_ones_last_word_is_ignored() {
    let mut c = core(&[]);
    c.handle(reload(&["console", "oftc"], vec![], None, vec![]), t0());
    c.handle(
        Event::NetworkState {
            network: "libera".into(),
            state: LinkState::Stopped,
            queue_len: 0,
        },
        t0(),
    );
    let out = c.handle(say(&local(), "tester", "!status"), t0());
    assert_eq!(
        texts(&out),
        ["networks: console starting (queue 0), oftc starting (queue 0); uptime 0s"]
    );
}

#[test]
fn roles_and_the_prefix_follow_the_reload() {
    let mut c = core(&[]);
    let admin = |text: &str| {
        let Event::Message(mut m) = say(&sig(), "dc", text) else {
            unreachable!()
        };
        m.sender.principal = Some(Principal::new("libera", "dcavalca"));
        Event::Message(m)
    };
    assert_eq!(
        texts(&c.handle(admin("!whoami"), t0())),
        ["dc: you are libera:dcavalca, with no roles"]
    );
    let mut s = settings(&["console", "libera"]);
    s.roles = Roles::new([(
        "admin".to_owned(),
        vec![Principal::new("libera", "dcavalca")],
    )]);
    s.prefix = "?".into();
    c.handle(
        Event::Reloaded(ReloadHandle(Arc::new(Reload {
            settings: s,
            bridges: bridges(vec![]),
            meetings: None,
            relays: vec![],
            commands: Arc::new(CommandSet::default()),
            schedules: Vec::new(),
        }))),
        t0(),
    );
    assert!(c.handle(admin("!whoami"), t0()).is_empty());
    assert_eq!(
        texts(&c.handle(admin("?whoami"), t0())),
        ["dc: you are libera:dcavalca, with roles: admin"]
    );
}
