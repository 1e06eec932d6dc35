//! Registration: CAP negotiation, SASL, nick collisions, ISUPPORT, joining.

use super::*;

impl Driver {
    pub(super) async fn on_cap(
        &mut self,
        sub: &irc::proto::CapSubCommand,
        a: Option<&str>,
        b: Option<&str>,
        s: &mut Session,
        w: &mut Writer,
    ) -> Option<SessionEnd> {
        use irc::proto::CapSubCommand as Cap;
        // "CAP * LS * :caps" continues, "CAP * LS :caps" ends the list.
        let (more, list) = match (a, b) {
            (Some("*"), Some(list)) => (true, list),
            (Some(list), None) | (None, Some(list)) => (false, list),
            (Some(_), Some(list)) => (false, list),
            (None, None) => (false, ""),
        };
        let names = || {
            list.split_whitespace()
                .map(|c| c.split('=').next().unwrap_or(c).to_owned())
        };
        match sub {
            Cap::LS => {
                s.cap_ls.extend(names());
                for c in list.split_whitespace() {
                    if let Some((name, value)) = c.split_once('=') {
                        s.cap_values.insert(name.to_owned(), value.to_owned());
                    }
                }
                if more {
                    return None;
                }
                s.cap_ls_done = true;
                let want: Vec<&str> = WANTED_CAPS
                    .iter()
                    .copied()
                    .filter(|c| s.cap_ls.contains(*c))
                    .filter(|c| *c != "sasl" || self.cfg.sasl.is_some())
                    .collect();
                if want.is_empty() {
                    return self.cap_end(s, w).await;
                }
                s.cap_pending = want.len();
                if let Err(e) = write_line(w, &format!("CAP REQ :{}", want.join(" "))).await {
                    return Some(SessionEnd::Lost(format!("write failed: {e}")));
                }
            }
            Cap::ACK => {
                for c in names() {
                    let c = c.trim_start_matches('-').to_owned();
                    s.caps.insert(c);
                }
                if !s.registered {
                    if s.caps.contains("sasl") && self.cfg.sasl.is_some() && !s.sasl_done {
                        let mech = match self.cfg.sasl {
                            Some(Sasl::External) => "EXTERNAL",
                            _ => "PLAIN",
                        };
                        if let Err(e) = write_line(w, &format!("AUTHENTICATE {mech}")).await {
                            return Some(SessionEnd::Lost(format!("write failed: {e}")));
                        }
                    } else {
                        return self.cap_end(s, w).await;
                    }
                }
            }
            Cap::NAK => {
                tracing::warn!(caps = %list, "server refused capabilities");
                if !s.registered {
                    return self.cap_end(s, w).await;
                }
            }
            Cap::NEW => {
                let offered: Vec<String> = names()
                    .filter(|c| WANTED_CAPS.contains(&c.as_str()) && c != "sasl")
                    .collect();
                if !offered.is_empty() {
                    self.push_protocol(format!("CAP REQ :{}", offered.join(" ")));
                }
            }
            Cap::DEL => {
                for c in names() {
                    s.caps.remove(&c);
                }
            }
            _ => {}
        }
        None
    }

    pub(super) async fn cap_end(&mut self, s: &mut Session, w: &mut Writer) -> Option<SessionEnd> {
        if let Err(e) = write_line(w, "CAP END").await {
            return Some(SessionEnd::Lost(format!("write failed: {e}")));
        }
        let _ = s;
        None
    }

    pub(super) async fn on_numeric(
        &mut self,
        resp: Response,
        args: &[String],
        s: &mut Session,
        w: &mut Writer,
    ) -> Option<SessionEnd> {
        match resp {
            Response::RPL_WELCOME => {
                if let Some(me) = args.first() {
                    s.nick = me.clone();
                }
                s.registered = true;
                tracing::info!(nick = %s.nick, caps = ?s.caps, "registered");
                if !s.logged_in
                    && let Some(pw) = &self.cfg.nickserv_password
                {
                    let account = match &self.cfg.sasl {
                        Some(Sasl::Plain { user, .. }) => user.clone(),
                        _ => self.cfg.nick.clone(),
                    };
                    self.push_protocol(format!(
                        "PRIVMSG NickServ :IDENTIFY {account} {}",
                        pw.expose()
                    ));
                }
                let chans: Vec<String> = self.cfg.channels.iter().map(|c| c.name.clone()).collect();
                for c in chans {
                    self.push_protocol(self.join_line(&c));
                }
                self.report(LinkState::Connected).await;
            }
            Response::RPL_NAMREPLY => {
                if let (Some(chan), Some(list)) = (args.get(2), args.get(3)) {
                    let collected = s.names.entry(lower(chan)).or_default();
                    for entry in list.split_whitespace() {
                        // multi-prefix and userhost-in-names: "@+nick!user@host".
                        let entry = entry.trim_start_matches(['~', '&', '@', '%', '+']);
                        let nick = entry.split('!').next().unwrap_or(entry);
                        if !nick.is_empty() && lower(nick) != lower(&s.nick) {
                            collected.push(nick.to_owned());
                        }
                    }
                }
            }
            Response::RPL_ENDOFNAMES => {
                if let Some(chan) = args.get(1) {
                    let nicks = s.names.remove(&lower(chan)).unwrap_or_default();
                    if let Some(c) = s.channels.get_mut(&lower(chan)) {
                        c.nicks = nicks.iter().map(|n| (lower(n), n.clone())).collect();
                        let room = RoomRef::new(&self.cfg.name, &c.name);
                        let _ = self.events.send(Event::Members { room, nicks }).await;
                    }
                }
            }
            Response::RPL_ISUPPORT => {
                for tok in args.iter().skip(1) {
                    if let Some(n) = tok.strip_prefix("CHATHISTORY=") {
                        s.history_limit = match n.parse() {
                            // 0 means no limit: ask for a sensible page all the same.
                            Ok(0) | Err(_) => DEFAULT_HISTORY_LIMIT,
                            Ok(n) => n,
                        };
                    }
                    if tok == "WHOX" {
                        s.whox = true;
                    } else if let Some(mode) = tok.strip_prefix("BOT=")
                        && s.bot_mode.is_none()
                    {
                        s.bot_mode = Some(mode.to_owned());
                        self.push_protocol(format!("MODE {} +{mode}", s.nick));
                    }
                }
            }
            Response::ERR_NICKNAMEINUSE
            | Response::ERR_ERRONEOUSNICKNAME
            | Response::ERR_NICKCOLLISION
            | Response::ERR_UNAVAILRESOURCE => {
                if !s.registered {
                    s.nick_attempt += 1;
                    let next = self
                        .cfg
                        .alt_nicks
                        .get(s.nick_attempt - 1)
                        .cloned()
                        .unwrap_or_else(|| {
                            let extra = s.nick_attempt - self.cfg.alt_nicks.len();
                            format!("{}{}", self.cfg.nick, "_".repeat(extra))
                        });
                    tracing::warn!(taken = %s.nick, trying = %next, "nick unavailable");
                    s.nick = next.clone();
                    if let Err(e) = write_line(w, &format!("NICK {next}")).await {
                        return Some(SessionEnd::Lost(format!("write failed: {e}")));
                    }
                }
            }
            Response::RPL_LOGGEDIN => {
                s.logged_in = true;
                tracing::info!(
                    account = args.get(2).map(String::as_str).unwrap_or(""),
                    "logged in"
                );
            }
            Response::RPL_SASLSUCCESS => {
                s.sasl_done = true;
                return self.cap_end(s, w).await;
            }
            Response::ERR_SASLFAIL
            | Response::ERR_SASLTOOLONG
            | Response::ERR_SASLABORT
            | Response::ERR_SASLALREADY => {
                s.sasl_done = true;
                tracing::error!(reply = ?resp, "SASL authentication failed; continuing without an account");
                return self.cap_end(s, w).await;
            }
            Response::ERR_BANNEDFROMCHAN
            | Response::ERR_INVITEONLYCHAN
            | Response::ERR_BADCHANNELKEY
            | Response::ERR_CHANNELISFULL => {
                let chan = args.get(1).cloned().unwrap_or_default();
                tracing::warn!(channel = %chan, reply = ?resp, "cannot join; retrying later");
                s.rejoin.push((
                    Instant::now() + self.cfg.rejoin_delay.max(Duration::from_secs(60)),
                    chan,
                ));
            }
            _ => {}
        }
        None
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
