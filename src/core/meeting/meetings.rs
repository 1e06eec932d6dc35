//! The core's meetings: one per room (one per bridge for linked rooms), replies turned
//! into actions, the bot's own words logged, and the journal written line by line.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::commands::{MeetingCommand, parse_meeting_command};
use super::text::{clean_nick, hms};
use super::{Effect, JournalLine, Meeting, MeetingKey, MeetingSettings, replay};
use crate::core::action::Action;
use crate::core::event::{IncomingMessage, MessageKind, RoomRef};

/// The core's meetings: at most one running per room.
#[derive(Debug, Default)]
pub struct Meetings {
    settings: Option<MeetingSettings>,
    /// Running meetings by their home room (see [`Meetings::home`]).
    running: BTreeMap<RoomRef, Meeting>,
    /// The rooms of each bridge, by member room: a bridge holds one meeting (DESIGN §7).
    linked: BTreeMap<RoomRef, Vec<RoomRef>>,
}

impl Meetings {
    pub fn new(settings: Option<MeetingSettings>) -> Meetings {
        Meetings {
            settings,
            running: BTreeMap::new(),
            linked: BTreeMap::new(),
        }
    }

    /// Links rooms that are one conversation (the rooms of a bridge): a meeting started in
    /// any of them is the meeting of all, with lines from every side and chairs from any.
    pub fn link_rooms(&mut self, groups: &[Vec<RoomRef>]) {
        self.linked.clear();
        for g in groups {
            for r in g {
                self.linked.insert(r.clone(), g.clone());
            }
        }
    }

    /// The room a meeting of `room` is kept under: for linked rooms, the first of them that
    /// the meeting scope names (else the first of them), so every side finds the same one.
    pub fn home(&self, room: &RoomRef) -> RoomRef {
        let Some(group) = self.linked.get(room) else {
            return room.clone();
        };
        let scope = self.settings.as_ref().map(|s| &s.scope);
        group
            .iter()
            .find(|r| scope.is_some_and(|s| s.contains(r)))
            .or(group.first())
            .unwrap_or(room)
            .clone()
    }

    fn in_scope(&self, settings: &MeetingSettings, room: &RoomRef) -> bool {
        settings.scope.contains(room)
            || self
                .linked
                .get(room)
                .is_some_and(|g| g.iter().any(|r| settings.scope.contains(r)))
    }

    pub fn running(&self) -> impl Iterator<Item = &Meeting> {
        self.running.values()
    }

    fn key(m: &Meeting) -> MeetingKey {
        MeetingKey {
            room: m.room.clone(),
            started: m.started,
        }
    }

    /// Feeds a message to the meeting of its room (starting one on `#startmeeting`).
    /// Returns the actions and whether the message was a meeting command, which then must
    /// not be handled as a bot command.
    pub fn on_message(&mut self, msg: &IncomingMessage, now: DateTime<Utc>) -> (Vec<Action>, bool) {
        let Some(settings) = &self.settings else {
            return (Vec::new(), false);
        };
        let home = self.home(&msg.room);
        if msg.kind == MessageKind::Notice && !self.running.contains_key(&home) {
            return (Vec::new(), false);
        }
        if !self.in_scope(settings, &msg.room) {
            return (Vec::new(), false);
        }
        let emote = msg.kind == MessageKind::Emote;
        let mut actions = Vec::new();
        let mut was_command = false;
        // A multi-line message is logged (and acted on) line by line, as IRC would carry it.
        for text in msg.text.lines().filter(|l| !l.trim().is_empty()) {
            let cmd = if emote {
                None
            } else {
                parse_meeting_command(text, &settings.prefix)
            };
            was_command |= cmd.is_some();
            if !self.running.contains_key(&home) {
                if !matches!(cmd, Some((MeetingCommand::StartMeeting, _))) {
                    continue;
                }
                let m = Meeting::new(
                    home.clone(),
                    &clean_nick(&msg.sender.nick),
                    now,
                    &settings.prefix,
                );
                self.running.insert(home.clone(), m);
            }
            let Some(m) = self.running.get_mut(&home) else {
                continue;
            };
            actions.push(Action::MeetingJournal {
                key: Meetings::key(m),
                line: JournalLine {
                    time: now,
                    nick: msg.sender.nick.clone(),
                    text: text.to_owned(),
                    emote,
                    bot: false,
                },
            });
            let out = m.add_line(&msg.sender.nick, text, now, emote);
            if !m.lurk {
                actions.extend(out.replies.into_iter().map(|r| Action::reply(&msg.room, r)));
            }
            if let Some(effect) = out.effect {
                let running = &mut self.running;
                take_effect(
                    running,
                    settings,
                    &home,
                    &msg.room,
                    effect,
                    out.stale_base,
                    &mut actions,
                );
            }
        }
        (actions, was_command)
    }

    /// Logs what the bot says in rooms that hold a meeting, journaling each line just before
    /// the message that carries it.
    pub fn log_outgoing(&mut self, actions: Vec<Action>, now: DateTime<Utc>) -> Vec<Action> {
        let Some(settings) = &self.settings else {
            return actions;
        };
        if self.running.is_empty() {
            return actions;
        }
        let mut out = Vec::with_capacity(actions.len() * 2);
        for a in actions {
            let home = match &a {
                Action::Send { room, .. } if !self.linked.is_empty() => Some(self.home(room)),
                _ => None,
            };
            if let Action::Send { room, text, .. } = &a
                && let Some(m) = self.running.get_mut(home.as_ref().unwrap_or(room))
            {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    m.add_raw_line(&settings.bot_nick, line, now, false);
                    out.push(Action::MeetingJournal {
                        key: Meetings::key(m),
                        line: JournalLine {
                            time: now,
                            nick: settings.bot_nick.clone(),
                            text: line.to_owned(),
                            emote: false,
                            bot: true,
                        },
                    });
                }
            }
            out.push(a);
        }
        out
    }

    /// Takes back the meetings that were running when the bot stopped, from their journals.
    /// A meeting whose journal already holds its `#endmeeting` gets its files written; the
    /// others go on, and the bot says so in their rooms.
    pub fn resume(
        &mut self,
        journals: Vec<(MeetingKey, Vec<JournalLine>)>,
        now: DateTime<Utc>,
    ) -> Vec<Action> {
        let Some(settings) = &self.settings else {
            return Vec::new();
        };
        let mut actions = Vec::new();
        for (key, lines) in journals {
            let Some(mut m) = replay(&key.room, &lines, &settings.prefix) else {
                continue;
            };
            // The key is what the journal is filed under; keep it even if the clock moved.
            m.started = key.started;
            if m.ended.is_some() {
                actions.push(files_action(&m, true, None));
                continue;
            }
            let notice = format!(
                "The bot restarted; the meeting started by {} at {} UTC is resumed ({} lines kept). Chairs: {}.",
                m.owner,
                hms(m.started),
                m.lines.len(),
                m.all_chairs().join(", ")
            );
            self.running.insert(key.room.clone(), m);
            actions.push(Action::reply(&key.room, notice));
        }
        self.log_outgoing(actions, now)
    }
}

/// Writes the files on `#save` (saying where, unless lurking) and on `#endmeeting`, which
/// also ends the meeting of `home` and says so in `room`.
fn take_effect(
    running: &mut BTreeMap<RoomRef, Meeting>,
    settings: &MeetingSettings,
    home: &RoomRef,
    room: &RoomRef,
    effect: Effect,
    stale_base: Option<String>,
    actions: &mut Vec<Action>,
) {
    match effect {
        Effect::Save => {
            let m = &running[home];
            actions.push(files_action(m, false, stale_base));
            if !m.lurk {
                actions.push(Action::reply(
                    room,
                    format!("Minutes saved: {}", links(settings, m).join(" ")),
                ));
            }
        }
        Effect::End => {
            let m = running.remove(home).expect("present");
            actions.push(files_action(&m, true, stale_base));
            actions.extend(
                end_replies(settings, &m)
                    .into_iter()
                    .map(|r| Action::reply(room, r)),
            );
        }
    }
}

fn files_action(m: &Meeting, finished: bool, stale_base: Option<String>) -> Action {
    Action::MeetingFiles {
        stale_base,
        meeting: Box::new(m.clone()),
        finished,
    }
}

fn links(settings: &MeetingSettings, m: &Meeting) -> Vec<String> {
    let url = format!(
        "{}/meetings/{}",
        settings.public_url.trim_end_matches('/'),
        m.base_path()
    );
    vec![
        format!("{url}.html"),
        format!("{url}.txt"),
        format!("{url}.log.html"),
    ]
}

fn end_replies(settings: &MeetingSettings, m: &Meeting) -> Vec<String> {
    let l = links(settings, m);
    vec![
        format!(
            "Meeting ended {} UTC.",
            m.ended.unwrap_or(m.started).format("%a %b %e %H:%M:%S %Y")
        ),
        format!("Minutes:        {}", l[0]),
        format!("Minutes (text): {}", l[1]),
        format!("Log:            {}", l[2]),
    ]
}
