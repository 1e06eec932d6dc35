//! The bridge outbox (DESIGN §8 "Nothing lost"): every bridged message is stored in SQLite
//! before anything else happens to it, and one deliverer per destination network hands the
//! messages to that network's adapter one at a time, in the order they were stored.
//!
//! A row leaves the outbox only when the adapter reports the message written (or given up,
//! see [`Receipt`]). While a network is down its adapter holds the one message it was given
//! and the rest wait here, surviving a crash of the bot; when the network returns they go
//! out in order. Messages older than their bridge's `staleness` by then are dropped,
//! counted, and summed up in one notice per room. After a crash the only message that can
//! appear twice is the one being written at that moment.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::adapters::{Delivery, NetworkHandle, Outgoing, Receipt, SHUTDOWN_GRACE};
use crate::core::bridge::stale_notice;
use crate::core::{Bridged, Priority, RoomRef};
use crate::store::{OutboxRow, Store, StoreError};

/// Pause before trying again after the store failed.
const RETRY: Duration = Duration::from_secs(5);

/// The writing side: stores messages and wakes their network's deliverer.
#[derive(Clone)]
pub struct BridgeOutbox {
    store: Store,
    wake: BTreeMap<String, Arc<Notify>>,
}

impl BridgeOutbox {
    /// One deliverer per network in `handles`, each started on `tracker`.
    pub fn start(
        store: Store,
        handles: &BTreeMap<String, NetworkHandle>,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> Self {
        let mut wake = BTreeMap::new();
        for (name, handle) in handles {
            let notify = Arc::new(Notify::new());
            wake.insert(name.clone(), notify.clone());
            let d = Deliverer {
                store: store.clone(),
                network: name.clone(),
                handle: handle.clone(),
                wake: notify,
                shutdown: shutdown.clone(),
                dropped: BTreeMap::new(),
            };
            tracker.spawn(d.run());
        }
        Self { store, wake }
    }

    /// Stores a message; it is delivered once its network can take it.
    pub fn put(&self, m: &Bridged) -> Result<(), StoreError> {
        let Some(wake) = self.wake.get(&m.room.network) else {
            tracing::warn!(room = %m.room, "no running network for this bridged room; message dropped");
            return Ok(());
        };
        match self.store.outbox_put(m)? {
            Some(id) => {
                tracing::debug!(room = %m.room, id, source = ?m.source, "bridged message stored");
                wake.notify_one();
            }
            None => {
                tracing::info!(room = %m.room, source = ?m.source, "bridged message seen before; not stored again");
            }
        }
        Ok(())
    }
}

struct Deliverer {
    store: Store,
    network: String,
    handle: NetworkHandle,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
    /// Stale messages dropped since the last notice: count and staleness, by room.
    dropped: BTreeMap<RoomRef, (usize, Duration)>,
}

impl Deliverer {
    #[tracing::instrument(skip_all, fields(network = %self.network))]
    async fn run(mut self) {
        loop {
            if self.shutdown.is_cancelled() {
                return;
            }
            let next = match self.store.outbox_next(&self.network) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "bridge outbox unreadable; retrying");
                    tokio::select! {
                        () = self.shutdown.cancelled() => return,
                        () = tokio::time::sleep(RETRY) => continue,
                    }
                }
            };
            let Some(row) = next else {
                if !self.notify_dropped().await {
                    return;
                }
                tokio::select! {
                    () = self.shutdown.cancelled() => return,
                    () = self.wake.notified() => continue,
                }
            };
            let m = &row.message;
            let age = (Utc::now() - m.at).to_std().unwrap_or_default();
            if age > m.staleness {
                tracing::debug!(room = %m.room, age_s = age.as_secs(), "bridged message stale; dropped");
                self.count_dropped(&row);
                self.remove(row.id);
                continue;
            }
            if !self.notify_dropped().await {
                return;
            }
            match self.deliver(&row).await {
                Some(Delivery::Sent) => self.remove(row.id),
                Some(Delivery::Dropped) => {
                    self.count_dropped(&row);
                    self.remove(row.id);
                }
                // Shutting down: the row stays for the next start.
                None => return,
            }
        }
    }

    /// Hands one message to the adapter and waits for its verdict; `None` at shutdown when
    /// the message was not written.
    async fn deliver(&self, row: &OutboxRow) -> Option<Delivery> {
        let m = &row.message;
        let (receipt, mut verdict) = Receipt::new();
        let out = Outgoing::message(m.room.room.clone(), m.text.clone())
            .html(m.html.clone())
            .mentions(m.mentions.clone())
            .kind(m.kind)
            .priority(Priority::Relay)
            .receipt(receipt);
        if self.handle.send(out).await.is_err() {
            return None;
        }
        let got = tokio::select! {
            v = &mut verdict => v,
            () = self.shutdown.cancelled() => {
                match tokio::time::timeout(SHUTDOWN_GRACE, &mut verdict).await {
                    Ok(Ok(v)) => Ok(v),
                    _ => return None,
                }
            }
        };
        match got {
            Ok(v) => Some(v),
            // The adapter took it without a verdict (or stopped): taken, unless stopping.
            Err(_) if self.shutdown.is_cancelled() => None,
            Err(_) => Some(Delivery::Sent),
        }
    }

    fn count_dropped(&mut self, row: &OutboxRow) {
        let e = self
            .dropped
            .entry(row.message.room.clone())
            .or_insert((0, row.message.staleness));
        e.0 += 1;
    }

    fn remove(&self, id: i64) {
        if let Err(e) = self.store.outbox_remove(id) {
            tracing::error!(error = %e, id, "delivered bridged message not removed from the outbox");
        }
    }

    /// Says in each room how many messages it missed; false when the adapter is gone.
    async fn notify_dropped(&mut self) -> bool {
        for (room, (n, staleness)) in std::mem::take(&mut self.dropped) {
            tracing::warn!(%room, dropped = n, "stale bridged messages dropped");
            let out = Outgoing::message(room.room.clone(), stale_notice(n, staleness));
            if self.handle.send(out).await.is_err() {
                return false;
            }
        }
        true
    }
}
