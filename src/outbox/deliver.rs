//! One network's deliverer: hands the oldest waiting message to the adapter, waits for the
//! adapter's verdict, and only then removes the row and moves on to the one after it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::SentTimes;
use crate::adapters::{Delivery, NetworkHandle, Outgoing, Receipt, SHUTDOWN_GRACE};
use crate::core::bridge::stale_notice;
use crate::core::{Priority, RoomRef};
use crate::metrics::{DropReason, Metrics};
use crate::store::{OutboxRow, Store};

/// Pause before trying again after the store failed.
const RETRY: Duration = Duration::from_secs(5);

pub(super) struct Deliverer {
    store: Store,
    network: String,
    handle: NetworkHandle,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
    /// Stale messages dropped since the last notice: count and staleness, by room.
    dropped: BTreeMap<RoomRef, (usize, Duration)>,
    metrics: Metrics,
    sent_times: SentTimes,
}

impl Deliverer {
    pub(super) fn new(
        store: Store,
        network: String,
        handle: NetworkHandle,
        wake: Arc<Notify>,
        shutdown: CancellationToken,
        (metrics, sent_times): (Metrics, SentTimes),
    ) -> Self {
        Self {
            store,
            network,
            handle,
            wake,
            shutdown,
            dropped: BTreeMap::new(),
            metrics,
            sent_times,
        }
    }

    #[tracing::instrument(skip_all, fields(network = %self.network))]
    pub(super) async fn run(mut self) {
        loop {
            if self.shutdown.is_cancelled() {
                return;
            }
            let network = self.network.clone();
            let next = match blocking(&self.store, move |s| s.outbox_next(&network)).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "outbox unreadable; retrying");
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
            if let Some(staleness) = row.message.staleness {
                let age = (Utc::now() - row.message.queued_at)
                    .to_std()
                    .unwrap_or_default();
                if age > staleness {
                    tracing::debug!(room = %row.message.room, origin = %row.message.origin, age_s = age.as_secs(), "queued message stale; dropped");
                    self.count_dropped(&row);
                    self.remove(&row).await;
                    continue;
                }
            }
            if !self.notify_dropped().await {
                return;
            }
            match self.deliver(&row).await {
                Some(Delivery::Sent) => {
                    self.count_sent(&row);
                    self.remove(&row).await;
                }
                Some(Delivery::Dropped) => {
                    if row.message.staleness.is_some() {
                        self.count_dropped(&row);
                    } else {
                        tracing::warn!(room = %row.message.room, origin = %row.message.origin, id = row.id, "the network gave up on a queued message; dropped");
                    }
                    self.remove(&row).await;
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

    /// A bridged message written: counted, with the time since its network says it was sent
    /// (or, when it does not say, since the bot received it).
    fn count_sent(&self, row: &OutboxRow) {
        if let Some(bridge) = row.message.origin.strip_prefix("bridge:") {
            let start = self
                .sent_times
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&row.id)
                .copied()
                .unwrap_or(row.message.queued_at);
            let delay = (Utc::now() - start).to_std().unwrap_or_default();
            self.metrics.bridged(bridge, &self.network, delay);
        }
    }

    fn count_dropped(&mut self, row: &OutboxRow) {
        self.metrics
            .network(&self.network)
            .dropped(DropReason::stale, 1);
        let staleness = row.message.staleness.unwrap_or_default();
        let e = self
            .dropped
            .entry(row.message.room.clone())
            .or_insert((0, staleness));
        e.0 += 1;
    }

    async fn remove(&self, row: &OutboxRow) {
        let id = row.id;
        self.sent_times
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        match blocking(&self.store, move |s| s.outbox_remove(id)).await {
            Ok(()) => tracing::debug!(id = row.id, room = %row.message.room, "queued message done"),
            Err(e) => {
                tracing::error!(error = %e, id = row.id, room = %row.message.room, "delivered message not removed from the outbox");
            }
        }
    }

    /// Says in each room how many messages it missed; false when the adapter is gone.
    async fn notify_dropped(&mut self) -> bool {
        for (room, (n, staleness)) in std::mem::take(&mut self.dropped) {
            tracing::warn!(%room, dropped = n, "stale queued messages dropped");
            let out = Outgoing::message(room.room.clone(), stale_notice(n, staleness));
            if self.handle.send(out).await.is_err() {
                return false;
            }
        }
        true
    }
}

/// Runs a store call on the blocking pool, so that a slow disk never holds up an async
/// worker; a panic in it goes on in the caller.
async fn blocking<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> T + Send + 'static,
) -> T {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(v) => v,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("store call did not finish: {e}"),
        },
    }
}
