//! The meeting commands: their names, who may run them, how a line names one, and what
//! each does to a meeting.

use chrono::{DateTime, Utc};

use super::text::{clean_nick, hms, sanitize_name};
use super::{ChairId, Effect, ItemKind, LineOutcome, Meeting, Speaker};

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

    /// `usage: #name <argument>`.
    fn usage(self) -> String {
        format!(
            "usage: #{} {}",
            self.names()[0],
            self.usage_arg().unwrap_or_default()
        )
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

impl Meeting {
    /// Runs a meeting command said by `nick` on log line `linenum`.
    pub(super) fn run(
        &mut self,
        cmd: MeetingCommand,
        arg: &str,
        nick: &str,
        speaker: &Speaker,
        time: DateTime<Utc>,
        linenum: usize,
    ) -> LineOutcome {
        use MeetingCommand as C;
        let mut out = LineOutcome::default();
        // Role holders end any meeting, so that nobody can hold a room by starting one.
        let allowed = !cmd.chairs_only()
            || cmd == C::StartMeeting
            || (cmd == C::EndMeeting && speaker.ender)
            || self.is_chair_as(nick, speaker);
        if !allowed {
            out.replies.push(format!(
                "{nick}: only the chairs can use #{} (chairs: {})",
                cmd.names()[0],
                self.all_chairs().join(", ")
            ));
            return out;
        }
        let said = &mut out.replies;
        match cmd {
            C::StartMeeting => self.start(arg, nick, speaker, time, said),
            C::EndMeeting => {
                self.ended = Some(time);
                out.effect = Some(Effect::End);
                out.stale_base = self.mark_saved();
            }
            C::Save => {
                out.effect = Some(Effect::Save);
                out.stale_base = self.mark_saved();
            }
            C::Undo => self.undo(nick, said),
            C::Chair | C::Unchair => self.set_chairs(cmd == C::Chair, arg, said),
            C::Nick => self.add_nicks(arg, said),
            C::MeetingName => self.rename(arg, said),
            C::MeetingTopic => self.retitle(arg),
            C::Commands => said.push(commands_list()),
            C::RestrictLogs => {
                self.restrict_logs = true;
                said.push("Restricting permissions on minutes: the files will be readable by the bot only, and not served, from the next #save".to_owned());
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
            | C::Help => self.add_item_said(cmd, arg, nick, time, linenum, said),
        }
        out
    }

    /// `#startmeeting [title]`: the greeting, or a refusal when one was already started.
    fn start(
        &mut self,
        arg: &str,
        nick: &str,
        speaker: &Speaker,
        time: DateTime<Utc>,
        said: &mut Vec<String>,
    ) {
        if self.start_seen {
            said.push(format!(
                "{nick}: a meeting is already running here (started by {} at {} UTC); #endmeeting ends it",
                self.owner,
                hms(self.started)
            ));
            return;
        }
        self.start_seen = true;
        self.started = time;
        self.owner_id = match &speaker.principal {
            Some(p) => ChairId::Principal(p.clone()),
            None => ChairId::Nick(self.owner.clone()),
        };
        said.push(format!(
            "Meeting started {} UTC. The chair is {}.",
            self.started.format("%a %b %e %H:%M:%S %Y"),
            self.owner
        ));
        said.push(format!(
            "Useful commands: #action #agreed #halp #info #idea #link #topic (or {p}action, {p}topic...). #commands lists them all.",
            p = self.prefix
        ));
        if !arg.is_empty() {
            self.title = Some(arg.to_owned());
            if let Some(name) = sanitize_name(arg) {
                said.push(format!("The meeting name has been set to '{name}'"));
                self.name = Some(name);
            }
        }
    }

    /// `#undo`: removes the last item (and, for a topic, goes back to the one before).
    fn undo(&mut self, nick: &str, said: &mut Vec<String>) {
        let Some(item) = self.items.pop() else {
            said.push(format!("{nick}: there is nothing to undo"));
            return;
        };
        if item.kind == ItemKind::Topic {
            self.current_topic = self
                .items
                .iter()
                .rev()
                .find(|i| i.kind == ItemKind::Topic)
                .map(|i| i.text.clone());
        }
        said.push(format!(
            "Removing item from minutes: {} by {} at {} : {}",
            item.kind.label(),
            item.nick,
            hms(item.time),
            item.text
        ));
    }

    /// `#chair` and `#unchair` with a list of names.
    fn set_chairs(&mut self, add: bool, arg: &str, said: &mut Vec<String>) {
        for name in arg.split([' ', ',']).filter(|s| !s.is_empty()) {
            let name = clean_nick(name);
            if add {
                let id = self.chair_id_for(&name);
                if id != self.owner_id && !self.chair_ids.values().any(|c| *c == id) {
                    self.add_nick(&name, 0);
                    self.chairs.insert(name.clone());
                    self.chair_ids.insert(name, id);
                }
            } else {
                self.chairs.remove(&name);
                self.chair_ids.remove(&name);
            }
        }
        said.push(format!("Current chairs: {}", self.all_chairs().join(" ")));
    }

    /// `#nick`: names people as present who said nothing.
    fn add_nicks(&mut self, arg: &str, said: &mut Vec<String>) {
        let names: Vec<&str> = arg.split([' ', ',']).filter(|s| !s.is_empty()).collect();
        if names.is_empty() {
            said.push(MeetingCommand::Nick.usage());
        }
        for name in names {
            self.add_nick(&clean_nick(name), 0);
        }
    }

    /// `#meetingname`: the name the files carry.
    fn rename(&mut self, arg: &str, said: &mut Vec<String>) {
        match sanitize_name(arg) {
            Some(name) => {
                said.push(format!("The meeting name has been set to '{name}'"));
                self.name = Some(name);
            }
            None => said.push(MeetingCommand::MeetingName.usage()),
        }
    }

    /// `#meetingtopic`: the title; `none` or `unset` (or nothing) removes it.
    fn retitle(&mut self, arg: &str) {
        if arg.is_empty() || arg.eq_ignore_ascii_case("none") || arg.eq_ignore_ascii_case("unset") {
            self.title = None;
        } else {
            self.title = Some(arg.to_owned());
        }
    }

    /// `#topic`, `#info`, `#action`...: an item of the minutes.
    fn add_item_said(
        &mut self,
        cmd: MeetingCommand,
        arg: &str,
        nick: &str,
        time: DateTime<Utc>,
        linenum: usize,
        said: &mut Vec<String>,
    ) {
        if arg.is_empty() {
            said.push(cmd.usage());
            return;
        }
        let kind = cmd.item_kind().unwrap_or(ItemKind::Info);
        if kind == ItemKind::Topic {
            self.current_topic = Some(arg.to_owned());
        }
        self.add_item(kind, arg, nick, time, linenum);
    }
}

/// `#commands`: every name of every command.
fn commands_list() -> String {
    let names: Vec<String> = MeetingCommand::ALL
        .iter()
        .flat_map(|c| c.names().iter().map(|n| format!("#{n}")))
        .collect();
    format!("Available commands: {}", names.join(" "))
}
