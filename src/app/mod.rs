//! Wires everything together: store, adapters, the core task, the web site, and one
//! shutdown path (SIGINT/SIGTERM cancel one token; every task drains and finishes).

use std::collections::BTreeMap;
use std::time::Duration;

pub mod archive;
pub mod watch;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::adapters::mqtt::MqttHandle;
use crate::adapters::{NetworkHandle, Outgoing, OutgoingOp, Receipt, console};
use crate::config::MeetingRooms;
use crate::config::commands as command_files;
use crate::config::{Config, ConfigError, EditMode, NetworkKind};
use crate::core::bridge::PresenceRelay;
use crate::core::relay::Relay;
use crate::core::watch::Triggers;
use crate::core::{
    Action, BridgeSettings, BridgeSpec, CommandSetHandle, Core, CoreSettings, Event, LinkState,
    MatrixRelay, MeetingScope, MeetingSettings, Priority, Roles, SendKind, SideKind,
};
use crate::lookup::fetch::Fetcher;
use crate::outbox::Outbox;
use crate::store::{Store, StoreError};
use crate::web::{self, Health};
use watch::Watcher;

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
    #[error("{0}")]
    Commands(ConfigError),
    #[error("cannot start the HTTP client for commands: {0}")]
    HttpClient(reqwest::Error),
    #[error(transparent)]
    Relay(#[from] crate::core::relay::TemplateError),
    #[error(transparent)]
    Broker(#[from] crate::adapters::mqtt::broker::BrokerError),
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
    let commands = command_files::load_dir(&cfg.bot.commands_dir).map_err(AppError::Commands)?;
    tracing::info!(commands = commands.len(), dir = %cfg.bot.commands_dir.display(), "declarative commands loaded");

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
            Some(store.clone()),
            events_tx.clone(),
            &tracker,
            shutdown.clone(),
        );
        handles.insert(irc_cfg.name.clone(), h);
    }
    let mut media_sources = BTreeMap::new();
    for matrix_cfg in &cfg.matrix {
        let (h, media) = crate::adapters::matrix::spawn(
            matrix_cfg.clone(),
            &cfg.bot.data_dir,
            events_tx.clone(),
            &tracker,
            shutdown.clone(),
        );
        handles.insert(matrix_cfg.name.clone(), h);
        media_sources.insert(matrix_cfg.name.clone(), media);
    }
    // MQTT relay: the embedded broker first, so that the connections find it.
    let mut relay = Relay::new(&cfg.relays)?;
    // Started before the core task: what a previous run left in the outbox goes first.
    let outbox = Outbox::start(store.clone(), &handles, &tracker, &shutdown);
    if let Some(b) = &cfg.broker {
        crate::adapters::mqtt::broker::start(b.listen).await?;
    }
    let triggers = Triggers::new(&cfg.watches);
    let mut mqtt_handles: BTreeMap<String, MqttHandle> = BTreeMap::new();
    for m in &cfg.mqtt {
        let mut filters = relay.filters_for(&m.name);
        for f in triggers.filters_for(&m.name) {
            if !filters.contains(&f) {
                filters.push(f);
            }
        }
        let h = crate::adapters::mqtt::spawn(
            m.clone(),
            filters,
            events_tx.clone(),
            &tracker,
            shutdown.clone(),
        );
        mqtt_handles.insert(m.name.clone(), h);
    }
    relay.remember(outbox.seen_keys(started)?);
    // Package-update alerts: polled by their own task, triggered by the core task.
    let watch_triggers = if cfg.watches.is_empty() {
        None
    } else {
        let watcher = Watcher::new(cfg.watches.clone(), store.clone(), outbox.clone())
            .map_err(AppError::HttpClient)?;
        let (tx, rx) = mpsc::channel(64);
        tracker.spawn(watcher.run(rx, shutdown.clone()));
        tracing::info!(watches = cfg.watches.len(), "package watches started");
        Some(WatchTriggers { triggers, tx })
    };

    if let Some(w) = &cfg.web {
        let listener = web::bind(w.listen)
            .await
            .map_err(|source| AppError::WebBind {
                addr: w.listen,
                source,
            })?;
        let app = if cfg.meetings == MeetingRooms::None {
            web::router(health.clone(), started)
        } else {
            web::router_with_meetings(health.clone(), started, store.clone())
        };
        let app = app
            .merge(web::paste::routes(store.clone()))
            .merge(web::media::routes(store.clone(), media_sources));
        let limits = web::Limits::for_open_files(open_files_limit());
        tracker.spawn(web::serve(listener, app, limits, shutdown.clone()));
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
    let fetcher = Fetcher::new(events_tx.clone(), tracker.clone(), shutdown.clone())
        .map_err(AppError::HttpClient)?;
    spawn_reload_on_hangup(
        cfg.bot.commands_dir.clone(),
        events_tx.clone(),
        &tracker,
        shutdown.clone(),
    )?;
    drop(events_tx);

    let core = Core::new(
        CoreSettings {
            nick: cfg.bot.nick.clone(),
            prefix: cfg.bot.prefix.clone(),
            roles: Roles::new(cfg.roles.clone()),
            networks: networks.iter().map(|(n, _)| n.clone()).collect(),
            version: crate::VERSION.to_owned(),
        },
        started,
    );
    let mut core = core.with_relay(relay);
    core.set_commands(std::sync::Arc::new(commands));
    if !cfg.bridges.is_empty() {
        core.enable_bridges(bridge_settings(&cfg), rand::random());
        tracing::info!(bridges = cfg.bridges.len(), "bridges enabled");
    }
    let meetings = MeetingsIo {
        store: store.clone(),
        dir: cfg.bot.data_dir.join("meetings"),
    };
    let first_actions = match meeting_settings(&cfg) {
        Some(settings) => {
            let journals = store.unfinished_meetings()?;
            if !journals.is_empty() {
                tracing::info!(
                    meetings = journals.len(),
                    "resuming meetings from the journal"
                );
            }
            core.enable_meetings(settings, journals, Utc::now())
        }
        None => Vec::new(),
    };
    tracker.spawn(core_task(
        core,
        events_rx,
        Executors {
            handles,
            fetcher,
            store: store.clone(),
            meetings,
            outbox: outbox.clone(),
            relay: RelaySinks {
                outbox,
                mqtt: mqtt_handles,
            },
            watch: watch_triggers,
        },
        health,
        first_actions,
        shutdown.clone(),
    ));
    tracing::info!(networks = networks.len(), "sigbot started");

    tracker.close();
    shutdown.cancelled().await;
    tracker.wait().await;
    tracing::info!("sigbot stopped");
    Ok(())
}

/// SIGHUP reads `commands/` again. A bad file is logged (file:line:col: key: message) and
/// the set in force stays.
fn spawn_reload_on_hangup(
    dir: std::path::PathBuf,
    events: mpsc::Sender<Event>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).map_err(AppError::Signals)?;
    tracker.spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                got = hup.recv() => if got.is_none() { return },
            }
            let d = dir.clone();
            match tokio::task::spawn_blocking(move || command_files::load_dir(&d)).await {
                Ok(Ok(set)) => {
                    // "commands reloaded" is logged by the core task once the set is in force.
                    let set = CommandSetHandle(std::sync::Arc::new(set));
                    if events.send(Event::CommandsReloaded(set)).await.is_err() {
                        return;
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "SIGHUP: commands not reloaded; the previous set stays");
                }
                Err(e) => tracing::error!(error = %e, "SIGHUP: commands reload failed"),
            }
        }
    });
    Ok(())
}

/// The one task that owns the core. It stops on shutdown after handling every event that
/// was already queued, then drops the network handles so that each adapter drains its
/// outgoing queue and ends.
async fn core_task(
    mut core: Core,
    mut events: mpsc::Receiver<Event>,
    exec: Executors,
    health: Health,
    first_actions: Vec<Action>,
    shutdown: CancellationToken,
) {
    let io = &exec;
    execute(first_actions, io).await;
    loop {
        let event = tokio::select! {
            biased;
            ev = events.recv() => match ev {
                Some(ev) => ev,
                None => break,
            },
            () = shutdown.cancelled() => break,
        };
        dispatch(&mut core, event, io, &health).await;
    }
    // Whatever was already queued still gets its answer.
    while let Ok(event) = events.try_recv() {
        dispatch(&mut core, event, io, &health).await;
    }
    execute(core.on_shutdown(), io).await;
}

/// Where meetings are journaled and their files written.
struct MeetingsIo {
    store: Store,
    /// `data_dir/meetings`
    dir: std::path::PathBuf,
}

/// Whatever carries out the core's actions.
struct Executors {
    handles: BTreeMap<String, NetworkHandle>,
    fetcher: Fetcher,
    store: Store,
    meetings: MeetingsIo,
    outbox: Outbox,
    relay: RelaySinks,
    watch: Option<WatchTriggers>,
}

/// Which MQTT events trigger a check of which watch, and the watch task to tell.
struct WatchTriggers {
    triggers: Triggers,
    tx: mpsc::Sender<usize>,
}

impl WatchTriggers {
    fn on_mqtt(&self, msg: &crate::core::relay::MqttMessage) {
        for i in self.triggers.matching(&msg.network, &msg.topic) {
            // A full queue means checks are pending already; the watch is checked soon.
            if self.tx.try_send(i).is_err() {
                tracing::debug!(watch = i, topic = %msg.topic, "watch trigger dropped: checks pending");
            }
        }
    }
}

/// Where relayed MQTT events go: the durable outbox, then the MQTT ack.
struct RelaySinks {
    outbox: Outbox,
    mqtt: BTreeMap<String, MqttHandle>,
}

/// Stores a relay batch, then acknowledges its MQTT message. If the store fails the message
/// is not acknowledged: the broker sends it again after the next reconnect.
fn store_relay_batch(batch: &crate::core::relay::RelayBatch, sinks: &RelaySinks) {
    if let Err(e) = sinks.outbox.put_relayed(batch, Utc::now()) {
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

/// The bridges as the core sees them: each network's kind, and the line budget on IRC.
fn bridge_settings(cfg: &Config) -> BridgeSettings {
    let mut sides = BTreeMap::new();
    if let Some(c) = &cfg.console {
        sides.insert(c.name.clone(), SideKind::Console);
    }
    for n in &cfg.irc {
        // The adapter may add up to a few `_` to the longest configured nick.
        let nick_len = n
            .alt_nicks
            .iter()
            .map(String::len)
            .chain([n.nick.len()])
            .max()
            .unwrap_or(9)
            + 3;
        sides.insert(
            n.name.clone(),
            SideKind::Irc {
                nick_len,
                user_len: n.username.len() + 1,
            },
        );
    }
    for n in &cfg.matrix {
        sides.insert(n.name.clone(), SideKind::Matrix);
    }
    let bridges = cfg
        .bridges
        .iter()
        .map(|b| BridgeSpec {
            name: b.name.clone(),
            rooms: b.rooms.clone(),
            max_lines: b.max_lines,
            ignore_nicks: b.ignore_nicks.clone(),
            ignore_users: b.ignore_users.clone(),
            // Checked when the config was read.
            ignore_regex: b
                .ignore_regex
                .iter()
                .filter_map(|r| regex::Regex::new(r).ok())
                .collect(),
            staleness: b.staleness,
            max_mentions: b.max_mentions,
            presence: PresenceRelay {
                join_part: b.join_part,
                quits: b.quits,
                nick_changes: b.nick_changes,
                topics: b.topics,
            },
            matrix: MatrixRelay {
                edits: match b.edits {
                    EditMode::Diff => crate::core::EditMode::Diff,
                    EditMode::Full => crate::core::EditMode::Full,
                    EditMode::Ignore => crate::core::EditMode::Ignore,
                },
                reactions: b.reactions,
                redactions: b.redactions,
                encrypted: b.encrypted,
            },
        })
        .collect();
    BridgeSettings {
        bridges,
        sides,
        public_url: cfg.web.as_ref().map(|w| w.public_url.clone()),
    }
}

fn meeting_settings(cfg: &Config) -> Option<MeetingSettings> {
    let scope = match &cfg.meetings {
        MeetingRooms::None => return None,
        MeetingRooms::All => MeetingScope::All,
        MeetingRooms::Some(rooms) => MeetingScope::Rooms(rooms.clone()),
    };
    Some(MeetingSettings {
        scope,
        public_url: cfg
            .web
            .as_ref()
            .map(|w| w.public_url.clone())
            .unwrap_or_default(),
        bot_nick: cfg.bot.nick.clone(),
        prefix: cfg.bot.prefix.clone(),
    })
}

async fn dispatch(core: &mut Core, event: Event, io: &Executors, health: &Health) {
    let handles = &io.handles;
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
        Event::Mqtt(msg) => {
            if let Some(w) = &io.watch {
                w.on_mqtt(&msg);
            }
            Event::Mqtt(msg)
        }
        other => other,
    };
    let reloaded = match &event {
        Event::CommandsReloaded(set) => Some(set.0.len()),
        _ => None,
    };
    let actions = core.handle(event, Utc::now());
    if let Some(commands) = reloaded {
        tracing::info!(commands, "SIGHUP: commands reloaded");
    }
    execute(actions, io).await;
}

async fn execute(actions: Vec<Action>, io: &Executors) {
    for action in actions {
        match action {
            Action::Send {
                room,
                text,
                html,
                kind,
                priority,
                tag,
            } => {
                let Some(h) = io.handles.get(&room.network) else {
                    tracing::warn!(%room, "no running network for this room; message dropped");
                    continue;
                };
                let out = Outgoing {
                    room: room.room,
                    text,
                    html,
                    mentions: Vec::new(),
                    kind,
                    priority,
                    op: tag.map_or(OutgoingOp::Message, OutgoingOp::Tagged),
                    receipt: Receipt::default(),
                };
                if h.send(out).await.is_err() {
                    tracing::warn!(network = %h.name, "network stopped; message dropped");
                }
            }
            Action::Edit { room, tag, text } => {
                let out = Outgoing {
                    room: room.room.clone(),
                    text,
                    html: None,
                    mentions: Vec::new(),
                    kind: SendKind::Reply,
                    priority: Priority::Command,
                    op: OutgoingOp::Edit(tag),
                    receipt: Receipt::default(),
                };
                send_to(io, &room, out).await;
            }
            Action::React { room, to, key } => {
                let out = Outgoing {
                    room: room.room.clone(),
                    text: String::new(),
                    html: None,
                    mentions: Vec::new(),
                    kind: SendKind::Reply,
                    priority: Priority::Command,
                    op: OutgoingOp::React { to, key },
                    receipt: Receipt::default(),
                };
                send_to(io, &room, out).await;
            }
            Action::Fetch(req) => io.fetcher.start(req),
            Action::Paste { id, text } => {
                // Stored before the message that links to it is.
                if let Err(e) = io.store.put_paste(&id, &text, Utc::now()) {
                    tracing::error!(error = %e, "paste not stored");
                }
            }
            Action::MediaLink {
                id,
                network,
                uri,
                name,
                mimetype,
            } => {
                // Stored before the message that links to it is.
                let link = crate::store::MediaLink {
                    network,
                    uri,
                    name,
                    mimetype,
                };
                if let Err(e) = io.store.put_media(&id, &link, Utc::now()) {
                    tracing::error!(error = %e, "media link not stored");
                }
            }
            Action::Bridged(m) => {
                // Committed before the next event is handled: a crash loses no message.
                if let Err(e) = io.outbox.put_bridged(&m) {
                    tracing::error!(room = %m.room, error = %e, "bridged message not stored; dropped");
                }
            }
            Action::Relay(batch) => store_relay_batch(&batch, &io.relay),
            Action::Audit(entry) => {
                tracing::info!(command = %entry.command, principal = %entry.principal, room = %entry.room, result = %entry.result, "audit");
                if let Err(e) = io.store.insert_audit(&entry) {
                    tracing::error!(error = %e, "audit entry not stored");
                }
            }
            Action::MeetingJournal { key, line } => {
                // Committed before the next event is handled: a crash loses no line.
                if let Err(e) = io.meetings.store.journal_meeting_line(&key, &line) {
                    tracing::error!(room = %key.room, error = %e, "meeting line not journaled");
                }
            }
            Action::MeetingFiles {
                meeting,
                finished,
                stale_base,
            } => {
                let store = io.meetings.store.clone();
                let dir = io.meetings.dir.clone();
                let room = meeting.room.clone();
                let done = tokio::task::spawn_blocking(move || {
                    write_meeting_files(&store, &dir, &meeting, finished, stale_base.as_deref())
                })
                .await;
                match done {
                    Ok(Ok(())) => tracing::info!(%room, finished, "meeting files written"),
                    Ok(Err(e)) => tracing::error!(%room, error = %e, "meeting files not written"),
                    Err(e) => tracing::error!(%room, error = %e, "meeting file writer failed"),
                }
            }
        }
    }
}

/// Hands a message to its network's adapter, or says why it could not.
async fn send_to(io: &Executors, room: &crate::core::RoomRef, out: Outgoing) {
    let Some(h) = io.handles.get(&room.network) else {
        tracing::warn!(%room, "no running network for this room; message dropped");
        return;
    };
    if h.send(out).await.is_err() {
        tracing::warn!(network = %h.name, "network stopped; message dropped");
    }
}

/// Writes a meeting's files, then records them (and, when it is finished, closes its journal
/// and indexes it): in that order, so that a crash in between only writes them again.
fn write_meeting_files(
    store: &Store,
    dir: &std::path::Path,
    m: &crate::core::Meeting,
    finished: bool,
    stale_base: Option<&str>,
) -> Result<(), String> {
    let written = crate::minutes::write_files(dir, m, stale_base).map_err(|e| e.to_string())?;
    let files_dir = written
        .first()
        .and_then(|p| p.parent())
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| dir.to_path_buf());
    store
        .record_meeting_files(m, &files_dir, finished)
        .map_err(|e| e.to_string())
}

/// Raises the soft limit of open files to the hard one (the kernel's default soft limit,
/// 1024, is soon used up by a busy web site); returns the limit in force.
fn open_files_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}
