//! The protocol state of one connection, without I/O. Each server line goes through
//! [`Session::handle_line`], a dispatcher over synchronous handlers (in the files of their
//! concern) that push lines for the server into `out` and core events into `events`; the
//! driver flushes both after every line, so the handlers are tested without a runtime.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use irc::proto::{Command, Message, Prefix, Response};

use super::history::{DEFAULT_HISTORY_LIMIT, LastSeen};
use super::membership::Channel;
use super::sending::HOST_GUESS;
use super::text;
use crate::config::IrcConfig;
use crate::core::{Event, LinkState};

/// Why a session ended.
#[derive(Debug)]
pub(super) enum SessionEnd {
    Shutdown,
    Lost(String),
}

/// A line for the server, as a handler asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Wire {
    /// Written at once, ahead of the queue: registration cannot wait for the token bucket.
    Now(String),
    /// Written at once and taken from the token bucket, which then counts as the server does.
    Counted(String),
    /// Queued at protocol priority, behind the token bucket.
    Queued(String),
}

/// The state of one connection, from TCP connect to disconnect.
pub(super) struct Session {
    pub(super) cfg: Arc<IrcConfig>,
    pub(super) nick: String,
    pub(super) user: String,
    pub(super) host: String,
    pub(super) registered: bool,
    pub(super) nick_attempt: usize,
    pub(super) cap_ls: HashSet<String>,
    pub(super) cap_ls_done: bool,
    pub(super) caps: HashSet<String>,
    pub(super) cap_pending: usize,
    pub(super) sasl_done: bool,
    pub(super) logged_in: bool,
    pub(super) whox: bool,
    pub(super) bot_mode: Option<String>,
    /// Accounts by lower-cased nick, from extended-join, account-notify and WHOX.
    pub(super) accounts: HashMap<String, Option<String>>,
    pub(super) joined: HashSet<String>,
    pub(super) rejoin: Vec<(Instant, String)>,
    /// Members of the joined channels, by lower-cased channel.
    pub(super) channels: HashMap<String, Channel>,
    /// NAMES replies being collected, by lower-cased channel.
    pub(super) names: HashMap<String, Vec<String>>,
    /// Open BATCHes: reference -> (upper-cased type, parameters).
    pub(super) batches: HashMap<String, (String, Vec<String>)>,
    /// Capability values from CAP LS (`draft/relaymsg=/`).
    pub(super) cap_values: HashMap<String, String>,
    /// Largest CHATHISTORY request the server takes (ISUPPORT `CHATHISTORY=`).
    pub(super) history_limit: usize,
    /// Channels with a CHATHISTORY catch-up under way: replayed lines after this time count.
    pub(super) catching_up: HashMap<String, DateTime<Utc>>,
    /// IDs of recent messages, so that a replayed line already seen live is skipped.
    pub(super) recent_ids: VecDeque<String>,
    pub(super) last_rx: Instant,
    pub(super) ping_sent: bool,
    pub(super) next_regain: Instant,
    /// Lines for the server, taken by the driver after each server line.
    pub(super) out: Vec<Wire>,
    /// Events for the core, taken by the driver after each server line. A network state
    /// leaves here with a queue length of 0: only the driver knows the queue.
    pub(super) events: Vec<Event>,
}

impl Session {
    pub(super) fn new(cfg: Arc<IrcConfig>, now: Instant) -> Self {
        Self {
            nick: cfg.nick.clone(),
            user: format!("~{}", cfg.username),
            host: HOST_GUESS.to_owned(),
            cfg,
            registered: false,
            nick_attempt: 0,
            cap_ls: HashSet::new(),
            cap_ls_done: false,
            caps: HashSet::new(),
            cap_pending: 0,
            sasl_done: false,
            logged_in: false,
            whox: false,
            bot_mode: None,
            accounts: HashMap::new(),
            joined: HashSet::new(),
            rejoin: Vec::new(),
            channels: HashMap::new(),
            names: HashMap::new(),
            batches: HashMap::new(),
            cap_values: HashMap::new(),
            history_limit: DEFAULT_HISTORY_LIMIT,
            catching_up: HashMap::new(),
            recent_ids: VecDeque::new(),
            last_rx: now,
            ping_sent: false,
            next_regain: now + Duration::from_secs(30),
            out: Vec::new(),
            events: Vec::new(),
        }
    }

    /// The registration lines, sent as soon as the connection is up.
    pub(super) fn hello(&mut self) {
        self.out.push(Wire::Counted("CAP LS 302".to_owned()));
        if let Some(p) = &self.cfg.password {
            self.out
                .push(Wire::Counted(format!("PASS :{}", p.expose())));
        }
        self.out.push(Wire::Counted(format!("NICK {}", self.nick)));
        self.out.push(Wire::Counted(format!(
            "USER {} 0 * :{}",
            text::clean(&self.cfg.username).replace(' ', ""),
            text::clean(&self.cfg.realname)
        )));
    }

    /// Takes one server line. `seen` is the driver's record of the last line seen in each
    /// channel, which outlives the connection.
    pub(super) fn handle_line(
        &mut self,
        line: &str,
        seen: &mut LastSeen,
        now: Instant,
    ) -> Option<SessionEnd> {
        self.last_rx = now;
        self.ping_sent = false;
        // The reader splits at LF only. A CR or NUL left inside is no IRC line, and
        // answering it (a PONG echoes its token) would put a second line on the wire.
        if line.contains(['\r', '\n', '\0']) {
            tracing::debug!("server line with CR, LF or NUL inside skipped");
            return None;
        }
        match line.parse::<Message>() {
            Ok(msg) => self.handle(&msg, seen, now),
            Err(e) => {
                tracing::debug!(error = %e, "unparsable server line skipped");
                None
            }
        }
    }

    /// One arm per command the bot cares about.
    fn handle(&mut self, msg: &Message, seen: &mut LastSeen, now: Instant) -> Option<SessionEnd> {
        match &msg.command {
            Command::PING(a, b) => self.on_ping(a, b.as_deref()),
            Command::ERROR(reason) => {
                return Some(SessionEnd::Lost(format!("server error: {reason}")));
            }
            Command::CAP(_, sub, a, b) => self.on_cap(sub, a.as_deref(), b.as_deref()),
            Command::AUTHENTICATE(data) => self.on_authenticate(data),
            Command::Response(resp, args) => self.on_numeric(*resp, args, now),
            Command::Raw(code, args) if code == "354" => self.on_whox(args),
            Command::Raw(cmd, args)
                if cmd == "FAIL" && args.first().is_some_and(|a| a == "CHATHISTORY") =>
            {
                self.on_history_refused(args)
            }
            Command::JOIN(chan, account, _) => self.on_join(msg, chan, account.as_deref(), seen),
            Command::PART(chan, reason) => self.on_part(msg, chan, reason.as_deref()),
            Command::TOPIC(chan, Some(text)) => self.on_topic(msg, chan, text),
            Command::BATCH(reference, kind, params) => {
                let kind = kind.as_ref().map(|k| k.to_str().to_ascii_uppercase());
                self.on_batch(reference, kind, params.as_deref())
            }
            Command::ACCOUNT(account) => self.on_account(msg, account),
            Command::NICK(new) => self.on_nick(msg, new),
            Command::QUIT(reason) => self.on_quit(msg, reason.as_deref()),
            Command::KICK(chan, who, reason) => {
                self.on_kick(msg, chan, who, reason.as_deref(), now)
            }
            Command::CHGHOST(user, host) => self.on_chghost(msg, user, host),
            Command::PRIVMSG(target, body) => self.on_chat(msg, target, body, false, seen),
            Command::NOTICE(target, body) => self.on_chat(msg, target, body, true, seen),
            _ => {}
        }
        None
    }

    /// One arm per numeric reply the bot cares about.
    fn on_numeric(&mut self, resp: Response, args: &[String], now: Instant) {
        match resp {
            Response::RPL_WELCOME => self.on_welcome(args),
            Response::RPL_ISUPPORT => self.on_isupport(args),
            Response::RPL_NAMREPLY => self.on_names(args),
            Response::RPL_ENDOFNAMES => self.on_end_of_names(args),
            Response::ERR_NICKNAMEINUSE
            | Response::ERR_ERRONEOUSNICKNAME
            | Response::ERR_NICKCOLLISION
            | Response::ERR_UNAVAILRESOURCE => self.on_nick_unavailable(),
            Response::RPL_LOGGEDIN => self.on_logged_in(args),
            Response::RPL_SASLSUCCESS => self.on_sasl_success(),
            Response::ERR_SASLFAIL
            | Response::ERR_SASLTOOLONG
            | Response::ERR_SASLABORT
            | Response::ERR_SASLALREADY => self.on_sasl_failure(resp),
            Response::ERR_BANNEDFROMCHAN
            | Response::ERR_INVITEONLYCHAN
            | Response::ERR_BADCHANNELKEY
            | Response::ERR_CHANNELISFULL => self.on_join_refused(resp, args, now),
            _ => {}
        }
    }

    /// Answered at once: a delayed PONG is how bots time out.
    fn on_ping(&mut self, a: &str, b: Option<&str>) {
        let pong = match b {
            Some(b) => format!("PONG {a} :{b}"),
            None => format!("PONG :{a}"),
        };
        self.out.push(Wire::Counted(pong));
    }

    /// Once a second: the ping timeout, rejoins that fell due, and regaining the
    /// configured nick.
    pub(super) fn tick(&mut self, now: Instant) -> Option<SessionEnd> {
        let idle = now.saturating_duration_since(self.last_rx);
        if idle >= self.cfg.ping_timeout {
            return Some(SessionEnd::Lost(format!(
                "ping timeout ({} s without data)",
                idle.as_secs()
            )));
        }
        if idle >= self.cfg.ping_timeout / 2 && !self.ping_sent {
            self.ping_sent = true;
            self.queue(format!("PING :sigbot-{}", now.elapsed().as_millis()));
        }
        if !self.registered {
            return None;
        }
        let due: Vec<String> = self
            .rejoin
            .iter()
            .filter(|(at, _)| *at <= now)
            .map(|(_, c)| c.clone())
            .collect();
        if !due.is_empty() {
            self.rejoin.retain(|(at, _)| *at > now);
            for chan in due {
                self.queue(self.join_line(&chan));
            }
        }
        if now >= self.next_regain && lower(&self.nick) != lower(&self.cfg.nick) {
            self.next_regain = now + Duration::from_secs(30);
            self.queue(format!("NICK {}", self.cfg.nick));
        }
        None
    }

    /// Queues a line at protocol priority.
    pub(super) fn queue(&mut self, line: String) {
        self.out.push(Wire::Queued(line));
    }

    /// Tells the core how the link is.
    pub(super) fn report(&mut self, state: LinkState) {
        self.events
            .push(crate::adapters::link_event(&self.cfg.name, state, 0));
    }

    pub(super) fn is_me(&self, nick: &str) -> bool {
        lower(nick) == lower(&self.nick)
    }
}

/// The nick a line comes from, when it comes from a user.
pub(super) fn nick_of(msg: &Message) -> Option<&str> {
    match &msg.prefix {
        Some(Prefix::Nickname(n, _, _)) => Some(n),
        _ => None,
    }
}

/// `user@host` from a message's prefix, when the server gave both.
pub(super) fn mask_of(msg: &Message) -> Option<String> {
    match &msg.prefix {
        Some(Prefix::Nickname(_, user, host)) if !user.is_empty() && !host.is_empty() => {
            Some(format!("{user}@{host}"))
        }
        _ => None,
    }
}

pub(super) fn tag_of(msg: &Message, name: &str) -> Option<String> {
    msg.tags
        .as_ref()?
        .iter()
        .find(|t| t.0 == name)
        .and_then(|t| t.1.clone())
}

pub(super) fn lower(s: &str) -> String {
    // rfc1459 casemapping: []\~ are the upper-case forms of {}|^.
    s.chars()
        .map(|c| match c {
            '[' => '{',
            ']' => '}',
            '\\' => '|',
            '~' => '^',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::irc::test_rig::rig;

    #[test]
    fn ping_is_answered_at_once_and_silence_ends_the_session() {
        let mut r = rig("ping_timeout = \"60s\"");
        r.feed("PING :abc");
        assert_eq!(r.sink.take(), ["PONG :abc"]);
        r.session.last_rx = Instant::now() - Duration::from_secs(31);
        assert!(r.tick().is_none());
        assert!(
            r.driver
                .queue
                .pop(Instant::now())
                .unwrap()
                .unwrap()
                .line
                .starts_with("PING :")
        );
        r.session.last_rx = Instant::now() - Duration::from_secs(61);
        assert!(matches!(r.tick(), Some(SessionEnd::Lost(_))));
    }

    #[test]
    fn rfc1459_casemapping() {
        assert_eq!(lower("Nick[Away]"), "nick{away}");
        assert_eq!(lower("A\\B~"), "a|b^");
    }

    #[test]
    fn a_server_error_ends_the_session_and_garbage_is_skipped() {
        let mut r = rig("");
        assert!(r.feed(":::").is_none());
        match r.feed("ERROR :Closing link: (bot@h) [Killed]") {
            Some(SessionEnd::Lost(why)) => assert!(why.contains("Killed"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_line_with_a_cr_inside_is_not_answered() {
        // Found by the fuzz target irc_session: the PONG echoed the CR, and with it a
        // second line for the server.
        let mut r = rig("");
        r.feed("PING :a\rQUIT :x");
        r.feed("PING :b\0");
        assert!(r.sink.take().is_empty());
        r.feed("PING :c");
        assert_eq!(r.sink.take(), ["PONG :c"]);
    }

    #[test]
    fn the_primary_nick_is_taken_back_when_its_holder_quits() {
        let mut r = rig("");
        r.feed(":srv 433 * sigbot :Nickname is already in use");
        assert_eq!(r.sink.take(), ["NICK sigbot_"]);
        r.feed(":srv 001 sigbot_ :Welcome");
        r.queued();
        r.feed(":sigbot!x@h QUIT :bye");
        assert_eq!(r.queued(), ["NICK sigbot"]);
        r.feed(":sigbot_!s@h NICK sigbot");
        assert!(r.session.is_me("SIGBOT"));
    }

    #[test]
    fn registration_starts_with_cap_ls_and_the_configured_password() {
        let mut r = rig("password = \"srv-pw\"\nusername = \"sig bot\"\nrealname = \"Sig Bot\"");
        r.session.hello();
        assert_eq!(
            r.session.out,
            [
                Wire::Counted("CAP LS 302".into()),
                Wire::Counted("PASS :srv-pw".into()),
                Wire::Counted("NICK sigbot".into()),
                Wire::Counted("USER sigbot 0 * :Sig Bot".into()),
            ]
        );
    }
}
