//! What a relayed message says, in the forms IRC and Matrix need.

use crate::core::format;

/// What a relayed message says, in the forms the sides need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// Text with mIRC formatting codes, lines separated by `\n`.
    pub irc: String,
    /// Text without formatting.
    pub plain: String,
    /// Matrix HTML, when the message is formatted.
    pub html: Option<String>,
}

impl Content {
    /// Text that carries no formatting, whatever it contains.
    pub fn plain(text: &str) -> Content {
        let plain = format::strip_irc_formatting(&normalize_newlines(text));
        Content {
            irc: plain.clone(),
            plain,
            html: None,
        }
    }

    /// The same message with `lead` before it and `tail` after it, both plain text.
    pub(super) fn wrapped(self, lead: &str, tail: &str) -> Content {
        let (lead, tail) = (
            format::strip_irc_formatting(lead),
            format::strip_irc_formatting(tail),
        );
        Content {
            irc: format!("{lead}{}{tail}", self.irc),
            plain: format!("{lead}{}{tail}", self.plain),
            html: self.html.map(|h| {
                format!(
                    "{}{h}{}",
                    format::escape_html(&lead),
                    format::escape_html(&tail)
                )
            }),
        }
    }
    /// A message as IRC (or the console) carries it: text with mIRC codes.
    pub fn from_irc(text: &str) -> Content {
        let text = normalize_newlines(text);
        Content {
            plain: format::strip_irc_formatting(&text),
            html: format::irc_to_html(&text),
            irc: text,
        }
    }

    /// A message as Matrix carries it: a plain body and, when formatted, HTML. Code blocks
    /// longer than a line go to `long_code` (a paste) on the IRC side.
    pub fn from_matrix(
        body: &str,
        html: Option<&str>,
        long_code: &mut dyn FnMut(&str) -> String,
    ) -> Content {
        let body = normalize_newlines(body);
        let irc = html
            .and_then(|h| format::html_to_irc(h, long_code))
            .unwrap_or_else(|| format::strip_irc_formatting(&body));
        Content {
            irc,
            html: html.map(str::to_owned),
            plain: body,
        }
    }
}

fn normalize_newlines(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}
