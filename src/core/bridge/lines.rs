//! The shapes relayed text takes: IRC lines within a budget, the Matrix form, quotes,
//! sizes, edits as substitutions and the stale notice.

use std::time::Duration;

use super::names::{shorten, unhighlight};
use super::{SNIPPET_CHARS, SideKind};
use crate::core::format::{self, irc_text};

/// The notice that sums up what a destination missed while its network was away.
pub fn stale_notice(dropped: usize, staleness: Duration) -> String {
    let mins = staleness.as_secs().div_ceil(60);
    format!(
        "{dropped} relayed message{} older than {mins} min could not be delivered while this network was unreachable, and {} dropped",
        if dropped == 1 { "" } else { "s" },
        if dropped == 1 { "was" } else { "were" }
    )
}

/// The Matrix form: body `nick: text`, formatted `<b>nick</b>: text`; emotes `* nick text`.
pub(super) fn matrix_message(
    name: &str,
    plain: &str,
    html_text: &str,
    emote: bool,
) -> (String, String) {
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

/// The start of a message's first line, for quoting it in one line.
pub(super) fn snippet(text: &str) -> String {
    quote(text, SNIPPET_CHARS)
}

/// The start of `text`'s first line in one line of at most `max` characters, cut on a
/// character with an ellipsis (also when more lines follow).
pub fn quote(text: &str, max: usize) -> String {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let one_line = first.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut s = shorten(&one_line, max);
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
pub(super) fn line_budget(side: &SideKind, target: &str) -> usize {
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
pub(super) fn cut_with_link(
    name: &str,
    lines: Vec<String>,
    max_lines: usize,
    url: Option<&str>,
    emote: bool,
) -> Vec<String> {
    cut_lines(lines, max_lines, url, &irc_prefix(name, emote))
}

/// The first `max_lines - 1` lines and a last one, starting with `prefix`, that links to
/// the whole text (or says it was cut, without a web site).
pub(super) fn cut_lines(
    lines: Vec<String>,
    max_lines: usize,
    url: Option<&str>,
    prefix: &str,
) -> Vec<String> {
    let keep = max_lines.saturating_sub(1);
    let mut out: Vec<String> = lines.into_iter().take(keep).collect();
    out.push(match url {
        Some(u) => format!("{prefix}(full message: {u})"),
        None => format!("{prefix}(message cut: too long for IRC)"),
    });
    out
}
