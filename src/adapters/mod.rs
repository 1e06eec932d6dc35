//! Adapters: one driver task per connection, turning wire traffic into core `Event`s and
//! carrying out the core's `Action`s. Each network is reached through a cheap cloneable
//! [`NetworkHandle`].

pub mod console;
pub mod irc;
pub mod matrix;
// Declarative commands' requests (issue 7).
pub mod fetch;
pub mod http;
pub mod koji;
pub mod repodata;

use tokio::sync::mpsc;

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
    pub kind: SendKind,
    pub priority: Priority,
    pub op: OutgoingOp,
}

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
