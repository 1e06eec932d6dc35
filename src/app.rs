//! Wires everything together: store, adapters, the core task, the web site, and one
//! shutdown path (SIGINT/SIGTERM cancel one token; every task drains and finishes).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::adapters::mqtt::MqttHandle;
use crate::adapters::{NetworkHandle, Outgoing, console};
use crate::config::{Config, NetworkKind};
use crate::core::relay::Relay;
use crate::core::{Action, Core, CoreSettings, Event, LinkState, Roles};
use crate::outbox::Outbox;
use crate::store::{Store, StoreError};
use crate::web::{self, Health};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("web site: cannot listen on {addr}: {source}")]
    WebBind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install the signal handler: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Relay(#[from] crate::core::relay::TemplateError),
    #[error(transparent)]
    Broker(#[from] crate::broker::BrokerError),
}

fn kind_name(kind: NetworkKind) -> &'static str {
    match kind {
        NetworkKind::Console => "console",
        NetworkKind::Irc => "irc",
        NetworkKind::Matrix => "matrix",
        NetworkKind::Mqtt => "mqtt",
    }
}

/// Runs the bot until SIGINT/SIGTERM (or, console-only, the end of stdin).
pub async fn run(cfg: Config) -> Result<(), AppError> {
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone())?;
    run_until(cfg, shutdown).await
}

fn spawn_signal_handler(shutdown: CancellationToken) -> Result<(), AppError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(AppError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(AppError::Signals)?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            () = shutdown.cancelled() => return,
        }
        shutdown.cancel();
    });
    Ok(())
}

/// Runs the bot until `shutdown` is cancelled, then waits for every task to finish.
pub async fn run_until(cfg: Config, shutdown: CancellationToken) -> Result<(), AppError> {
    let started = Utc::now();
    let store = Store::open(&cfg.bot.data_dir)?;
    if store.meta("first_start")?.is_none() {
        store.set_meta("first_start", &started.to_rfc3339())?;
    }
    store.set_meta("last_version", crate::VERSION)?;

    let tracker = TaskTracker::new();
    let (events_tx, events_rx) = mpsc::channel::<Event>(1024);
    let health = Health::default();
    let mut handles: BTreeMap<String, NetworkHandle> = BTreeMap::new();

    let networks = cfg.networks();
    for (name, kind) in &networks {
        health.set(name, kind_name(*kind), LinkState::Starting, 0);
    }
    let others = networks
        .iter()
        .filter(|(_, k)| *k != NetworkKind::Console)
        .count();

    if let Some(c) = &cfg.console {
        let h = console::spawn(
            c,
            &cfg.bot.nick,
            events_tx.clone(),
            &tracker,
            shutdown.clone(),
            others == 0,
        );
        handles.insert(c.name.clone(), h);
    }
    for irc_cfg in &cfg.irc {
        let h = crate::adapters::irc::spawn(
            irc_cfg.clone(),
            events_tx.clone(),
            &tracker,
            shutdown.clone(),
        );
        handles.insert(irc_cfg.name.clone(), h);
    }
    // MQTT relay: the embedded broker first, so that the connections find it.
    let relay = Relay::new(&cfg.relays)?;
    let outbox = Outbox::new(store.clone());
    if let Some(b) = &cfg.broker {
        crate::broker::start(b.listen).await?;
    }
    let mut mqtt_handles: BTreeMap<String, MqttHandle> = BTreeMap::new();
    for m in &cfg.mqtt {
        let h = crate::adapters::mqtt::spawn(
            m.clone(),
            relay.filters_for(&m.name),
            events_tx.clone(),
            &tracker,
            shutdown.clone(),
        );
        mqtt_handles.insert(m.name.clone(), h);
    }
    tracker.spawn(outbox.clone().deliver(handles.clone(), shutdown.clone()));

    for (name, kind) in &networks {
        if matches!(kind, NetworkKind::Matrix) {
            tracing::warn!(network = %name, kind = kind_name(*kind), "this network kind is not supported by this build yet; it stays stopped");
            health.update(name, LinkState::Stopped, 0);
        }
    }

    if let Some(w) = &cfg.web {
        let listener = web::bind(w.listen)
            .await
            .map_err(|source| AppError::WebBind {
                addr: w.listen,
                source,
            })?;
        tracker.spawn(web::serve(
            listener,
            web::router(health.clone(), started),
            shutdown.clone(),
        ));
    }

    // A periodic tick for time-based work, and to refresh queue lengths.
    {
        let tx = events_tx.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = every.tick() => {
                        if tx.send(Event::Tick).await.is_err() { return; }
                    }
                }
            }
        });
    }
    drop(events_tx);

    let mut relay = relay;
    relay.remember(outbox.seen_keys(started)?);
    let core = Core::new(
        CoreSettings {
            nick: cfg.bot.nick.clone(),
            prefix: cfg.bot.prefix.clone(),
            roles: Roles::new(cfg.roles.clone()),
            networks: networks.iter().map(|(n, _)| n.clone()).collect(),
            version: crate::VERSION.to_owned(),
        },
        started,
    )
    .with_relay(relay);
    let relay_sinks = RelaySinks {
        outbox,
        mqtt: mqtt_handles,
    };
    tracker.spawn(core_task(
        core,
        events_rx,
        handles,
        relay_sinks,
        health,
        shutdown.clone(),
    ));
    tracing::info!(networks = networks.len(), "sigbot started");

    tracker.close();
    shutdown.cancelled().await;
    tracker.wait().await;
    tracing::info!("sigbot stopped");
    Ok(())
}

/// The one task that owns the core. It stops on shutdown after handling every event that
/// was already queued, then drops the network handles so that each adapter drains its
/// outgoing queue and ends.
/// Where relay batches go: the outbox, then an ack on their MQTT connection.
struct RelaySinks {
    outbox: Outbox,
    mqtt: BTreeMap<String, MqttHandle>,
}

async fn core_task(
    mut core: Core,
    mut events: mpsc::Receiver<Event>,
    handles: BTreeMap<String, NetworkHandle>,
    relay: RelaySinks,
    health: Health,
    shutdown: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            biased;
            ev = events.recv() => match ev {
                Some(ev) => ev,
                None => break,
            },
            () = shutdown.cancelled() => break,
        };
        dispatch(&mut core, event, &handles, &relay, &health).await;
    }
    // Whatever was already queued still gets its answer.
    while let Ok(event) = events.try_recv() {
        dispatch(&mut core, event, &handles, &relay, &health).await;
    }
}

async fn dispatch(
    core: &mut Core,
    event: Event,
    handles: &BTreeMap<String, NetworkHandle>,
    relay: &RelaySinks,
    health: &Health,
) {
    let event = match event {
        Event::NetworkState {
            network,
            state,
            queue_len,
        } => {
            health.update(&network, state, queue_len);
            Event::NetworkState {
                network,
                state,
                queue_len,
            }
        }
        Event::Tick => {
            for (name, h) in handles {
                if let Some(cur) = health.snapshot().get(name) {
                    let queued = h.queued();
                    if cur.queue_len != queued {
                        health.update(name, cur.state, queued);
                        core.handle(
                            Event::NetworkState {
                                network: name.clone(),
                                state: cur.state,
                                queue_len: queued,
                            },
                            Utc::now(),
                        );
                    }
                }
            }
            Event::Tick
        }
        other => other,
    };
    for action in core.handle(event, Utc::now()) {
        match action {
            Action::Send {
                room,
                text,
                html,
                kind,
                priority,
            } => {
                let Some(h) = handles.get(&room.network) else {
                    tracing::warn!(%room, "no running network for this room; message dropped");
                    continue;
                };
                let out = Outgoing {
                    room: room.room,
                    text,
                    html,
                    kind,
                    priority,
                    receipt: Default::default(),
                };
                if h.send(out).await.is_err() {
                    tracing::warn!(network = %h.name, "network stopped; message dropped");
                }
            }
            Action::Relay(batch) => store_relay_batch(&batch, relay),
        }
    }
}

/// Stores a relay batch, then acknowledges its MQTT message. If the store fails the message
/// is not acknowledged: the broker sends it again after the next reconnect.
fn store_relay_batch(batch: &crate::core::relay::RelayBatch, sinks: &RelaySinks) {
    if let Err(e) = sinks.outbox.store_batch(batch, Utc::now()) {
        tracing::error!(error = %e, "cannot store relayed MQTT messages; not acknowledging them");
        return;
    }
    if let Some(ack) = &batch.ack {
        match sinks.mqtt.get(&ack.network) {
            Some(h) => h.ack(ack.delivery),
            None => tracing::warn!(network = %ack.network, "ack for an unknown MQTT connection"),
        }
    }
}
