//! Adapters: one driver task per connection, turning wire traffic into core `Event`s and
//! carrying out the core's `Action`s. Each network is reached through a cheap cloneable
//! [`NetworkHandle`].

pub mod console;
pub mod irc;
pub mod mqtt;

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::core::{Priority, SendKind};

/// A message for one room of one network, as the core asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The room on this network (the part after `<network>/`).
    pub room: String,
    pub text: String,
    pub html: Option<String>,
    pub kind: SendKind,
    pub priority: Priority,
    /// Tells whoever queued the message (the relay outbox) that the network took it.
    pub receipt: Receipt,
}

/// A one-time signal from an adapter that it wrote (or sent) a message. An adapter that
/// drops the message without calling [`Receipt::done`] signals too, as the receiver sees the
/// sender gone: either way the message has left the queue. Empty by default.
#[derive(Debug, Clone, Default)]
pub struct Receipt(Option<Arc<Mutex<Option<oneshot::Sender<()>>>>>);

impl Receipt {
    pub fn new() -> (Receipt, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        (Receipt(Some(Arc::new(Mutex::new(Some(tx))))), rx)
    }

    pub fn done(&self) {
        if let Some(slot) = &self.0
            && let Some(tx) = slot.lock().unwrap_or_else(|p| p.into_inner()).take()
        {
            let _ = tx.send(());
        }
    }
}

/// Receipts do not make two messages different.
impl PartialEq for Receipt {
    fn eq(&self, _: &Self) -> bool {
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
