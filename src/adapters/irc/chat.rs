//! What people say: PRIVMSG and NOTICE become core messages, with the sender's account,
//! as the server vouches for it, for principal.

use chrono::{DateTime, Utc};
use irc::proto::Message;

use super::history::LastSeen;
use super::sending::is_own_relay;
use super::session::{Session, lower, mask_of, nick_of, tag_of};
use super::text;
use crate::core::{Event, IncomingMessage, MessageKind, Principal, RoomRef, Sender};

impl Session {
    pub(super) fn on_chat(
        &mut self,
        msg: &Message,
        target: &str,
        body: &str,
        notice: bool,
        seen: &mut LastSeen,
    ) {
        let Some(nick) = nick_of(msg) else {
            return;
        };
        if self.is_me(nick) || is_own_relay(msg, nick, self) {
            // Our own line (echo-message): never handled, never relayed.
            return;
        }
        let sent_at = tag_of(msg, "time")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc));
        let id = tag_of(msg, "msgid");
        if !self.is_news(msg, target, sent_at, id.as_ref()) {
            return;
        }
        if target.starts_with('#') || target.starts_with('&') {
            seen.saw(target, sent_at.unwrap_or_else(Utc::now));
        }
        if let Some(ev) = self.incoming(msg, nick, target, body, notice) {
            self.events.push(ev);
        }
    }

    fn incoming(
        &self,
        msg: &Message,
        nick: &str,
        target: &str,
        body: &str,
        notice: bool,
    ) -> Option<Event> {
        let (kind, text) = if let Some(action) = text::parse_ctcp_action(body) {
            (MessageKind::Emote, action.to_owned())
        } else if body.starts_with('\x01') {
            // Other CTCP requests (VERSION, PING, ...) are not chat.
            return None;
        } else if notice {
            (MessageKind::Notice, body.to_owned())
        } else {
            (MessageKind::Text, body.to_owned())
        };
        let private = lower(target) == lower(&self.nick);
        let room = if private { nick } else { target };
        // The account comes only from the server; a nick alone never identifies anyone.
        // Without account-tag, what the server told about a nick holds only while the bot
        // shares a channel with it (and so sees it part, quit or change nick).
        let account = if self.caps.contains("account-tag") {
            tag_of(msg, "account").filter(|a| a != "*")
        } else if self.shares_channel(nick) {
            self.accounts.get(&lower(nick)).cloned().flatten()
        } else {
            None
        };
        let sent_at = tag_of(msg, "time")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc));
        Some(Event::Message(IncomingMessage {
            room: RoomRef::new(&self.cfg.name, room),
            sender: Sender {
                nick: nick.to_owned(),
                principal: account.map(|a| Principal::new(&self.cfg.name, a)),
                mask: mask_of(msg),
            },
            kind,
            text,
            id: tag_of(msg, "msgid"),
            sent_at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_rig::rig;
    use crate::core::{Event, MessageKind};

    #[test]
    fn own_echoes_and_ctcp_requests_are_not_chat_and_actions_are_emotes() {
        let mut r = rig("");
        r.registered(&["echo-message"]);
        r.feed(":sigbot!s@h PRIVMSG #sig :my own line");
        r.feed(":alice!a@h PRIVMSG #sig :\u{1}VERSION\u{1}");
        r.feed(":alice!a@h PRIVMSG #sig :\u{1}ACTION waves\u{1}");
        r.feed(":alice!a@h PRIVMSG sigbot :!ping");
        let Event::Message(m) = r.events.try_recv().unwrap() else {
            panic!()
        };
        assert_eq!((m.kind, m.text.as_str()), (MessageKind::Emote, "waves"));
        let Event::Message(m) = r.events.try_recv().unwrap() else {
            panic!()
        };
        assert_eq!(
            m.room.room, "alice",
            "a private message's room is its sender"
        );
        assert!(r.events.try_recv().is_err());
    }
}
