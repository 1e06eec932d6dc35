//! The meeting log: `log.txt` in MeetBot's raw format (`HH:MM:SS <nick> text`,
//! `HH:MM:SS * nick text` for `/me`), read back by [`parse_log`]; and `log.html` with an
//! anchor `l-N` on every line for the minutes to link to.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};

use crate::core::RoomRef;
use crate::core::format::escape_html;
use crate::core::meeting::{LogLine, Meeting, hms};

fn txt_line(out: &mut String, l: &LogLine) {
    let _ = if l.emote {
        writeln!(out, "{} * {} {}", hms(l.time), l.nick, l.text)
    } else {
        writeln!(out, "{} <{}> {}", hms(l.time), l.nick, l.text)
    };
}

pub fn render_txt(m: &Meeting) -> String {
    let mut out = String::with_capacity(m.lines.iter().map(|l| l.text.len() + 24).sum());
    for l in &m.lines {
        txt_line(&mut out, l);
    }
    out
}

pub(crate) const PAGE_HEAD: &str = concat!(
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
);

const LOG_CSS: &str = "<style>\nbody{font-family:sans-serif;margin:0.5em}\n\
pre{white-space:pre-wrap;overflow-wrap:anywhere;font-family:monospace;font-size:14px}\n\
a.tm{color:#666;text-decoration:none}\n.nk{color:#00a}\n.nka{color:#a0a}\n.ac{color:#a0a}\n\
.topic{color:#a00;font-weight:bold}\n.topicline{color:#a00;font-weight:bold}\n.cmd{color:#070;font-weight:bold}\n\
.cmdline{font-weight:bold}\n.hi{font-weight:bold}\n.ln:target{background:#ffa}\n</style>\n";

pub fn render_html(m: &Meeting) -> String {
    let mut out = String::with_capacity(
        m.lines
            .iter()
            .map(|l| l.text.len() * 2 + 140)
            .sum::<usize>()
            + 1024,
    );
    let title = escape_html(&format!("{} log", m.page_title()));
    out.push_str(PAGE_HEAD);
    let _ = write!(
        out,
        "<title>{title}</title>\n{LOG_CSS}</head>\n<body>\n<h1>{title}</h1>\n"
    );
    let _ = writeln!(
        out,
        "<p><a href=\"{0}.html\">minutes</a> &middot; <a href=\"{0}.log.txt\">raw log</a></p>",
        escape_html(&m.base_name())
    );
    out.push_str("<pre>\n");
    for (i, l) in m.lines.iter().enumerate() {
        let n = i + 1;
        let _ = write!(
            out,
            "<span class=\"ln\" id=\"l-{n}\"><a class=\"tm\" href=\"#l-{n}\">{}</a>",
            hms(l.time)
        );
        if l.emote {
            let _ = write!(
                out,
                "<span class=\"nka\"> * {}</span> <span class=\"ac\">{}</span>",
                escape_html(&l.nick),
                escape_html(&l.text)
            );
        } else {
            let _ = write!(
                out,
                "<span class=\"nk\"> &lt;{}&gt;</span> ",
                escape_html(&l.nick)
            );
            let text = l.text.as_str();
            let cmd_end = text
                .strip_prefix('#')
                .map(|r| 1 + r.find(char::is_whitespace).unwrap_or(r.len()));
            match cmd_end {
                Some(end) if end > 1 => {
                    let (cmd, rest) = text.split_at(end);
                    let (c1, c2) = if cmd.eq_ignore_ascii_case("#topic") {
                        ("topic", "topicline")
                    } else {
                        ("cmd", "cmdline")
                    };
                    let _ = write!(
                        out,
                        "<span class=\"{c1}\">{}</span><span class=\"{c2}\">{}</span>",
                        escape_html(cmd),
                        escape_html(rest)
                    );
                }
                _ => out.push_str(&escape_html(text)),
            }
        }
        out.push_str("</span>\n");
    }
    out.push_str("</pre>\n</body>\n</html>\n");
    out
}

/// One line read back from a raw log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine {
    pub time: DateTime<Utc>,
    pub nick: String,
    pub text: String,
    pub emote: bool,
}

/// `HH:MM:SS` or `HH:MM` (by hand: this runs for every line of a log).
fn parse_time(s: &str) -> Option<NaiveTime> {
    let mut parts = s.split(':').map(|p| {
        (!p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse::<u32>().ok())
            .flatten()
    });
    let h = parts.next()??;
    let m = parts.next()??;
    let sec = match parts.next() {
        Some(s) => s?,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    NaiveTime::from_hms_opt(h, m, sec)
}

/// Reads a MeetBot raw log (`[HH:MM:SS] <nick> text`, `HH:MM:SS * nick text`; lines that are
/// neither are skipped). Times are taken on `date`, moving to the next day when they go back.
pub fn parse_log(contents: &str, date: NaiveDate) -> Vec<ParsedLine> {
    let mut out = Vec::new();
    let mut day = date;
    let mut last: Option<NaiveTime> = None;
    for raw in contents.lines() {
        let line = raw.trim_end_matches('\r');
        let rest = line.trim_start().trim_start_matches('[');
        let time_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == ':'))
            .unwrap_or(rest.len());
        let Some(t) = parse_time(&rest[..time_end]) else {
            continue;
        };
        let rest = rest[time_end..].trim_start_matches(']').trim_start();
        let (nick, text, emote) = if let Some(r) = rest.strip_prefix('<') {
            let Some(close) = r.find('>') else { continue };
            let nick = r[..close].trim_start_matches(['@', '+']).trim();
            (nick, r[close + 1..].trim(), false)
        } else if let Some(r) = rest.strip_prefix('*') {
            let r = r.trim_start();
            let (nick, text) = r.split_once(' ').unwrap_or((r, ""));
            (nick, text.trim(), true)
        } else {
            continue;
        };
        if nick.is_empty() {
            continue;
        }
        if last.is_some_and(|l| t < l) {
            day = day.succ_opt().unwrap_or(day);
        }
        last = Some(t);
        out.push(ParsedLine {
            time: day.and_time(t).and_utc(),
            nick: nick.to_owned(),
            text: text.to_owned(),
            emote,
        });
    }
    out
}

/// Replays a raw log into a meeting, as MeetBot's own replay does: the first speaker is the
/// owner, every line is acted on (the old bot's replies are ordinary lines), and the meeting
/// starts at the first `#startmeeting` (or the first line when there is none).
pub fn meeting_from_log(contents: &str, room: RoomRef, date: NaiveDate) -> Option<Meeting> {
    let lines = parse_log(contents, date);
    let first = lines.first()?;
    let mut m = Meeting::new(room, &first.nick, first.time, "");
    let mut last = first.time;
    for l in &lines {
        let _ = m.add_line(&l.nick, &l.text, l.time, l.emote);
        last = l.time;
    }
    if m.ended.is_none() {
        // A log cut short (or a test script) still gets minutes that end at its last line.
        m.ended = Some(last.max(m.started + TimeDelta::zero()));
    }
    Some(m)
}

/// Guesses the date from a MeetBot file name (`name.YYYY-MM-DD-HH.MM.log.txt`) or from
/// a `YYYY-MM-DD` directory in its path.
pub fn date_from_path(path: &std::path::Path) -> Option<NaiveDate> {
    for part in path.iter().rev() {
        let s = part.to_string_lossy();
        for piece in s.split('.') {
            if piece.len() >= 10
                && let Ok(d) = NaiveDate::parse_from_str(&piece[..10], "%Y-%m-%d")
            {
                return Some(d);
            }
        }
    }
    None
}
