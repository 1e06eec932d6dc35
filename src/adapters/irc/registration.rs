//! Registration: CAP negotiation, SASL, NickServ, nick collisions, ISUPPORT, joining.

use std::time::{Duration, Instant};

use base64::Engine as _;
use irc::proto::{CapSubCommand, Response};

use super::history::DEFAULT_HISTORY_LIMIT;
use super::session::{Session, Wire, lower};
use crate::config::Sasl;
use crate::core::LinkState;

/// The IRCv3 capabilities requested when the server offers them.
pub const WANTED_CAPS: &[&str] = &[
    "sasl",
    "server-time",
    "message-tags",
    "account-tag",
    "extended-join",
    "account-notify",
    "echo-message",
    "batch",
    "cap-notify",
    "multi-prefix",
    "chghost",
    "draft/chathistory",
    "draft/relaymsg",
];

/// SASL payloads go out in pieces of this many bytes.
const SASL_CHUNK: usize = 400;

/// The capability names of a CAP list, without their values.
fn cap_names(list: &str) -> impl Iterator<Item = String> + '_ {
    list.split_whitespace()
        .map(|c| c.split('=').next().unwrap_or(c).to_owned())
}

impl Session {
    pub(super) fn on_cap(&mut self, sub: &CapSubCommand, a: Option<&str>, b: Option<&str>) {
        // "CAP * LS * :caps" continues, "CAP * LS :caps" ends the list.
        let (more, list) = match (a, b) {
            (Some("*"), Some(list)) => (true, list),
            (Some(list), None) | (None, Some(list)) => (false, list),
            (Some(_), Some(list)) => (false, list),
            (None, None) => (false, ""),
        };
        match sub {
            CapSubCommand::LS => self.on_cap_ls(list, more),
            CapSubCommand::ACK => self.on_cap_ack(list),
            CapSubCommand::NAK => {
                tracing::warn!(caps = %list, "server refused capabilities");
                if !self.registered {
                    self.cap_end();
                }
            }
            CapSubCommand::NEW => {
                let offered: Vec<String> = cap_names(list)
                    .filter(|c| WANTED_CAPS.contains(&c.as_str()) && c != "sasl")
                    .collect();
                if !offered.is_empty() {
                    self.queue(format!("CAP REQ :{}", offered.join(" ")));
                }
            }
            CapSubCommand::DEL => {
                for c in cap_names(list) {
                    self.caps.remove(&c);
                }
            }
            _ => {}
        }
    }

    /// Collects the offered capabilities; after the last LS line, asks for the wanted ones.
    fn on_cap_ls(&mut self, list: &str, more: bool) {
        self.cap_ls.extend(cap_names(list));
        for c in list.split_whitespace() {
            if let Some((name, value)) = c.split_once('=') {
                self.cap_values.insert(name.to_owned(), value.to_owned());
            }
        }
        if more {
            return;
        }
        self.cap_ls_done = true;
        let want: Vec<&str> = WANTED_CAPS
            .iter()
            .copied()
            .filter(|c| self.cap_ls.contains(*c))
            .filter(|c| *c != "sasl" || self.cfg.sasl.is_some())
            .collect();
        if want.is_empty() {
            return self.cap_end();
        }
        self.cap_pending = want.len();
        self.out
            .push(Wire::Now(format!("CAP REQ :{}", want.join(" "))));
    }

    fn on_cap_ack(&mut self, list: &str) {
        for c in cap_names(list) {
            self.caps.insert(c.trim_start_matches('-').to_owned());
        }
        if self.registered {
            return;
        }
        if self.caps.contains("sasl") && self.cfg.sasl.is_some() && !self.sasl_done {
            let mech = match self.cfg.sasl {
                Some(Sasl::External) => "EXTERNAL",
                _ => "PLAIN",
            };
            self.out.push(Wire::Now(format!("AUTHENTICATE {mech}")));
        } else {
            self.cap_end();
        }
    }

    fn cap_end(&mut self) {
        self.out.push(Wire::Now("CAP END".to_owned()));
    }

    /// The server's "+" asks for the payload: PLAIN credentials, or "+" for EXTERNAL.
    pub(super) fn on_authenticate(&mut self, data: &str) {
        if data != "+" {
            return;
        }
        let reply = match &self.cfg.sasl {
            Some(Sasl::Plain { user, password }) => {
                let raw = format!("{user}\0{user}\0{}", password.expose());
                base64::engine::general_purpose::STANDARD.encode(raw)
            }
            _ => "+".to_owned(),
        };
        // A payload ending exactly at a chunk boundary is closed by a lone "+".
        let mut rest = reply.as_str();
        while rest.len() >= SASL_CHUNK {
            self.out
                .push(Wire::Now(format!("AUTHENTICATE {}", &rest[..SASL_CHUNK])));
            rest = &rest[SASL_CHUNK..];
        }
        let last = if rest.is_empty() { "+" } else { rest };
        self.out.push(Wire::Now(format!("AUTHENTICATE {last}")));
    }

    pub(super) fn on_logged_in(&mut self, args: &[String]) {
        self.logged_in = true;
        tracing::info!(
            account = args.get(2).map(String::as_str).unwrap_or(""),
            "logged in"
        );
    }

    pub(super) fn on_sasl_success(&mut self) {
        self.sasl_done = true;
        self.cap_end();
    }

    pub(super) fn on_sasl_failure(&mut self, resp: Response) {
        self.sasl_done = true;
        tracing::error!(reply = ?resp, "SASL authentication failed; continuing without an account");
        self.cap_end();
    }

    /// Registered: identify to NickServ when SASL did not log in, then join.
    pub(super) fn on_welcome(&mut self, args: &[String]) {
        if let Some(me) = args.first() {
            self.nick = me.clone();
        }
        self.registered = true;
        tracing::info!(nick = %self.nick, caps = ?self.caps, "registered");
        if !self.logged_in
            && let Some(pw) = &self.cfg.nickserv_password
        {
            let account = match &self.cfg.sasl {
                Some(Sasl::Plain { user, .. }) => user.clone(),
                _ => self.cfg.nick.clone(),
            };
            self.queue(format!(
                "PRIVMSG NickServ :IDENTIFY {account} {}",
                pw.expose()
            ));
        }
        let chans: Vec<String> = self.cfg.channels.iter().map(|c| c.name.clone()).collect();
        for c in chans {
            self.queue(self.join_line(&c));
        }
        self.report(LinkState::Connected);
    }

    pub(super) fn on_isupport(&mut self, args: &[String]) {
        for tok in args.iter().skip(1) {
            if let Some(n) = tok.strip_prefix("CHATHISTORY=") {
                self.history_limit = match n.parse() {
                    // 0 means no limit: ask for a sensible page all the same.
                    Ok(0) | Err(_) => DEFAULT_HISTORY_LIMIT,
                    Ok(n) => n,
                };
            }
            if tok == "WHOX" {
                self.whox = true;
            } else if let Some(mode) = tok.strip_prefix("BOT=")
                && self.bot_mode.is_none()
            {
                self.bot_mode = Some(mode.to_owned());
                self.queue(format!("MODE {} +{mode}", self.nick));
            }
        }
    }

    /// While registering, tries the alternative nicks, then the nick with underscores.
    pub(super) fn on_nick_unavailable(&mut self) {
        if self.registered {
            return;
        }
        self.nick_attempt += 1;
        let next = self
            .cfg
            .alt_nicks
            .get(self.nick_attempt - 1)
            .cloned()
            .unwrap_or_else(|| {
                let extra = self.nick_attempt - self.cfg.alt_nicks.len();
                format!("{}{}", self.cfg.nick, "_".repeat(extra))
            });
        tracing::warn!(taken = %self.nick, trying = %next, "nick unavailable");
        self.nick = next.clone();
        self.out.push(Wire::Now(format!("NICK {next}")));
    }

    pub(super) fn on_join_refused(&mut self, resp: Response, args: &[String], now: Instant) {
        let chan = args.get(1).cloned().unwrap_or_default();
        tracing::warn!(channel = %chan, reply = ?resp, "cannot join; retrying later");
        self.rejoin.push((
            now + self.cfg.rejoin_delay.max(Duration::from_secs(60)),
            chan,
        ));
    }

    pub(super) fn join_line(&self, chan: &str) -> String {
        let key = self
            .cfg
            .channels
            .iter()
            .find(|c| lower(&c.name) == lower(chan))
            .and_then(|c| c.key.clone());
        match key {
            Some(k) => format!("JOIN {chan} {k}"),
            None => format!("JOIN {chan}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_rig::rig;
    use base64::Engine as _;
    use std::time::Instant;

    #[test]
    fn cap_negotiation_requests_only_offered_wanted_caps_across_ls_lines() {
        let mut r = rig("");
        r.feed(":srv CAP * LS * :sasl server-time foo/bar");
        assert!(r.sink.take().is_empty(), "no REQ before the last LS line");
        r.feed(":srv CAP * LS :account-tag echo-message chghost");
        // No SASL configured: sasl is not requested.
        assert_eq!(
            r.sink.take(),
            ["CAP REQ :server-time account-tag echo-message chghost"]
        );
        r.feed(":srv CAP * ACK :server-time account-tag echo-message chghost");
        assert_eq!(r.sink.take(), ["CAP END"]);
        assert!(r.session.caps.contains("account-tag"));
    }

    #[test]
    fn sasl_plain_sends_the_base64_payload_then_ends_negotiation() {
        let mut r = rig("sasl = { user = \"bot\", password = \"pw\" }");
        r.feed(":srv CAP * LS :sasl=PLAIN,EXTERNAL");
        assert_eq!(r.sink.take(), ["CAP REQ :sasl"]);
        r.feed(":srv CAP * ACK :sasl");
        assert_eq!(r.sink.take(), ["AUTHENTICATE PLAIN"]);
        r.feed("AUTHENTICATE +");
        let expected = base64::engine::general_purpose::STANDARD.encode("bot\0bot\0pw");
        assert_eq!(r.sink.take(), [format!("AUTHENTICATE {expected}")]);
        r.feed(":srv 900 sigbot sigbot!b@h bot :You are now logged in as bot");
        r.feed(":srv 903 sigbot :SASL authentication successful");
        assert_eq!(r.sink.take(), ["CAP END"]);
        assert!(r.session.logged_in);
    }

    #[test]
    fn welcome_joins_channels_and_sets_bot_mode_from_isupport() {
        let mut r = rig("");
        r.feed(":srv 001 sigbot :Welcome");
        r.feed(":srv 005 sigbot BOT=B WHOX :are supported");
        let now = Instant::now();
        let mut queued = Vec::new();
        while let Some(Ok(l)) = r.driver.queue.pop(now) {
            queued.push(l.line);
        }
        assert_eq!(queued, ["JOIN #sig", "MODE sigbot +B"]);
        assert!(r.session.whox);
    }

    #[test]
    fn a_kick_schedules_a_rejoin_and_a_nick_collision_picks_an_alternative() {
        let mut r = rig("alt_nicks = [\"sigbot-alt\"]\nrejoin_delay = \"0s\"");
        r.feed(":srv 433 * sigbot :Nickname is already in use");
        assert_eq!(r.sink.take(), ["NICK sigbot-alt"]);
        r.feed(":srv 433 * sigbot-alt :Nickname is already in use");
        assert_eq!(r.sink.take(), ["NICK sigbot_"]);
        r.feed(":srv 001 sigbot_ :Welcome");
        while r.driver.queue.pop(Instant::now()).is_some() {}
        r.feed(":op!o@h KICK #sig sigbot_ :bye");
        assert!(r.tick().is_none());
        let mut queued = Vec::new();
        while let Some(Ok(l)) = r.driver.queue.pop(Instant::now()) {
            queued.push(l.line);
        }
        assert!(queued.contains(&"JOIN #sig".to_owned()), "{queued:?}");
    }

    #[test]
    fn a_refusal_ends_negotiation_and_later_offers_and_withdrawals_are_followed() {
        let mut r = rig("");
        r.feed(":srv CAP * LS :server-time");
        assert_eq!(r.sink.take(), ["CAP REQ :server-time"]);
        r.feed(":srv CAP * NAK :server-time");
        assert_eq!(r.sink.take(), ["CAP END"]);
        r.feed(":srv 001 sigbot :Welcome");
        r.queued();
        // cap-notify: a new offer is taken up (never sasl once registered), a withdrawal obeyed.
        r.feed(":srv CAP sigbot NEW :account-tag sasl foo");
        assert_eq!(r.queued(), ["CAP REQ :account-tag"]);
        r.feed(":srv CAP sigbot ACK :account-tag");
        assert!(r.sink.take().is_empty(), "no CAP END once registered");
        assert!(r.session.caps.contains("account-tag"));
        r.feed(":srv CAP sigbot DEL :account-tag");
        assert!(!r.session.caps.contains("account-tag"));
    }

    #[test]
    fn a_failed_sasl_login_ends_negotiation_and_nickserv_identifies_after_welcome() {
        let mut r =
            rig("sasl = { user = \"bot\", password = \"pw\" }\nnickserv_password = \"ns-pw\"");
        r.feed(":srv CAP * LS :sasl");
        r.feed(":srv CAP * ACK :sasl");
        assert_eq!(r.sink.take(), ["CAP REQ :sasl", "AUTHENTICATE PLAIN"]);
        r.feed(":srv 904 sigbot :SASL authentication failed");
        assert_eq!(r.sink.take(), ["CAP END"]);
        assert!(!r.session.logged_in);
        r.feed(":srv 001 sigbot :Welcome");
        match r.events.try_recv() {
            Ok(crate::core::Event::NetworkState {
                state, queue_len, ..
            }) => {
                assert_eq!(state, crate::core::LinkState::Connected);
                assert_eq!(queue_len, 2, "the driver fills in its queue's length");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            r.queued(),
            ["PRIVMSG NickServ :IDENTIFY bot ns-pw", "JOIN #sig"]
        );
    }

    #[test]
    fn a_long_sasl_payload_goes_in_400_byte_chunks_closed_by_a_plus() {
        // 8 + 592 bytes encode to exactly 800 base64 characters.
        let pw = "p".repeat(592);
        let mut r = rig(&format!("sasl = {{ user = \"bot\", password = \"{pw}\" }}"));
        r.feed("AUTHENTICATE +");
        let sent = r.sink.take();
        let expected = base64::engine::general_purpose::STANDARD.encode(format!("bot\0bot\0{pw}"));
        assert_eq!(expected.len(), 800);
        assert_eq!(
            sent,
            [
                format!("AUTHENTICATE {}", &expected[..400]),
                format!("AUTHENTICATE {}", &expected[400..]),
                "AUTHENTICATE +".to_owned(),
            ]
        );
    }

    #[test]
    fn a_refused_join_is_retried_no_sooner_than_a_minute() {
        let mut r = rig("rejoin_delay = \"0s\"");
        r.feed(":srv 001 sigbot :Welcome");
        r.queued();
        r.feed(":srv 474 sigbot #sig :Cannot join channel (+b)");
        let (at, chan) = r.session.rejoin[0].clone();
        assert_eq!(chan, "#sig");
        assert!(at >= Instant::now() + std::time::Duration::from_secs(59));
        assert!(r.tick().is_none());
        assert!(r.queued().is_empty());
    }
}
