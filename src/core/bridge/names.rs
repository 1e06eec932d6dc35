//! Who said it and whom it names: shown names, Matrix pills, defused IRC mentions.

use std::collections::BTreeSet;

use super::{Bridges, MAX_NAME_CHARS, SideKind, ZWSP};
use crate::core::event::{IncomingMessage, Member, RoomRef};
use crate::core::format;

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

pub(super) fn shorten(s: &str, max: usize) -> String {
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

impl Bridges {
    /// The name shown for the sender: cleaned, and for Matrix users followed by their user
    /// ID when another person of the bridge goes by the same name.
    pub(super) fn shown_name(&mut self, bridge: usize, msg: &IncomingMessage) -> String {
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

    /// Turns mentions of a Matrix room's members in relayed HTML into pills; returns the
    /// HTML and the user IDs mentioned (the event's `m.mentions`). A line naming more than
    /// `max` of them gets no pills: mass pings are how spam works.
    pub(super) fn pills(&self, room: &RoomRef, html: &str, max: usize) -> (String, Vec<String>) {
        let Some(members) = self.matrix_members.get(room) else {
            return (html.to_owned(), Vec::new());
        };
        let names = pill_names(members);
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
            pill_text(&rest[..end], &names, &mut out, &mut mentioned);
            rest = &rest[end..];
        }
        if mentioned.len() > max {
            return (html.to_owned(), Vec::new());
        }
        (out, mentioned)
    }

    /// Inserts a zero-width space into each mentioned member's nick when a line mentions
    /// more than `max` of them (mass highlights are how spam works on IRC).
    pub(super) fn defuse(&self, room: &RoomRef, text: &str, max: usize) -> String {
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
}

/// What IRC users type to name each member with a user ID (display name and user ID's
/// local part, lower-cased and escaped as in the HTML), with the ID and the pill's text;
/// longest first, so that the longest name wins where one contains another.
fn pill_names(members: &[Member]) -> Vec<(String, &str, String)> {
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
    names.sort_by_key(|n| std::cmp::Reverse(n.0.len()));
    names
}

/// Copies HTML text (between tags) to `out`, each whole-word name in it as a pill, and
/// adds the user IDs it names to `mentioned`.
fn pill_text(
    text: &str,
    names: &[(String, &str, String)],
    out: &mut String,
    mentioned: &mut Vec<String>,
) {
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

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric()
        || matches!(
            c,
            '_' | '-' | '[' | ']' | '\\' | '`' | '^' | '{' | '|' | '}'
        )
}
