//! A command found in a chat line: a declarative command is handed on; a built-in is checked
//! against the caller's roles and answered here.

use chrono::{DateTime, Utc};

use super::{Builtin, Invocation, excerpt, parse_invocation, shown_name};
use crate::core::Core;
use crate::core::action::Action;
use crate::core::event::{IncomingMessage, Principal, RoomRef};

impl Core {
    pub(in crate::core) fn on_command(
        &mut self,
        msg: IncomingMessage,
        now: DateTime<Utc>,
    ) -> Vec<Action> {
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
        // Built-ins are answered out of the caller's allowance, refusals included; what a
        // role holder makes the bot say with a guarded built-in is their own word.
        let trusted = builtin
            .role()
            .is_some_and(|role| self.settings.roles.has(who, role));
        if !trusted && let Err(held) = self.commands.allow(&msg, now) {
            self.commands.count(builtin.name(), "cooldown");
            return held;
        }
        if let Some(role) = builtin.role()
            && !self.settings.roles.has(who, role)
        {
            self.commands.count(builtin.name(), "refused");
            return vec![Action::reply(
                &msg.room,
                format!(
                    "{}: {} needs the {role} role",
                    shown_name(&msg.sender.nick),
                    builtin.name()
                ),
            )];
        }
        self.commands.count(builtin.name(), "ok");
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
        let name = shown_name(&msg.sender.nick);
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
                            format!("{name}: you are {p}, with no roles")
                        } else {
                            format!("{name}: you are {p}, with roles: {}", roles.join(", "))
                        }
                    }
                    None => format!(
                        "{name}: you are not identified on {} (no account), so you hold no roles",
                        room.network
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
                            format!("no network named \"{}\"", excerpt(&t.network)),
                        )];
                    }
                    Err(_) => {
                        return vec![Action::reply(
                            room,
                            format!(
                                "not a room: \"{}\"; usage: {}",
                                excerpt(target),
                                builtin.usage()
                            ),
                        )];
                    }
                };
                vec![Action::reply(&target, text.trim())]
            }
            Builtin::Confirm => self
                .commands
                .confirm(&inv.args, msg, &self.settings.prefix, now),
            Builtin::Cancel => self.commands.cancel(msg, now),
            Builtin::NextMeeting => {
                let rooms = self
                    .bridges
                    .bridge_of(room)
                    .map_or_else(|| vec![room.clone()], |b| b.rooms.clone());
                vec![Action::reply(
                    room,
                    self.schedules.next_answer(&rooms, &inv.args, now),
                )]
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
                None => self
                    .commands
                    .help_for(&topic.to_lowercase(), &self.settings.prefix)
                    .unwrap_or_else(|| format!("no command named \"{}\"", excerpt(topic))),
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
