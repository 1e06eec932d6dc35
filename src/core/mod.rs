//! The sans-I/O core: `Core::handle(event, now) -> Vec<Action>`.
//!
//! Adapters turn wire traffic into [`Event`]s; the core decides and returns [`Action`]s that
//! the adapters carry out. Nothing here touches a socket, a file or a clock of its own, so
//! every behaviour is unit-tested by feeding events and a fixed `now`.

pub mod acl;
pub mod action;
pub mod bridge;
pub mod commands;
pub mod declarative;
pub mod event;
pub mod format;
pub mod irc_text;
pub mod meeting;
pub mod relay;
pub mod watch;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

pub use acl::Roles;
pub use action::{Action, Bridged, Priority, SendKind};
pub use bridge::{BridgeSettings, BridgeSpec, Bridges, EditMode, MatrixRelay, SideKind};
pub use commands::{Builtin, Invocation, parse_invocation};
pub use declarative::{
    AuditEntry, CommandSet, CommandSetHandle, CommandSpec, FetchOutcome, FetchRequest,
    PackageVersion, Request, RequestBody,
};
pub use event::{
    Activity, Event, IncomingMessage, LinkState, Media, MediaKind, Member, MessageKind, Presence,
    PresenceChange, Principal, RichMessage, RoomActivity, RoomRef, RoomRefError, Sender,
};
pub use meeting::{JournalLine, Meeting, MeetingKey, MeetingScope, MeetingSettings, Meetings};

/// The settings the core needs, taken from the validated config.
#[derive(Debug, Clone)]
pub struct CoreSettings {
    pub nick: String,
    pub prefix: String,
    pub roles: Roles,
    /// Every network's name, so `status` can list those that have not reported yet.
    pub networks: Vec<String>,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct NetworkStatus {
    state: LinkState,
    queue_len: usize,
}

pub struct Core {
    settings: CoreSettings,
    started: DateTime<Utc>,
    networks: BTreeMap<String, NetworkStatus>,
    meetings: Meetings,
    /// Declarative commands from `commands/*.toml` (issue 7).
    commands: declarative::Declarative,
    /// Bridges between rooms (issue 8).
    bridges: Bridges,
    /// The MQTT relay's routes (issue 6).
    relay: Option<relay::Relay>,
}

impl Core {
    pub fn new(settings: CoreSettings, started: DateTime<Utc>) -> Self {
        let networks = settings
            .networks
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    NetworkStatus {
                        state: LinkState::Starting,
                        queue_len: 0,
                    },
                )
            })
            .collect();
        Self {
            settings,
            started,
            networks,
            meetings: Meetings::default(),
            relay: None,
            commands: declarative::Declarative::default(),
            bridges: Bridges::default(),
        }
    }

    /// Turns the bridges on (DESIGN §8). Call before [`Core::enable_meetings`]: a bridge
    /// holds one meeting for all its rooms. `seed` drives the paste IDs.
    pub fn enable_bridges(&mut self, settings: BridgeSettings, seed: u64) {
        self.bridges = Bridges::new(settings, seed);
        self.meetings.link_rooms(&self.bridges.groups());
    }

    pub fn bridges(&self) -> &Bridges {
        &self.bridges
    }

    /// Turns meetings on (DESIGN §7), taking back those that `journals` show unfinished;
    /// returns what resuming them needs done (notices, files of meetings that had ended).
    pub fn enable_meetings(
        &mut self,
        settings: MeetingSettings,
        journals: Vec<(MeetingKey, Vec<JournalLine>)>,
        now: DateTime<Utc>,
    ) -> Vec<Action> {
        self.meetings = Meetings::new(Some(settings));
        self.meetings.link_rooms(&self.bridges.groups());
        let actions = self.meetings.resume(journals, now);
        self.with_bridge_copies(actions, now)
    }

    pub fn meetings(&self) -> &Meetings {
        &self.meetings
    }

    /// Installs the declarative commands (at start; later reloads come as events).
    pub fn set_commands(&mut self, set: std::sync::Arc<CommandSet>) {
        self.commands.replace(set);
    }

    /// Seeds the confirmation codes, so that tests see fixed codes.
    pub fn set_code_seed(&mut self, seed: u64) {
        self.commands.set_seed(seed);
    }

    /// Adds the MQTT relay's routes.
    pub fn with_relay(mut self, relay: relay::Relay) -> Self {
        self.relay = Some(relay);
        self
    }

    pub fn relay(&self) -> Option<&relay::Relay> {
        self.relay.as_ref()
    }

    pub fn settings(&self) -> &CoreSettings {
        &self.settings
    }

    pub fn handle(&mut self, event: Event, now: DateTime<Utc>) -> Vec<Action> {
        // A message in a bridged room goes to the bridge's other rooms first, so that the
        // bot's answer, copied there too, comes after the question.
        let mut out = match &event {
            Event::Message(msg) => self.bridges.relay(msg, now),
            Event::Presence(p) => self.bridges.presence(p, now),
            Event::Members { room, nicks } => {
                self.bridges.set_members(room, nicks.iter().cloned());
                Vec::new()
            }
            Event::Tick => self.bridges.presence_tick(now),
            Event::RichMessage(rich) => self.bridges.relay_rich(rich, now),
            Event::Activity(act) => self.bridges.relay_activity(act, now),
            _ => Vec::new(),
        };
        // Relayed copies of a message with an ID name it, line by line, so that the outbox
        // stores each line once: a message handled again after a crash is not relayed twice,
        // and every line of a message that became several is kept.
        if let Some(source) = source_id(&event) {
            name_sources(&mut out, &source);
        }
        let actions = self.handle_event(event, now);
        // Whatever the bot says in a room that holds a meeting belongs to its log.
        let actions = self.meetings.log_outgoing(actions, now);
        out.extend(self.with_bridge_copies(actions, now));
        out
    }

    /// The actions, followed by copies of the bot's words for the other rooms of bridges.
    fn with_bridge_copies(&self, mut actions: Vec<Action>, now: DateTime<Utc>) -> Vec<Action> {
        let copies = self.bridges.fan_out(&actions, now);
        actions.extend(copies);
        actions
    }

    fn handle_event(&mut self, event: Event, now: DateTime<Utc>) -> Vec<Action> {
        match event {
            Event::Message(msg) => self.on_message(msg, now),
            Event::RichMessage(rich) => self.on_message(rich.message, now),
            // Only the bridge reacts to these (above).
            Event::Activity(_) => Vec::new(),
            // The bridge took these before.
            Event::Presence(_) | Event::Members { .. } => Vec::new(),
            Event::RoomMembers { room, members } => {
                self.bridges.set_room_members(&room, members);
                Vec::new()
            }
            Event::Delivered { room, id, text } => {
                self.bridges.remember_delivered(&room, &id, &text, now);
                Vec::new()
            }
            Event::NetworkState {
                network,
                state,
                queue_len,
            } => {
                self.networks
                    .insert(network, NetworkStatus { state, queue_len });
                Vec::new()
            }
            Event::Tick => {
                let mut out = self.commands.tick(now);
                out.extend(self.on_tick(now));
                out
            }
            Event::FetchDone { id, outcome } => self.commands.finished(id, outcome, now),
            Event::CommandsReloaded(set) => {
                self.commands.replace(set.0);
                Vec::new()
            }
            Event::Mqtt(m) => self.on_mqtt(m, now),
        }
    }

    /// What must be stored before the process stops: digests of relay bursts still open.
    pub fn on_shutdown(&mut self) -> Vec<Action> {
        match &mut self.relay {
            Some(r) => {
                let batch = r.on_shutdown();
                if batch.is_empty() {
                    Vec::new()
                } else {
                    vec![Action::Relay(batch)]
                }
            }
            None => Vec::new(),
        }
    }

    fn on_tick(&mut self, now: DateTime<Utc>) -> Vec<Action> {
        match &mut self.relay {
            Some(r) => {
                let batch = r.on_tick(now);
                if batch.is_empty() {
                    Vec::new()
                } else {
                    vec![Action::Relay(batch)]
                }
            }
            None => Vec::new(),
        }
    }

    fn on_mqtt(&mut self, m: relay::MqttMessage, now: DateTime<Utc>) -> Vec<Action> {
        let batch = match &mut self.relay {
            Some(r) => r.on_message(m, now),
            // No routes: acknowledge, or the broker would send it again and again.
            None => relay::RelayBatch {
                ack: m.delivery.map(|delivery| relay::MqttAck {
                    network: m.network,
                    delivery,
                }),
                ..Default::default()
            },
        };
        if batch.is_empty() {
            Vec::new()
        } else {
            vec![Action::Relay(batch)]
        }
    }

    fn on_message(&mut self, msg: IncomingMessage, now: DateTime<Utc>) -> Vec<Action> {
        if msg.kind == MessageKind::Notice {
            // Notices are never answered: that is how bots avoid talking to each other.
            return Vec::new();
        }
        // Meetings see every line first: they log it, and a meeting command is theirs alone.
        let (mut actions, meeting_command) = self.meetings.on_message(&msg, now);
        if meeting_command {
            return actions;
        }
        actions.extend(self.on_command(msg, now));
        actions
    }

    fn on_command(&mut self, msg: IncomingMessage, now: DateTime<Utc>) -> Vec<Action> {
        let Some(inv) = parse_invocation(&msg.text, &self.settings.prefix, &self.settings.nick)
        else {
            return Vec::new();
        };
        let Some(builtin) = Builtin::lookup(&inv.name) else {
            if let Some(spec) = self.commands.get(&inv.name).cloned() {
                return self.commands.invoke(
                    spec,
                    &inv.args,
                    &msg,
                    &self.settings.roles,
                    &self.settings.prefix,
                    now,
                );
            }
            // Unknown commands get no reply: no noise in busy channels.
            return Vec::new();
        };
        let who = msg.sender.principal.as_ref();
        if let Some(role) = builtin.role()
            && !self.settings.roles.has(who, role)
        {
            return vec![Action::reply(
                &msg.room,
                format!(
                    "{}: {} needs the {role} role",
                    msg.sender.nick,
                    builtin.name()
                ),
            )];
        }
        self.run_builtin(builtin, &inv, &msg, now)
    }

    fn run_builtin(
        &mut self,
        builtin: Builtin,
        inv: &Invocation,
        msg: &IncomingMessage,
        now: DateTime<Utc>,
    ) -> Vec<Action> {
        let room = &msg.room;
        let who = msg.sender.principal.as_ref();
        match builtin {
            Builtin::Ping => vec![Action::reply(room, "pong")],
            Builtin::Version => vec![Action::reply(
                room,
                format!("sigbot {}", self.settings.version),
            )],
            Builtin::Whoami => {
                let text = match who {
                    Some(p) => {
                        let roles = self.settings.roles.of(Some(p));
                        if roles.is_empty() {
                            format!("{}: you are {p}, with no roles", msg.sender.nick)
                        } else {
                            format!(
                                "{}: you are {p}, with roles: {}",
                                msg.sender.nick,
                                roles.join(", ")
                            )
                        }
                    }
                    None => format!(
                        "{}: you are not identified on {} (no account), so you hold no roles",
                        msg.sender.nick, room.network
                    ),
                };
                vec![Action::reply(room, text)]
            }
            Builtin::Status => vec![Action::reply(room, self.status_line(now))],
            Builtin::Help => vec![Action::reply(room, self.help(who, inv.args.trim()))],
            Builtin::Say => {
                let Some((target, text)) = inv.args.split_once(char::is_whitespace) else {
                    return vec![Action::reply(room, format!("usage: {}", builtin.usage()))];
                };
                let target = match RoomRef::parse(target) {
                    Ok(t) if self.networks.contains_key(&t.network) => t,
                    Ok(t) => {
                        return vec![Action::reply(
                            room,
                            format!("no network named {:?}", t.network),
                        )];
                    }
                    Err(e) => return vec![Action::reply(room, e.to_string())],
                };
                vec![Action::reply(&target, text.trim())]
            }
            Builtin::Confirm => self
                .commands
                .confirm(&inv.args, msg, &self.settings.prefix, now),
            Builtin::Cancel => self.commands.cancel(msg, now),
        }
    }

    fn help(&self, who: Option<&Principal>, topic: &str) -> String {
        let topic = topic.trim_start_matches(self.settings.prefix.as_str());
        if !topic.is_empty() {
            return match Builtin::lookup(&topic.to_lowercase()) {
                Some(b) => {
                    let guard = b.role().map(|r| format!(" (role {r})")).unwrap_or_default();
                    format!(
                        "{}{}: {}{guard}",
                        self.settings.prefix,
                        b.usage(),
                        b.summary()
                    )
                }
                None => self
                    .commands
                    .help_for(&topic.to_lowercase(), &self.settings.prefix)
                    .unwrap_or_else(|| format!("no command named {topic:?}")),
            };
        }
        let mut names: Vec<String> = Builtin::ALL
            .into_iter()
            .filter(|b| b.role().is_none_or(|r| self.settings.roles.has(who, r)))
            .map(|b| format!("{}{}", self.settings.prefix, b.name()))
            .collect();
        names.extend(
            self.commands
                .names_for(who, &self.settings.roles)
                .into_iter()
                .map(|n| format!("{}{n}", self.settings.prefix)),
        );
        format!("commands: {} (help <command> for usage)", names.join(" "))
    }

    fn status_line(&self, now: DateTime<Utc>) -> String {
        let nets: Vec<String> = self
            .networks
            .iter()
            .map(|(name, s)| format!("{name} {} (queue {})", s.state, s.queue_len))
            .collect();
        format!(
            "networks: {}; uptime {}",
            if nets.is_empty() {
                "none".to_owned()
            } else {
                nets.join(", ")
            },
            format_uptime(now - self.started)
        )
    }
}

fn format_uptime(d: chrono::TimeDelta) -> String {
    let secs = d.num_seconds().max(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, rem) = (rem / 3600, rem % 3600);
    let (m, s) = (rem / 60, rem % 60);
    if days > 0 {
        format!("{days}d {h}h {m}m")
    } else if h > 0 {
        format!("{h}h {m}m {s}s")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// The ID that names a network's message across a replay: `<room>/<network's ID>`.
fn source_id(event: &Event) -> Option<String> {
    let (room, id) = match event {
        Event::Message(m) => (&m.room, m.id.as_ref()?),
        Event::RichMessage(r) => (&r.message.room, r.message.id.as_ref()?),
        Event::Activity(a) => (&a.room, a.id.as_ref()?),
        _ => return None,
    };
    Some(format!("{room}/{id}"))
}

/// Gives each bridged line of one source message its own key: the source and the line's
/// position among the lines for the same destination room (`<source>#<n>`, from 1).
fn name_sources(actions: &mut [Action], source: &str) {
    let mut positions: BTreeMap<RoomRef, usize> = BTreeMap::new();
    for a in actions {
        if let Action::Bridged(b) = a {
            let n = positions.entry(b.room.clone()).or_insert(0);
            *n += 1;
            b.source = Some(format!("{source}#{n}"));
        }
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(
            keys,
            [
                "hs/!room:example.org/$ten#1",
                "hs/!room:example.org/$ten#2",
                "hs/!room:example.org/$ten#3"
            ]
        );
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
            assert_eq!(
                s.as_deref(),
                Some(format!("hs/!room:example.org/$edit#{}", i + 1).as_str())
            );
        }
    }
}
