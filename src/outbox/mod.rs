//! The outbox (DESIGN §8 "Nothing lost", §11): everything the bot must still say on a
//! network — bridged messages, relayed MQTT events, package-update alerts — is stored in the
//! store's `outbox` table before anything else happens to it, and one [`Deliverer`] per
//! network hands that network's messages to its adapter one at a time, in the order they
//! were stored.
//!
//! A row leaves the outbox only when the adapter reports the message written (or given up,
//! see [`crate::adapters::Receipt`]). While a network is down its adapter holds the one
//! message it was given and the rest wait here, surviving a crash of the bot; the other
//! networks' deliverers go on. Messages with a staleness (the bridge's) that are older than
//! it by the time their network takes them are dropped, counted, and summed up in one notice
//! per room; the others wait however long it takes. After a crash the only message that can
//! appear twice is the one being written at that moment.

mod deliver;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::adapters::NetworkHandle;
use crate::core::relay::{RelayBatch, RelayMessage, SeenKey};
use crate::core::watch::Alert;
use crate::core::{Bridged, RoomRef, SendKind};
use crate::store::{Queued, Store, StoreError};
use deliver::Deliverer;

/// A network's deliverer, to be run as a task.
pub type Deliver = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The writing side: stores messages and wakes their networks' deliverers.
#[derive(Clone)]
pub struct Outbox {
    store: Store,
    wake: BTreeMap<String, Arc<Notify>>,
}

impl Outbox {
    /// One deliverer per network in `handles`, each handed to `spawn` with its network's
    /// name to run as a task of its own; what a previous run left waiting goes out first.
    pub fn start(
        store: Store,
        handles: &BTreeMap<String, NetworkHandle>,
        shutdown: &CancellationToken,
        mut spawn: impl FnMut(&str, Deliver),
    ) -> Self {
        let mut wake = BTreeMap::new();
        for (name, handle) in handles {
            let notify = Arc::new(Notify::new());
            wake.insert(name.clone(), notify.clone());
            let d = Deliverer::new(
                store.clone(),
                name.clone(),
                handle.clone(),
                notify,
                shutdown.clone(),
            );
            spawn(name, Box::pin(d.run()));
        }
        let outbox = Self { store, wake };
        let reporter = outbox.clone();
        tokio::task::spawn_blocking(move || reporter.report_orphans());
        outbox
    }

    /// Logs the messages left for networks that are no longer configured: they stay, and go
    /// out if the network comes back.
    fn report_orphans(&self) {
        match self.store.outbox_networks() {
            Ok(waiting) => {
                for (network, n) in waiting {
                    if !self.wake.contains_key(&network) {
                        tracing::warn!(%network, messages = n, "outbox messages wait for a network that is not configured; they are kept");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "outbox unreadable at start"),
        }
    }

    /// Stores a bridged message; it is delivered once its network can take it.
    pub fn put_bridged(&self, m: &Bridged) -> Result<(), StoreError> {
        let Some(wake) = self.wake.get(&m.room.network) else {
            tracing::warn!(room = %m.room, "no running network for this bridged room; message dropped");
            return Ok(());
        };
        let q = Queued {
            room: m.room.clone(),
            text: m.text.clone(),
            html: m.html.clone(),
            mentions: m.mentions.clone(),
            kind: m.kind,
            origin: format!("bridge:{}", m.bridge),
            queued_at: m.at,
            staleness: Some(m.staleness),
        };
        match self.store.outbox_put_bridged(m.source.as_deref(), &q)? {
            Some(id) => {
                tracing::debug!(room = %m.room, id, source = m.source.as_deref(), "bridged message stored");
                wake.notify_one();
            }
            None => {
                tracing::info!(room = %m.room, source = m.source.as_deref(), "bridged message seen before; not stored again");
            }
        }
        Ok(())
    }

    /// Stores a relay batch's messages and dedup keys in one transaction, and wakes the
    /// deliverers. Only after this returns may the MQTT message be acknowledged.
    pub fn put_relayed(&self, batch: &RelayBatch, now: DateTime<Utc>) -> Result<(), StoreError> {
        if batch.messages.is_empty() && batch.seen.is_empty() {
            return Ok(());
        }
        let messages: Vec<Queued> = batch
            .messages
            .iter()
            .filter(|m| self.running(&m.room, "relayed message"))
            .map(|m| relayed(m, now))
            .collect();
        self.store.outbox_put_relayed(&messages, &batch.seen)?;
        self.wake_for(messages.iter().map(|m| &m.room));
        Ok(())
    }

    /// Queues package-update alerts and records them as announced, in one transaction: an
    /// alert is either queued and remembered, or neither (and the following check tries again).
    pub fn put_alerts(&self, alerts: &[Alert], now: DateTime<Utc>) -> Result<(), StoreError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let mut messages = Vec::new();
        for a in alerts {
            for room in a.to.iter().filter(|r| self.running(r, "watch alert")) {
                messages.push(Queued {
                    room: room.clone(),
                    text: a.text.clone(),
                    html: None,
                    mentions: Vec::new(),
                    kind: SendKind::Relay,
                    origin: format!("watch:{}", a.key.watch),
                    queued_at: now,
                    staleness: None,
                });
            }
        }
        let announced: Vec<_> = alerts.iter().map(|a| a.key.clone()).collect();
        self.store.outbox_put_alerts(&messages, &announced, now)?;
        self.wake_for(messages.iter().map(|m| &m.room));
        Ok(())
    }

    /// The relay's dedup keys still valid at `now`; forgets the others.
    pub fn seen_keys(&self, now: DateTime<Utc>) -> Result<Vec<SeenKey>, StoreError> {
        self.store.relay_seen_keys(now)
    }

    /// Whether `room`'s network has a deliverer; logs the message dropped when not.
    fn running(&self, room: &RoomRef, what: &str) -> bool {
        let known = self.wake.contains_key(&room.network);
        if !known {
            tracing::warn!(%room, "no running network for this room; {what} dropped");
        }
        known
    }

    fn wake_for<'a>(&self, rooms: impl Iterator<Item = &'a RoomRef>) {
        for room in rooms {
            if let Some(w) = self.wake.get(&room.network) {
                w.notify_one();
            }
        }
    }
}

fn relayed(m: &RelayMessage, now: DateTime<Utc>) -> Queued {
    Queued {
        room: m.room.clone(),
        text: m.text.clone(),
        html: m.html.clone(),
        mentions: Vec::new(),
        kind: SendKind::Relay,
        origin: format!("relay:{}", m.route),
        queued_at: now,
        staleness: None,
    }
}
