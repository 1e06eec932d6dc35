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

use tokio::sync::{mpsc, oneshot};

use crate::core::{Priority, SendKind};

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

/// What became of an [`Outgoing`] message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Written to the network.
    Sent,
    /// Given up: it went stale in the adapter's queue, or the queue was full.
    Dropped,
}

/// After shutdown, how long an adapter may still write what it was given, and how long the
/// outbox waits for the verdict on the message it handed over: one figure, so that a message
/// the adapter writes in time is never left in the outbox to go out again.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

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
}

impl NetworkHandle {
    pub fn new(name: impl Into<String>, tx: mpsc::Sender<Outgoing>) -> Self {
        Self {
            name: name.into(),
            tx,
        }
    }

    /// Queues a message; waits when the adapter's queue is full, fails only once the
    /// adapter has stopped.
    pub async fn send(&self, out: Outgoing) -> Result<(), Outgoing> {
        self.tx.send(out).await.map_err(|e| e.0)
    }

    /// Messages waiting for the adapter to pick them up.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}
