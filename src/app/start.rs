//! The start steps, in the order `run_until` takes them, sharing one [`Runtime`]: the store,
//! the networks, the MQTT relay, the package watches, the web site, the clock, the HTTP
//! fetcher, SIGHUP, and last the core task.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::AppError;
use super::core_task::core_task;
use super::execute::{Executors, MeetingsIo, RelaySinks, WatchTriggers};
use super::networks::{Launcher, NetTask, all_mqtt_filters};
use super::notify::{self, Notifier};
use super::reload::{CoreReload, Reloader, WatchTask};
use super::settings::{bridge_settings, core_settings, kind_name, meeting_settings};
use super::supervise::{Supervisor, blocking};
use crate::adapters::matrix::MediaSource;
use crate::adapters::mqtt::MqttHandle;
use crate::adapters::{NetworkHandle, console};
use crate::config::commands as command_files;
use crate::config::{Config, DEFAULT_PASTE_TTL, MeetingRooms, NetworkKind};
use crate::core::relay::Relay;
use crate::core::watch::Triggers;
use crate::core::{Action, CommandSet, Core, Event, LinkState};
use crate::lookup::fetch::Fetcher;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::store::{Retention, Store};
use crate::web::media::MediaSources;
use crate::web::{self, Health};

/// What the start steps share, and what they have started so far.
pub(super) struct Runtime {
    cfg: Config,
    started: DateTime<Utc>,
    store: Store,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    supervisor: Supervisor,
    /// Every task that reports to the core holds a clone; the core task ends once all of
    /// them are gone.
    events: mpsc::Sender<Event>,
    health: Health,
    metrics: Metrics,
    handles: BTreeMap<String, NetworkHandle>,
    /// The Matrix networks' file sources, shared by the web site and the reloads.
    media: MediaSources<MediaSource>,
    /// Every running network's tasks, by name, to stop one on a reload.
    networks: BTreeMap<String, NetTask>,
    /// The package watcher, when there are watches.
    watch: Option<WatchTask>,
    /// The meeting schedules the calendars serve (a reload replaces them).
    schedules: web::calendar::Shared,
}

/// The MQTT side: what to relay, where relayed events wait, and the connections to ack on.
pub(super) struct Relaying {
    relay: Relay,
    outbox: Outbox,
    mqtt: BTreeMap<String, MqttHandle>,
    triggers: Triggers,
    /// What each MQTT connection subscribed to.
    filters: BTreeMap<String, Vec<String>>,
}

/// Everything is started; what is left is to wait for the end.
pub(super) struct Running {
    tracker: TaskTracker,
    shutdown: CancellationToken,
    supervisor: Supervisor,
}

impl Runtime {
    /// Opens the store in `data_dir` (on the blocking pool, like every store call) and notes
    /// this start in it.
    pub(super) async fn open_store(
        cfg: Config,
        shutdown: CancellationToken,
    ) -> Result<(Runtime, mpsc::Receiver<Event>), AppError> {
        let started = Utc::now();
        let data_dir = cfg.bot.data_dir.clone();
        let metrics = Metrics::new(
            Some(data_dir.join("sigbot.db")),
            started.timestamp_millis() as f64 / 1000.0,
        );
        let retention = Retention {
            links: cfg.web.as_ref().map_or(DEFAULT_PASTE_TTL, |w| w.paste_ttl),
            audit: cfg.store.audit_retention,
            journals: cfg.store.journal_retention,
        };
        let cap = cfg.store.max_db_size;
        let store = blocking(move || open_and_note(&data_dir, retention, cap, started)).await?;
        let (events, events_rx) = mpsc::channel::<Event>(1024);
        let tracker = TaskTracker::new();
        let health = Health::with_ready_grace(
            cfg.web
                .as_ref()
                .map_or(web::DEFAULT_READY_GRACE, |w| w.ready_grace),
        );
        let supervisor = Supervisor::new(tracker.clone(), shutdown.clone(), health.clone());
        let rt = Runtime {
            cfg,
            started,
            store,
            tracker,
            shutdown,
            supervisor,
            events,
            health,
            metrics,
            handles: BTreeMap::new(),
            media: MediaSources::default(),
            networks: BTreeMap::new(),
            watch: None,
            schedules: Arc::default(),
        };
        *rt.schedules.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(rt.cfg.meeting_schedules.clone());
        Ok((rt, events_rx))
    }

    pub(super) fn load_commands(&self) -> Result<CommandSet, AppError> {
        let dir = &self.cfg.bot.commands_dir;
        let commands = command_files::load_dir(dir).map_err(AppError::Commands)?;
        tracing::info!(commands = commands.len(), dir = %dir.display(), "declarative commands loaded");
        Ok(commands)
    }

    /// What starting a network needs, for the start steps and the reloads.
    fn launcher(&self) -> Launcher {
        Launcher {
            store: self.store.clone(),
            tracker: self.tracker.clone(),
            shutdown: self.shutdown.clone(),
            supervisor: self.supervisor.clone(),
            events: self.events.clone(),
            health: self.health.clone(),
            metrics: self.metrics.clone(),
            data_dir: self.cfg.bot.data_dir.clone(),
        }
    }

    /// The chat networks: console, IRC and Matrix, each its own driver task. All of them,
    /// MQTT too, show as starting on the health page until they report.
    pub(super) fn start_networks(&mut self) {
        let networks = self.cfg.networks();
        for (name, kind) in &networks {
            self.health
                .set(name, kind_name(*kind), LinkState::Starting, 0);
            self.metrics
                .declare_network(name, *kind == NetworkKind::Irc);
        }
        let others = networks
            .iter()
            .filter(|(_, k)| *k != NetworkKind::Console)
            .count();
        let launcher = self.launcher();
        if let Some(c) = &self.cfg.console {
            let task = launcher.task();
            // The console is never stopped alone (a reload keeps it), and when stdin ends
            // while it is the only network it stops the whole bot: it gets the shutdown token.
            let h = console::spawn(
                c,
                &self.cfg.bot.nick,
                self.metrics.network(&c.name),
                self.events.clone(),
                task.tasks(),
                self.shutdown.clone(),
                others == 0,
            );
            launcher.watch(&c.name, &task, h.clone());
            self.handles.insert(c.name.clone(), h);
            self.networks.insert(c.name.clone(), task);
        }
        let chat = self.cfg.irc.iter().map(|n| &n.name);
        let chat: Vec<String> = chat
            .chain(self.cfg.matrix.iter().map(|n| &n.name))
            .cloned()
            .collect();
        for name in chat {
            if let Some((h, media, task)) = launcher.start_chat(&self.cfg, &name) {
                self.handles.insert(name.clone(), h);
                if let Some(m) = media {
                    let mut sources = self.media.write().unwrap_or_else(|p| p.into_inner());
                    sources.insert(name.clone(), m);
                }
                self.networks.insert(name, task);
            }
        }
    }

    /// The outbox's deliverers, then the MQTT relay: the embedded broker and the connections;
    /// the relay remembers what it already relayed.
    pub(super) async fn start_relay(&mut self) -> Result<Relaying, AppError> {
        let mut relay = Relay::new(&self.cfg.relays)?;
        // Started before the core task: what a previous run left in the outbox goes first.
        let outbox = Outbox::new(self.store.clone(), &self.metrics);
        let launcher = self.launcher();
        for (name, h) in &self.handles {
            if let Some(task) = self.networks.get(name) {
                launcher.deliver(&outbox, h, task);
            }
        }
        outbox.report_orphans_soon();
        let triggers = Triggers::new(&self.cfg.watches);
        let filters = all_mqtt_filters(&self.cfg, &relay, &triggers);
        let mqtt = self.start_mqtt(&filters).await?;
        let (o, started) = (outbox.clone(), self.started);
        relay.remember(blocking(move || o.seen_keys(started)).await?);
        Ok(Relaying {
            relay,
            outbox,
            mqtt,
            triggers,
            filters,
        })
    }

    /// The embedded broker first, so that the connections find it; each connection
    /// subscribes to what the relay and the watch triggers want of it (`filters`).
    async fn start_mqtt(
        &mut self,
        filters: &BTreeMap<String, Vec<String>>,
    ) -> Result<BTreeMap<String, MqttHandle>, AppError> {
        if let Some(b) = &self.cfg.broker {
            crate::adapters::mqtt::broker::start(b).await?;
        }
        let launcher = self.launcher();
        let mut handles = BTreeMap::new();
        for m in &self.cfg.mqtt {
            let f = filters.get(&m.name).cloned().unwrap_or_default();
            let (h, task) = launcher.start_mqtt(m, f);
            handles.insert(m.name.clone(), h);
            self.networks.insert(m.name.clone(), task);
        }
        Ok(handles)
    }

    /// Package-update alerts: polled by their own task, triggered by the core task.
    pub(super) fn start_watch(
        &mut self,
        relaying: &mut Relaying,
    ) -> Result<Option<WatchTriggers>, AppError> {
        let Some(task) = WatchTask::start(&self.launcher(), &self.cfg.watches, &relaying.outbox)
            .map_err(AppError::HttpClient)?
        else {
            return Ok(None);
        };
        let tx = task.tx.clone();
        self.watch = Some(task);
        Ok(Some(WatchTriggers {
            triggers: std::mem::take(&mut relaying.triggers),
            tx,
        }))
    }

    pub(super) async fn start_web(&mut self) -> Result<(), AppError> {
        let Some(w) = &self.cfg.web else {
            return Ok(());
        };
        let listener = web::bind(w.listen)
            .await
            .map_err(|source| AppError::WebBind {
                addr: w.listen,
                source,
            })?;
        let app = if self.cfg.meetings == MeetingRooms::None {
            web::router(self.health.clone(), self.started)
        } else {
            web::router_with_meetings(
                self.health.clone(),
                self.started,
                self.store.clone(),
                w.public_url.clone(),
            )
        };
        let app = if self.cfg.meetings == MeetingRooms::None {
            app
        } else {
            app.merge(web::calendar::routes(
                self.store.clone(),
                self.schedules.clone(),
                w.public_url.clone(),
            ))
        };
        let app = if self.cfg.metrics.enabled && self.cfg.metrics.listen.is_none() {
            app.merge(web::metrics_routes(self.metrics.clone()))
        } else {
            app
        };
        let app = app
            .merge(web::paste::routes(self.store.clone()))
            .merge(web::media::routes(
                self.store.clone(),
                self.media.clone(),
                web::media_cache::MediaCache::new(
                    self.cfg.bot.data_dir.join("media-cache"),
                    web::media_cache::CacheLimits::with_capacity(w.media_cache_bytes),
                ),
            ));
        let limits = web::Limits::for_open_files(open_files_limit());
        self.supervisor.spawn(
            "web",
            web::serve(listener, app, limits, self.shutdown.clone()),
        );
        Ok(())
    }

    /// `/metrics` on a listener of its own, when `[metrics] listen` is set (the web site
    /// then does not serve it).
    pub(super) async fn start_metrics(&self) -> Result<(), AppError> {
        let m = &self.cfg.metrics;
        let (true, Some(addr)) = (m.enabled, m.listen) else {
            return Ok(());
        };
        let listener = web::bind(addr)
            .await
            .map_err(|source| AppError::MetricsBind { addr, source })?;
        let limits = web::Limits::for_open_files(open_files_limit());
        self.supervisor.spawn(
            "metrics",
            web::serve(
                listener,
                web::metrics_routes(self.metrics.clone()),
                limits,
                self.shutdown.clone(),
            ),
        );
        Ok(())
    }

    /// Deletes what is past its retention (§12) at start and then periodically, on the
    /// blocking pool.
    pub(super) fn start_pruning(&self) {
        let store = self.store.clone();
        let every = prune_interval(store.retention());
        let shutdown = self.shutdown.clone();
        self.supervisor.spawn("prune", async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let s = store.clone();
                match blocking(move || s.prune(Utc::now())).await {
                    Ok(p) if p.total() > 0 => tracing::info!(
                        pastes = p.pastes,
                        media = p.media,
                        relay_keys = p.relay_keys,
                        audit = p.audit,
                        journal_lines = p.journal_lines,
                        "expired rows pruned"
                    ),
                    Ok(_) => {}
                    // A full database is said once by the store; deleting frees room anyway.
                    Err(e) if e.is_full() => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "expired rows not pruned; tried again later")
                    }
                }
            }
        });
    }

    /// A periodic tick for time-based work, and to refresh queue lengths.
    pub(super) fn start_ticker(&self) {
        let tx = self.events.clone();
        let shutdown = self.shutdown.clone();
        self.supervisor.spawn("ticker", async move {
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

    /// The requests of declarative commands, each its own task.
    pub(super) fn start_fetcher(&self) -> Result<Fetcher, AppError> {
        Fetcher::new(
            self.events.clone(),
            self.tracker.clone(),
            self.shutdown.clone(),
        )
        .map_err(AppError::HttpClient)
    }

    /// SIGHUP reads the config file and `commands/` again (DESIGN §5 "Reload"): the reloader, run
    /// as the task `sighup`, and the channel on which it hands the core task what changed.
    pub(super) fn start_reload_on_hangup(
        &mut self,
        relaying: &Relaying,
        on_reload: super::OnReload,
    ) -> Result<mpsc::Receiver<CoreReload>, AppError> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup()).map_err(AppError::Signals)?;
        let (to_core, reloads) = mpsc::channel(1);
        let mut reloader = Reloader {
            cfg: self.cfg.clone(),
            launcher: self.launcher(),
            outbox: relaying.outbox.clone(),
            handles: self.handles.clone(),
            mqtt: relaying.mqtt.clone(),
            filters: relaying.filters.clone(),
            networks: std::mem::take(&mut self.networks),
            watch: self.watch.take(),
            media: self.media.clone(),
            to_core,
            schedules: self.schedules.clone(),
            on_reload,
        };
        let shutdown = self.shutdown.clone();
        self.supervisor.spawn("sighup", async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    got = hup.recv() => if got.is_none() { return },
                }
                reloader.reload().await;
            }
        });
        Ok(reloads)
    }

    /// The core with its commands, relay and bridges, and the meetings a previous run left
    /// open, and last the core task. The runtime's own event sender
    /// goes here, so that the core task ends once every task that reports to it has.
    pub(super) async fn start_core(
        self,
        events: mpsc::Receiver<Event>,
        commands: CommandSet,
        relaying: Relaying,
        watch: Option<WatchTriggers>,
        fetcher: Fetcher,
        reloads: mpsc::Receiver<CoreReload>,
    ) -> Result<Running, AppError> {
        let mut core = Core::new(core_settings(&self.cfg), self.started).with_relay(relaying.relay);
        let commands = Arc::new(commands);
        core.set_commands(commands.clone());
        core.enable_bridges(bridge_settings(&self.cfg), rand::random());
        if !self.cfg.bridges.is_empty() {
            tracing::info!(bridges = self.cfg.bridges.len(), "bridges enabled");
        }
        let first_actions = self.resume_meetings(&mut core).await?;
        self.load_schedules(&mut core).await?;
        let Runtime {
            cfg,
            store,
            tracker,
            shutdown,
            supervisor,
            events: own_sender,
            health,
            metrics,
            handles,
            ..
        } = self;
        drop(own_sender);
        let exec = Executors {
            handles,
            fetcher,
            store: store.clone(),
            meetings: MeetingsIo {
                mail: super::mail::start_sender(&cfg, &store, &supervisor, &shutdown),
                store,
                dir: cfg.bot.data_dir.join("meetings"),
            },
            outbox: relaying.outbox.clone(),
            relay: RelaySinks {
                outbox: relaying.outbox,
                mqtt: relaying.mqtt,
                group: None,
            },
            watch,
            commands,
            held: Default::default(),
            overflow: 0,
        };
        // Every network is started and the web site listens (bound before this step).
        let mut notifier = Notifier::new(cfg.web.as_ref().map(|w| w.listen));
        notifier.ready(&health);
        supervisor.spawn_core(core_task(
            core,
            events,
            reloads,
            exec,
            super::core_task::Observers::new(health, metrics, notifier),
            first_actions,
            shutdown.clone(),
        ));
        tracing::info!(networks = cfg.networks().len(), "sigbot started");
        Ok(Running {
            tracker,
            shutdown,
            supervisor,
        })
    }

    /// The meeting schedules, with the reminders earlier runs posted (DESIGN §7 "Schedules").
    async fn load_schedules(&self, core: &mut Core) -> Result<(), AppError> {
        let list = self.cfg.meeting_schedules.clone();
        if list.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        let since = Utc::now() - chrono::TimeDelta::days(1);
        let posted = blocking(move || store.reminders_posted(since)).await?;
        tracing::info!(
            schedules = list.len(),
            reminders_posted = posted.len(),
            "meeting schedules loaded"
        );
        core.set_schedules(crate::core::schedule::Schedules::new(list, posted));
        Ok(())
    }

    /// Turns meetings on, resuming those a previous run left in the journal.
    async fn resume_meetings(&self, core: &mut Core) -> Result<Vec<Action>, AppError> {
        let Some(settings) = meeting_settings(&self.cfg) else {
            return Ok(Vec::new());
        };
        let store = self.store.clone();
        let journals = blocking(move || store.unfinished_meetings()).await?;
        if !journals.is_empty() {
            tracing::info!(
                meetings = journals.len(),
                "resuming meetings from the journal"
            );
        }
        let now = Utc::now();
        let store = self.store.clone();
        let claims =
            blocking(move || store.meeting_claims(now - chrono::TimeDelta::hours(1))).await?;
        let actions = core.enable_meetings(settings, journals, now);
        core.claim_meeting_files(claims);
        Ok(actions)
    }
}

impl Running {
    /// Waits for shutdown, then for every task to finish; an error when the core task died.
    pub(super) async fn wait_for_shutdown(self) -> Result<(), AppError> {
        self.tracker.close();
        self.shutdown.cancelled().await;
        notify::stopping();
        self.tracker.wait().await;
        tracing::info!("sigbot stopped");
        if self.supervisor.core_died() {
            return Err(AppError::CoreDied);
        }
        Ok(())
    }
}

/// Opens the store with its retention and size cap, and notes this start in it.
fn open_and_note(
    data_dir: &std::path::Path,
    retention: Retention,
    cap: Option<u64>,
    started: DateTime<Utc>,
) -> Result<Store, AppError> {
    let mut store = Store::open(data_dir)?;
    store.set_retention(retention);
    if let Some(cap) = cap {
        let set = store.set_max_size(cap)?;
        if set > cap {
            tracing::warn!(
                max_db_size = cap,
                db_size = set,
                "the database is already larger than [store] max_db_size: it may not grow further"
            );
        }
    }
    if store.meta("first_start")?.is_none() {
        store.set_meta("first_start", &started.to_rfc3339())?;
    }
    store.set_meta("last_version", crate::VERSION)?;
    Ok(store)
}

/// How often expired rows are pruned: every minute, or more often when something expires
/// sooner (a relay dedup window is its own, and a minute of expired keys is nothing).
fn prune_interval(r: &Retention) -> Duration {
    let shortest = r.links.min(r.audit).min(r.journals);
    (shortest / 2).clamp(Duration::from_secs(1), Duration::from_secs(60))
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
