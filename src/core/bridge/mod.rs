//! The bridge (DESIGN §8): a message in one room of a `[[bridge]]` goes to every other room
//! of that bridge, never back to its source, shown in the way each side reads naturally.
//!
//! This is the pure part: routing, ignore rules, sender names, formatting, line splitting,
//! paste links, mention defusing, and copies of the bot's own answers for the other rooms;
//! on the Matrix side, pills both ways, and edits, replies, reactions, removals and files
//! made readable on IRC, with a small memory of each room's recent messages by ID.
//! It returns [`Action::Bridged`] messages, which the app stores in the destination
//! network's durable outbox before delivering them in order, and [`Action::Paste`]s.
//!
//! Loops cannot form: adapters never turn the bot's own lines (nor echo-message echoes)
//! into events, configured other bots are ignored here, and relayed text is never handled
//! as anyone's command: only the original message, with its typist's own principal, reaches
//! the command handlers.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use regex::Regex;

use super::action::{Action, Bridged, SendKind};
use super::event::{IncomingMessage, Member, MessageKind, RichMessage, RoomRef};

mod activity;
mod content;
mod delivery;
mod lines;
mod names;
mod outgoing;
mod presence;
pub use content::Content;
use lines::snippet;
pub use lines::{human_size, irc_lines, quote, stale_notice, substitution};
pub use names::{clean_display_name, unhighlight};
pub use outgoing::{DEFAULT_MAX_LINES, DEFAULT_MAX_MENTIONS};
pub use presence::{PresenceRelay, is_netsplit_reason};

/// Zero-width space: put inside a nick so that the same nick on IRC is not highlighted.
pub const ZWSP: char = '\u{200B}';

/// Longest shown name, in characters (IRC clients align nicks; long names wreck that).
pub const MAX_NAME_CHARS: usize = 30;

/// How a network shows relayed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SideKind {
    /// IRC: one PRIVMSG per line, mIRC codes, 512-byte lines. `nick_len` and `user_len` are
    /// the longest nick and user name the bot may have there, for the line budget.
    Irc { nick_len: usize, user_len: usize },
    /// Matrix: a plain body and HTML.
    Matrix,
    /// The console: plain lines, like IRC without the line limit.
    Console,
}

/// How an edit made on Matrix reaches IRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EditMode {
    /// `s/old/new/` for a small change to a one-line message, else the new text.
    #[default]
    Diff,
    /// `* new text`, always.
    Full,
    /// Not at all.
    Ignore,
}

/// What a bridge does with what only Matrix has.
#[derive(Debug, Clone, Default)]
pub struct MatrixRelay {
    pub edits: EditMode,
    /// `* nick reacted 👍 to "snippet"`.
    pub reactions: bool,
    /// A notice when a relayed message is removed.
    pub redactions: bool,
    /// Relay end-to-end encrypted rooms (the bot decrypts them; the other side does not).
    pub encrypted: bool,
}

/// One `[[bridge]]`, validated.
#[derive(Debug, Clone)]
pub struct BridgeSpec {
    pub name: String,
    pub rooms: Vec<RoomRef>,
    /// IRC lines one message may become; past it, a paste link.
    pub max_lines: usize,
    /// Other bots by nick (case-insensitive).
    pub ignore_nicks: Vec<String>,
    /// Other bots by principal (`network:identity`) or identity (`@bot:example.org`).
    pub ignore_users: Vec<String>,
    /// Other bots by a pattern over their nick or display name, their identity, or the text
    /// of the message (a bot's fixed `[ci] ` prefix, say); patterns may contain spaces.
    pub ignore_regex: Vec<Regex>,
    /// Relayed messages older than this when their network can take them are dropped.
    pub staleness: Duration,
    /// A line mentioning more members of the destination room than this is defused.
    pub max_mentions: usize,
    /// Which joins, parts, quits, nick and topic changes are relayed.
    pub presence: PresenceRelay,
    pub matrix: MatrixRelay,
}

#[derive(Debug, Clone)]
pub struct BridgeSettings {
    pub bridges: Vec<BridgeSpec>,
    /// Every chat network's kind, by name.
    pub sides: BTreeMap<String, SideKind>,
    /// Where the web site serves `/paste/<id>`; `None` without a web site (then long
    /// messages are cut, with a note).
    pub public_url: Option<String>,
}

/// The bridges' routing state.
#[derive(Debug)]
pub struct Bridges {
    settings: BridgeSettings,
    by_room: HashMap<RoomRef, usize>,
    rng: StdRng,
    /// Per bridge: lower-cased shown name -> the identities seen using it.
    names: Vec<HashMap<String, BTreeSet<String>>>,
    /// Per room: lower-cased nicks (or display names) of the people seen there.
    members: HashMap<RoomRef, BTreeSet<String>>,
    /// Per room: quits held back while a netsplit settles.
    splits: HashMap<RoomRef, presence::Splits>,
    /// Per Matrix room: its members with their user IDs, for pills and name clashes.
    matrix_members: HashMap<RoomRef, Vec<Member>>,
    /// Per source room: the messages relayed lately, for edits, replies and reactions.
    recent: HashMap<RoomRef, RoomMemory>,
}

/// How many relayed messages each room remembers by ID.
const REMEMBERED: usize = 256;
/// A reply to one of the last few messages, sent soon after it, needs no quote on IRC.
const RECENT_MESSAGES: u64 = 3;
const RECENT_AGE: chrono::TimeDelta = chrono::TimeDelta::minutes(5);
/// Characters of the original quoted in replies, reactions and removal notices.
const SNIPPET_CHARS: usize = 40;

/// A message relayed from a room, as later events about it need it.
#[derive(Debug, Clone)]
struct Remembered {
    id: String,
    name: String,
    plain: String,
    at: DateTime<Utc>,
    seq: u64,
}

#[derive(Debug, Default)]
struct RoomMemory {
    next_seq: u64,
    items: VecDeque<Remembered>,
}

impl RoomMemory {
    fn remember(&mut self, id: &str, name: &str, plain: &str, at: DateTime<Utc>) {
        if self.items.len() == REMEMBERED {
            self.items.pop_front();
        }
        self.items.push_back(Remembered {
            id: id.to_owned(),
            name: name.to_owned(),
            plain: plain.to_owned(),
            at,
            seq: self.next_seq,
        });
        self.next_seq += 1;
    }

    fn get(&self, id: &str) -> Option<&Remembered> {
        self.items.iter().rev().find(|r| r.id == id)
    }

    /// Among the last few messages and not old: readers still have it in view.
    fn is_recent(&self, r: &Remembered, now: DateTime<Utc>) -> bool {
        self.next_seq - r.seq <= RECENT_MESSAGES && now - r.at <= RECENT_AGE
    }
}

impl Default for Bridges {
    fn default() -> Self {
        Self::new(
            BridgeSettings {
                bridges: Vec::new(),
                sides: BTreeMap::new(),
                public_url: None,
            },
            0,
        )
    }
}

impl Bridges {
    /// `seed` drives the paste IDs: fixed in tests, random in the bot.
    pub fn new(settings: BridgeSettings, seed: u64) -> Self {
        let mut by_room = HashMap::new();
        for (i, b) in settings.bridges.iter().enumerate() {
            for r in &b.rooms {
                by_room.insert(r.clone(), i);
            }
        }
        let names = vec![HashMap::new(); settings.bridges.len()];
        Self {
            settings,
            by_room,
            rng: StdRng::seed_from_u64(seed),
            names,
            members: HashMap::new(),
            splits: HashMap::new(),
            matrix_members: HashMap::new(),
            recent: HashMap::new(),
        }
    }

    /// Takes new settings (a config reload) and keeps what was learnt: the names seen on
    /// each bridge that keeps its name, and per room the members (known of every room the
    /// bot is in, bridged or not), recent messages and netsplits held back.
    pub fn reconfigure(&mut self, settings: BridgeSettings) {
        let mut old_names: HashMap<String, HashMap<String, BTreeSet<String>>> = self
            .settings
            .bridges
            .iter()
            .map(|b| b.name.clone())
            .zip(std::mem::take(&mut self.names))
            .collect();
        let mut by_room = HashMap::new();
        for (i, b) in settings.bridges.iter().enumerate() {
            for r in &b.rooms {
                by_room.insert(r.clone(), i);
            }
        }
        self.names = settings
            .bridges
            .iter()
            .map(|b| old_names.remove(&b.name).unwrap_or_default())
            .collect();
        self.by_room = by_room;
        self.settings = settings;
    }

    pub fn is_empty(&self) -> bool {
        self.settings.bridges.is_empty()
    }

    /// The rooms of every bridge (for meetings, which keep one meeting per bridge).
    pub fn groups(&self) -> Vec<Vec<RoomRef>> {
        self.settings
            .bridges
            .iter()
            .map(|b| b.rooms.clone())
            .collect()
    }

    /// Each bridged room with its bridge's `max_lines`: what the bot says there fits in them.
    pub fn post_lines(&self) -> Vec<(RoomRef, usize)> {
        self.settings
            .bridges
            .iter()
            .flat_map(|b| b.rooms.iter().map(|r| (r.clone(), b.max_lines)))
            .collect()
    }

    /// The bridge a room belongs to.
    pub fn bridge_of(&self, room: &RoomRef) -> Option<&BridgeSpec> {
        self.by_room.get(room).map(|&i| &self.settings.bridges[i])
    }

    /// Tells the bridge who is in a room (an IRC channel's NAMES, a Matrix room's members),
    /// for name disambiguation and mention defusing. People seen talking are added anyway.
    pub fn set_members(&mut self, room: &RoomRef, names: impl IntoIterator<Item = String>) {
        let set = names.into_iter().map(|n| n.to_lowercase()).collect();
        self.members.insert(room.clone(), set);
    }

    /// Tells the bridge who is in a Matrix room, with their user IDs: names clashing with
    /// theirs are told apart, and IRC mentions of them become pills.
    pub fn set_room_members(&mut self, room: &RoomRef, members: Vec<Member>) {
        self.matrix_members.insert(room.clone(), members);
    }

    fn ignored(spec: &BridgeSpec, msg: &IncomingMessage) -> bool {
        let nick = &msg.sender.nick;
        if spec
            .ignore_nicks
            .iter()
            .any(|n| n.eq_ignore_ascii_case(nick))
        {
            return true;
        }
        if let Some(p) = &msg.sender.principal {
            let full = p.to_string();
            if spec
                .ignore_users
                .iter()
                .any(|u| *u == full || *u == p.identity)
            {
                return true;
            }
            if spec.ignore_regex.iter().any(|r| r.is_match(&p.identity)) {
                return true;
            }
        }
        spec.ignore_regex
            .iter()
            .any(|r| r.is_match(nick) || r.is_match(&msg.text))
    }

    /// Relays a message to the other rooms of its bridge.
    pub fn relay(&mut self, msg: &IncomingMessage, now: DateTime<Utc>) -> Vec<Action> {
        self.relay_message(msg, None, None, now)
    }

    /// Relays a Matrix message with HTML or a reply relation. An encrypted room is relayed
    /// only by a bridge that says `encrypted = true`.
    pub fn relay_rich(&mut self, rich: &RichMessage, now: DateTime<Utc>) -> Vec<Action> {
        let Some(spec) = self.bridge_of(&rich.message.room) else {
            return Vec::new();
        };
        if rich.encrypted && !spec.matrix.encrypted {
            return Vec::new();
        }
        self.relay_message(
            &rich.message,
            rich.html.as_deref(),
            rich.reply_to.as_deref(),
            now,
        )
    }

    fn relay_message(
        &mut self,
        msg: &IncomingMessage,
        html: Option<&str>,
        reply_to: Option<&str>,
        now: DateTime<Utc>,
    ) -> Vec<Action> {
        let Some(&bi) = self.by_room.get(&msg.room) else {
            return Vec::new();
        };
        let spec = &self.settings.bridges[bi];
        // Notices are how bots talk; relaying them invites bot loops.
        if msg.kind == MessageKind::Notice || Self::ignored(spec, msg) {
            return Vec::new();
        }
        let source_side = self.settings.sides.get(&msg.room.network).cloned();
        let mut actions = Vec::new();
        let content = match source_side {
            Some(SideKind::Matrix) => {
                let mut code_paste = |code: &str| self.code_link(code, &mut actions);
                Content::from_matrix(&msg.text, html, &mut code_paste)
            }
            _ => Content::from_irc(&msg.text),
        };
        // Edits and reactions quote the message as it was typed, without the reply's lead.
        let typed = content.plain.clone();
        let content = match reply_to {
            Some(of) => self.as_reply(&msg.room, of, content, now),
            None => content,
        };
        self.members
            .entry(msg.room.clone())
            .or_default()
            .insert(msg.sender.nick.to_lowercase());
        let name = self.shown_name(bi, msg);
        if let Some(id) = &msg.id {
            self.recent
                .entry(msg.room.clone())
                .or_default()
                .remember(id, &name, &typed, now);
        }
        let emote = msg.kind == MessageKind::Emote;
        self.deliver(bi, &msg.room, &name, &content, emote, now, &mut actions);
        actions
    }

    /// `nick: text` for a reply to a remembered message, with a snippet of the original
    /// when readers may no longer have it in view.
    fn as_reply(&self, room: &RoomRef, of: &str, content: Content, now: DateTime<Utc>) -> Content {
        let Some(memory) = self.recent.get(room) else {
            return content;
        };
        let Some(orig) = memory.get(of) else {
            return content;
        };
        let lead = format!("{}: ", orig.name);
        if memory.is_recent(orig, now) {
            content.wrapped(&lead, "")
        } else {
            content.wrapped(&lead, &format!(" (re \"{}\")", snippet(&orig.plain)))
        }
    }

    /// What IRC shows in place of a Matrix code block longer than a line: a paste link.
    fn code_link(&mut self, code: &str, actions: &mut Vec<Action>) -> String {
        match self.new_paste(code, actions) {
            Some(url) => format!("(code: {url})"),
            None => "(code block not shown)".to_owned(),
        }
    }

    /// Makes a paste of `text`; returns its URL, or `None` without a web site.
    fn new_paste(&mut self, text: &str, actions: &mut Vec<Action>) -> Option<String> {
        let base = self.settings.public_url.clone()?;
        let id = self.new_id();
        actions.push(Action::Paste {
            id: id.clone(),
            text: text.to_owned(),
        });
        Some(format!("{}/paste/{id}", base.trim_end_matches('/')))
    }

    /// An unguessable ID for a paste or a media link.
    fn new_id(&mut self) -> String {
        const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyz23456789";
        (0..20)
            .map(|_| ALPHABET[self.rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    }

    /// Copies of what the bot says in a bridged room, for the bridge's other rooms, so that
    /// an answer reaches every room once. Rooms the actions already reach with the same text
    /// get no copy.
    pub fn fan_out(&self, actions: &[Action], now: DateTime<Utc>) -> Vec<Action> {
        if self.is_empty() {
            return Vec::new();
        }
        let direct: BTreeSet<(&RoomRef, &str)> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { room, text, .. } => Some((room, text.as_str())),
                Action::Bridged(b) => Some((&b.room, b.text.as_str())),
                _ => None,
            })
            .collect();
        let mut out = Vec::new();
        let mut copied: BTreeSet<(RoomRef, String)> = BTreeSet::new();
        for a in actions {
            let Action::Send {
                room, text, html, ..
            } = a
            else {
                continue;
            };
            let Some(spec) = self.bridge_of(room) else {
                continue;
            };
            for dest in spec.rooms.iter().filter(|r| *r != room) {
                if direct.contains(&(dest, text.as_str()))
                    || !copied.insert((dest.clone(), text.clone()))
                {
                    continue;
                }
                out.push(bridged(
                    spec,
                    dest,
                    text.clone(),
                    html.clone(),
                    Vec::new(),
                    SendKind::Reply,
                    now,
                ));
            }
        }
        out
    }
}

fn bridged(
    spec: &BridgeSpec,
    room: &RoomRef,
    text: String,
    html: Option<String>,
    mentions: Vec<String>,
    kind: SendKind,
    now: DateTime<Utc>,
) -> Action {
    Action::Bridged(Bridged {
        source: None,
        bridge: spec.name.clone(),
        room: room.clone(),
        text,
        html,
        mentions,
        kind,
        at: now,
        sent_at: None,
        staleness: spec.staleness,
    })
}

#[cfg(test)]
mod tests;
