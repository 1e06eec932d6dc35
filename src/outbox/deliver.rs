//! One network's deliverer: hands the oldest waiting messages to the adapter, in order and at
//! most the adapter's window of them at a time (IRC: one), waits for the adapter's verdicts,
//! and only then removes their rows, those whose verdicts came in together in one
//! transaction.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::FutureExt as _;
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use tokio::sync::{Notify, oneshot};
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
        let window = self.handle.window();
        // The highest id handed to the adapter (or dropped as stale).
        let mut last = 0i64;
        let mut in_flight = FuturesUnordered::new();
        loop {
            let stopping = self.shutdown.is_cancelled();
            if stopping && in_flight.is_empty() {
                return;
            }
            // Hand the adapter what waits, up to the window.
            let mut more = false;
            if !stopping && in_flight.len() < window {
                let (network, want) = (self.network.clone(), window - in_flight.len());
                match blocking(&self.store, move |s| s.outbox_after(&network, last, want)).await {
                    Ok(rows) => {
                        more = rows.len() == want;
                        let mut stale = Vec::new();
                        for row in rows {
                            last = row.id;
                            if self.is_stale(&row) {
                                self.count_dropped(&row);
                                stale.push(row);
                                continue;
                            }
                            if !self.notify_dropped().await {
                                return;
                            }
                            match self.hand(row).await {
                                Some(pending) => in_flight.push(pending),
                                // The adapter stopped: the rows stay for the next start.
                                None => return,
                            }
                        }
                        self.remove(&stale).await;
                    }
                    Err(e) if in_flight.is_empty() => {
                        tracing::error!(error = %e, "outbox unreadable; retrying");
                        tokio::select! {
                            () = self.shutdown.cancelled() => return,
                            () = tokio::time::sleep(RETRY) => continue,
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "outbox unreadable; retrying after the messages under way")
                    }
                }
            }
            if in_flight.is_empty() {
                if more {
                    continue;
                }
                if !self.notify_dropped().await {
                    return;
                }
                tokio::select! {
                    () = self.shutdown.cancelled() => return,
                    () = self.wake.notified() => continue,
                }
            }
            let room_for_more = !stopping && in_flight.len() < window;
            let first = tokio::select! {
                v = in_flight.next() => v,
                () = self.wake.notified(), if room_for_more && !more => continue,
                () = std::future::ready(()), if room_for_more && more => continue,
                () = self.shutdown.cancelled(), if !stopping => continue,
            };
            // Every verdict already in goes with the first: their rows leave together.
            let mut verdicts: Vec<_> = first.into_iter().collect();
            while let Some(Some(v)) = in_flight.next().now_or_never() {
                verdicts.push(v);
            }
            let mut done = Vec::with_capacity(verdicts.len());
            for (row, verdict) in verdicts {
                match verdict {
                    Some(Delivery::Sent) => {
                        self.count_sent(&row);
                        done.push(row);
                    }
                    Some(Delivery::Dropped) => {
                        if row.message.staleness.is_some() {
                            self.count_dropped(&row);
                        } else {
                            tracing::warn!(room = %row.message.room, origin = %row.message.origin, id = row.id, "the network gave up on a queued message; dropped");
                        }
                        done.push(row);
                    }
                    // Shutting down: the row stays for the next start.
                    None => {}
                }
            }
            self.remove(&done).await;
        }
    }

    /// Whether a message with a staleness is older than it: it is dropped, not delivered.
    fn is_stale(&self, row: &OutboxRow) -> bool {
        let Some(staleness) = row.message.staleness else {
            return false;
        };
        let age = (Utc::now() - row.message.queued_at)
            .to_std()
            .unwrap_or_default();
        if age > staleness {
            tracing::debug!(room = %row.message.room, origin = %row.message.origin, age_s = age.as_secs(), "queued message stale; dropped");
            return true;
        }
        false
    }

    /// Hands one message to the adapter; what completes with its verdict (`None` at
    /// shutdown when the message was not written), or `None` when the adapter has stopped.
    async fn hand(&self, row: OutboxRow) -> Option<Pending> {
        let m = &row.message;
        let (receipt, verdict) = Receipt::new();
        let out = Outgoing::message(m.room.room.clone(), m.text.clone())
            .html(m.html.clone())
            .mentions(m.mentions.clone())
            .kind(m.kind)
            .priority(Priority::Relay)
            .receipt(receipt);
        if self.handle.send(out).await.is_err() {
            return None;
        }
        let shutdown = self.shutdown.clone();
        Some(Box::pin(async move {
            let v = wait_verdict(verdict, &shutdown).await;
            (row, v)
        }))
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

    /// Removes the rows of delivered (or dropped) messages, in one transaction.
    async fn remove(&self, rows: &[OutboxRow]) {
        if rows.is_empty() {
            return;
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        {
            let mut times = self.sent_times.lock().unwrap_or_else(|p| p.into_inner());
            for id in &ids {
                times.remove(id);
            }
        }
        let n = ids.len();
        match blocking(&self.store, move |s| s.outbox_remove_many(&ids)).await {
            Ok(()) => tracing::debug!(rows = n, last = rows[n - 1].id, "queued messages done"),
            Err(e) => {
                tracing::error!(error = %e, rows = n, first = rows[0].id, "delivered messages not removed from the outbox");
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

/// A message handed to the adapter: completes with its row and verdict.
type Pending =
    std::pin::Pin<Box<dyn std::future::Future<Output = (OutboxRow, Option<Delivery>)> + Send>>;

/// Waits for an adapter's verdict; `None` at shutdown when the message was not written
/// within the grace.
async fn wait_verdict(
    mut verdict: oneshot::Receiver<Delivery>,
    shutdown: &CancellationToken,
) -> Option<Delivery> {
    let got = tokio::select! {
        v = &mut verdict => v,
        () = shutdown.cancelled() => {
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut verdict).await {
                Ok(Ok(v)) => Ok(v),
                _ => return None,
            }
        }
    };
    match got {
        Ok(v) => Some(v),
        // The adapter took it without a verdict (or stopped): taken, unless stopping.
        Err(_) if shutdown.is_cancelled() => None,
        Err(_) => Some(Delivery::Sent),
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
