//! Who is in which channel and who is logged in as whom, from NAMES, WHOX, JOIN, PART,
//! KICK, QUIT, NICK, ACCOUNT and CHGHOST; the changes become presence events.

use std::collections::HashMap;
use std::time::Instant;

use irc::proto::{Message, Prefix};

use super::history::LastSeen;
use super::session::{Session, lower, nick_of};
use crate::core::{Event, LinkState, Presence, PresenceChange, RoomRef};

/// Who is in one joined channel.
#[derive(Debug, Default)]
pub(super) struct Channel {
    /// The channel's name as the server spells it.
    pub(super) name: String,
    /// Lower-cased nick -> nick.
    pub(super) nicks: HashMap<String, String>,
}

impl Session {
    fn presence(&mut self, chan: &str, nick: &str, what: PresenceChange) {
        self.events.push(Event::Presence(Presence {
            room: RoomRef::new(&self.cfg.name, chan),
            nick: nick.to_owned(),
            what,
        }));
    }

    /// WHOX reply to "WHO #chan %tna,152": me 152 nick account.
    pub(super) fn on_whox(&mut self, args: &[String]) {
        if args.len() >= 4 && args[1] == "152" {
            let account = (args[3] != "0").then(|| args[3].clone());
            self.accounts.insert(lower(&args[2]), account);
        }
    }

    pub(super) fn on_names(&mut self, args: &[String]) {
        let (Some(chan), Some(list)) = (args.get(2), args.get(3)) else {
            return;
        };
        let me = lower(&self.nick);
        let collected = self.names.entry(lower(chan)).or_default();
        for entry in list.split_whitespace() {
            // multi-prefix and userhost-in-names: "@+nick!user@host".
            let entry = entry.trim_start_matches(['~', '&', '@', '%', '+']);
            let nick = entry.split('!').next().unwrap_or(entry);
            if !nick.is_empty() && lower(nick) != me {
                collected.push(nick.to_owned());
            }
        }
    }

    pub(super) fn on_end_of_names(&mut self, args: &[String]) {
        let Some(chan) = args.get(1) else {
            return;
        };
        let nicks = self.names.remove(&lower(chan)).unwrap_or_default();
        if let Some(c) = self.channels.get_mut(&lower(chan)) {
            c.nicks = nicks.iter().map(|n| (lower(n), n.clone())).collect();
            let room = RoomRef::new(&self.cfg.name, &c.name);
            self.events.push(Event::Members { room, nicks });
        }
    }

    pub(super) fn on_join(
        &mut self,
        msg: &Message,
        chan: &str,
        account: Option<&str>,
        seen: &LastSeen,
    ) {
        let Some(nick) = nick_of(msg) else {
            return;
        };
        if self.in_batch(msg, "CHATHISTORY") {
            return;
        }
        if self.is_me(nick) {
            return self.on_own_join(msg, chan, seen);
        }
        if self.caps.contains("extended-join") {
            let acct = account.filter(|a| *a != "*").map(str::to_owned);
            self.accounts.insert(lower(nick), acct);
        }
        if let Some(c) = self.channels.get_mut(&lower(chan)) {
            c.nicks.insert(lower(nick), nick.to_owned());
            let room = c.name.clone();
            self.presence(&room, nick, PresenceChange::Join);
        }
    }

    /// The bot is in: learn its user and host, catch up, and ask who is logged in.
    fn on_own_join(&mut self, msg: &Message, chan: &str, seen: &LastSeen) {
        if let Some(Prefix::Nickname(_, u, h)) = &msg.prefix {
            if !u.is_empty() {
                self.user = u.clone();
            }
            if !h.is_empty() {
                self.host = h.clone();
            }
        }
        self.joined.insert(lower(chan));
        self.channels.insert(
            lower(chan),
            Channel {
                name: chan.to_owned(),
                nicks: HashMap::new(),
            },
        );
        tracing::info!(channel = %chan, "joined");
        self.request_history(chan, seen);
        if self.whox {
            self.queue(format!("WHO {chan} %tna,152"));
        }
        self.report(LinkState::Connected);
    }

    pub(super) fn on_part(&mut self, msg: &Message, chan: &str, reason: Option<&str>) {
        let Some(nick) = nick_of(msg) else {
            return;
        };
        if self.in_batch(msg, "CHATHISTORY") {
            return;
        }
        if self.is_me(nick) {
            self.channels.remove(&lower(chan));
        } else if let Some(c) = self.channels.get_mut(&lower(chan)) {
            c.nicks.remove(&lower(nick));
            let room = c.name.clone();
            let what = PresenceChange::Part {
                reason: reason.filter(|r| !r.is_empty()).map(str::to_owned),
            };
            self.presence(&room, nick, what);
        }
        self.forget_strangers();
    }

    /// Whether `nick` is in one of the bot's channels.
    pub(super) fn shares_channel(&self, nick: &str) -> bool {
        let key = lower(nick);
        self.channels.values().any(|c| c.nicks.contains_key(&key))
    }

    /// Forgets the accounts of nicks that share no channel with the bot any more: the bot
    /// would not see them quit, and whoever takes the nick next must not inherit them.
    fn forget_strangers(&mut self) {
        let channels = &self.channels;
        self.accounts
            .retain(|nick, _| channels.values().any(|c| c.nicks.contains_key(nick)));
    }

    pub(super) fn on_topic(&mut self, msg: &Message, chan: &str, text: &str) {
        let Some(nick) = nick_of(msg) else {
            return;
        };
        if self.in_batch(msg, "CHATHISTORY") || self.is_me(nick) {
            return;
        }
        if let Some(c) = self.channels.get(&lower(chan)) {
            let room = c.name.clone();
            let what = PresenceChange::Topic {
                text: text.to_owned(),
            };
            self.presence(&room, nick, what);
        }
    }

    pub(super) fn on_account(&mut self, msg: &Message, account: &str) {
        if let Some(nick) = nick_of(msg) {
            let account = Some(account.to_owned()).filter(|a| a != "*");
            self.accounts.insert(lower(nick), account);
        }
    }

    pub(super) fn on_nick(&mut self, msg: &Message, new: &str) {
        let Some(old) = nick_of(msg) else {
            return;
        };
        if self.is_me(old) {
            tracing::info!(nick = %new, "nick changed");
            self.nick = new.to_owned();
            return;
        }
        if let Some(acct) = self.accounts.remove(&lower(old)) {
            self.accounts.insert(lower(new), acct);
        }
        for room in self.rename_member(old, new) {
            let what = PresenceChange::Nick {
                new: new.to_owned(),
            };
            self.presence(&room, old, what);
        }
    }

    pub(super) fn on_quit(&mut self, msg: &Message, reason: Option<&str>) {
        let Some(nick) = nick_of(msg) else {
            return;
        };
        self.accounts.remove(&lower(nick));
        // In an IRCv3 netsplit batch the servers that split say it best.
        let reason = match self.batch_of(msg) {
            Some((kind, servers)) if kind == "NETSPLIT" && !servers.is_empty() => {
                Some(servers.join(" "))
            }
            _ => reason.filter(|r| !r.is_empty()).map(str::to_owned),
        };
        for room in self.remove_member(nick) {
            let what = PresenceChange::Quit {
                reason: reason.clone(),
            };
            self.presence(&room, nick, what);
        }
        // Our primary nick may be free now.
        if lower(nick) == lower(&self.cfg.nick) && !self.is_me(nick) {
            self.queue(format!("NICK {}", self.cfg.nick));
        }
    }

    pub(super) fn on_kick(
        &mut self,
        msg: &Message,
        chan: &str,
        who: &str,
        reason: Option<&str>,
        now: Instant,
    ) {
        if self.is_me(who) {
            self.joined.remove(&lower(chan));
            tracing::warn!(channel = %chan, reason, delay_s = self.cfg.rejoin_delay.as_secs(), "kicked; rejoining after a delay");
            self.rejoin
                .push((now + self.cfg.rejoin_delay, chan.to_owned()));
            self.channels.remove(&lower(chan));
        } else if let Some(c) = self.channels.get_mut(&lower(chan)) {
            c.nicks.remove(&lower(who));
            let room = c.name.clone();
            let what = PresenceChange::Kick {
                by: nick_of(msg).unwrap_or_default().to_owned(),
                reason: reason.filter(|r| !r.is_empty()).map(str::to_owned),
            };
            self.presence(&room, who, what);
        }
        self.forget_strangers();
    }

    pub(super) fn on_chghost(&mut self, msg: &Message, user: &str, host: &str) {
        if nick_of(msg).is_some_and(|n| self.is_me(n)) {
            self.user = user.to_owned();
            self.host = host.to_owned();
        }
    }

    /// Takes `nick` out of every channel; returns the channels it was in.
    fn remove_member(&mut self, nick: &str) -> Vec<String> {
        let key = lower(nick);
        let mut rooms: Vec<String> = self
            .channels
            .values_mut()
            .filter_map(|c| c.nicks.remove(&key).map(|_| c.name.clone()))
            .collect();
        rooms.sort();
        rooms
    }

    /// Renames a member in every channel; returns the channels it was in.
    fn rename_member(&mut self, old: &str, new: &str) -> Vec<String> {
        let rooms = self.remove_member(old);
        for r in &rooms {
            if let Some(c) = self.channels.get_mut(&lower(r)) {
                c.nicks.insert(lower(new), new.to_owned());
            }
        }
        rooms
    }
}

#[cfg(test)]
mod tests {
    use super::super::session::lower;
    use super::super::test_rig::rig;
    use crate::core::{Event, PresenceChange, RoomRef};

    #[test]
    fn without_account_tag_identity_comes_from_extended_join_account_notify_and_whox() {
        let mut r = rig("");
        r.registered(&["extended-join", "account-notify"]);
        // The bot is in #sig with bob.
        r.feed(":sigbot!s@h JOIN #sig");
        r.feed(":irc.example.org 353 sigbot = #sig :sigbot bob");
        r.feed(":irc.example.org 366 sigbot #sig :End of /NAMES list.");
        r.feed(":alice!a@h JOIN #sig alice :Alice");
        r.feed(":alice!a@h PRIVMSG #sig :!whoami");
        assert_eq!(r.next_principal().as_deref(), Some("net:alice"));
        // She logs out: her nick is worth nothing.
        r.feed(":alice!a@h ACCOUNT *");
        r.feed(":alice!a@h PRIVMSG #sig :!whoami");
        assert_eq!(r.next_principal(), None);
        // WHOX reply for someone already in the channel, then a nick change.
        r.feed(":irc.example.org 354 sigbot 152 bob bobacct");
        r.feed(":bob!b@h NICK bobby");
        r.feed(":bobby!b@h PRIVMSG #sig :hi");
        assert_eq!(r.next_principal().as_deref(), Some("net:bobacct"));
        // A stranger nobody told us about has no principal.
        r.feed(":carol!c@h PRIVMSG #sig :hi");
        assert_eq!(r.next_principal(), None);
    }

    #[test]
    fn an_account_is_forgotten_when_its_nick_leaves_the_last_shared_channel() {
        let mut r = rig("");
        r.registered(&["extended-join", "account-notify"]);
        r.feed(":sigbot!s@h JOIN #sig");
        r.feed(":sigbot!s@h JOIN #ops");
        r.feed(":alice!a@h JOIN #sig alice :Alice");
        r.feed(":alice!a@h JOIN #ops alice :Alice");
        r.feed(":alice!a@h PRIVMSG sigbot :!whoami");
        assert_eq!(r.next_principal().as_deref(), Some("net:alice"));
        // Still in #ops: still known.
        r.feed(":alice!a@h PART #sig");
        r.feed(":alice!a@h PRIVMSG sigbot :!whoami");
        assert_eq!(r.next_principal().as_deref(), Some("net:alice"));
        // Out of the last shared channel: the bot would not see her quit, so it forgets her,
        // and whoever holds the nick next is nobody.
        r.feed(":op!o@h KICK #ops alice :bye");
        r.feed(":alice!m@elsewhere PRIVMSG sigbot :!whoami");
        assert_eq!(r.next_principal(), None);
        // She comes back: known again from her JOIN on.
        r.feed(":alice!a@h JOIN #sig alice :Alice");
        r.feed(":alice!a@h PRIVMSG #sig :!whoami");
        assert_eq!(r.next_principal().as_deref(), Some("net:alice"));
        // The bot itself leaves: nobody shares a channel with it any more.
        r.feed(":sigbot!s@h PART #sig");
        r.feed(":sigbot!s@h PART #ops");
        r.feed(":alice!a@h PRIVMSG sigbot :!whoami");
        assert_eq!(r.next_principal(), None);
    }

    #[test]
    fn with_account_tag_only_the_tag_counts() {
        let mut r = rig("");
        r.registered(&["account-tag", "extended-join"]);
        r.feed(":alice!a@h JOIN #sig alice :Alice");
        r.feed(":alice!a@h PRIVMSG #sig :no tag");
        assert_eq!(r.next_principal(), None);
        r.feed("@account=alice :alice!a@h PRIVMSG #sig :tagged");
        assert_eq!(r.next_principal().as_deref(), Some("net:alice"));
    }

    #[test]
    fn names_and_membership_changes_become_member_lists_and_presence_events() {
        let mut r = rig("");
        r.registered(&["batch", "multi-prefix"]);
        r.feed(":sigbot!s@h JOIN #sig");
        r.feed(":srv 353 sigbot = #sig :@sigbot @+alice bob");
        r.feed(":srv 353 sigbot = #sig :dave");
        r.feed(":srv 366 sigbot #sig :End of /NAMES list.");
        match r.next_event() {
            Event::Members { room, nicks } => {
                assert_eq!(room, RoomRef::new("net", "#sig"));
                assert_eq!(nicks, ["alice", "bob", "dave"], "without the bot itself");
            }
            other => panic!("{other:?}"),
        }
        r.feed(":carol!c@h JOIN #sig");
        assert_eq!(
            r.next_presence(),
            ("#sig".into(), "carol".into(), PresenceChange::Join)
        );
        r.feed(":alice!a@h NICK alicia");
        assert_eq!(
            r.next_presence(),
            (
                "#sig".into(),
                "alice".into(),
                PresenceChange::Nick {
                    new: "alicia".into()
                }
            )
        );
        r.feed(":bob!b@h QUIT :Ping timeout");
        assert_eq!(
            r.next_presence().2,
            PresenceChange::Quit {
                reason: Some("Ping timeout".into())
            }
        );
        r.feed(":alicia!a@h PART #sig :bye");
        assert_eq!(
            r.next_presence().2,
            PresenceChange::Part {
                reason: Some("bye".into())
            }
        );
        r.feed(":op!o@h KICK #sig carol :spam");
        assert_eq!(
            r.next_presence(),
            (
                "#sig".into(),
                "carol".into(),
                PresenceChange::Kick {
                    by: "op".into(),
                    reason: Some("spam".into())
                }
            )
        );
        r.feed(":op!o@h TOPIC #sig :Meeting at 15:00");
        assert_eq!(
            r.next_presence().2,
            PresenceChange::Topic {
                text: "Meeting at 15:00".into()
            }
        );
        // An IRCv3 netsplit batch names the servers that split.
        r.feed(":srv BATCH +ns netsplit hub.example.org leaf.example.org");
        r.feed("@batch=ns :dave!d@h QUIT :*.net *.split");
        r.feed(":srv BATCH -ns");
        assert_eq!(
            r.next_presence(),
            (
                "#sig".into(),
                "dave".into(),
                PresenceChange::Quit {
                    reason: Some("hub.example.org leaf.example.org".into())
                }
            )
        );
        // Someone who shares no channel with the bot is nobody's business.
        r.feed(":stranger!s@h QUIT :bye");
        assert!(r.events.try_recv().is_err());
        assert_eq!(
            r.session.channels[&lower("#sig")].nicks.len(),
            0,
            "everyone left"
        );
    }

    #[test]
    fn an_account_follows_its_nick_change_and_is_forgotten_at_quit() {
        let mut r = rig("");
        r.registered(&["extended-join"]);
        r.feed(":sigbot!s@h JOIN #sig");
        r.feed(":alice!a@h JOIN #sig alice :Alice");
        r.feed(":alice!a@h NICK ally");
        r.feed(":ally!a@h PRIVMSG #sig :hi");
        assert_eq!(r.next_principal().as_deref(), Some("net:alice"));
        // Whoever takes the old nick does not inherit the account.
        r.feed(":alice!x@elsewhere PRIVMSG #sig :it's me");
        assert_eq!(r.next_principal(), None);
        r.feed(":ally!a@h QUIT :bye");
        r.feed(":ally!a@h PRIVMSG sigbot :back");
        assert_eq!(r.next_principal(), None);
    }

    #[test]
    fn the_bots_own_join_teaches_its_host_and_asks_who_is_logged_in() {
        let mut r = rig("");
        r.registered(&["chghost"]);
        r.session.whox = true;
        r.feed(":sigbot!~bot@bot.example JOIN #sig");
        assert_eq!(
            (r.session.user.as_str(), r.session.host.as_str()),
            ("~bot", "bot.example")
        );
        assert_eq!(r.queued(), ["WHO #sig %tna,152"]);
        r.feed(":sigbot!~bot@bot.example CHGHOST bot cloak.example");
        r.feed(":alice!a@h CHGHOST alice other.example");
        assert_eq!(
            (r.session.user.as_str(), r.session.host.as_str()),
            ("bot", "cloak.example")
        );
        assert!(r.session.joined.contains("#sig"));
        r.feed(":sigbot!~bot@bot.example PART #sig");
        assert!(!r.session.channels.contains_key("#sig"));
    }
}
