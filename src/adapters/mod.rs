//! Adapters: one driver task per connection, turning wire traffic into core `Event`s and
//! carrying out the core's `Action`s. Each network is reached through a cheap cloneable
//! [`NetworkHandle`].

pub mod backoff;
pub mod console;
pub mod irc;
pub mod matrix;
pub mod media;
pub mod mqtt;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::core::{Event, LinkState, Priority, SendKind};

/// After shutdown, how long a connection may still spend sending what was queued, and so how
/// long whoever queued a message waits for its verdict: one figure, so that neither side
/// gives up while the other still works.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Tells the core (and through it the health page) how a connection is doing. A core that
/// has stopped listening is shutting down, so a failed send is of no interest.
pub async fn report_link(
    events: &mpsc::Sender<Event>,
    network: &str,
    state: LinkState,
    queue_len: usize,
) {
    let _ = events.send(link_event(network, state, queue_len)).await;
}

/// The event [`report_link`] sends, for a driver that buffers its events.
pub fn link_event(network: &str, state: LinkState, queue_len: usize) -> Event {
    Event::NetworkState {
        network: network.to_owned(),
        state,
        queue_len,
    }
}

/// What an [`Outgoing`] does: a new message (optionally named for later edits), an edit of
/// the bot's own earlier message, or a reaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OutgoingOp {
    #[default]
    Message,
    /// A new message that a later `Edit` with the same tag replaces.
    Tagged(String),
    /// Replace the text of the message sent as `Tagged(tag)`.
    Edit(String),
    /// React with `key` to the message whose network ID is `to` (`text` is unused).
    React { to: String, key: String },
}

/// A message for one room of one network, as the core asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The room on this network (the part after `<network>/`).
    pub room: String,
    pub text: String,
    pub html: Option<String>,
    /// Matrix user IDs the message mentions on purpose (pills): its `m.mentions`.
    pub mentions: Vec<String>,
    pub kind: SendKind,
    pub priority: Priority,
    pub op: OutgoingOp,
    /// Tells whoever queued the message (the outbox) what became of it.
    pub receipt: Receipt,
}

impl Outgoing {
    /// A new plain-text message: a reply at command priority, mentioning nobody.
    pub fn message(room: impl Into<String>, text: impl Into<String>) -> Outgoing {
        Outgoing {
            room: room.into(),
            text: text.into(),
            html: None,
            mentions: Vec::new(),
            kind: SendKind::Reply,
            priority: Priority::Command,
            op: OutgoingOp::Message,
            receipt: Receipt::default(),
        }
    }

    /// Replaces the text of the bot's message sent as `Tagged(tag)`.
    pub fn edit(
        room: impl Into<String>,
        tag: impl Into<String>,
        text: impl Into<String>,
    ) -> Outgoing {
        Outgoing {
            op: OutgoingOp::Edit(tag.into()),
            ..Outgoing::message(room, text)
        }
    }

    /// Reacts with `key` to the message whose network ID is `to`.
    pub fn react(
        room: impl Into<String>,
        to: impl Into<String>,
        key: impl Into<String>,
    ) -> Outgoing {
        Outgoing {
            op: OutgoingOp::React {
                to: to.into(),
                key: key.into(),
            },
            ..Outgoing::message(room, String::new())
        }
    }

    pub fn html(mut self, html: Option<String>) -> Outgoing {
        self.html = html;
        self
    }

    pub fn mentions(mut self, mentions: Vec<String>) -> Outgoing {
        self.mentions = mentions;
        self
    }

    pub fn kind(mut self, kind: SendKind) -> Outgoing {
        self.kind = kind;
        self
    }

    pub fn priority(mut self, priority: Priority) -> Outgoing {
        self.priority = priority;
        self
    }

    /// Names the message for later edits, when `tag` is set.
    pub fn tagged(mut self, tag: Option<String>) -> Outgoing {
        self.op = tag.map_or(OutgoingOp::Message, OutgoingOp::Tagged);
        self
    }

    pub fn receipt(mut self, receipt: Receipt) -> Outgoing {
        self.receipt = receipt;
        self
    }
}

/// What became of an [`Outgoing`] message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Written to the network.
    Sent,
    /// Given up: it went stale in the adapter's queue, or the queue was full.
    Dropped,
}

/// A one-time report from the adapter on one message. The first verdict counts; clones
/// share it. An adapter that lets every clone go without a verdict has taken the message
/// in some way of its own (the receiver sees the channel closed).
#[derive(Debug, Clone, Default)]
pub struct Receipt(Option<Arc<Mutex<Option<oneshot::Sender<Delivery>>>>>);

impl Receipt {
    pub fn new() -> (Receipt, oneshot::Receiver<Delivery>) {
        let (tx, rx) = oneshot::channel();
        (Receipt(Some(Arc::new(Mutex::new(Some(tx))))), rx)
    }

    /// Whether anyone waits for this receipt.
    pub fn is_wanted(&self) -> bool {
        self.0.is_some()
    }

    pub fn sent(&self) {
        self.report(Delivery::Sent);
    }

    pub fn dropped(&self) {
        self.report(Delivery::Dropped);
    }

    fn report(&self, d: Delivery) {
        if let Some(slot) = &self.0
            && let Some(tx) = slot.lock().unwrap_or_else(|p| p.into_inner()).take()
        {
            let _ = tx.send(d);
        }
    }
}

/// A receipt is not part of what a message says.
impl PartialEq for Receipt {
    fn eq(&self, _: &Receipt) -> bool {
        true
    }
}

impl Eq for Receipt {}

/// The sending side of a network: cloneable, cheap, owned by whoever needs to send.
#[derive(Debug, Clone)]
pub struct NetworkHandle {
    pub name: String,
    tx: mpsc::Sender<Outgoing>,
    /// How many outbox messages may wait for their verdict at once (DESIGN §11): 1 for an
    /// adapter that writes one line at a time anyway (IRC's flood control), more for one that
    /// writes a batch at once (the console) or several rooms at once (Matrix).
    window: usize,
}

impl NetworkHandle {
    pub fn new(name: impl Into<String>, tx: mpsc::Sender<Outgoing>) -> Self {
        Self {
            name: name.into(),
            tx,
            window: 1,
        }
    }

    /// The same handle, letting the outbox hand it up to `window` messages before their
    /// verdicts (at least 1).
    pub fn with_window(mut self, window: usize) -> Self {
        self.window = window.max(1);
        self
    }

    /// How many outbox messages may wait for their verdict at once.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Queues a message; waits when the adapter's queue is full, fails only once the
    /// adapter has stopped.
    pub async fn send(&self, out: Outgoing) -> Result<(), Outgoing> {
        self.tx.send(out).await.map_err(|e| e.0)
    }

    /// Completes once the adapter stopped reading its queue.
    pub async fn closed(&self) {
        self.tx.closed().await;
    }

    /// Messages waiting for the adapter to pick them up.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_a_plain_reply_until_told_otherwise() {
        let out = Outgoing::message("#ops", "pong");
        assert_eq!(
            (
                out.kind,
                out.priority,
                &out.op,
                &out.html,
                out.mentions.len()
            ),
            (
                SendKind::Reply,
                Priority::Command,
                &OutgoingOp::Message,
                &None,
                0
            )
        );
        assert!(!out.receipt.is_wanted());
        let (receipt, _rx) = Receipt::new();
        let out = out
            .html(Some("<b>pong</b>".into()))
            .kind(SendKind::Relay)
            .priority(Priority::Relay)
            .tagged(Some("t1".into()))
            .receipt(receipt);
        assert_eq!(out.op, OutgoingOp::Tagged("t1".into()));
        assert_eq!(out.html.as_deref(), Some("<b>pong</b>"));
        assert_eq!((out.kind, out.priority), (SendKind::Relay, Priority::Relay));
        assert!(out.receipt.is_wanted());
        assert_eq!(
            Outgoing::message("#ops", "x").tagged(None).op,
            OutgoingOp::Message
        );
    }

    #[test]
    fn edits_and_reactions_are_replies_at_command_priority() {
        let edit = Outgoing::edit("#ops", "t1", "new text");
        assert_eq!(edit.op, OutgoingOp::Edit("t1".into()));
        assert_eq!(edit.text, "new text");
        let react = Outgoing::react("!r:e", "$ev", "👍");
        assert_eq!(
            react.op,
            OutgoingOp::React {
                to: "$ev".into(),
                key: "👍".into()
            }
        );
        assert_eq!(react.text, "");
        for out in [edit, react] {
            assert_eq!(
                (out.kind, out.priority),
                (SendKind::Reply, Priority::Command)
            );
        }
    }

    #[test]
    fn a_link_report_names_its_network() {
        assert_eq!(
            link_event("libera", LinkState::Reconnecting, 3),
            Event::NetworkState {
                network: "libera".into(),
                state: LinkState::Reconnecting,
                queue_len: 3,
            }
        );
    }
}
