//! The IRC network adapter.
//!
//! One driver task per `[[irc]]` owns the socket: it registers (CAP negotiation and SASL
//! driven by hand, since the `irc` crate's `identify()` ends negotiation at once), joins the
//! channels, turns PRIVMSG/NOTICE into core events with the sender's account as principal,
//! and drains one priority queue through a token bucket so the bot is never flood-kicked.
//! When the connection drops it reconnects with exponential backoff and jitter; lines
//! queued meanwhile are sent afterwards, in order, unless they went stale.
//!
//! The protocol itself lives in [`session::Session`], which does no I/O: the driver feeds it
//! each server line and then carries out what it asked for (lines written or queued, events
//! sent to the core), as rumqttc's state and event loop split the work.
//!
//! The `irc` crate is used for what it is good at: parsing server lines into `Message`s.

mod chat;
mod connection;
#[doc(hidden)]
pub mod fuzz;
mod history;
mod membership;
pub mod probe;
pub mod queue;
mod registration;
mod sending;
mod session;
pub mod text;

#[cfg(test)]
mod test_rig;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::connection::{Reader, Writer, read_line, write_line};
use self::history::LastSeen;
use self::queue::{SendQueue, TokenBucket};
pub use self::registration::WANTED_CAPS;
use self::session::{Session, SessionEnd, Wire};
use super::backoff::Backoff;
use super::{NetworkHandle, Outgoing};
use crate::config::IrcConfig;
use crate::core::{Event, LinkState, Priority};
use crate::metrics::NetworkMetrics;
use crate::store::Store;

/// Starts the driver of one IRC connection. `store` keeps the time of the last line seen in
/// each channel, for the CHATHISTORY catch-up after the bot's own downtime.
pub fn spawn(
    cfg: IrcConfig,
    store: Option<Store>,
    metrics: NetworkMetrics,
    events: mpsc::Sender<Event>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> NetworkHandle {
    let (tx, rx) = mpsc::channel::<Outgoing>(1024);
    let name = cfg.name.clone();
    let mut driver = Driver::new(cfg, events, rx, shutdown);
    driver.store = store;
    driver.metrics = metrics;
    tracker.spawn(driver.run());
    NetworkHandle::new(name, tx)
}

struct Driver {
    cfg: Arc<IrcConfig>,
    events: mpsc::Sender<Event>,
    outgoing: mpsc::Receiver<Outgoing>,
    shutdown: CancellationToken,
    queue: SendQueue,
    bucket: TokenBucket,
    reported_stale: u64,
    reported_overflow: u64,
    store: Option<Store>,
    seen: LastSeen,
    /// Lines written, dropped and held back by the flood control.
    metrics: NetworkMetrics,
    /// The drops already added to `metrics`.
    counted_stale: u64,
    counted_overflow: u64,
}

impl Driver {
    fn new(
        cfg: IrcConfig,
        events: mpsc::Sender<Event>,
        outgoing: mpsc::Receiver<Outgoing>,
        shutdown: CancellationToken,
    ) -> Self {
        let now = Instant::now();
        Self {
            queue: SendQueue::new(cfg.queue_limit, cfg.staleness),
            bucket: TokenBucket::new(cfg.rate.burst, cfg.rate.per_second, now),
            cfg: Arc::new(cfg),
            events,
            outgoing,
            shutdown,
            reported_stale: 0,
            reported_overflow: 0,
            store: None,
            seen: LastSeen::default(),
            metrics: NetworkMetrics::default(),
            counted_stale: 0,
            counted_overflow: 0,
        }
    }

    async fn report(&self, state: LinkState) {
        crate::adapters::report_link(&self.events, &self.cfg.name, state, self.queue.len()).await;
    }

    #[tracing::instrument(skip_all, fields(network = %self.cfg.name))]
    async fn run(mut self) {
        self.load_last_seen().await;
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        loop {
            if self.shutdown.is_cancelled() {
                break;
            }
            tracing::info!(server = %self.cfg.host, port = self.cfg.port, tls = self.cfg.tls, "connecting");
            let started = Instant::now();
            match connection::connect(&self.cfg).await {
                Ok((reader, writer)) => {
                    let end = self.session(reader, writer).await;
                    self.flush_last_seen().await;
                    if started.elapsed() >= Duration::from_secs(300) {
                        backoff.reset();
                    }
                    match end {
                        SessionEnd::Shutdown => break,
                        SessionEnd::Lost(why) => {
                            tracing::warn!(reason = %why, queued = self.queue.len(), "connection lost");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot connect"),
            }
            self.report(LinkState::Reconnecting).await;
            let delay = backoff.next_delay(rand::rng().random());
            tracing::info!(
                delay_ms = delay.as_millis() as u64,
                "reconnecting after delay"
            );
            self.wait(delay).await;
        }
        self.report(LinkState::Stopped).await;
        tracing::info!("stopped");
    }

    /// Waits before reconnecting, still accepting messages: they are sent after the reconnect.
    async fn wait(&mut self, delay: Duration) {
        let until = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => break,
                () = tokio::time::sleep_until(until) => break,
                out = self.outgoing.recv() => match out {
                    Some(out) => self.enqueue(out, None),
                    None => break,
                },
            }
        }
    }

    /// One connection, from the registration lines to its end.
    async fn session(&mut self, mut reader: Reader, mut writer: Writer) -> SessionEnd {
        let now = Instant::now();
        self.queue.clear_protocol();
        // The server's flood counters start over with a new connection.
        self.bucket = TokenBucket::new(self.cfg.rate.burst, self.cfg.rate.per_second, now);
        let mut s = Session::new(self.cfg.clone(), now);
        s.hello();
        if let Err(e) = self.flush(&mut s, &mut writer).await {
            return write_failed(e);
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = Vec::with_capacity(1024);
        let mut last_report = Instant::now();
        loop {
            let next_send = self.next_send_delay(&s);
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => {
                    self.finish(&mut writer, &s).await;
                    return SessionEnd::Shutdown;
                }
                read = read_line(&mut reader, &mut buf) => {
                    let line = match read {
                        Ok(Some(line)) => line,
                        Ok(None) => return SessionEnd::Lost("server closed the connection".into()),
                        Err(e) => return SessionEnd::Lost(format!("read failed: {e}")),
                    };
                    let end = s.handle_line(&line, &mut self.seen, Instant::now());
                    if let Some(end) = end {
                        return end;
                    }
                    if let Err(e) = self.flush(&mut s, &mut writer).await {
                        return write_failed(e);
                    }
                }
                () = sleep_opt(next_send) => {
                    if let Err(e) = self.send_ready(&mut writer, &s).await {
                        return write_failed(e);
                    }
                }
                out = self.outgoing.recv() => {
                    match out {
                        Some(out) => self.enqueue(out, Some(&s)),
                        // The core is gone: only happens at shutdown.
                        None => {
                            self.finish(&mut writer, &s).await;
                            return SessionEnd::Shutdown;
                        }
                    }
                }
                _ = tick.tick() => {
                    if let Some(end) = s.tick(Instant::now()) {
                        return end;
                    }
                    if let Err(e) = self.flush(&mut s, &mut writer).await {
                        return write_failed(e);
                    }
                    self.flush_last_seen().await;
                    if last_report.elapsed() >= Duration::from_secs(5) {
                        last_report = Instant::now();
                        self.report(if s.registered { LinkState::Connected } else { LinkState::Starting }).await;
                    }
                }
            }
        }
    }

    /// Carries out what the session asked for: lines written at once or queued, events
    /// sent to the core.
    async fn flush(&mut self, s: &mut Session, w: &mut Writer) -> std::io::Result<()> {
        let (now, events) = self.absorb(s);
        for wire in now {
            match wire {
                Wire::Now(line) => write_line(w, &line).await?,
                Wire::Counted(line) => {
                    write_line(w, &line).await?;
                    let _ = self.bucket.try_take(Instant::now());
                }
                Wire::Queued(_) => {}
            }
        }
        for ev in events {
            let _ = self.events.send(ev).await;
        }
        Ok(())
    }

    /// Queues the session's protocol lines; returns the lines to write at once and the
    /// events for the core, network states completed with the queue's length.
    fn absorb(&mut self, s: &mut Session) -> (Vec<Wire>, Vec<Event>) {
        let mut now = Vec::new();
        for wire in s.out.drain(..) {
            match wire {
                Wire::Queued(line) => {
                    self.queue.push(line, Priority::Protocol, Instant::now());
                }
                wire => now.push(wire),
            }
        }
        let mut events = std::mem::take(&mut s.events);
        for ev in &mut events {
            if let Event::NetworkState { queue_len, .. } = ev {
                *queue_len = self.queue.len();
            }
        }
        (now, events)
    }
}

fn write_failed(e: std::io::Error) -> SessionEnd {
    SessionEnd::Lost(format!("write failed: {e}"))
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
