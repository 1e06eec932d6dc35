//! The core's meetings: one per room (one per bridge for linked rooms), replies turned
//! into actions, the bot's own words logged, and the journal written line by line.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::commands::{MeetingCommand, parse_meeting_command};
use super::series::{PreviousMeeting, end_post, start_post};
use super::text::{clean_nick, hms, room_slug};
use super::{Effect, JournalLine, Meeting, MeetingKey, MeetingSettings, replay_as};
use crate::core::action::Action;
use crate::core::bridge::DEFAULT_MAX_LINES;
use crate::core::event::{IncomingMessage, MessageKind, RoomRef};
use crate::core::expiring::ExpiringKeys;

/// What earlier runs left that new meetings must keep clear of (from the store, at start).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeetingClaims {
    /// Every room that held a meeting with its directory, oldest first.
    pub rooms: Vec<(RoomRef, String)>,
    /// Meetings started lately: directory, start and number in that minute.
    pub recent: Vec<(String, DateTime<Utc>, u32)>,
    /// The messages journaled lately (`JournalLine::source`), with when.
    pub sources: Vec<(String, DateTime<Utc>)>,
}

/// How long the key of a message handled in this run is remembered. A network delivers a
/// message again only when it resumes after a crash or a reconnect from a point it saved a
/// little earlier, so minutes are plenty.
const SOURCE_MEMORY: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// How long the keys of messages journaled before a restart are remembered (from when they
/// were said): the catch-up after a restart may reach that far back.
const CLAIMED_MEMORY: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// The most message keys remembered (about 40 bytes each): more than 30 lines a second for
/// ten minutes.
const SOURCE_KEYS: usize = 20_000;

/// The core's meetings: at most one running per room.
#[derive(Debug, Default)]
pub struct Meetings {
    settings: Option<std::sync::Arc<MeetingSettings>>,
    /// Running meetings by their home room (see [`Meetings::home`]).
    running: BTreeMap<RoomRef, Meeting>,
    /// The rooms of each bridge, by member room: a bridge holds one meeting (DESIGN §7).
    linked: BTreeMap<RoomRef, Vec<RoomRef>>,
    /// Each room's directory, and the room that owns each directory: no two rooms share one.
    slug_of: BTreeMap<RoomRef, String>,
    owner_of: BTreeMap<String, RoomRef>,
    /// The last number given to a meeting started in a directory in a minute (`%Y%m%d%H%M`).
    minute_seq: BTreeMap<(String, String), u32>,
    /// Messages already journaled, with when: handled again, they are skipped.
    sources: ExpiringKeys,
    /// The `max_lines` of each bridged room: a series post fits in it (others get
    /// [`DEFAULT_MAX_LINES`]).
    post_lines: BTreeMap<RoomRef, usize>,
}

/// The minute a meeting's files are named after.
fn minute(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d%H%M").to_string()
}

impl Meetings {
    pub fn new(settings: Option<MeetingSettings>) -> Meetings {
        Meetings {
            settings: settings.map(std::sync::Arc::new),
            sources: ExpiringKeys::new(SOURCE_KEYS),
            ..Meetings::default()
        }
    }

    /// New settings (a config reload): meetings that run go on, even in a room the new
    /// scope leaves out, until they end.
    pub fn set_settings(&mut self, settings: MeetingSettings) {
        self.settings = Some(std::sync::Arc::new(settings));
    }

    /// Takes note of the rooms, recent meetings and messages of earlier runs.
    pub fn claim(&mut self, claims: MeetingClaims) {
        for (room, slug) in claims.rooms {
            self.take_slug(&room, &slug);
        }
        for (slug, started, seq) in claims.recent {
            self.take_seq(&slug, started, seq);
        }
        for (source, at) in claims.sources {
            self.sources.insert(&source, at + CLAIMED_MEMORY);
        }
    }

    /// Gives `slug` to `room`, unless another room has it or `room` has one already.
    fn take_slug(&mut self, room: &RoomRef, slug: &str) {
        if self.slug_of.contains_key(room) || self.owner_of.contains_key(slug) {
            return;
        }
        self.slug_of.insert(room.clone(), slug.to_owned());
        self.owner_of.insert(slug.to_owned(), room.clone());
    }

    fn take_seq(&mut self, slug: &str, started: DateTime<Utc>, seq: u32) {
        let n = self
            .minute_seq
            .entry((slug.to_owned(), minute(started)))
            .or_insert(0);
        *n = (*n).max(seq);
    }

    /// The directory of `room`: its slug, or the slug with `-2`, `-3`... when another room
    /// has it (`#x` and `##x`, or `#x` on two networks).
    fn slug_for(&mut self, room: &RoomRef) -> String {
        if let Some(s) = self.slug_of.get(room) {
            return s.clone();
        }
        let base = room_slug(room);
        let slug = (1..)
            .map(|n| {
                if n == 1 {
                    base.clone()
                } else {
                    format!("{base}-{n}")
                }
            })
            .find(|s| !self.owner_of.contains_key(s))
            .expect("some number is free");
        self.take_slug(room, &slug);
        slug
    }

    /// The first free number for a meeting started at `now` in `slug`.
    fn next_seq(&mut self, slug: &str, now: DateTime<Utc>) -> u32 {
        // Only this minute matters: a meeting started now cannot share a file with any other.
        let this = minute(now);
        self.minute_seq.retain(|(_, m), _| *m >= this);
        let n = self.minute_seq.entry((slug.to_owned(), this)).or_insert(0);
        *n += 1;
        *n
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

    /// How many lines a post of the bot may take in each bridged room (its bridge's
    /// `max_lines`): a series post fits in them, and the rest is left to the minutes link.
    pub fn set_post_lines(&mut self, lines: impl IntoIterator<Item = (RoomRef, usize)>) {
        self.post_lines = lines.into_iter().collect();
    }

    fn post_lines_for(&self, room: &RoomRef) -> usize {
        self.post_lines
            .get(room)
            .copied()
            .unwrap_or(DEFAULT_MAX_LINES)
    }

    /// The store's answer to [`Action::RecallSeries`]: the previous meeting of the series is
    /// told in `room`, if the meeting that asked still runs there (and is not lurking).
    pub fn on_recalled(
        &mut self,
        key: &MeetingKey,
        room: &RoomRef,
        previous: Option<&PreviousMeeting>,
    ) -> Vec<Action> {
        let (Some(settings), Some(prev)) = (&self.settings, previous) else {
            return Vec::new();
        };
        match self.running.get(&key.room) {
            Some(m) if Meetings::key(m) == *key && !m.lurk => {
                let post = start_post(prev, &settings.public_url, self.post_lines_for(room));
                vec![Action::reply(room, post)]
            }
            _ => Vec::new(),
        }
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
        MeetingKey::of(m)
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
        if !self.in_scope(settings, &msg.room) && !self.running.contains_key(&home) {
            return (Vec::new(), false);
        }
        let settings = settings.clone();
        let emote = msg.kind == MessageKind::Emote;
        let speaker = settings.speaker(&msg.room.network, msg.sender.principal.as_ref());
        let mut actions = Vec::new();
        // What the bot says about the lines comes after all of them, as it is logged (in
        // `log_outgoing`): the journal then holds the lines in the meeting's order, and a
        // resumed meeting is the same meeting.
        let mut replies = Vec::new();
        let mut was_command = false;
        let max_lines = self.post_lines_for(&msg.room);
        // A multi-line message is logged (and acted on) line by line, as IRC would carry it.
        let lines = msg.text.lines().filter(|l| !l.trim().is_empty());
        for (n, text) in lines.enumerate() {
            let cmd = if emote {
                None
            } else {
                parse_meeting_command(text, &settings.prefix)
            };
            was_command |= cmd.is_some();
            let source = msg
                .id
                .as_ref()
                .map(|id| format!("{}/{id}#{}", msg.room.network, n + 1));
            if source
                .as_ref()
                .is_some_and(|s| self.sources.contains(s, now))
            {
                continue;
            }
            let created = !self.running.contains_key(&home);
            if created {
                if !matches!(cmd, Some((MeetingCommand::StartMeeting, _))) {
                    continue;
                }
                let started = line_time(msg.sent_at, now, None);
                let mut m = Meeting::new(
                    home.clone(),
                    &clean_nick(&msg.sender.nick),
                    started,
                    &settings.prefix,
                );
                m.slug = self.slug_for(&home);
                m.seq = self.next_seq(&m.slug, started);
                if !settings.keep_lines {
                    m.forget_lines();
                }
                self.running.insert(home.clone(), m);
            }
            let Some(m) = self.running.get_mut(&home) else {
                continue;
            };
            if let Some(s) = &source {
                self.sources.insert(s, now + SOURCE_MEMORY);
            }
            let time = line_time(msg.sent_at, now, Some(m.last_spoken));
            actions.push(Action::MeetingJournal {
                key: Meetings::key(m),
                line: JournalLine {
                    time,
                    nick: msg.sender.nick.clone(),
                    text: text.to_owned(),
                    emote,
                    bot: false,
                    network: Some(msg.room.network.clone()),
                    principal: msg.sender.principal.clone(),
                    source,
                },
            });
            let out = m.add_line_by(&msg.sender.nick, &speaker, text, time, emote);
            if !m.lurk {
                replies.extend(out.replies.into_iter().map(|r| Action::reply(&msg.room, r)));
            }
            // A new meeting asks the store for the previous meeting of its series; the answer
            // comes back as `Event::SeriesRecalled`.
            if created && m.ended.is_none() {
                actions.push(Action::RecallSeries {
                    key: Meetings::key(m),
                    room: msg.room.clone(),
                    name: m.file_name(),
                });
            }
            if let Some(effect) = out.effect {
                let running = &mut self.running;
                take_effect(
                    running,
                    &settings,
                    &home,
                    (&msg.room, max_lines),
                    effect,
                    out.stale_base,
                    &mut replies,
                );
            }
        }
        actions.extend(replies);
        (actions, was_command)
    }

    /// Logs what the bot says in rooms that hold a meeting, journaling each line just before
    /// the message that carries it. `at` is the time of the line it answers (or the bot's
    /// clock): an answer is never logged before the line it follows.
    pub fn log_outgoing(&mut self, actions: Vec<Action>, at: DateTime<Utc>) -> Vec<Action> {
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
                let now = at.max(m.last_spoken);
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    m.add_raw_line(&settings.bot_nick, line, now, false);
                    out.push(Action::MeetingJournal {
                        key: Meetings::key(m),
                        line: JournalLine {
                            time: now,
                            nick: settings.bot_nick.clone(),
                            text: line.to_owned(),
                            bot: true,
                            ..JournalLine::default()
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
        let settings = settings.clone();
        let mut actions = Vec::new();
        let mut idle = Vec::new();
        for (key, lines) in journals {
            let speaker = |l: &JournalLine| match &l.network {
                Some(net) => settings.speaker(net, l.principal.as_ref()),
                None => super::Speaker::default(),
            };
            let Some(mut m) = replay_as(&key.room, &lines, &settings.prefix, speaker) else {
                continue;
            };
            // The key is what the journal is filed under; keep it even if the clock moved.
            m.started = key.started;
            m.slug = key.slug.clone();
            m.seq = key.seq;
            self.take_slug(&key.room, &key.slug);
            self.take_seq(&key.slug, key.started, key.seq);
            for l in &lines {
                if let Some(s) = &l.source {
                    self.sources.insert(s, l.time + CLAIMED_MEMORY);
                }
            }
            if m.ended.is_some() {
                actions.push(files_action(&m, true, None));
                continue;
            }
            if !settings.keep_lines {
                m.forget_lines();
            }
            if is_idle(&settings, &m, now) {
                idle.push(key.room.clone());
                self.running.insert(key.room.clone(), m);
                continue;
            }
            let notice = format!(
                "The bot restarted; the meeting started by {} at {} UTC is resumed ({} lines kept). Chairs: {}.",
                m.owner,
                hms(m.started),
                m.line_count(),
                m.all_chairs().join(", ")
            );
            self.running.insert(key.room.clone(), m);
            actions.push(Action::reply(&key.room, notice));
        }
        let mut actions = self.log_outgoing(actions, now);
        for room in idle {
            actions.extend(self.end_idle(&settings, &room, now));
        }
        actions
    }

    /// Ends the meetings where nobody said anything for `[meetings] idle_timeout`, and
    /// forgets message keys old enough never to come again.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Action> {
        let Some(settings) = self.settings.clone() else {
            return Vec::new();
        };
        let settings = &*settings;
        self.sources.prune(now);
        let idle: Vec<RoomRef> = self
            .running
            .iter()
            .filter(|(_, m)| is_idle(settings, m, now))
            .map(|(r, _)| r.clone())
            .collect();
        idle.into_iter()
            .flat_map(|room| self.end_idle(settings, &room, now))
            .collect()
    }

    /// Ends the meeting of `home` for being idle: the reason is the last line of its log
    /// (journaled first), then its files are written and the room is told.
    fn end_idle(
        &mut self,
        settings: &MeetingSettings,
        home: &RoomRef,
        now: DateTime<Utc>,
    ) -> Vec<Action> {
        let Some(m) = self.running.get_mut(home) else {
            return Vec::new();
        };
        let timeout = settings.idle_timeout.unwrap_or_default();
        let why = format!(
            "Ending the meeting: nobody has said anything since {} UTC ({} without a line; [meetings] idle_timeout).",
            m.last_spoken.format("%Y-%m-%d %H:%M:%S"),
            humanize(timeout)
        );
        m.add_raw_line(&settings.bot_nick, &why, now, false);
        let mut actions = vec![Action::MeetingJournal {
            key: Meetings::key(m),
            line: JournalLine {
                time: now,
                nick: settings.bot_nick.clone(),
                text: why.clone(),
                bot: true,
                ..JournalLine::default()
            },
        }];
        m.ended = Some(now);
        let stale = m.mark_saved();
        actions.push(Action::reply(home, why));
        let max_lines = self.post_lines_for(home);
        take_effect(
            &mut self.running,
            settings,
            home,
            (home, max_lines),
            Effect::End,
            stale,
            &mut actions,
        );
        actions
    }
}

/// Whether nobody but the bot said anything in `m` for the idle timeout.
/// How far ahead of the bot's clock a server's time may be before it is taken for a wrong
/// clock (the line then gets the bot's time).
const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// The time a line is logged at: the server's (`sent`) when the network gives one and it is
/// not past `now` by more than [`CLOCK_SKEW`], else `now`; never earlier than `after`, the
/// meeting's latest line said by someone, so that people's lines keep the order they were
/// handled in (the bot's own words, such as its notice on resuming, do not push them later).
pub(crate) fn line_time(
    sent: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    after: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    let t = sent.filter(|t| *t <= now + CLOCK_SKEW).unwrap_or(now);
    after.map_or(t, |a| t.max(a))
}

fn is_idle(settings: &MeetingSettings, m: &Meeting, now: DateTime<Utc>) -> bool {
    settings
        .idle_timeout
        .is_some_and(|t| chrono::TimeDelta::from_std(t).is_ok_and(|t| now - m.last_spoken >= t))
}

/// `3h`, `90m`, `45s`: a timeout as the config writes it.
fn humanize(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Writes the files on `#save` (saying where, unless lurking) and on `#endmeeting`, which
/// also ends the meeting of `home` and says so in `room` (with the series post, within that
/// room's `max_lines`).
fn take_effect(
    running: &mut BTreeMap<RoomRef, Meeting>,
    settings: &MeetingSettings,
    home: &RoomRef,
    (room, max_lines): (&RoomRef, usize),
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
            let mut said = end_replies(settings, &m);
            if !m.lurk
                && let Some(post) = end_post(&m, &settings.public_url, max_lines)
            {
                said.insert(1, post);
            }
            actions.extend(said.into_iter().map(|r| Action::reply(room, r)));
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
