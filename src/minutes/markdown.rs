//! Markdown minutes, to paste into a wiki page, an issue or a mailing-list post.

use std::fmt::Write as _;

use crate::core::meeting::{ItemKind, Meeting, hms};

/// Escapes what Markdown (CommonMark) would otherwise read as markup, HTML included.
pub fn escape_md(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' | '~' | '&' | '!'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub fn render(m: &Meeting) -> String {
    let mut out =
        String::with_capacity(4096 + m.items.iter().map(|i| i.text.len() + 80).sum::<usize>());
    let log = format!("{}.log.html", m.base_name());
    let _ = writeln!(out, "# {}\n", escape_md(&m.page_title()));
    let _ = writeln!(
        out,
        "Meeting started by {} at {} UTC, ended at {} UTC ([full log]({log})).\n",
        escape_md(&m.owner),
        hms(m.started),
        hms(m.ended.unwrap_or(m.started)),
    );
    let _ = writeln!(out, "Chairs: {}\n", escape_md(&m.all_chairs().join(", ")));
    out.push_str("## Meeting summary\n\n");
    let mut topic_no = 0;
    for item in &m.items {
        let details = format!(
            "([{}]({log}#l-{}), {})",
            escape_md(&item.nick),
            item.line,
            hms(item.time)
        );
        if item.kind == ItemKind::Topic {
            topic_no += 1;
            let _ = writeln!(out, "{topic_no}. **{}** {details}", escape_md(&item.text));
        } else {
            let indent = if topic_no > 0 { "    " } else { "" };
            let label = match item.kind {
                ItemKind::Info => String::new(),
                k => format!("**{}**: ", k.label()),
            };
            let _ = writeln!(out, "{indent}* {label}{} {details}", escape_md(&item.text));
        }
    }
    out.push_str("\n## Action items\n\n");
    let mut any = false;
    for a in m.action_items() {
        let _ = writeln!(out, "* {}", escape_md(&a.text));
        any = true;
    }
    if !any {
        out.push_str("* (none)\n");
    }
    out.push_str("\n## Action items, by person\n\n");
    let (by_person, unassigned) = m.actions_by_person();
    for (nick, items) in &by_person {
        let _ = writeln!(out, "* {}", escape_md(nick));
        for a in items {
            let _ = writeln!(out, "    * {}", escape_md(&a.text));
        }
    }
    out.push_str("* **UNASSIGNED**\n");
    if unassigned.is_empty() {
        out.push_str("    * (none)\n");
    }
    for a in &unassigned {
        let _ = writeln!(out, "    * {}", escape_md(&a.text));
    }
    out.push_str("\n## People present (lines said)\n\n");
    for a in m.attendees() {
        let _ = writeln!(out, "* {} ({})", escape_md(&a.nick), a.lines);
    }
    out
}
