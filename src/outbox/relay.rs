//! The relay outbox: chat messages made from MQTT events, stored in SQLite before the MQTT
//! message is acknowledged, and delivered to their networks in the order they were stored.
//!
//! A row leaves the outbox only once its network has taken the message (the adapter's
//! [`Receipt`]), so a crash loses nothing; the one message being written at the moment of a
//! crash may be sent again after the restart (DESIGN §8).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::adapters::{NetworkHandle, Outgoing, Receipt, SHUTDOWN_GRACE};
use crate::core::relay::{RelayBatch, SeenKey};
use crate::core::watch::Alert;
use crate::core::{Priority, SendKind};
use crate::store::{QueuedMessage, Store, StoreError};

#[derive(Clone)]
pub struct Outbox {
    store: Store,
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Stores a batch's messages and dedup keys in one transaction, and wakes the
    /// deliverer. Only after this returns may the MQTT message be acknowledged.
    pub fn store_batch(&self, batch: &RelayBatch, now: DateTime<Utc>) -> Result<(), StoreError> {
        if batch.messages.is_empty() && batch.seen.is_empty() {
            return Ok(());
        }
        self.store.relay_store_batch(batch, now)?;
        if !batch.messages.is_empty() {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Queues package-update alerts and records them as announced, in one transaction: an
    /// alert is either queued and remembered, or neither (and the next check tries again).
    pub fn store_alerts(&self, alerts: &[Alert], now: DateTime<Utc>) -> Result<(), StoreError> {
        if alerts.is_empty() {
            return Ok(());
        }
        self.store.queue_watch_alerts(alerts, now)?;
        self.wake.notify_one();
        Ok(())
    }

    /// The dedup keys still valid at `now`; forgets the others.
    pub fn seen_keys(&self, now: DateTime<Utc>) -> Result<Vec<SeenKey>, StoreError> {
        self.store.relay_seen_keys(now)
    }

    /// The oldest messages waiting, up to `limit`.
    pub fn pending(&self, limit: usize) -> Result<Vec<QueuedMessage>, StoreError> {
        self.store.relay_pending(limit)
    }

    pub fn delivered(&self, id: i64) -> Result<(), StoreError> {
        self.store.relay_remove(id)
    }

    /// Delivers stored messages, in order, until shutdown.
    pub async fn deliver(
        self,
        handles: BTreeMap<String, NetworkHandle>,
        shutdown: CancellationToken,
    ) {
        loop {
            let batch = match self.pending(256) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "relay outbox unreadable; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    }
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = self.wake.notified() => continue,
                }
            }
            for m in batch {
                if shutdown.is_cancelled() {
                    return;
                }
                let Some(h) = handles.get(&m.room.network) else {
                    tracing::warn!(room = %m.room, "relay target network is not running; message dropped");
                    let _ = self.delivered(m.id);
                    continue;
                };
                let (receipt, taken) = Receipt::new();
                let out = Outgoing::message(m.room.room.clone(), m.text)
                    .html(m.html)
                    .kind(SendKind::Relay)
                    .priority(Priority::Relay)
                    .receipt(receipt);
                if h.send(out).await.is_err() {
                    // The network stopped (shutdown): the row stays for the next start.
                    return;
                }
                let mut taken = taken;
                let stopping = tokio::select! {
                    _ = &mut taken => false,
                    () = shutdown.cancelled() => true,
                };
                if stopping {
                    // The adapter drains its queue on shutdown: give it a moment, so that a
                    // clean stop sends nothing twice.
                    if tokio::time::timeout(SHUTDOWN_GRACE, &mut taken)
                        .await
                        .is_ok()
                    {
                        let _ = self.delivered(m.id);
                    }
                    return;
                }
                if let Err(e) = self.delivered(m.id) {
                    tracing::error!(error = %e, id = m.id, "cannot mark a relayed message delivered");
                }
            }
        }
    }
}
