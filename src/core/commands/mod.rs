//! Command addressing and the built-in commands (DESIGN §6).

pub mod acl;
pub mod allowance;
mod builtin;
pub mod declarative;

use crate::core::bridge::{clean_display_name, quote};

/// Longest quote of a caller's own text in a reply, in characters (an ellipsis marks a cut).
pub const QUOTE_CHARS: usize = 40;

/// A caller's name as replies show it: without control or formatting characters, cut like
/// bridged names (a display name may be 256 characters of other people's nicks).
pub fn shown_name(nick: &str) -> String {
    let name = clean_display_name(nick);
    if name.is_empty() {
        "someone".to_owned()
    } else {
        name
    }
}

/// The start of a caller's text for quoting in a reply: its first line, without control
/// characters, at most [`QUOTE_CHARS`] characters.
pub fn excerpt(text: &str) -> String {
    let kept: String = text
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect();
    quote(&kept, QUOTE_CHARS)
}

/// A command invocation found in a chat line: the command word (lower-cased) and the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub name: String,
    pub args: String,
}

/// Finds a command in `text`: `!cmd args` with the configured prefix, or the bot addressed
/// by nick (`sigbot: cmd args`, `sigbot, cmd`), with or without the prefix after the address.
pub fn parse_invocation(text: &str, prefix: &str, bot_nick: &str) -> Option<Invocation> {
    let text = text.trim();
    let body = if let Some(rest) = text.strip_prefix(prefix).filter(|_| !prefix.is_empty()) {
        rest
    } else {
        let rest = strip_address(text, bot_nick)?;
        rest.strip_prefix(prefix)
            .filter(|_| !prefix.is_empty())
            .unwrap_or(rest)
    };
    let body = body.trim_start();
    let (name, args) = match body.split_once(char::is_whitespace) {
        Some((n, a)) => (n, a.trim()),
        None => (body, ""),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    {
        return None;
    }
    Some(Invocation {
        name: name.to_lowercase(),
        args: args.to_owned(),
    })
}

fn strip_address<'a>(text: &'a str, bot_nick: &str) -> Option<&'a str> {
    let head = text.get(..bot_nick.len())?;
    if !head.eq_ignore_ascii_case(bot_nick) {
        return None;
    }
    let rest = &text[bot_nick.len()..];
    let rest = rest.strip_prefix(':').or_else(|| rest.strip_prefix(','))?;
    Some(rest.trim_start())
}

/// The commands built into the bot. One definition each: name, usage, summary, role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    Help,
    Ping,
    Version,
    Whoami,
    Status,
    Say,
    Confirm,
    Cancel,
    NextMeeting,
}

/// Role that guards `say`: it lets a trusted person speak through the bot in any room.
pub const ADMIN_ROLE: &str = "admin";

impl Builtin {
    pub const ALL: [Builtin; 9] = [
        Builtin::Help,
        Builtin::Ping,
        Builtin::Version,
        Builtin::Whoami,
        Builtin::Status,
        Builtin::Say,
        Builtin::Confirm,
        Builtin::Cancel,
        Builtin::NextMeeting,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Builtin::Help => "help",
            Builtin::Ping => "ping",
            Builtin::Version => "version",
            Builtin::Whoami => "whoami",
            Builtin::Status => "status",
            Builtin::Say => "say",
            Builtin::Confirm => "confirm",
            Builtin::Cancel => "cancel",
            Builtin::NextMeeting => "nextmeeting",
        }
    }

    pub fn usage(self) -> &'static str {
        match self {
            Builtin::Help => "help [command]",
            Builtin::Ping => "ping",
            Builtin::Version => "version",
            Builtin::Whoami => "whoami",
            Builtin::Status => "status",
            Builtin::Say => "say <network>/<room> <text>",
            Builtin::Confirm => "confirm <code>",
            Builtin::Cancel => "cancel",
            Builtin::NextMeeting => "nextmeeting [name]",
        }
    }

    pub fn summary(self) -> &'static str {
        match self {
            Builtin::Help => "list the commands you may run, or show one command's usage",
            Builtin::Ping => "check that the bot is alive (answers pong)",
            Builtin::Version => "show the bot's version",
            Builtin::Whoami => "show your principal and roles",
            Builtin::Status => "show networks, their queues, and uptime",
            Builtin::Say => "make the bot say something in a room",
            Builtin::Confirm => "go ahead with a command that asked for confirmation",
            Builtin::Cancel => "drop the commands waiting for your confirmation here",
            Builtin::NextMeeting => {
                "when the next scheduled meeting (of this room, or by name) starts"
            }
        }
    }

    /// The role needed to run the command, if any.
    pub fn role(self) -> Option<&'static str> {
        match self {
            Builtin::Say => Some(ADMIN_ROLE),
            _ => None,
        }
    }

    pub fn lookup(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }
}

#[cfg(test)]
mod abuse_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(name: &str, args: &str) -> Option<Invocation> {
        Some(Invocation {
            name: name.into(),
            args: args.into(),
        })
    }

    #[test]
    fn prefix_addressing() {
        assert_eq!(parse_invocation("!ping", "!", "sigbot"), inv("ping", ""));
        assert_eq!(
            parse_invocation("!help   status ", "!", "sigbot"),
            inv("help", "status")
        );
        assert_eq!(parse_invocation("!PING", "!", "sigbot"), inv("ping", ""));
    }

    #[test]
    fn nick_addressing() {
        assert_eq!(
            parse_invocation("sigbot: ping", "!", "sigbot"),
            inv("ping", "")
        );
        assert_eq!(
            parse_invocation("SigBot, help x", "!", "sigbot"),
            inv("help", "x")
        );
        assert_eq!(
            parse_invocation("sigbot: !ping", "!", "sigbot"),
            inv("ping", "")
        );
    }

    #[test]
    fn ordinary_text_is_not_a_command() {
        assert_eq!(parse_invocation("ping", "!", "sigbot"), None);
        assert_eq!(parse_invocation("sigbotx: ping", "!", "sigbot"), None);
        assert_eq!(parse_invocation("sigbot ping", "!", "sigbot"), None);
        assert_eq!(parse_invocation("!", "!", "sigbot"), None);
        assert_eq!(parse_invocation("!!!", "!", "sigbot"), None);
        assert_eq!(parse_invocation("! ping", "!", "sigbot"), inv("ping", ""));
    }

    #[test]
    fn multibyte_text_near_the_nick_does_not_panic() {
        assert_eq!(parse_invocation("sigbö: ping", "!", "sigbot"), None);
        assert_eq!(parse_invocation("ß", "!", "sigbot"), None);
    }

    #[test]
    fn quotes_and_names_are_short_and_cut_on_a_character() {
        let long = "é".repeat(300);
        let q = excerpt(&long);
        assert_eq!(q.chars().count(), QUOTE_CHARS);
        assert!(q.ends_with('…'));
        assert_eq!(excerpt("short\x02 one\nsecond"), "short one…");
        let name = shown_name(&format!("{}\u{202E}", "alice bob ".repeat(30)));
        assert!(
            name.chars().count() <= crate::core::bridge::MAX_NAME_CHARS,
            "{name}"
        );
        assert!(!name.contains('\u{202E}'));
        assert_eq!(shown_name("\u{200B}"), "someone");
    }

    #[test]
    fn every_builtin_is_found_by_its_name() {
        for b in Builtin::ALL {
            assert_eq!(Builtin::lookup(b.name()), Some(b));
            assert!(b.usage().starts_with(b.name()));
        }
    }
}
