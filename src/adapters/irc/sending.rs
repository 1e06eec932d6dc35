//! Outgoing lines: splitting, RELAYMSG, the queue and the token bucket.

use std::time::{Duration, Instant};

use irc::proto::Message;
use tokio::io::AsyncWriteExt as _;

use super::connection::{Writer, write_line};
use super::session::{Session, lower, tag_of};
use super::{Driver, text};
use crate::adapters::{Outgoing, OutgoingOp};
use crate::core::{Priority, SendKind};
use crate::metrics::DropReason;

impl Driver {
    /// Turns a message for a room into queued IRC lines.
    pub(super) fn enqueue(&mut self, out: Outgoing, session: Option<&Session>) {
        match &out.op {
            OutgoingOp::Message | OutgoingOp::Tagged(_) => {}
            // IRC has no edits or reactions: a correction would only repeat the line.
            OutgoingOp::Edit(_) | OutgoingOp::React { .. } => return,
        }
        let private = !(out.room.starts_with('#') || out.room.starts_with('&'));
        let command = if private && out.kind == SendKind::Reply && self.cfg.private_notice {
            "NOTICE"
        } else {
            "PRIVMSG"
        };
        let target = text::clean(&out.room).replace(' ', "");
        if target.is_empty() {
            return;
        }
        let (nick, user, host) = match session {
            Some(s) => (s.nick.as_str(), s.user.as_str(), s.host.as_str()),
            None => (self.cfg.nick.as_str(), "~xxxxxxxxx", HOST_GUESS),
        };
        let budget = text::body_budget(nick, user, host, command, &target);
        let now = Instant::now();
        let priority = match out.priority {
            Priority::Protocol => Priority::Command,
            p => p,
        };
        // The bridge writes relayed lines as "<nick> text"; where the server takes RELAYMSG
        // for this channel, the line goes out under the sender's own name instead. Keeping
        // the plain form until here means the outbox holds a line any server can take.
        let relay_sep = session
            .filter(|_| out.kind == SendKind::Relay && !private)
            .and_then(|s| self.relaymsg_separator(s, &target));
        let bodies = text::split_lines(&out.text, budget);
        let last = bodies.len().saturating_sub(1);
        for (i, body) in bodies.into_iter().enumerate() {
            // The receipt goes with the last line: the message is sent when it is.
            let receipt = if i == last {
                out.receipt.clone()
            } else {
                Default::default()
            };
            let line = match relay_sep.and_then(|sep| relayed_form(&body, sep)) {
                Some((nick, rest)) => format!("RELAYMSG {target} {nick} :{rest}"),
                None => format!("{command} {target} :{body}"),
            };
            if let Some(evicted) = self.queue.push_with_receipt(line, priority, now, receipt) {
                tracing::warn!(priority = ?evicted.priority, dropped_total = self.queue.dropped.overflow, "send queue full: oldest line dropped");
            }
        }
        self.count_drops();
    }

    /// Adds the queue's drops since the last call to the metrics.
    pub(super) fn count_drops(&mut self) {
        let d = &self.queue.dropped;
        self.metrics
            .dropped(DropReason::stale, d.stale - self.counted_stale);
        self.metrics
            .dropped(DropReason::queue_full, d.overflow - self.counted_overflow);
        self.counted_stale = d.stale;
        self.counted_overflow = d.overflow;
    }

    /// How long until the head of the queue may be sent; `None` when nothing may be sent.
    pub(super) fn next_send_delay(&mut self, s: &Session) -> Option<Duration> {
        if self.queue.is_empty() {
            return None;
        }
        if !s.registered && !self.queue_has_protocol() {
            return None;
        }
        match self.bucket.clone().try_take(Instant::now()) {
            Ok(()) => Some(Duration::ZERO),
            Err(wait) => Some(wait),
        }
    }

    pub(super) fn queue_has_protocol(&self) -> bool {
        // Protocol lines are always at the head when present.
        self.queue.peek_priority() == Some(Priority::Protocol)
    }

    /// Sends as many queued lines as the bucket allows now.
    pub(super) async fn send_ready(&mut self, w: &mut Writer, s: &Session) -> std::io::Result<()> {
        loop {
            let now = Instant::now();
            if !s.registered && !self.queue_has_protocol() {
                return Ok(());
            }
            if self.queue.is_empty() {
                break;
            }
            if self.bucket.clone().try_take(now).is_err() {
                self.metrics.flood_wait();
                break;
            }
            match self.queue.pop(now) {
                None => break,
                Some(Err(stale)) => {
                    tracing::warn!(
                        age_s = now.saturating_duration_since(stale.queued_at).as_secs(),
                        dropped_total = self.queue.dropped.stale,
                        "queued line went stale and was dropped"
                    );
                }
                Some(Ok(line)) => {
                    let _ = self.bucket.try_take(now);
                    if let Err(e) = write_line(w, &line.line).await {
                        self.queue.unpop(line);
                        return Err(e);
                    }
                    line.receipt.sent();
                    if is_message(&line.line) {
                        self.metrics.sent();
                    }
                }
            }
        }
        self.count_drops();
        if self.queue.dropped.stale != self.reported_stale
            || self.queue.dropped.overflow != self.reported_overflow
        {
            self.reported_stale = self.queue.dropped.stale;
            self.reported_overflow = self.queue.dropped.overflow;
            tracing::warn!(
                stale = self.reported_stale,
                overflow = self.reported_overflow,
                "lines dropped so far"
            );
        }
        Ok(())
    }
}

/// Whether a line is a chat message (what `sigbot_network_messages_sent` counts).
fn is_message(line: &str) -> bool {
    ["PRIVMSG ", "NOTICE ", "RELAYMSG "]
        .iter()
        .any(|c| line.starts_with(c))
}

impl Driver {
    /// At shutdown: send what the bucket allows within the shutdown grace, then QUIT.
    pub(super) async fn finish(&mut self, w: &mut Writer, s: &Session) {
        let deadline = Instant::now() + crate::adapters::SHUTDOWN_GRACE;
        while let Ok(out) = self.outgoing.try_recv() {
            self.enqueue(out, Some(s));
        }
        while s.registered && !self.queue.is_empty() && Instant::now() < deadline {
            if let Some(d) = self.next_send_delay(s) {
                tokio::time::sleep(d.min(deadline.saturating_duration_since(Instant::now()))).await;
            }
            if self.send_ready(w, s).await.is_err() {
                return;
            }
        }
        if !self.queue.is_empty() {
            tracing::warn!(lines = self.queue.len(), "shutting down with unsent lines");
        }
        let _ = write_line(w, "QUIT :sigbot shutting down").await;
        let _ = w.flush().await;
    }

    /// The separator of RELAYMSG nicks when relayed lines to `chan` go out as RELAYMSG.
    pub(super) fn relaymsg_separator(&self, s: &Session, chan: &str) -> Option<char> {
        if !s.caps.contains("draft/relaymsg") || !self.cfg.relaymsg_channels.contains(&lower(chan))
        {
            return None;
        }
        Some(
            s.cap_values
                .get("draft/relaymsg")
                .and_then(|v| v.chars().next())
                .unwrap_or('/'),
        )
    }
}

/// Whether a line is the echo of one of our own RELAYMSGs (tagged with our nick).
pub(super) fn is_own_relay(msg: &Message, nick: &str, s: &Session) -> bool {
    let tagged = ["draft/relaymsg", "relaymsg"]
        .iter()
        .filter_map(|t| tag_of(msg, t))
        .any(|by| lower(&by) == lower(&s.nick));
    let sep = s
        .cap_values
        .get("draft/relaymsg")
        .and_then(|v| v.chars().next())
        .unwrap_or('/');
    tagged || (s.caps.contains("draft/relaymsg") && nick.ends_with(&format!("{sep}b")))
}

/// `<n\u{200B}ick> text` as the RELAYMSG nick (`nick/b`, only nick characters) and text.
fn relayed_form(body: &str, sep: char) -> Option<(String, String)> {
    let rest = body.strip_prefix('<')?;
    let (name, text) = rest.split_once("> ")?;
    let mut nick: String = name
        .chars()
        .filter(|c| *c != crate::core::bridge::ZWSP)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_[]\\`^{}|".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(30)
        .collect();
    if nick.is_empty() || nick.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        nick.insert(0, '_');
    }
    Some((format!("{nick}{sep}b"), text.to_owned()))
}

/// Host length assumed before the server tells us ours (the longest a hostname may be).
pub(super) const HOST_GUESS: &str =
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

#[cfg(test)]
mod tests {
    use super::super::test_rig::rig;
    use crate::core::SendKind;
    use std::sync::Arc;

    #[test]
    fn relayed_lines_go_out_as_relaymsg_where_offered_and_enabled() {
        let mut r = rig("");
        r.feed(":srv CAP * LS :draft/relaymsg=/ echo-message");
        assert_eq!(r.sink.take(), ["CAP REQ :echo-message draft/relaymsg"]);
        r.feed(":srv CAP * ACK :echo-message draft/relaymsg");
        r.session.registered = true;
        Arc::make_mut(&mut r.driver.cfg).relaymsg_channels = vec!["#sig".into()];
        r.relay("#sig", "<a\u{200B}lice> hello there", SendKind::Relay);
        r.relay("#sig", "<Z\u{200B}oë K> hi", SendKind::Relay);
        // The bot's own words, emotes, and channels without relaymsg stay PRIVMSG.
        r.relay("#sig", "pong", SendKind::Reply);
        r.relay("#sig", "* a\u{200B}lice waves", SendKind::Relay);
        r.relay("#other", "<a\u{200B}lice> hello", SendKind::Relay);
        assert_eq!(
            r.queued(),
            [
                "RELAYMSG #sig alice/b :hello there",
                "RELAYMSG #sig Zo__K/b :hi",
                "PRIVMSG #sig :pong",
                "PRIVMSG #sig :* a\u{200B}lice waves",
                "PRIVMSG #other :<a\u{200B}lice> hello",
            ]
        );
        // The server's echo of our RELAYMSG is ours: never relayed back.
        r.feed("@draft/relaymsg=sigbot :alice/b!x@h PRIVMSG #sig :hello there");
        assert!(r.events.try_recv().is_err());
        // Without the capability, the plain form.
        r.session.caps.remove("draft/relaymsg");
        r.relay("#sig", "<a\u{200B}lice> hello", SendKind::Relay);
        assert_eq!(r.queued(), ["PRIVMSG #sig :<a\u{200B}lice> hello"]);
    }
}
