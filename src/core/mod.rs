//! The sans-I/O core: `Core::handle(event, now) -> Vec<Action>`.
//!
//! Adapters turn wire traffic into [`Event`]s; the core decides and returns [`Action`]s that
//! the adapters carry out. Nothing here touches a socket, a file or a clock of its own, so
//! every behaviour is unit-tested by feeding events and a fixed `now`.

pub mod acl;
pub mod action;
pub mod commands;
pub mod event;
pub mod relay;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

pub use acl::Roles;
pub use action::{Action, Priority, SendKind};
pub use commands::{Builtin, Invocation, parse_invocation};
pub use event::{
    Event, IncomingMessage, LinkState, MessageKind, Principal, RoomRef, RoomRefError, Sender,
};

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
            relay: None,
        }
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
        match event {
            Event::Message(msg) => self.on_message(msg, now),
            Event::NetworkState {
                network,
                state,
                queue_len,
            } => {
                self.networks
                    .insert(network, NetworkStatus { state, queue_len });
                Vec::new()
            }
            Event::Tick => self.on_tick(now),
            Event::Mqtt(m) => self.on_mqtt(m, now),
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
        let Some(inv) = parse_invocation(&msg.text, &self.settings.prefix, &self.settings.nick)
        else {
            return Vec::new();
        };
        let Some(builtin) = Builtin::lookup(&inv.name) else {
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
        &self,
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
                None => format!("no command named {topic:?}"),
            };
        }
        let names: Vec<String> = Builtin::ALL
            .into_iter()
            .filter(|b| b.role().is_none_or(|r| self.settings.roles.has(who, r)))
            .map(|b| format!("{}{}", self.settings.prefix, b.name()))
            .collect();
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
            .map(|a| match a {
                Action::Send { text, .. } => text.clone(),
                other => panic!("not a Send: {other:?}"),
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

    #[test]
    fn version_names_the_version() {
        let mut c = core();
        assert_eq!(
            texts(&c.handle(msg("a", None, "!version"), t0())),
            ["sigbot 1.2.3"]
        );
    }
}
