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
use super::event::{
    Activity, IncomingMessage, Media, Member, MessageKind, RichMessage, RoomActivity, RoomRef,
};
use super::format;
use super::format::irc_text;

mod presence;
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

/// What a relayed message says, in the forms the sides need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// Text with mIRC formatting codes, lines separated by `\n`.
    pub irc: String,
    /// Text without formatting.
    pub plain: String,
    /// Matrix HTML, when the message is formatted.
    pub html: Option<String>,
}

impl Content {
    /// Text that carries no formatting, whatever it contains.
    pub fn plain(text: &str) -> Content {
        let plain = format::strip_irc_formatting(&normalize_newlines(text));
        Content {
            irc: plain.clone(),
            plain,
            html: None,
        }
    }

    /// The same message with `lead` before it and `tail` after it, both plain text.
    fn wrapped(self, lead: &str, tail: &str) -> Content {
        let (lead, tail) = (
            format::strip_irc_formatting(lead),
            format::strip_irc_formatting(tail),
        );
        Content {
            irc: format!("{lead}{}{tail}", self.irc),
            plain: format!("{lead}{}{tail}", self.plain),
            html: self.html.map(|h| {
                format!(
                    "{}{h}{}",
                    format::escape_html(&lead),
                    format::escape_html(&tail)
                )
            }),
        }
    }
    /// A message as IRC (or the console) carries it: text with mIRC codes.
    pub fn from_irc(text: &str) -> Content {
        let text = normalize_newlines(text);
        Content {
            plain: format::strip_irc_formatting(&text),
            html: format::irc_to_html(&text),
            irc: text,
        }
    }

    /// A message as Matrix carries it: a plain body and, when formatted, HTML. Code blocks
    /// longer than a line go to `long_code` (a paste) on the IRC side.
    pub fn from_matrix(
        body: &str,
        html: Option<&str>,
        long_code: &mut dyn FnMut(&str) -> String,
    ) -> Content {
        let body = normalize_newlines(body);
        let irc = html
            .and_then(|h| format::html_to_irc(h, long_code))
            .unwrap_or_else(|| format::strip_irc_formatting(&body));
        Content {
            irc,
            html: html.map(str::to_owned),
            plain: body,
        }
    }
}

fn normalize_newlines(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// Cleans a display name for showing on another network: no control or formatting
/// characters (bidi overrides, zero-width characters, mIRC codes), no `<>`, whitespace
/// collapsed, at most [`MAX_NAME_CHARS`] characters.
pub fn clean_display_name(name: &str) -> String {
    let kept: String = name
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .filter(|c| !c.is_control() && !is_format_char(*c) && !matches!(c, '<' | '>'))
        .collect();
    let collapsed = kept.split_whitespace().collect::<Vec<_>>().join(" ");
    shorten(&collapsed, MAX_NAME_CHARS)
}

/// Unicode "Cf" (format) characters and the other invisibles a name could hide behind.
fn is_format_char(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{E0000}'..='\u{E0FFF}')
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out = out.trim_end().to_owned();
    out.push('…');
    out
}

/// A nick with a zero-width space after its first character.
pub fn unhighlight(nick: &str) -> String {
    let mut chars = nick.chars();
    match chars.next() {
        Some(first) => {
            let mut out = String::with_capacity(nick.len() + 3);
            out.push(first);
            out.push(ZWSP);
            out.push_str(chars.as_str());
            out
        }
        None => String::new(),
    }
}

/// The notice that sums up what a destination missed while its network was away.
pub fn stale_notice(dropped: usize, staleness: Duration) -> String {
    let mins = staleness.as_secs().div_ceil(60);
    format!(
        "{dropped} relayed message{} older than {mins} min could not be delivered while this network was unreachable, and {} dropped",
        if dropped == 1 { "" } else { "s" },
        if dropped == 1 { "was" } else { "were" }
    )
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

    /// The name shown for the sender: cleaned, and for Matrix users followed by their user
    /// ID when another person of the bridge goes by the same name.
    fn shown_name(&mut self, bridge: usize, msg: &IncomingMessage) -> String {
        let side = self.settings.sides.get(&msg.room.network).cloned();
        let matrix_id = match (&side, &msg.sender.principal) {
            (Some(SideKind::Matrix), Some(p)) => Some(p.identity.clone()),
            _ => None,
        };
        let mut name = clean_display_name(&msg.sender.nick);
        if name.is_empty() {
            name = matrix_id
                .as_deref()
                .map(|id| {
                    let local = id.trim_start_matches('@');
                    clean_display_name(local.split(':').next().unwrap_or(local))
                })
                .unwrap_or_else(|| "someone".to_owned());
        }
        let identity = match &matrix_id {
            Some(id) => format!("{}:{id}", msg.room.network),
            None => format!("{}/{}", msg.room.network, msg.sender.nick.to_lowercase()),
        };
        let key = name.to_lowercase();
        let seen = self.names[bridge].entry(key.clone()).or_default();
        seen.insert(identity.clone());
        let shared = seen.len() > 1
            || matrix_id.as_ref().is_some_and(|id| {
                self.settings.bridges[bridge].rooms.iter().any(|r| {
                    self.matrix_members.get(r).is_some_and(|ms| {
                        ms.iter().any(|m| {
                            m.id.as_deref() != Some(id.as_str())
                                && clean_display_name(&m.name).to_lowercase() == key
                        })
                    })
                })
            });
        let on_irc = self.settings.bridges[bridge].rooms.iter().any(|r| {
            r != &msg.room
                && matches!(
                    self.settings.sides.get(&r.network),
                    Some(SideKind::Irc { .. })
                )
                && self.members.get(r).is_some_and(|m| m.contains(&key))
        });
        match matrix_id {
            Some(id) if shared || on_irc => format!("{name} ({id})"),
            _ => name,
        }
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
                let mut code_paste = |code: &str| -> String {
                    match self.new_paste(code, &mut actions) {
                        Some(url) => format!("(code: {url})"),
                        None => "(code block not shown)".to_owned(),
                    }
                };
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

    /// Sends a message, as `name` says it, to every room of bridge `bi` but `source`.
    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &mut self,
        bi: usize,
        source: &RoomRef,
        name: &str,
        content: &Content,
        emote: bool,
        now: DateTime<Utc>,
        actions: &mut Vec<Action>,
    ) {
        let spec = self.settings.bridges[bi].clone();
        let from_matrix = matches!(
            self.settings.sides.get(&source.network),
            Some(SideKind::Matrix)
        );
        let mut paste: Option<Option<String>> = None;
        for dest in spec.rooms.iter().filter(|r| *r != source) {
            let side = self
                .settings
                .sides
                .get(&dest.network)
                .cloned()
                .unwrap_or(SideKind::Console);
            match side {
                SideKind::Matrix => {
                    let text_html = content
                        .html
                        .clone()
                        .unwrap_or_else(|| format::text_to_html(&content.plain));
                    // Matrix users mention each other with pills already.
                    let (text_html, mentions) = if from_matrix {
                        (text_html, Vec::new())
                    } else {
                        self.pills(dest, &text_html, spec.max_mentions)
                    };
                    let (body, html) = matrix_message(name, &content.plain, &text_html, emote);
                    actions.push(bridged(
                        &spec,
                        dest,
                        body,
                        Some(html),
                        mentions,
                        SendKind::Relay,
                        now,
                    ));
                }
                SideKind::Irc { .. } | SideKind::Console => {
                    let budget = line_budget(&side, &dest.room);
                    let text = self.defuse(dest, &content.irc, spec.max_mentions);
                    let lines = irc_lines(name, &text, emote, budget);
                    let lines = if lines.len() > spec.max_lines {
                        let url = match &paste {
                            Some(u) => u.clone(),
                            None => {
                                let u = self.new_paste(&content.plain, actions);
                                paste = Some(u.clone());
                                u
                            }
                        };
                        cut_with_link(name, lines, spec.max_lines, url.as_deref(), emote)
                    } else {
                        lines
                    };
                    for l in lines {
                        actions.push(bridged(
                            &spec,
                            dest,
                            l,
                            None,
                            Vec::new(),
                            SendKind::Relay,
                            now,
                        ));
                    }
                }
            }
        }
    }

    /// Makes what happened to a Matrix message readable in the bridge's other rooms:
    /// edits, replies' targets, reactions, removals and shared files.
    pub fn relay_activity(&mut self, act: &RoomActivity, now: DateTime<Utc>) -> Vec<Action> {
        let Some(&bi) = self.by_room.get(&act.room) else {
            return Vec::new();
        };
        let spec = self.settings.bridges[bi].clone();
        if act.encrypted && !spec.matrix.encrypted {
            return Vec::new();
        }
        let as_message = IncomingMessage {
            room: act.room.clone(),
            sender: act.sender.clone(),
            kind: MessageKind::Text,
            text: match &act.what {
                Activity::Edit { text, .. } => text.clone(),
                Activity::Media(m) => m.body.clone(),
                _ => String::new(),
            },
            id: act.id.clone(),
            sent_at: act.sent_at,
        };
        if Self::ignored(&spec, &as_message) {
            return Vec::new();
        }
        let mut actions = Vec::new();
        let name = self.shown_name(bi, &as_message);
        let (content, emote) = match &act.what {
            Activity::Edit { of, text, html } => {
                if spec.matrix.edits == EditMode::Ignore {
                    return Vec::new();
                }
                let mut code_paste = |code: &str| -> String {
                    match self.new_paste(code, &mut actions) {
                        Some(url) => format!("(code: {url})"),
                        None => "(code block not shown)".to_owned(),
                    }
                };
                let new = Content::from_matrix(text, html.as_deref(), &mut code_paste);
                let memory = self.recent.entry(act.room.clone()).or_default();
                let old = memory.items.iter_mut().rev().find(|r| r.id == *of);
                let diff = match (spec.matrix.edits, &old) {
                    (EditMode::Diff, Some(old)) => substitution(&old.plain, &new.plain),
                    _ => None,
                };
                if let Some(old) = old {
                    old.plain = new.plain.clone();
                }
                match diff {
                    Some(s) => (Content::plain(&s), false),
                    None => (new.wrapped("* ", ""), false),
                }
            }
            Activity::Reaction { to, key } => {
                if !spec.matrix.reactions {
                    return Vec::new();
                }
                let key = shorten(&clean_display_name(key), 16);
                let text = match self.recall(&act.room, to) {
                    Some(r) => format!("reacted {key} to \"{}\"", snippet(&r.plain)),
                    None => format!("reacted {key}"),
                };
                (Content::plain(&text), true)
            }
            Activity::Redaction { of, .. } => {
                if !spec.matrix.redactions {
                    return Vec::new();
                }
                // Only messages the other side saw are worth a word.
                let Some(r) = self.recall(&act.room, of) else {
                    return Vec::new();
                };
                let text = if r.name == name {
                    format!("deleted \"{}\"", snippet(&r.plain))
                } else {
                    format!("deleted a message of {}: \"{}\"", r.name, snippet(&r.plain))
                };
                (Content::plain(&text), true)
            }
            Activity::Media(m) => {
                let text = self.media_line(&act.room.network, m, &mut actions);
                if let Some(id) = &act.id {
                    self.recent
                        .entry(act.room.clone())
                        .or_default()
                        .remember(id, &name, &m.body, now);
                }
                (Content::plain(&text), true)
            }
        };
        self.deliver(bi, &act.room, &name, &content, emote, now, &mut actions);
        actions
    }

    /// Remembers a message relayed into a Matrix room under the ID it got there (`text` is
    /// its body, `nick: text` or `* nick text`), so that replies and reactions to it name
    /// who said it.
    pub fn remember_delivered(&mut self, room: &RoomRef, id: &str, text: &str, now: DateTime<Utc>) {
        if !self.by_room.contains_key(room) {
            return;
        }
        let said = match text.strip_prefix("* ") {
            Some(emote) => emote.split_once(' '),
            None => text.split_once(": "),
        };
        if let Some((name, said)) = said {
            self.recent
                .entry(room.clone())
                .or_default()
                .remember(id, name, said, now);
        }
    }

    fn recall(&self, room: &RoomRef, id: &str) -> Option<&Remembered> {
        self.recent.get(room)?.get(id)
    }

    /// `sent cat.png (120 KB): URL`, the URL serving the file from the bot's web site.
    fn media_line(&mut self, network: &str, m: &Media, actions: &mut Vec<Action>) -> String {
        let file = shorten(&clean_display_name(&m.body), 80);
        let file = if file.is_empty() {
            "a file".to_owned()
        } else {
            file
        };
        let described = match m.size {
            Some(size) => format!("{file} ({})", human_size(size)),
            None => file,
        };
        if m.encrypted {
            // Serving it would mean decrypting it for anyone who has the link.
            return format!("sent {described} (end-to-end encrypted, not shown here)");
        }
        if !m.url.starts_with("mxc://") {
            return format!("sent {described}");
        }
        let Some(base) = self.settings.public_url.clone() else {
            return format!("sent {described}");
        };
        let id = self.new_id();
        actions.push(Action::MediaLink {
            id: id.clone(),
            network: network.to_owned(),
            uri: m.url.clone(),
            name: m.body.clone(),
            mimetype: m.mimetype.clone(),
        });
        format!(
            "sent {described}: {}/media/{id}",
            base.trim_end_matches('/')
        )
    }

    /// Turns mentions of a Matrix room's members in relayed HTML into pills; returns the
    /// HTML and the user IDs mentioned (the event's `m.mentions`). A line naming more than
    /// `max` of them gets no pills: mass pings are how spam works.
    fn pills(&self, room: &RoomRef, html: &str, max: usize) -> (String, Vec<String>) {
        let Some(members) = self.matrix_members.get(room) else {
            return (html.to_owned(), Vec::new());
        };
        // (what IRC users type, lower-cased and escaped as in the HTML; user ID; pill text)
        let mut names: Vec<(String, &str, String)> = Vec::new();
        for m in members {
            let Some(id) = m.id.as_deref() else {
                continue;
            };
            let shown = clean_display_name(&m.name);
            let local = id.trim_start_matches('@').split(':').next().unwrap_or("");
            for typed in [shown.as_str(), local] {
                if typed.chars().count() >= 2 {
                    names.push((
                        format::escape_html(&typed.to_lowercase()),
                        id,
                        format::escape_html(&shown),
                    ));
                }
            }
        }
        // The longest name wins where one contains another.
        names.sort_by_key(|n| std::cmp::Reverse(n.0.len()));
        let mut out = String::with_capacity(html.len());
        let mut mentioned: Vec<String> = Vec::new();
        let mut rest = html;
        while !rest.is_empty() {
            // Tags are copied as they are; names are looked for in the text between them.
            if rest.starts_with('<') {
                let end = rest.find('>').map_or(rest.len(), |i| i + 1);
                out.push_str(&rest[..end]);
                rest = &rest[end..];
                continue;
            }
            let end = rest.find('<').unwrap_or(rest.len());
            let text = &rest[..end];
            rest = &rest[end..];
            let mut i = 0;
            let mut prev_word = false;
            while i < text.len() {
                let found = (!prev_word)
                    .then(|| {
                        names.iter().find(|(typed, _, _)| {
                            text.get(i..i + typed.len())
                                .is_some_and(|t| t.to_lowercase() == *typed)
                                && !text[i + typed.len()..]
                                    .chars()
                                    .next()
                                    .is_some_and(is_name_char)
                        })
                    })
                    .flatten();
                if let Some((typed, id, shown)) = found {
                    out.push_str(&format!(
                        "<a href=\"https://matrix.to/#/{}\">{shown}</a>",
                        format::escape_html(id)
                    ));
                    if !mentioned.iter().any(|m| m == id) {
                        mentioned.push((*id).to_owned());
                    }
                    i += typed.len();
                    prev_word = true;
                    continue;
                }
                let c = text[i..].chars().next().expect("in bounds");
                out.push(c);
                prev_word = is_name_char(c);
                i += c.len_utf8();
            }
        }
        if mentioned.len() > max {
            return (html.to_owned(), Vec::new());
        }
        (out, mentioned)
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

    /// Inserts a zero-width space into each mentioned member's nick when a line mentions
    /// more than `max` of them (mass highlights are how spam works on IRC).
    fn defuse(&self, room: &RoomRef, text: &str, max: usize) -> String {
        let Some(members) = self.members.get(room) else {
            return text.to_owned();
        };
        let is_nick_char = |c: char| {
            c.is_alphanumeric()
                || matches!(
                    c,
                    '[' | ']' | '\\' | '`' | '_' | '^' | '{' | '|' | '}' | '-'
                )
        };
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            let words: Vec<(usize, &str)> = split_words(line, is_nick_char);
            let mentioned: BTreeSet<String> = words
                .iter()
                .map(|(_, w)| w.to_lowercase())
                .filter(|w| members.contains(w))
                .collect();
            if mentioned.len() <= max {
                out.push_str(line);
                continue;
            }
            let mut last = 0;
            for (at, w) in words {
                if mentioned.contains(&w.to_lowercase()) {
                    out.push_str(&line[last..at]);
                    out.push_str(&unhighlight(w));
                    last = at + w.len();
                }
            }
            out.push_str(&line[last..]);
        }
        out
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
        staleness: spec.staleness,
    })
}

/// `(byte offset, word)` for each run of `is_word` characters.
fn split_words(line: &str, is_word: impl Fn(char) -> bool) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (is_word(c), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, &line[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &line[s..]));
    }
    out
}

/// The Matrix form: body `nick: text`, formatted `<b>nick</b>: text`; emotes `* nick text`.
fn matrix_message(name: &str, plain: &str, html_text: &str, emote: bool) -> (String, String) {
    let html_name = format::escape_html(name);
    if emote {
        (
            format!("* {name} {plain}"),
            format!("* <b>{html_name}</b> {html_text}"),
        )
    } else {
        (
            format!("{name}: {plain}"),
            format!("<b>{html_name}</b>: {html_text}"),
        )
    }
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric()
        || matches!(
            c,
            '_' | '-' | '[' | ']' | '\\' | '`' | '^' | '{' | '|' | '}'
        )
}

/// The start of a message's first line, for quoting it in one line.
fn snippet(text: &str) -> String {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let one_line = first.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut s = shorten(&one_line, SNIPPET_CHARS);
    if text.trim().lines().count() > 1 && !s.ends_with('…') {
        s.push('…');
    }
    s
}

/// A file size as people read it: `900 B`, `120 KB`, `3.4 MB`.
pub fn human_size(bytes: u64) -> String {
    const KB: u64 = 1024;
    const MB: u64 = 1024 * KB;
    if bytes < KB {
        format!("{bytes} B")
    } else if bytes < MB {
        format!("{} KB", bytes.div_ceil(KB))
    } else {
        format!("{:.1} MB", bytes as f64 / MB as f64)
    }
}

/// `s/old/new/` for a small change to a one-line message, cut at word boundaries; `None`
/// when the whole new text reads better (several lines, an insertion, a large change, a
/// part that occurs twice or holds a `/`).
pub fn substitution(old: &str, new: &str) -> Option<String> {
    if old == new || old.contains('\n') || new.contains('\n') {
        return None;
    }
    let o: Vec<char> = old.chars().collect();
    let n: Vec<char> = new.chars().collect();
    let mut pre = o.iter().zip(&n).take_while(|(a, b)| a == b).count();
    let mut suf = o
        .iter()
        .rev()
        .zip(n.iter().rev())
        .take_while(|(a, b)| a == b)
        .count()
        .min(o.len().min(n.len()) - pre);
    // Cut only between words: move the cuts out of any word they fall inside.
    let ws_at = |v: &[char], i: usize| v.get(i).is_none_or(|c| c.is_whitespace());
    let ws_before = |v: &[char], i: usize| i == 0 || v[i - 1].is_whitespace();
    while pre > 0 && !o[pre - 1].is_whitespace() && !(ws_at(&o, pre) && ws_at(&n, pre)) {
        pre -= 1;
    }
    while suf > 0
        && !o[o.len() - suf].is_whitespace()
        && !(ws_before(&o, o.len() - suf) && ws_before(&n, n.len() - suf))
    {
        suf -= 1;
    }
    let old_part: String = o[pre..o.len() - suf].iter().collect();
    let new_part: String = n[pre..n.len() - suf].iter().collect();
    if old_part.trim().is_empty()
        || old_part.contains('/')
        || new_part.contains('/')
        || old.matches(old_part.as_str()).count() != 1
        || old_part.chars().count() * 2 > o.len()
    {
        return None;
    }
    Some(format!("s/{old_part}/{new_part}/"))
}

/// Body bytes a relayed line may use in `target` on a side.
fn line_budget(side: &SideKind, target: &str) -> usize {
    match side {
        SideKind::Irc { nick_len, user_len } => {
            irc_text::relay_budget(*nick_len, *user_len, target)
        }
        // The console has no line limit; keep lines readable in a terminal all the same.
        _ => 400,
    }
}

/// The prefix every IRC line of a relayed message starts with.
fn irc_prefix(name: &str, emote: bool) -> String {
    let shown = unhighlight(&irc_text::clean(name));
    if emote {
        format!("* {shown} ")
    } else {
        format!("<{shown}> ")
    }
}

/// A message as IRC lines, each carrying the sender prefix and fitting `budget` bytes.
pub fn irc_lines(name: &str, text: &str, emote: bool, budget: usize) -> Vec<String> {
    let prefix = irc_prefix(name, emote);
    let room = budget.saturating_sub(prefix.len()).max(16);
    irc_text::split_lines(text, room)
        .into_iter()
        .map(|l| format!("{prefix}{l}"))
        .collect()
}

/// The first lines of a long message and a last line with the link to all of it.
fn cut_with_link(
    name: &str,
    lines: Vec<String>,
    max_lines: usize,
    url: Option<&str>,
    emote: bool,
) -> Vec<String> {
    let keep = max_lines.saturating_sub(1);
    let mut out: Vec<String> = lines.into_iter().take(keep).collect();
    let prefix = irc_prefix(name, emote);
    out.push(match url {
        Some(u) => format!("{prefix}(full message: {u})"),
        None => format!("{prefix}(message cut: too long for IRC)"),
    });
    out
}

#[cfg(test)]
mod tests;
