//! The session fed whatever a server may send, for the fuzz target `irc_session`
//! (`src/fuzzing.rs`). It lives beside the session because the session's state is private to
//! the driver; nothing else calls it.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use irc::proto::Message;

use super::history::LastSeen;
use super::session::{Session, Wire, tag_of};
use crate::config::{Config, IrcConfig};
use crate::core::{Event, Principal};

/// Capabilities the first input byte may turn on, one bit each, as if negotiated.
const CAPS: [&str; 8] = [
    "account-tag",
    "extended-join",
    "account-notify",
    "batch",
    "multi-prefix",
    "echo-message",
    "chghost",
    "message-tags",
];

/// The longest line the driver passes on (its `MAX_LINE`).
const MAX_LINE: usize = 8191 + 512;

fn config() -> Arc<IrcConfig> {
    static CFG: OnceLock<Arc<IrcConfig>> = OnceLock::new();
    CFG.get_or_init(|| {
        let toml = "[[irc]]\nname = \"net\"\nserver = \"irc.example.org\"\nnick = \"sigbot\"\n\
                    channels = [\"#sig\", \"#ops\"]\n";
        let mut cfg = Config::from_str_with_env(toml, std::path::Path::new("fuzz.toml"), &|_| None)
            .expect("the fuzz config is valid");
        Arc::new(cfg.irc.remove(0))
    })
    .clone()
}

/// Input: one byte of capabilities (bit i turns on `CAPS[i]`), one byte of flags (bit 0:
/// registered, bit 1: WHOX), then server lines split as the driver splits them.
///
/// Checked after every line: the session does not panic; nothing it writes can end a
/// protocol line early; and a chat message carries a principal only as the server vouched
/// for it (the line's `account` tag under account-tag, else an account learnt for a nick
/// that shares a channel with the bot).
pub fn session(data: &[u8]) {
    let (caps, flags, lines) = match data {
        [c, f, rest @ ..] => (*c, *f, rest),
        _ => return,
    };
    let now = Instant::now();
    let mut s = Session::new(config(), now);
    s.registered = flags & 1 != 0;
    s.whox = flags & 2 != 0;
    for (i, cap) in CAPS.iter().enumerate() {
        if caps & (1 << i) != 0 {
            s.caps.insert((*cap).to_owned());
        }
    }
    let mut seen = LastSeen::default();
    for raw in lines.split(|b| *b == b'\n') {
        let mut raw = raw;
        while let [rest @ .., b'\r'] = raw {
            raw = rest;
        }
        if raw.is_empty() || raw.len() > MAX_LINE {
            continue;
        }
        let line = String::from_utf8_lossy(raw);
        let _ = s.handle_line(&line, &mut seen, now);
        let _ = s.tick(now);
        for wire in s.out.drain(..) {
            let (Wire::Now(l) | Wire::Counted(l) | Wire::Queued(l)) = wire;
            assert!(
                !l.contains(['\r', '\n', '\0']),
                "a written line carries a line break: {l:?} (from {line:?})"
            );
        }
        let parsed = line.parse::<Message>().ok();
        for ev in std::mem::take(&mut s.events) {
            let Event::Message(m) = ev else {
                continue;
            };
            let Some(p) = m.sender.principal else {
                continue;
            };
            if s.caps.contains("account-tag") {
                let tag = parsed.as_ref().and_then(|msg| tag_of(msg, "account"));
                assert_eq!(
                    Some(p),
                    tag.map(|t| Principal::new("net", t)),
                    "a principal not from the account tag: {line:?}"
                );
            } else {
                assert!(
                    s.shares_channel(&m.sender.nick),
                    "{p:?} given to {:?}, who shares no channel with the bot ({line:?})",
                    m.sender.nick
                );
            }
        }
    }
}
