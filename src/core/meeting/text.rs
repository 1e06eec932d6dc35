//! Text as meetings keep it: clean log lines and nicks, safe file names, times, links, and
//! who an action item names.

use chrono::{DateTime, Utc};

use crate::core::event::RoomRef;

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
