//! The HTML minutes, laid out as MeetBot's (HTML2 writer): a summary of topics with their
//! items, each linking to its log line, then action items, action items by person, and the
//! people present with the lines they said.

use std::fmt::Write as _;

use super::log::PAGE_HEAD;
use super::split_urls;
use crate::core::format::escape_html;
use crate::core::meeting::{Item, ItemKind, Meeting, hms};

const CSS: &str = "<style>\nbody{font-family:Helvetica,sans-serif;font-size:15px;max-width:60em;margin:0 auto;padding:0.5em;overflow-wrap:anywhere}\n\
h1{text-align:center;font-size:1.4em}\na{color:navy}\n.details{font-size:12px;color:#555}\n\
.itemtype{font-style:normal;font-weight:bold}\n.TOPIC{color:navy}\n.AGREED{color:#060}\n.ACCEPTED{color:#060}\n\
.REJECTED{color:#900}\n.ACTION{color:#a60}\n.INFO{}\n.IDEA{color:#606}\n.HELP{color:#900}\nli{margin:0.2em 0}\n</style>\n";

/// Text with its URLs made links, everything escaped.
pub fn linkify(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for (is_url, part) in split_urls(text) {
        let e = escape_html(part);
        if is_url {
            let _ = write!(out, "<a href=\"{e}\">{e}</a>");
        } else {
            out.push_str(&e);
        }
    }
    out
}

fn details(out: &mut String, log: &str, item: &Item) {
    let _ = write!(
        out,
        " <span class=\"details\">(<a href='{log}#l-{}'>{}</a>, {})</span>",
        item.line,
        escape_html(&item.nick),
        hms(item.time)
    );
}

fn item_li(out: &mut String, log: &str, item: &Item) {
    out.push_str("<li>");
    match item.kind {
        ItemKind::Info => {
            let _ = write!(out, "<span class=\"INFO\">{}</span>", linkify(&item.text));
        }
        ItemKind::Link => out.push_str(&linkify(&item.text)),
        k => {
            let _ = write!(
                out,
                "<i class=\"itemtype\">{0}</i>: <span class=\"{0}\">{1}</span>",
                k.label(),
                linkify(&item.text)
            );
        }
    }
    details(out, log, item);
    out.push_str("</li>\n");
}

pub fn render(m: &Meeting) -> String {
    let mut out = String::with_capacity(
        8192 + m
            .items
            .iter()
            .map(|i| i.text.len() * 2 + 200)
            .sum::<usize>(),
    );
    let title = escape_html(&m.page_title());
    let log = escape_html(&format!("{}.log.html", m.base_name()));
    out.push_str(PAGE_HEAD);
    let _ = write!(
        out,
        "<title>{title}</title>\n{CSS}</head>\n<body>\n<h1>{title}</h1>\n"
    );
    let _ = writeln!(
        out,
        "<span class=\"details\">\nMeeting started by {} at {} UTC\n(<a href=\"{log}\">full logs</a>).</span>\n<br><br>",
        escape_html(&m.owner),
        hms(m.started)
    );
    out.push_str("<h3>Meeting summary</h3>\n<ol>\n");
    let mut in_topic = false;
    let mut in_sublist = false;
    for item in &m.items {
        if item.kind == ItemKind::Topic {
            if in_sublist {
                out.push_str("</ol>\n");
                in_sublist = false;
            }
            if in_topic {
                out.push_str("<br></li>\n");
            }
            let _ = write!(out, "<li><b class=\"TOPIC\">{}</b>", linkify(&item.text));
            details(&mut out, &log, item);
            out.push('\n');
            in_topic = true;
        } else {
            if in_topic && !in_sublist {
                out.push_str("<ol type=\"a\">\n");
                in_sublist = true;
            }
            item_li(&mut out, &log, item);
        }
    }
    if in_sublist {
        out.push_str("</ol>\n");
    }
    if in_topic {
        out.push_str("<br></li>\n");
    }
    out.push_str("</ol>\n<br><br>\n\n");
    let _ = writeln!(
        out,
        "<span class=\"details\">\nMeeting ended at {} UTC\n(<a href=\"{log}\">full logs</a>).</span>\n<br><br>\n",
        hms(m.ended.unwrap_or(m.started))
    );

    out.push_str("<h3>Action items</h3>\n<ol>\n");
    let mut any = false;
    for a in m.action_items() {
        let _ = writeln!(out, "  <li>{}</li>", linkify(&a.text));
        any = true;
    }
    if !any {
        out.push_str("  <li>(none)</li>\n");
    }
    out.push_str("</ol>\n<br><br>\n\n");

    out.push_str("<h3>Action items, by person</h3>\n<ol>\n");
    let (by_person, unassigned) = m.actions_by_person();
    for (nick, items) in &by_person {
        let _ = writeln!(out, "  <li> {} <ol>", escape_html(nick));
        for a in items {
            let _ = writeln!(out, "    <li>{}</li>", linkify(&a.text));
        }
        out.push_str("  </ol></li>\n");
    }
    if !unassigned.is_empty() {
        out.push_str("  <li> <b>UNASSIGNED</b> <ol>\n");
        for a in &unassigned {
            let _ = writeln!(out, "    <li>{}</li>", linkify(&a.text));
        }
        out.push_str("  </ol></li>\n");
    }
    out.push_str("</ol>\n<br><br>\n\n");

    out.push_str("<h3>People present (lines said)</h3>\n<ol>\n");
    for a in m.attendees() {
        let _ = writeln!(out, "  <li>{} ({})</li>", escape_html(&a.nick), a.lines);
    }
    out.push_str("</ol>\n<br><br>\n\n");
    let _ = writeln!(
        out,
        "<span class=\"details\">Generated by sigbot {} (MeetBot compatible).</span>\n</body></html>",
        crate::VERSION
    );
    out
}
