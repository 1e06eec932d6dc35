//! The minutes as JSON, for programs: items with type, text, nick, time and log line; topics;
//! attendees with line counts; start, end, chairs; and the files' names.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::core::meeting::{Attendee, Item, ItemKind, Meeting};

#[derive(Serialize)]
struct Minutes<'a> {
    format: &'static str,
    room: String,
    title: Option<&'a str>,
    name: String,
    owner: &'a str,
    chairs: Vec<String>,
    start: DateTime<Utc>,
    end: Option<DateTime<Utc>>,
    log: String,
    topics: Vec<&'a Item>,
    items: &'a [Item],
    action_items_by_person: Vec<Person<'a>>,
    unassigned_action_items: Vec<&'a Item>,
    attendees: Vec<Attendee>,
    lines: usize,
}

#[derive(Serialize)]
struct Person<'a> {
    nick: String,
    items: Vec<&'a Item>,
}

pub fn render(m: &Meeting) -> String {
    let (by_person, unassigned) = m.actions_by_person();
    let doc = Minutes {
        format: "sigbot-minutes/1",
        room: m.room.to_string(),
        title: m.title.as_deref(),
        name: m.file_name(),
        owner: &m.owner,
        chairs: m.all_chairs(),
        start: m.started,
        end: m.ended,
        log: format!("{}.log.html", m.base_name()),
        topics: m
            .items
            .iter()
            .filter(|i| i.kind == ItemKind::Topic)
            .collect(),
        items: &m.items,
        action_items_by_person: by_person
            .into_iter()
            .map(|(nick, items)| Person { nick, items })
            .collect(),
        unassigned_action_items: unassigned,
        attendees: m.attendees(),
        lines: m.line_count(),
    };
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".to_owned());
    s.push('\n');
    s
}
