//! Series (DESIGN §7 "Series"): meetings with the same name in the same room. What a finished
//! meeting leaves its series ([`Recap`]), and what the bot says about it: at `#startmeeting`
//! the previous meeting's action items by person and its minutes link, at `#endmeeting` the
//! agreed items and action items by person. Each post is one message within the room's
//! `max_lines`; what does not fit is left to the minutes link.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Attendee, ItemKind, Meeting};

/// The most bytes a line of a series post takes: far below an IRC line, so that a post of
/// `max_lines` lines stays that many lines on IRC.
pub const POST_LINE_BYTES: usize = 300;

/// One person's action items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonActions {
    pub nick: String,
    pub items: Vec<String>,
}

/// What a finished meeting leaves its series: who came and said how much, what was agreed,
/// and the action items by person. Kept with the meeting in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recap {
    /// The people present (the bot left out), most lines first.
    pub people: Vec<Attendee>,
    pub agreed: Vec<String>,
    pub actions: Vec<PersonActions>,
    /// Action items that name nobody present.
    pub unassigned: Vec<String>,
}

impl Recap {
    /// How many action items there are (an item naming two people counts for each).
    pub fn action_count(&self) -> usize {
        self.actions.iter().map(|p| p.items.len()).sum::<usize>() + self.unassigned.len()
    }
}

/// The previous public meeting of a series, as the store gives it to the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousMeeting {
    /// The series' name (the meeting's file name).
    pub name: String,
    pub started: DateTime<Utc>,
    /// The files' path below `meetings/`, without extension (see [`Meeting::base_path`]).
    pub base_path: String,
    pub recap: Recap,
}

impl Meeting {
    /// The meeting's [`Recap`]: the bot's own voice is no attendee.
    pub fn recap(&self) -> Recap {
        let people = self
            .attendees()
            .into_iter()
            .filter(|a| !self.bot_voices.contains(&a.nick))
            .collect();
        let agreed = self
            .items
            .iter()
            .filter(|i| i.kind == ItemKind::Agreed)
            .map(|i| i.text.clone())
            .collect();
        let (by_person, unassigned) = self.actions_by_person();
        let actions = by_person
            .into_iter()
            .filter(|(nick, _)| !self.bot_voices.contains(nick))
            .map(|(nick, items)| PersonActions {
                nick,
                items: items.into_iter().map(|i| i.text.clone()).collect(),
            })
            .collect();
        Recap {
            people,
            agreed,
            actions,
            unassigned: unassigned.into_iter().map(|i| i.text.clone()).collect(),
        }
    }
}

/// The minutes link of the meeting filed under `base_path`.
pub fn minutes_url(public_url: &str, base_path: &str) -> String {
    format!(
        "{}/meetings/{base_path}.html",
        public_url.trim_end_matches('/')
    )
}

/// `text` cut to [`POST_LINE_BYTES`] (on a character boundary, with `…`).
fn cap(text: String) -> String {
    if text.len() <= POST_LINE_BYTES {
        return text;
    }
    let mut end = POST_LINE_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// One line per person with action items (`ACTION alice: one; two`), then the unassigned
/// ones; each with how many items it holds.
fn action_lines(recap: &Recap) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = recap
        .actions
        .iter()
        .map(|p| {
            (
                format!("ACTION {}: {}", p.nick, p.items.join("; ")),
                p.items.len(),
            )
        })
        .collect();
    if !recap.unassigned.is_empty() {
        out.push((
            format!("ACTION UNASSIGNED: {}", recap.unassigned.join("; ")),
            recap.unassigned.len(),
        ));
    }
    out
}

/// `head` and as many of `entries` as fit in `max_lines` lines; when some do not, the last
/// line says how many items are left out and where they are (`more`).
fn fit(
    head: Option<String>,
    entries: Vec<(String, usize)>,
    max_lines: usize,
    more: &str,
) -> Vec<String> {
    let max_lines = max_lines.max(1);
    let mut lines: Vec<String> = head.into_iter().collect();
    let room = max_lines.saturating_sub(lines.len());
    if entries.len() <= room {
        lines.extend(entries.into_iter().map(|(l, _)| cap(l)));
        return lines;
    }
    if room == 0 {
        return lines;
    }
    let keep = room - 1;
    let left: usize = entries.iter().skip(keep).map(|(_, n)| n).sum();
    lines.extend(entries.into_iter().take(keep).map(|(l, _)| cap(l)));
    let s = if left == 1 { "" } else { "s" };
    lines.push(cap(format!("…and {left} more item{s} {more}")));
    lines
}

/// What the bot says at `#startmeeting <name>` about the series' previous meeting: a line
/// naming it with its minutes link, then its action items by person, within `max_lines`.
pub fn start_post(prev: &PreviousMeeting, public_url: &str, max_lines: usize) -> String {
    let url = minutes_url(public_url, &prev.base_path);
    let when = prev.started.format("%Y-%m-%d %H:%M");
    let items = match prev.recap.action_count() {
        0 => "no action items".to_owned(),
        1 => "1 action item".to_owned(),
        n => format!("{n} action items"),
    };
    let head = format!(
        "Previous '{}' meeting ({when} UTC): {items}. Minutes: {url}",
        prev.name
    );
    fit(
        Some(head),
        action_lines(&prev.recap),
        max_lines,
        &format!("in the minutes: {url}"),
    )
    .join("\n")
}

/// What the bot says at `#endmeeting`: the agreed items, then the action items by person,
/// within `max_lines`; `None` when there are neither. The rest is left to the minutes link
/// (not given for a `#restrictlogs` meeting, whose minutes are not served).
pub fn end_post(m: &Meeting, public_url: &str, max_lines: usize) -> Option<String> {
    let recap = m.recap();
    let mut entries: Vec<(String, usize)> = recap
        .agreed
        .iter()
        .map(|a| (format!("AGREED: {a}"), 1))
        .collect();
    entries.extend(action_lines(&recap));
    if entries.is_empty() {
        return None;
    }
    let more = if m.restrict_logs {
        "in the minutes".to_owned()
    } else {
        format!(
            "in the minutes: {}",
            minutes_url(public_url, &m.base_path())
        )
    };
    Some(fit(None, entries, max_lines, &more).join("\n"))
}
