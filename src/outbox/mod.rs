//! The outbox (DESIGN §8 "Nothing lost", §11): everything the bot must still say on a
//! network — bridged messages, relayed MQTT events, package-update alerts — is stored in the
//! store's `outbox` table before anything else happens to it, and one [`Deliverer`] per
//! network hands that network's messages to its adapter in the order they were stored, at
//! most the adapter's window of them awaiting a verdict ([`NetworkHandle::window`]).
//!
//! A row leaves the outbox only when the adapter reports the message written (or given up,
//! see [`crate::adapters::Receipt`]). While a network is down its adapter holds the
//! messages it was given and the rest wait here, surviving a crash of the bot; the other
//! networks' deliverers go on. Messages with a staleness (the bridge's) that are older than
//! it by the time their network takes them are dropped, counted, and summed up in one notice
//! per room; the others wait however long it takes. After a crash the only messages that can
//! appear twice are those being written at that moment (one IRC line, one Matrix message per
//! room being sent, at most the console's window of lines written last).

mod deliver;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::adapters::NetworkHandle;
use crate::core::relay::{RelayBatch, RelayMessage, SeenKey};
use crate::core::watch::Alert;
use crate::core::{Bridged, RoomRef, SendKind};
use crate::metrics::Metrics;
use crate::store::{Queued, Store, StoreError};
use deliver::Deliverer;

/// A network's deliverer, to be run as a task.
pub type Deliver = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// When the network said each waiting bridged message was sent (server-time), by outbox
/// row: where the relay delay of the metrics starts. Kept in memory only: after a restart
/// the delay of what was waiting starts at its queuing.
pub(crate) type SentTimes = Arc<std::sync::Mutex<HashMap<i64, DateTime<Utc>>>>;

/// The writing side: stores messages and wakes their networks' deliverers. Clones share the
/// networks: one added or removed (a config reload, DESIGN §5 "Reload") is seen by all.
#[derive(Clone)]
pub struct Outbox {
    store: Store,
    wake: Arc<RwLock<BTreeMap<String, Arc<Notify>>>>,
    sent_times: SentTimes,
    metrics: Metrics,
}

impl Outbox {
    /// One deliverer per network in `handles`, each handed to `spawn` with its network's
    /// name to run as a task of its own; what a previous run left waiting goes out first.
    pub fn start(
        store: Store,
        handles: &BTreeMap<String, NetworkHandle>,
        shutdown: &CancellationToken,
        metrics: &Metrics,
        mut spawn: impl FnMut(&str, Deliver),
    ) -> Self {
        let outbox = Self::new(store, metrics);
        for (name, handle) in handles {
            spawn(name, outbox.add_network(handle, shutdown.clone()));
        }
        outbox.report_orphans_soon();
        outbox
    }

    /// An outbox without networks yet: add them with [`Outbox::add_network`], then call
    /// [`Outbox::report_orphans_soon`].
    pub fn new(store: Store, metrics: &Metrics) -> Self {
        Self {
            store,
            wake: Arc::default(),
            sent_times: SentTimes::default(),
            metrics: metrics.clone(),
        }
    }

    /// Logs, off the async workers, what waits for networks that are not configured.
    pub fn report_orphans_soon(&self) {
        let reporter = self.clone();
        tokio::task::spawn_blocking(move || reporter.report_orphans());
    }

    /// Adds a network (or replaces one that was stopped): its deliverer, to be run as a task
    /// until `stop`, starts with what waits for the network in the store.
    pub fn add_network(&self, handle: &NetworkHandle, stop: CancellationToken) -> Deliver {
        let notify = Arc::new(Notify::new());
        self.wake_map_mut()
            .insert(handle.name.clone(), notify.clone());
        let d = Deliverer::new(
            self.store.clone(),
            handle.name.clone(),
            handle.clone(),
            notify,
            stop,
            (self.metrics.clone(), self.sent_times.clone()),
        );
        Box::pin(d.run())
    }

    /// Forgets a network whose deliverer was stopped: what it still had to say stays in the
    /// store, and goes out if the network comes back; new messages for it are dropped.
    pub fn remove_network(&self, name: &str) {
        self.wake_map_mut().remove(name);
    }

    fn wake_map(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Notify>>> {
        self.wake.read().unwrap_or_else(|p| p.into_inner())
    }

    fn wake_map_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Notify>>> {
        self.wake.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Logs the messages left for networks that are no longer configured: they stay, and go
    /// out if the network comes back.
    fn report_orphans(&self) {
        match self.store.outbox_networks() {
            Ok(waiting) => {
                for (network, n) in waiting {
                    if !self.wake_map().contains_key(&network) {
                        tracing::warn!(%network, messages = n, "outbox messages wait for a network that is not configured; they are kept");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "outbox unreadable at start"),
        }
    }

    /// Stores a bridged message; it is delivered once its network can take it.
    pub fn put_bridged(&self, m: &Bridged) -> Result<(), StoreError> {
        let Some(wake) = self.wake_map().get(&m.room.network).cloned() else {
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
                if let Some(at) = m.sent_at {
                    self.sent_times
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id, at);
                }
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
        self.put_relayed_group(std::slice::from_ref(batch), now)
    }

    /// Stores the messages and dedup keys of several relay batches (the MQTT events that
    /// arrived together) in one transaction, in their order, and wakes the deliverers: all of
    /// them are stored, or none. Only after this returns may their MQTT messages be
    /// acknowledged.
    pub fn put_relayed_group(
        &self,
        batches: &[RelayBatch],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let stored = batches
            .iter()
            .filter(|b| !(b.messages.is_empty() && b.seen.is_empty()))
            .count();
        if stored == 0 {
            return Ok(());
        }
        let messages: Vec<Queued> = batches
            .iter()
            .flat_map(|b| &b.messages)
            .filter(|m| self.running(&m.room, "relayed message"))
            .map(|m| relayed(m, now))
            .collect();
        let seen: Vec<SeenKey> = batches.iter().flat_map(|b| b.seen.clone()).collect();
        self.store.outbox_put_relayed(&messages, &seen)?;
        self.metrics.relay_committed(stored);
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
        let known = self.wake_map().contains_key(&room.network);
        if !known {
            tracing::warn!(%room, "no running network for this room; {what} dropped");
        }
        known
    }

    fn wake_for<'a>(&self, rooms: impl Iterator<Item = &'a RoomRef>) {
        let wake = self.wake_map();
        for room in rooms {
            if let Some(w) = wake.get(&room.network) {
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
