//! Safe IRC text: chat text becomes PRIVMSG/NOTICE bodies that cannot carry protocol lines
//! and always fit the 512-byte line limit. Used by the IRC adapter and by the bridge.

/// IRC's line limit, CRLF included (RFC 1459 §2.3; tags are budgeted separately).
pub const LINE_LIMIT: usize = 512;

/// Cleans one line of text for IRC: removes NUL, CR, LF and the CTCP delimiter `\x01`.
pub fn clean(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '\0' | '\r' | '\n' | '\x01'))
        .collect()
}

/// The bytes a message body may use when the server relays it as
/// `:nick!user@host COMMAND target :body\r\n`.
pub fn body_budget(nick: &str, user: &str, host: &str, command: &str, target: &str) -> usize {
    let overhead = 1 + nick.len() + 1 + user.len() + 1 + host.len() // :nick!user@host
        + 1 + command.len() + 1 + target.len() + 2 // " PRIVMSG target :"
        + 2; // CRLF
    LINE_LIMIT.saturating_sub(overhead).max(32)
}

/// The longest host name a server shows for a client (ircds cap it at 63 bytes).
pub const MAX_HOST_LEN: usize = 63;

/// The bytes a PRIVMSG body to `target` may use when the sender's nick and user name are at
/// most `nick_len` and `user_len` bytes and its host is not known: what the bridge, which
/// cuts lines before the adapter sees them, can count on.
pub fn relay_budget(nick_len: usize, user_len: usize, target: &str) -> usize {
    let overhead = 1 + nick_len + 1 + user_len + 1 + MAX_HOST_LEN // :nick!user@host
        + 1 + "PRIVMSG".len() + 1 + target.len() + 2 // " PRIVMSG target :"
        + 2; // CRLF
    LINE_LIMIT.saturating_sub(overhead).max(32)
}

/// Splits chat text into IRC-safe bodies of at most `budget` bytes each.
///
/// CR, LF and CRLF all end a line; empty lines are dropped; NUL and `\x01` are removed.
/// Long lines are split at the last space that fits; a word longer than the budget is cut
/// at a character boundary, never inside a UTF-8 sequence.
pub fn split_lines(text: &str, budget: usize) -> Vec<String> {
    let budget = budget.max(4);
    let mut out = Vec::new();
    for line in text.split(['\r', '\n']) {
        let line = clean(line);
        let mut rest = line.trim_end();
        if rest.is_empty() {
            continue;
        }
        while rest.len() > budget {
            let cut = split_point(rest, budget);
            let (head, tail) = rest.split_at(cut);
            let head = head.trim_end();
            if !head.is_empty() {
                out.push(head.to_owned());
            }
            rest = tail.trim_start();
        }
        if !rest.is_empty() {
            out.push(rest.to_owned());
        }
    }
    out
}

/// Where to cut `s` so that the head fits `budget` bytes: after the last space that fits,
/// else at the last character boundary that fits.
fn split_point(s: &str, budget: usize) -> usize {
    let mut boundary = budget;
    while !s.is_char_boundary(boundary) {
        boundary -= 1;
    }
    match s[..boundary].rfind(' ') {
        // A space at the very start would make no progress.
        Some(i) if i > 0 => i + 1,
        _ => {
            if boundary == 0 {
                // The first character alone is wider than the budget (budget < 4 bytes is
                // excluded above, so this cannot happen with valid UTF-8); take it anyway.
                s.chars().next().map_or(s.len(), char::len_utf8)
            } else {
                boundary
            }
        }
    }
}

/// Wraps text as a CTCP ACTION (`/me`).
pub fn ctcp_action(text: &str) -> String {
    format!("\x01ACTION {}\x01", clean(text))
}

/// Reads a CTCP ACTION body, if the message is one.
pub fn parse_ctcp_action(body: &str) -> Option<&str> {
    let inner = body.strip_prefix("\x01ACTION")?;
    let inner = inner.strip_suffix('\x01').unwrap_or(inner);
    Some(inner.strip_prefix(' ').unwrap_or(inner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn all_line_endings_split() {
        assert_eq!(split_lines("a\rb\nc\r\nd", 100), ["a", "b", "c", "d"]);
        assert_eq!(split_lines("a\n\n\nb\n", 100), ["a", "b"]);
    }

    #[test]
    fn protocol_injection_is_impossible() {
        let out = split_lines("hi\r\nQUIT :bye\x00\x01VERSION\x01", 100);
        assert_eq!(out, ["hi", "QUIT :byeVERSION"]);
        for l in &out {
            assert!(!l.contains(['\r', '\n', '\0', '\x01']));
        }
    }

    #[test]
    fn long_lines_split_on_words() {
        let out = split_lines("aaa bbb ccc ddd", 8);
        assert_eq!(out, ["aaa bbb", "ccc ddd"]);
    }

    #[test]
    fn long_words_split_on_char_boundaries() {
        let out = split_lines("ééééé", 5);
        assert_eq!(out, ["éé", "éé", "é"]);
    }

    #[test]
    fn budget_accounts_for_the_prefix() {
        let b = body_budget("sigbot", "~sigbot", "host.example.org", "PRIVMSG", "#chan");
        assert_eq!(
            b,
            512 - ":sigbot!~sigbot@host.example.org PRIVMSG #chan :\r\n".len()
        );
    }

    #[test]
    fn ctcp_action_round_trip() {
        assert_eq!(parse_ctcp_action(&ctcp_action("waves")), Some("waves"));
        assert_eq!(parse_ctcp_action("\x01ACTION waves"), Some("waves"));
        assert_eq!(parse_ctcp_action("hello"), None);
        assert_eq!(ctcp_action("a\x01b\r\nc"), "\x01ACTION abc\x01");
    }

    proptest! {
        #[test]
        fn split_is_safe_and_loses_no_text(text in "(?s).{0,2000}", budget in 4usize..600) {
            let out = split_lines(&text, budget);
            for l in &out {
                prop_assert!(!l.contains(['\r', '\n', '\0', '\x01']));
                prop_assert!(l.len() <= budget, "line of {} bytes > {}", l.len(), budget);
                prop_assert!(!l.is_empty());
            }
            // Joined back, the non-space characters are the input's, in order.
            let strip = |s: &str| -> String {
                clean(s).chars().filter(|c| !c.is_whitespace()).collect()
            };
            let joined: String = out.concat();
            prop_assert_eq!(strip(&joined), strip(&text));
        }
    }
}
