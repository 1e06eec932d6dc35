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

use super::event::{Principal, RoomRef};

mod commands;
mod meetings;
mod series;
mod text;
pub use commands::{MeetingCommand, parse_meeting_command};
pub(crate) use meetings::line_time;
pub use meetings::{MeetingClaims, Meetings};
pub use series::{
    POST_LINE_BYTES, PersonActions, PreviousMeeting, Recap, end_post, minutes_url, start_post,
};
pub use text::{
    URL_SCHEMES, clean_nick, clean_text, hms, mentions, room_slug, sanitize_name, starts_with_url,
    user_id_of,
};

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
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

/// Who said a line, as far as rights go. The default is someone known by nick only on the
/// meeting's own network (MeetBot's archives, journals from before principals were kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Speaker {
    /// The network the line came from; the meeting's room's network when `None`.
    pub network: Option<String>,
    /// The account the network vouches for.
    pub principal: Option<Principal>,
    /// The nick is a display name anyone may take (Matrix): it never names a chair.
    pub display_name: bool,
    /// Holds a role that may end any meeting (`admin`, `chair`).
    pub ender: bool,
}

/// Who a chair is: an account when one is known, else a nick that only people whose nick
/// is theirs alone on their network (IRC, console) can answer to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ChairId {
    Principal(Principal),
    /// A Matrix user ID, on whichever network it comes from.
    MatrixId(String),
    /// Not seen with an account yet: the first speaker under this nick who has one binds it.
    Nick(String),
}

impl ChairId {
    fn matches(&self, nick: &str, speaker: &Speaker) -> bool {
        match (self, &speaker.principal) {
            (ChairId::Principal(p), Some(q)) => p == q,
            (ChairId::Principal(_), None) => false,
            (ChairId::MatrixId(id), Some(q)) => q.identity == *id,
            // Without an account the name is all there is: MeetBot's archives and the console.
            (ChairId::MatrixId(id), None) => {
                !speaker.display_name && user_id_of(nick) == Some(id.as_str())
            }
            (ChairId::Nick(n), _) => !speaker.display_name && n == nick,
        }
    }
}

/// A meeting: its log, its minutes, and who runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meeting {
    pub room: RoomRef,
    /// Whoever started it: always a chair, never removable.
    pub owner: String,
    owner_id: ChairId,
    /// Chairs other than the owner, by the name they were given.
    pub chairs: BTreeSet<String>,
    chair_ids: BTreeMap<String, ChairId>,
    /// The latest speaker under each nick, for `#chair <nick>`.
    speakers: BTreeMap<String, Speaker>,
    pub started: DateTime<Utc>,
    /// When someone (not the bot) last said something: no one's line is logged before it.
    pub last_spoken: DateTime<Utc>,
    /// The room's directory below `meetings/`: the room slug, unless another room has it.
    pub slug: String,
    /// Tells apart meetings started in the same minute in one room: 1 for the first.
    pub seq: u32,
    pub ended: Option<DateTime<Utc>>,
    /// The `#startmeeting`/`#meetingname` name, sanitized; the room slug when `None`.
    pub name: Option<String>,
    /// The `#startmeeting`/`#meetingtopic` title.
    pub title: Option<String>,
    pub current_topic: Option<String>,
    /// The log, unless it is kept only in the journal (see [`Meeting::forget_lines`]).
    pub lines: Vec<LogLine>,
    /// How many lines the log has, kept or not.
    line_count: usize,
    /// Whether `lines` holds the log (false: the journal does, and the files are written
    /// from it).
    keep_lines: bool,
    pub items: Vec<Item>,
    attendees: Vec<Attendee>,
    attendee_index: BTreeMap<String, usize>,
    /// The nicks the bot's own words were logged under: no attendee of a [`Recap`].
    bot_voices: BTreeSet<String>,
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
        let slug = room_slug(&room);
        Meeting {
            room,
            owner: owner.to_owned(),
            owner_id: ChairId::Nick(owner.to_owned()),
            chairs: BTreeSet::new(),
            chair_ids: BTreeMap::new(),
            speakers: BTreeMap::new(),
            started,
            last_spoken: started,
            slug,
            seq: 1,
            ended: None,
            name: None,
            title: None,
            current_topic: None,
            lines: Vec::new(),
            line_count: 0,
            keep_lines: true,
            items: Vec::new(),
            attendees: Vec::new(),
            attendee_index: BTreeMap::new(),
            bot_voices: BTreeSet::new(),
            lurk: false,
            restrict_logs: false,
            saved_as: None,
            prefix: prefix.to_owned(),
            start_seen: false,
        }
    }

    /// Whether `nick`, known only by that nick on the meeting's network, may run chair-only
    /// commands.
    pub fn is_chair(&self, nick: &str) -> bool {
        self.is_chair_as(nick, &Speaker::default())
    }

    /// Whether `speaker`, saying a line as `nick`, may run chair-only commands: by account
    /// when the chair's account is known, by user ID for Matrix, and never by a display name.
    pub fn is_chair_as(&self, nick: &str, speaker: &Speaker) -> bool {
        self.owner_id.matches(nick, speaker)
            || self.chair_ids.values().any(|c| c.matches(nick, speaker))
    }

    /// A chair known by nick only becomes the account of the first speaker with an account
    /// who answers to it: from then on the account holds the rights, not the nick.
    fn bind_chairs(&mut self, nick: &str, speaker: &Speaker) {
        let Some(p) = &speaker.principal else { return };
        if speaker.display_name {
            return;
        }
        for c in std::iter::once(&mut self.owner_id).chain(self.chair_ids.values_mut()) {
            if matches!(c, ChairId::Nick(n) if n == nick) {
                *c = ChairId::Principal(p.clone());
            }
        }
    }

    /// Who `#chair <name>` names: a Matrix user ID, a `network:account` principal, or the
    /// latest speaker under that nick (their account when they have one).
    fn chair_id_for(&self, name: &str) -> ChairId {
        if name.starts_with('@') && name.contains(':') {
            return ChairId::MatrixId(name.to_owned());
        }
        if let Some(p) = Principal::parse(name) {
            return ChairId::Principal(p);
        }
        match self.speakers.get(name) {
            Some(Speaker {
                principal: Some(p), ..
            }) => ChairId::Principal(p.clone()),
            _ => ChairId::Nick(name.to_owned()),
        }
    }

    /// The owner and the chairs, sorted.
    pub fn all_chairs(&self) -> Vec<String> {
        let mut all: BTreeSet<String> = self.chairs.clone();
        all.insert(self.owner.clone());
        all.into_iter().collect()
    }

    /// The name its files carry.
    pub fn file_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.slug.clone())
    }

    /// The files' path below `meetings/`, without extension:
    /// `<room-slug>/<YYYY-MM-DD>/<name>.<YYYY-MM-DD-HH.MM>[-<seq>]`.
    pub fn base_path(&self) -> String {
        format!(
            "{}/{}/{}",
            self.slug,
            self.started.format("%Y-%m-%d"),
            self.base_name()
        )
    }

    /// The files' name without extension: `<name>.<YYYY-MM-DD-HH.MM>`, and `-<seq>` for a
    /// meeting started in the same minute and room as another.
    pub fn base_name(&self) -> String {
        let seq = if self.seq > 1 {
            format!("-{}", self.seq)
        } else {
            String::new()
        };
        format!(
            "{}.{}{seq}",
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
        let nick = clean_nick(nick);
        if !self.bot_voices.contains(&nick) {
            self.bot_voices.insert(nick.clone());
        }
        self.push_line(nick, clean_text(text), time, emote)
    }

    fn push_line(&mut self, nick: String, text: String, time: DateTime<Utc>, emote: bool) -> usize {
        self.add_nick(&nick, 1);
        self.line_count += 1;
        if self.keep_lines {
            self.lines.push(LogLine {
                time,
                nick,
                text,
                emote,
            });
        }
        self.line_count
    }

    /// How many lines the log has (kept in memory or not).
    pub fn line_count(&self) -> usize {
        self.line_count
    }

    /// Keeps the log only in the journal from now on: a running meeting then holds its
    /// items, attendees and chairs in memory but not every line said, so that a long meeting
    /// costs no memory per line. Its files are written after [`Meeting::restore_lines`].
    pub fn forget_lines(&mut self) {
        self.keep_lines = false;
        self.lines = Vec::new();
    }

    /// Whether the log must be read back from the journal before the files are written.
    pub fn lines_in_journal(&self) -> bool {
        !self.keep_lines
    }

    /// Takes the log back from the meeting's journal, cleaned as the lines were when they
    /// were said.
    pub fn restore_lines(&mut self, journal: &[JournalLine]) {
        self.lines = journal
            .iter()
            .map(|l| LogLine {
                time: l.time,
                nick: clean_nick(&l.nick),
                text: clean_text(&l.text),
                emote: l.emote,
            })
            .collect();
        self.line_count = self.lines.len();
        self.keep_lines = true;
    }

    /// Logs a line someone known only by nick said and acts on the command it carries.
    pub fn add_line(
        &mut self,
        nick: &str,
        text: &str,
        time: DateTime<Utc>,
        emote: bool,
    ) -> LineOutcome {
        self.add_line_by(nick, &Speaker::default(), text, time, emote)
    }

    /// Logs a line `speaker` said as `nick` and acts on the command it carries.
    pub fn add_line_by(
        &mut self,
        nick: &str,
        speaker: &Speaker,
        text: &str,
        time: DateTime<Utc>,
        emote: bool,
    ) -> LineOutcome {
        let nick = clean_nick(nick);
        self.last_spoken = self.last_spoken.max(time);
        self.bind_chairs(&nick, speaker);
        if self.speakers.get(&nick) != Some(speaker) {
            self.speakers.insert(nick.clone(), speaker.clone());
        }
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
            (Some((cmd, arg)), Some(who), _) => self.run(cmd, &arg, &who, speaker, time, linenum),
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
}

/// Identifies a meeting in the journal: its room and the time it started; with where its
/// files go, fixed when it starts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MeetingKey {
    pub room: RoomRef,
    pub started: DateTime<Utc>,
    /// [`Meeting::slug`].
    pub slug: String,
    /// [`Meeting::seq`].
    pub seq: u32,
}

impl MeetingKey {
    pub fn of(m: &Meeting) -> MeetingKey {
        MeetingKey {
            room: m.room.clone(),
            started: m.started,
            slug: m.slug.clone(),
            seq: m.seq,
        }
    }
}

/// One journaled line: what someone said (`bot: false`, acted on when replayed) or what the
/// bot said (only logged when replayed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalLine {
    pub time: DateTime<Utc>,
    pub nick: String,
    pub text: String,
    pub emote: bool,
    pub bot: bool,
    /// The network the line came from (`None`: the meeting's, or the bot).
    pub network: Option<String>,
    /// The account behind it, which chair rights follow.
    pub principal: Option<Principal>,
    /// The message it came from, `<network>/<id>#<line>`: a message handled again after a
    /// crash is not acted on twice.
    pub source: Option<String>,
}

/// Which rooms hold meetings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeetingScope {
    All,
    Rooms(Vec<RoomRef>),
}

impl MeetingScope {
    /// With `All`, a private query (an IRC conversation is named after the person; a room's
    /// name starts with `#`, `&` or `!`) is not a meeting room: only a listed room is.
    pub fn contains(&self, room: &RoomRef) -> bool {
        match self {
            MeetingScope::All => room.room.starts_with(['#', '&', '!', '+']),
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
    /// Networks where a nick is a display name anyone may take (Matrix).
    pub display_name_networks: Vec<String>,
    /// Who may end any meeting: holders of the `admin` or `chair` role.
    pub enders: Vec<Principal>,
    /// A meeting where nobody said anything for this long is ended.
    pub idle_timeout: Option<std::time::Duration>,
    /// Whether running meetings keep their log in memory. The bot keeps it only in the
    /// journal (false) and reads it back to write the files; tests without a store keep it.
    pub keep_lines: bool,
}

impl MeetingSettings {
    /// The settings with the defaults for rights and timeouts: no display-name networks, no
    /// role holders, no idle timeout.
    pub fn new(scope: MeetingScope, public_url: &str, bot_nick: &str, prefix: &str) -> Self {
        MeetingSettings {
            scope,
            public_url: public_url.to_owned(),
            bot_nick: bot_nick.to_owned(),
            prefix: prefix.to_owned(),
            display_name_networks: Vec::new(),
            enders: Vec::new(),
            idle_timeout: None,
            keep_lines: true,
        }
    }

    /// Who said a line from `network` with `principal`, as rights see it.
    pub fn speaker(&self, network: &str, principal: Option<&Principal>) -> Speaker {
        Speaker {
            network: Some(network.to_owned()),
            principal: principal.cloned(),
            display_name: self.display_name_networks.iter().any(|n| n == network),
            ender: principal.is_some_and(|p| self.enders.contains(p)),
        }
    }
}

/// Replays a journal into the meeting it records. The first line starts the meeting.
pub fn replay(room: &RoomRef, lines: &[JournalLine], prefix: &str) -> Option<Meeting> {
    replay_as(room, lines, prefix, |_| Speaker::default())
}

/// [`replay`], with who said each line as `speaker` tells from the journal.
pub fn replay_as(
    room: &RoomRef,
    lines: &[JournalLine],
    prefix: &str,
    speaker: impl Fn(&JournalLine) -> Speaker,
) -> Option<Meeting> {
    let first = lines.iter().find(|l| !l.bot)?;
    let mut m = Meeting::new(room.clone(), &clean_nick(&first.nick), first.time, prefix);
    for l in lines {
        if l.bot {
            m.add_raw_line(&l.nick, &l.text, l.time, l.emote);
        } else {
            let _ = m.add_line_by(&l.nick, &speaker(l), &l.text, l.time, l.emote);
        }
    }
    Some(m)
}

#[cfg(test)]
mod tests;
