//! Meetings (DESIGN §7): MeetBot's command set as a pure state machine.
//!
//! A [`Meeting`] is a pure function of the lines it was fed: [`Meeting::add_line`] for what
//! people say (commands are acted on), [`Meeting::add_raw_line`] for the bot's own words (only
//! logged). That is what makes a meeting crash-safe: every line is journaled as it arrives, and
//! on restart the journal is replayed through the same functions to rebuild the same meeting.
//! The same replay reads MeetBot's raw `.log.txt` files (`sigbot meetings render`).
//!
//! [`Meetings`] is the core's part: one meeting per room, replies turned into actions, the
//! bot's own messages to a meeting room logged, and the journal actions emitted in order.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::action::Action;
use super::event::{IncomingMessage, MessageKind, RoomRef};

/// The kinds of minutes items, with MeetBot's names for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    Topic,
    Info,
    Idea,
    Action,
    Agreed,
    Accepted,
    Rejected,
    Link,
    Help,
}

impl ItemKind {
    /// MeetBot's upper-case label (`ACTION`, `AGREED`...), as the minutes show it.
    pub fn label(self) -> &'static str {
        match self {
            ItemKind::Topic => "TOPIC",
            ItemKind::Info => "INFO",
            ItemKind::Idea => "IDEA",
            ItemKind::Action => "ACTION",
            ItemKind::Agreed => "AGREED",
            ItemKind::Accepted => "ACCEPTED",
            ItemKind::Rejected => "REJECTED",
            ItemKind::Link => "LINK",
            ItemKind::Help => "HELP",
        }
    }

    pub fn from_label(s: &str) -> Option<ItemKind> {
        [
            ItemKind::Topic,
            ItemKind::Info,
            ItemKind::Idea,
            ItemKind::Action,
            ItemKind::Agreed,
            ItemKind::Accepted,
            ItemKind::Rejected,
            ItemKind::Link,
            ItemKind::Help,
        ]
        .into_iter()
        .find(|k| k.label().eq_ignore_ascii_case(s))
    }
}

/// One entry of the minutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    #[serde(rename = "type")]
    pub kind: ItemKind,
    pub text: String,
    pub nick: String,
    pub time: DateTime<Utc>,
    /// 1-based line of the log that made the item (the `l-N` anchor of `log.html`).
    pub line: usize,
}

/// One line of the meeting log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub time: DateTime<Utc>,
    pub nick: String,
    pub text: String,
    /// A `/me` line.
    pub emote: bool,
}

/// Someone present, and how many lines they said (0 for `#nick` and `#chair` names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attendee {
    pub nick: String,
    pub lines: usize,
}

/// What a line asks of the outside world beyond replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// `#save`: write the files now; the meeting goes on.
    Save,
    /// `#endmeeting`: write the files; the meeting is over.
    End,
}

/// The result of feeding one line to a meeting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineOutcome {
    pub replies: Vec<String>,
    pub effect: Option<Effect>,
    /// With an effect: the files of an earlier `#save` under another name, to remove.
    pub stale_base: Option<String>,
}

/// The meeting commands: one definition each (name, aliases, who may run it, help).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeetingCommand {
    StartMeeting,
    EndMeeting,
    Topic,
    Info,
    Idea,
    Action,
    Agreed,
    Accepted,
    Rejected,
    Link,
    Help,
    Chair,
    Unchair,
    Nick,
    Undo,
    MeetingName,
    MeetingTopic,
    Commands,
    RestrictLogs,
    Lurk,
    Unlurk,
    Save,
}

impl MeetingCommand {
    pub const ALL: [MeetingCommand; 22] = [
        MeetingCommand::StartMeeting,
        MeetingCommand::EndMeeting,
        MeetingCommand::Topic,
        MeetingCommand::Info,
        MeetingCommand::Idea,
        MeetingCommand::Action,
        MeetingCommand::Agreed,
        MeetingCommand::Accepted,
        MeetingCommand::Rejected,
        MeetingCommand::Link,
        MeetingCommand::Help,
        MeetingCommand::Chair,
        MeetingCommand::Unchair,
        MeetingCommand::Nick,
        MeetingCommand::Undo,
        MeetingCommand::MeetingName,
        MeetingCommand::MeetingTopic,
        MeetingCommand::Commands,
        MeetingCommand::RestrictLogs,
        MeetingCommand::Lurk,
        MeetingCommand::Unlurk,
        MeetingCommand::Save,
    ];

    /// The command's names; the first is the one `#commands` lists.
    pub fn names(self) -> &'static [&'static str] {
        use MeetingCommand as C;
        match self {
            C::StartMeeting => &["startmeeting"],
            C::EndMeeting => &["endmeeting"],
            C::Topic => &["topic"],
            C::Info => &["info"],
            C::Idea => &["idea"],
            C::Action => &["action"],
            C::Agreed => &["agreed", "agree"],
            C::Accepted => &["accepted", "accept"],
            C::Rejected => &["rejected", "reject"],
            C::Link => &["link"],
            C::Help => &["help", "halp"],
            C::Chair => &["chair"],
            C::Unchair => &["unchair"],
            C::Nick => &["nick"],
            C::Undo => &["undo"],
            C::MeetingName => &["meetingname"],
            C::MeetingTopic => &["meetingtopic"],
            C::Commands => &["commands"],
            C::RestrictLogs => &["restrictlogs"],
            C::Lurk => &["lurk"],
            C::Unlurk => &["unlurk"],
            C::Save => &["save"],
        }
    }

    /// Only the owner and the chairs may run it.
    pub fn chairs_only(self) -> bool {
        use MeetingCommand as C;
        !matches!(
            self,
            C::Info | C::Idea | C::Action | C::Link | C::Help | C::Nick | C::Commands
        )
    }

    /// The argument it takes, for usage lines.
    fn usage_arg(self) -> Option<&'static str> {
        use MeetingCommand as C;
        match self {
            C::Topic => Some("<topic>"),
            C::Info | C::Idea | C::Agreed | C::Accepted | C::Rejected | C::Help => Some("<text>"),
            C::Action => Some("<nick> <what they will do>"),
            C::Link => Some("<url> [description]"),
            C::Chair | C::Unchair | C::Nick => Some("<nick> [<nick>...]"),
            C::MeetingName => Some("<name>"),
            _ => None,
        }
    }

    /// The item a command adds to the minutes, if it is an item command.
    fn item_kind(self) -> Option<ItemKind> {
        use MeetingCommand as C;
        Some(match self {
            C::Topic => ItemKind::Topic,
            C::Info => ItemKind::Info,
            C::Idea => ItemKind::Idea,
            C::Action => ItemKind::Action,
            C::Agreed => ItemKind::Agreed,
            C::Accepted => ItemKind::Accepted,
            C::Rejected => ItemKind::Rejected,
            C::Link => ItemKind::Link,
            C::Help => ItemKind::Help,
            _ => return None,
        })
    }

    pub fn lookup(name: &str) -> Option<MeetingCommand> {
        MeetingCommand::ALL
            .into_iter()
            .find(|c| c.names().contains(&name))
    }
}

/// Finds a meeting command at the start of a line: `#topic ...`, or `<prefix>topic ...`.
///
/// With the prefix, `help` stays the bot's own `help` (use `halp` for MeetBot's call for
/// help); an unknown word is not a meeting command, so it stays ordinary text.
pub fn parse_meeting_command<'a>(text: &'a str, prefix: &str) -> Option<(MeetingCommand, &'a str)> {
    let text = text.trim_start();
    let (body, prefixed) = if let Some(rest) = text.strip_prefix('#') {
        (rest, false)
    } else if !prefix.is_empty()
        && let Some(rest) = text.strip_prefix(prefix)
    {
        (rest, true)
    } else {
        return None;
    };
    let end = body
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let word = &body[..end];
    let rest = &body[end..];
    // MeetBot's `#(\w+)[ \t]*(.*)`: the word must be followed by blanks or the end.
    if word.is_empty() || !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let lower = word.to_lowercase();
    if prefixed && lower == "help" {
        return None;
    }
    let cmd = MeetingCommand::lookup(&lower)?;
    Some((cmd, rest.trim()))
}

/// URL schemes that make a line, or a `#link` word, a link (MeetBot's list).
pub const URL_SCHEMES: [&str; 6] = ["http:", "https:", "irc:", "ftp:", "mailto:", "ssh:"];

/// Does `text` begin with a URL (so that the line becomes a link)?
pub fn starts_with_url(text: &str) -> bool {
    // MeetBot's test: the part before the first `//` is one of the schemes.
    URL_SCHEMES.iter().any(|scheme| {
        text.get(..scheme.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(scheme))
            && text[scheme.len()..].starts_with("//")
    })
}

/// Removes what must never reach a log: IRC formatting codes and other control characters
/// (tabs become spaces), and surrounding blanks.
pub fn clean_text(text: &str) -> String {
    let trimmed = text.trim();
    if !trimmed.chars().any(char::is_control) {
        return trimmed.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x03' => {
                // mIRC colour: up to two digits, optionally a comma and up to two more.
                for _ in 0..2 {
                    if chars.peek().is_some_and(char::is_ascii_digit) {
                        chars.next();
                    }
                }
                let mut look = chars.clone();
                if look.next() == Some(',') && look.peek().is_some_and(char::is_ascii_digit) {
                    chars.next();
                    for _ in 0..2 {
                        if chars.peek().is_some_and(char::is_ascii_digit) {
                            chars.next();
                        }
                    }
                }
            }
            '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.trim().to_owned()
}

/// A nick as the log shows it: no control characters, no `<>` (they delimit nicks in
/// `log.txt`), never empty.
pub fn clean_nick(nick: &str) -> String {
    if !nick.is_empty()
        && !nick
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>'))
    {
        return nick.to_owned();
    }
    let n: String = clean_text(nick)
        .chars()
        .filter(|c| !matches!(c, '<' | '>'))
        .collect();
    let n = n.trim().to_owned();
    if n.is_empty() { "?".to_owned() } else { n }
}

/// A meeting name safe for a file name: lower-cased, blanks as `_`, only `[a-z0-9._-]`,
/// never starting with `.`, at most 100 characters; `None` when nothing is left.
pub fn sanitize_name(raw: &str) -> Option<String> {
    let joined = raw.split_whitespace().collect::<Vec<_>>().join("_");
    let kept: String = joined
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        .collect();
    let name: String = kept.trim_start_matches('.').chars().take(100).collect();
    (!name.is_empty()).then_some(name)
}

/// A room's directory name (DESIGN §7): an IRC channel without `#`, lower-cased; a Matrix
/// alias `#a:b.c` as `a_matrix_b-c`; always a safe file name.
pub fn room_slug(room: &RoomRef) -> String {
    let r = room.room.trim_start_matches(['#', '!', '&', '+']);
    let raw = match r.split_once(':') {
        Some((local, server)) => format!("{local}_matrix_{}", server.replace('.', "-")),
        None => r.to_owned(),
    };
    let slug: String = raw
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        .collect();
    let slug: String = slug.trim_start_matches('.').chars().take(100).collect();
    if slug.is_empty() {
        "room".to_owned()
    } else {
        slug
    }
}

/// `HH:MM:SS`, in UTC, as MeetBot's minutes show times.
pub fn hms(t: DateTime<Utc>) -> String {
    use chrono::Timelike as _;
    // Written out: chrono's strftime parsing costs more than the rest of a log line.
    format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
}

/// Case-insensitive whole-word search, for assigning action items to people.
pub fn mentions(text: &str, nick: &str) -> bool {
    let text = text.to_lowercase();
    let nick = nick.to_lowercase();
    if nick.is_empty() {
        return false;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(pos) = text[from..].find(&nick) {
        let start = from + pos;
        let end = start + nick.len();
        let before_ok = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !is_word(c));
        let after_ok = text[end..].chars().next().is_none_or(|c| !is_word(c));
        if before_ok && after_ok && !in_server_name(&text, start) {
            return true;
        }
        from = start + text[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// Whether byte `at` of `text` falls in the server name of a Matrix user ID
/// (`@alice:sigbot.test`): a nick that happens to be part of a server name is not named there.
fn in_server_name(text: &str, at: usize) -> bool {
    let token_start = text[..at].rfind(char::is_whitespace).map_or(0, |i| {
        i + text[i..].chars().next().map_or(1, char::len_utf8)
    });
    // `(@alice:sigbot.test)`, `<@alice:sigbot.test>`: what opens the ID is not part of it.
    let before =
        text[token_start..at].trim_start_matches(|c: char| !c.is_alphanumeric() && c != '@');
    before.starts_with('@') && before.contains(':')
}

/// The Matrix user ID in a name that the Matrix adapter disambiguated because two members
/// of the room share a display name: `Alice (@alice:example.org)` -> `@alice:example.org`.
/// Such a person is named in an action item, or made a chair, by that user ID too.
pub fn user_id_of(nick: &str) -> Option<&str> {
    let id = nick.strip_suffix(')')?.rsplit_once(" (")?.1;
    (id.starts_with('@') && id.contains(':') && !id.contains(char::is_whitespace)).then_some(id)
}

/// A meeting: its log, its minutes, and who runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meeting {
    pub room: RoomRef,
    /// Whoever started it: always a chair, never removable.
    pub owner: String,
    /// Chairs other than the owner.
    pub chairs: BTreeSet<String>,
    pub started: DateTime<Utc>,
    pub ended: Option<DateTime<Utc>>,
    /// The `#startmeeting`/`#meetingname` name, sanitized; the room slug when `None`.
    pub name: Option<String>,
    /// The `#startmeeting`/`#meetingtopic` title.
    pub title: Option<String>,
    pub current_topic: Option<String>,
    pub lines: Vec<LogLine>,
    pub items: Vec<Item>,
    attendees: Vec<Attendee>,
    attendee_index: BTreeMap<String, usize>,
    pub lurk: bool,
    pub restrict_logs: bool,
    /// The file base of the last save, so that a rename removes the old files.
    pub saved_as: Option<String>,
    /// The command prefix that also introduces commands (`!topic`).
    pub prefix: String,
    /// `#startmeeting` was seen (a second one is refused).
    start_seen: bool,
}

impl Meeting {
    /// A meeting that `owner` starts at `started`; its first line (normally the
    /// `#startmeeting` line) still has to be fed with [`Meeting::add_line`].
    pub fn new(room: RoomRef, owner: &str, started: DateTime<Utc>, prefix: &str) -> Meeting {
        Meeting {
            room,
            owner: owner.to_owned(),
            chairs: BTreeSet::new(),
            started,
            ended: None,
            name: None,
            title: None,
            current_topic: None,
            lines: Vec::new(),
            items: Vec::new(),
            attendees: Vec::new(),
            attendee_index: BTreeMap::new(),
            lurk: false,
            restrict_logs: false,
            saved_as: None,
            prefix: prefix.to_owned(),
            start_seen: false,
        }
    }

    /// Whether `nick` may run chair-only commands; a Matrix name disambiguated by user ID
    /// is also a chair when its user ID was made one (`#chair @alice:example.org`).
    pub fn is_chair(&self, nick: &str) -> bool {
        nick == self.owner
            || self.chairs.contains(nick)
            || user_id_of(nick).is_some_and(|id| self.chairs.contains(id))
    }

    /// The owner and the chairs, sorted.
    pub fn all_chairs(&self) -> Vec<String> {
        let mut all: BTreeSet<String> = self.chairs.clone();
        all.insert(self.owner.clone());
        all.into_iter().collect()
    }

    /// The name its files carry.
    pub fn file_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| room_slug(&self.room))
    }

    /// The files' path below `meetings/`, without extension:
    /// `<room-slug>/<YYYY-MM-DD>/<name>.<YYYY-MM-DD-HH.MM>`.
    pub fn base_path(&self) -> String {
        format!(
            "{}/{}/{}",
            room_slug(&self.room),
            self.started.format("%Y-%m-%d"),
            self.base_name()
        )
    }

    /// The files' name without extension: `<name>.<YYYY-MM-DD-HH.MM>`.
    pub fn base_name(&self) -> String {
        format!(
            "{}.{}",
            self.file_name(),
            self.started.format("%Y-%m-%d-%H.%M")
        )
    }

    /// The page title, as MeetBot makes it.
    pub fn page_title(&self) -> String {
        match &self.title {
            Some(t) => format!("{}: {t}", self.room.room),
            None => format!("{} Meeting", self.room.room),
        }
    }

    /// Attendees by lines said (most first), then by nick.
    pub fn attendees(&self) -> Vec<Attendee> {
        let mut a = self.attendees.clone();
        a.sort_by(|x, y| {
            y.lines
                .cmp(&x.lines)
                .then_with(|| x.nick.to_lowercase().cmp(&y.nick.to_lowercase()))
        });
        a
    }

    pub fn action_items(&self) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(|i| i.kind == ItemKind::Action)
    }

    /// Action items by person: every attendee (case-insensitive order) with the actions that
    /// name them as a whole word, and the actions that name nobody.
    pub fn actions_by_person(&self) -> (Vec<(String, Vec<&Item>)>, Vec<&Item>) {
        let mut nicks: Vec<&str> = self.attendees.iter().map(|a| a.nick.as_str()).collect();
        nicks.sort_by_key(|n| n.to_lowercase());
        let mut assigned = vec![false; self.items.len()];
        let mut by_person = Vec::new();
        for nick in nicks {
            let mine: Vec<&Item> = self
                .items
                .iter()
                .enumerate()
                .filter(|(_, i)| {
                    i.kind == ItemKind::Action
                        && (mentions(&i.text, nick)
                            || user_id_of(nick).is_some_and(|id| mentions(&i.text, id)))
                })
                .map(|(n, i)| {
                    assigned[n] = true;
                    i
                })
                .collect();
            if !mine.is_empty() {
                by_person.push((nick.to_owned(), mine));
            }
        }
        let unassigned = self
            .items
            .iter()
            .enumerate()
            .filter(|(n, i)| i.kind == ItemKind::Action && !assigned[*n])
            .map(|(_, i)| i)
            .collect();
        (by_person, unassigned)
    }

    fn add_nick(&mut self, nick: &str, lines: usize) {
        match self.attendee_index.get(nick) {
            Some(&i) => self.attendees[i].lines += lines,
            None => {
                self.attendee_index
                    .insert(nick.to_owned(), self.attendees.len());
                self.attendees.push(Attendee {
                    nick: nick.to_owned(),
                    lines,
                });
            }
        }
    }

    /// Logs a line without acting on it (the bot's own words). Returns its line number.
    pub fn add_raw_line(
        &mut self,
        nick: &str,
        text: &str,
        time: DateTime<Utc>,
        emote: bool,
    ) -> usize {
        self.push_line(clean_nick(nick), clean_text(text), time, emote)
    }

    fn push_line(&mut self, nick: String, text: String, time: DateTime<Utc>, emote: bool) -> usize {
        self.add_nick(&nick, 1);
        self.lines.push(LogLine {
            time,
            nick,
            text,
            emote,
        });
        self.lines.len()
    }

    /// Logs a line someone said and acts on the command it carries.
    pub fn add_line(
        &mut self,
        nick: &str,
        text: &str,
        time: DateTime<Utc>,
        emote: bool,
    ) -> LineOutcome {
        let nick = clean_nick(nick);
        let text = clean_text(text);
        let act = !emote && self.ended.is_none();
        let cmd = act
            .then(|| parse_meeting_command(&text, &self.prefix))
            .flatten()
            .map(|(c, arg)| (c, arg.to_owned()));
        let link = act && cmd.is_none() && starts_with_url(&text);
        let who = (cmd.is_some() || link).then(|| nick.clone());
        let link_text = link.then(|| text.clone());
        let linenum = self.push_line(nick, text, time, emote);
        match (cmd, who, link_text) {
            (Some((cmd, arg)), Some(who), _) => self.run(cmd, &arg, &who, time, linenum),
            (None, Some(who), Some(text)) => {
                self.add_item(ItemKind::Link, &text, &who, time, linenum);
                LineOutcome::default()
            }
            _ => LineOutcome::default(),
        }
    }

    /// Records that the files are (about to be) written under the current name; returns the
    /// base of an earlier save under another name.
    fn mark_saved(&mut self) -> Option<String> {
        let base = self.base_path();
        self.saved_as
            .replace(base.clone())
            .filter(|old| *old != base)
    }

    fn add_item(
        &mut self,
        kind: ItemKind,
        text: &str,
        nick: &str,
        time: DateTime<Utc>,
        line: usize,
    ) {
        self.items.push(Item {
            kind,
            text: text.to_owned(),
            nick: nick.to_owned(),
            time,
            line,
        });
    }

    fn run(
        &mut self,
        cmd: MeetingCommand,
        arg: &str,
        nick: &str,
        time: DateTime<Utc>,
        linenum: usize,
    ) -> LineOutcome {
        use MeetingCommand as C;
        let mut out = LineOutcome::default();
        let say = |out: &mut LineOutcome, s: String| out.replies.push(s);
        if cmd.chairs_only() && cmd != C::StartMeeting && !self.is_chair(nick) {
            say(
                &mut out,
                format!(
                    "{nick}: only the chairs can use #{} (chairs: {})",
                    cmd.names()[0],
                    self.all_chairs().join(", ")
                ),
            );
            return out;
        }
        let usage = |cmd: MeetingCommand| {
            format!(
                "usage: #{} {}",
                cmd.names()[0],
                cmd.usage_arg().unwrap_or_default()
            )
        };
        match cmd {
            C::StartMeeting => {
                if !self.start_seen {
                    self.start_seen = true;
                    self.started = time;
                    say(
                        &mut out,
                        format!(
                            "Meeting started {} UTC. The chair is {}.",
                            self.started.format("%a %b %e %H:%M:%S %Y"),
                            self.owner
                        ),
                    );
                    say(
                        &mut out,
                        format!(
                            "Useful commands: #action #agreed #halp #info #idea #link #topic (or {p}action, {p}topic...). #commands lists them all.",
                            p = self.prefix
                        ),
                    );
                    if !arg.is_empty() {
                        self.title = Some(arg.to_owned());
                        if let Some(name) = sanitize_name(arg) {
                            say(
                                &mut out,
                                format!("The meeting name has been set to '{name}'"),
                            );
                            self.name = Some(name);
                        }
                    }
                } else {
                    say(
                        &mut out,
                        format!(
                            "{nick}: a meeting is already running here (started by {} at {} UTC); #endmeeting ends it",
                            self.owner,
                            hms(self.started)
                        ),
                    );
                }
            }
            C::EndMeeting => {
                self.ended = Some(time);
                out.effect = Some(Effect::End);
                out.stale_base = self.mark_saved();
            }
            C::Save => {
                out.effect = Some(Effect::Save);
                out.stale_base = self.mark_saved();
            }
            C::Undo => match self.items.pop() {
                Some(item) => {
                    if item.kind == ItemKind::Topic {
                        self.current_topic = self
                            .items
                            .iter()
                            .rev()
                            .find(|i| i.kind == ItemKind::Topic)
                            .map(|i| i.text.clone());
                    }
                    say(
                        &mut out,
                        format!(
                            "Removing item from minutes: {} by {} at {} : {}",
                            item.kind.label(),
                            item.nick,
                            hms(item.time),
                            item.text
                        ),
                    );
                }
                None => say(&mut out, format!("{nick}: there is nothing to undo")),
            },
            C::Chair | C::Unchair => {
                let names: Vec<&str> = arg.split([' ', ',']).filter(|s| !s.is_empty()).collect();
                for name in names {
                    let name = clean_nick(name);
                    if cmd == C::Chair {
                        if !self.is_chair(&name) {
                            self.add_nick(&name, 0);
                            self.chairs.insert(name);
                        }
                    } else {
                        self.chairs.remove(&name);
                    }
                }
                say(
                    &mut out,
                    format!("Current chairs: {}", self.all_chairs().join(" ")),
                );
            }
            C::Nick => {
                let names: Vec<&str> = arg.split([' ', ',']).filter(|s| !s.is_empty()).collect();
                if names.is_empty() {
                    say(&mut out, usage(cmd));
                }
                for name in names {
                    self.add_nick(&clean_nick(name), 0);
                }
            }
            C::MeetingName => match sanitize_name(arg) {
                Some(name) => {
                    say(
                        &mut out,
                        format!("The meeting name has been set to '{name}'"),
                    );
                    self.name = Some(name);
                }
                None => say(&mut out, usage(cmd)),
            },
            C::MeetingTopic => {
                if arg.is_empty()
                    || arg.eq_ignore_ascii_case("none")
                    || arg.eq_ignore_ascii_case("unset")
                {
                    self.title = None;
                } else {
                    self.title = Some(arg.to_owned());
                }
            }
            C::Commands => {
                let names: Vec<String> = MeetingCommand::ALL
                    .iter()
                    .flat_map(|c| c.names().iter().map(|n| format!("#{n}")))
                    .collect();
                say(&mut out, format!("Available commands: {}", names.join(" ")));
            }
            C::RestrictLogs => {
                self.restrict_logs = true;
                say(
                    &mut out,
                    "Restricting permissions on minutes: the files will be readable by the bot only, and not served, from the next #save".to_owned(),
                );
            }
            C::Lurk => self.lurk = true,
            C::Unlurk => self.lurk = false,
            C::Topic
            | C::Info
            | C::Idea
            | C::Action
            | C::Agreed
            | C::Accepted
            | C::Rejected
            | C::Link
            | C::Help => {
                if arg.is_empty() {
                    say(&mut out, usage(cmd));
                    return out;
                }
                let kind = cmd.item_kind().unwrap_or(ItemKind::Info);
                if kind == ItemKind::Topic {
                    self.current_topic = Some(arg.to_owned());
                }
                self.add_item(kind, arg, nick, time, linenum);
            }
        }
        out
    }
}

/// Identifies a meeting in the journal: its room and the time it started.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MeetingKey {
    pub room: RoomRef,
    pub started: DateTime<Utc>,
}

/// One journaled line: what someone said (`bot: false`, acted on when replayed) or what the
/// bot said (only logged when replayed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalLine {
    pub time: DateTime<Utc>,
    pub nick: String,
    pub text: String,
    pub emote: bool,
    pub bot: bool,
}

/// Which rooms hold meetings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeetingScope {
    All,
    Rooms(Vec<RoomRef>),
}

impl MeetingScope {
    pub fn contains(&self, room: &RoomRef) -> bool {
        match self {
            MeetingScope::All => true,
            MeetingScope::Rooms(r) => r.contains(room),
        }
    }
}

/// What the core needs to run meetings.
#[derive(Debug, Clone)]
pub struct MeetingSettings {
    pub scope: MeetingScope,
    /// Where the web site serves `/meetings/...`, for the links said at the end.
    pub public_url: String,
    pub bot_nick: String,
    pub prefix: String,
}

/// Replays a journal into the meeting it records. The first line starts the meeting.
pub fn replay(room: &RoomRef, lines: &[JournalLine], prefix: &str) -> Option<Meeting> {
    let first = lines.iter().find(|l| !l.bot)?;
    let mut m = Meeting::new(room.clone(), &clean_nick(&first.nick), first.time, prefix);
    for l in lines {
        if l.bot {
            m.add_raw_line(&l.nick, &l.text, l.time, l.emote);
        } else {
            let _ = m.add_line(&l.nick, &l.text, l.time, l.emote);
        }
    }
    Some(m)
}

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
        let time = now;
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
                    time,
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
                    time,
                    nick: msg.sender.nick.clone(),
                    text: text.to_owned(),
                    emote,
                    bot: false,
                },
            });
            let out = m.add_line(&msg.sender.nick, text, time, emote);
            if !m.lurk {
                actions.extend(out.replies.into_iter().map(|r| Action::reply(&msg.room, r)));
            }
            match out.effect {
                Some(Effect::Save) => {
                    actions.push(files_action(m, false, out.stale_base));
                    if !m.lurk {
                        actions.push(Action::reply(
                            &msg.room,
                            format!("Minutes saved: {}", links(settings, m).join(" ")),
                        ));
                    }
                }
                Some(Effect::End) => {
                    let m = self.running.remove(&home).expect("present");
                    actions.push(files_action(&m, true, out.stale_base));
                    actions.extend(
                        end_replies(settings, &m)
                            .into_iter()
                            .map(|r| Action::reply(&msg.room, r)),
                    );
                }
                None => {}
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

#[cfg(test)]
mod tests;
