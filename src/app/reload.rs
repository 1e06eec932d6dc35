//! SIGHUP (DESIGN §5 "Reload"): the config file the bot was started with and `commands/`
//! are read and checked again as at start. A bad config is refused, its location logged, and
//! the running one stays. Otherwise each network is compared with the one running: unchanged
//! ones keep their connections, removed ones are stopped after draining, changed ones
//! restarted, new ones started; then the core task gets the networks and the core's new
//! settings between two events. What only a restart can change keeps its running value,
//! with a warning.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::execute::WatchTriggers;
use super::networks::{Launcher, NetTask, all_mqtt_filters};
use super::settings::{bridge_settings, core_settings, meeting_settings};
use super::supervise::blocking;
use super::watch::Watcher;
use crate::adapters::NetworkHandle;
use crate::adapters::matrix::MediaSource;
use crate::adapters::mqtt::MqttHandle;
use crate::config::commands as command_files;
use crate::config::{Config, ConfigError, MeetingRooms, NetworkKind};
use crate::core::relay::Relay;
use crate::core::watch::{Triggers, WatchSpec};
use crate::core::{CommandSet, Reload, ReloadHandle};
use crate::outbox::Outbox;
use crate::web::media::MediaSources;

/// What the core task swaps in on a reload, between two events.
pub(super) struct CoreReload {
    /// Every chat network running now.
    pub(super) handles: BTreeMap<String, NetworkHandle>,
    /// Every MQTT connection running now, to acknowledge on.
    pub(super) mqtt: BTreeMap<String, MqttHandle>,
    pub(super) watch: Option<WatchTriggers>,
    pub(super) settings: ReloadHandle,
    /// Told once the core has the new settings.
    pub(super) done: oneshot::Sender<()>,
}

/// The package watcher's task: its trigger queue, and its own stop.
pub(super) struct WatchTask {
    pub(super) tx: mpsc::Sender<usize>,
    stop: CancellationToken,
}

impl WatchTask {
    /// Starts the watcher as the task `watch`; `None` without watches.
    pub(super) fn start(
        launcher: &Launcher,
        watches: &[WatchSpec],
        outbox: &Outbox,
    ) -> Result<Option<WatchTask>, reqwest::Error> {
        if watches.is_empty() {
            return Ok(None);
        }
        let watcher = Watcher::new(watches.to_vec(), launcher.store.clone(), outbox.clone())?;
        let (tx, rx) = mpsc::channel(64);
        let stop = launcher.shutdown.child_token();
        launcher
            .supervisor
            .spawn_until("watch", stop.clone(), watcher.run(rx, stop.clone()));
        tracing::info!(watches = watches.len(), "package watches started");
        Ok(Some(WatchTask { tx, stop }))
    }
}

/// The SIGHUP task's state: the config in force and what runs for it.
pub(super) struct Reloader {
    pub(super) cfg: Config,
    pub(super) launcher: Launcher,
    pub(super) outbox: Outbox,
    pub(super) handles: BTreeMap<String, NetworkHandle>,
    pub(super) mqtt: BTreeMap<String, MqttHandle>,
    /// What each MQTT connection subscribed to when it started.
    pub(super) filters: BTreeMap<String, Vec<String>>,
    pub(super) networks: BTreeMap<String, NetTask>,
    pub(super) watch: Option<WatchTask>,
    /// The Matrix networks' file sources, as the web site's `/media` finds them.
    pub(super) media: MediaSources<MediaSource>,
    pub(super) to_core: mpsc::Sender<CoreReload>,
    /// The meeting schedules the calendars serve.
    pub(super) schedules: crate::web::calendar::Shared,
    /// What `main` does with a config in force (the log filter).
    pub(super) on_reload: super::OnReload,
}

/// What a reload does to the networks (the console is never restarted: see
/// [`keep_restart_only`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Plan {
    pub(super) kept: Vec<String>,
    pub(super) added: Vec<String>,
    pub(super) removed: Vec<String>,
    pub(super) changed: Vec<String>,
}

impl Plan {
    /// Compares each IRC, Matrix and MQTT network of `old` with its namesake in `new`, as
    /// checked (bridged rooms joined included); an MQTT connection also by what it
    /// subscribes to (`*_filters`), which only a new connection changes.
    pub(super) fn new(
        old: &Config,
        new: &Config,
        old_filters: &BTreeMap<String, Vec<String>>,
        new_filters: &BTreeMap<String, Vec<String>>,
    ) -> Plan {
        let same = |name: &str, kind: NetworkKind| match kind {
            NetworkKind::Irc => {
                find(&old.irc, name, |n| &n.name) == find(&new.irc, name, |n| &n.name)
            }
            NetworkKind::Matrix => {
                find(&old.matrix, name, |n| &n.name) == find(&new.matrix, name, |n| &n.name)
            }
            NetworkKind::Mqtt => {
                find(&old.mqtt, name, |n| &n.name) == find(&new.mqtt, name, |n| &n.name)
                    && old_filters.get(name) == new_filters.get(name)
            }
            NetworkKind::Console => true,
        };
        let old_nets: BTreeMap<String, NetworkKind> = restartable(old);
        let new_nets: BTreeMap<String, NetworkKind> = restartable(new);
        let mut plan = Plan::default();
        for (name, kind) in &old_nets {
            match new_nets.get(name) {
                None => plan.removed.push(name.clone()),
                Some(k) if k == kind && same(name, *kind) => plan.kept.push(name.clone()),
                Some(_) => plan.changed.push(name.clone()),
            }
        }
        plan.added = new_nets
            .keys()
            .filter(|n| !old_nets.contains_key(*n))
            .cloned()
            .collect();
        plan
    }
}

fn restartable(cfg: &Config) -> BTreeMap<String, NetworkKind> {
    cfg.networks()
        .into_iter()
        .filter(|(_, k)| *k != NetworkKind::Console)
        .collect()
}

fn find<'a, T>(list: &'a [T], name: &str, name_of: impl Fn(&T) -> &String) -> Option<&'a T> {
    list.iter().find(|t| name_of(t) == name)
}

/// Gives `new` the running value of what only a restart can change, and names each one
/// that differed: `[bot] data_dir` (the store, its lock, the Matrix state), `[web]` (the
/// site's socket and routes), `[metrics]` (its listener), `[log] format` (the log's writer),
/// `[store]` (retention and size cap, set on the open database),
/// `[broker]` (the embedded broker), `[console]` (stdin is read once), and turning
/// `[meetings]` on or off (the site's meeting pages, the files of earlier runs).
pub(super) fn keep_restart_only(old: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut kept = Vec::new();
    if new.bot.data_dir != old.bot.data_dir {
        new.bot.data_dir = old.bot.data_dir.clone();
        kept.push("[bot] data_dir");
    }
    if new.web != old.web {
        new.web = old.web.clone();
        kept.push("[web]");
    }
    if new.metrics != old.metrics {
        new.metrics = old.metrics.clone();
        kept.push("[metrics]");
    }
    if new.log.format != old.log.format {
        new.log.format = old.log.format;
        kept.push("[log] format");
    }
    if new.store != old.store {
        new.store = old.store.clone();
        kept.push("[store]");
    }
    if new.broker != old.broker {
        new.broker = old.broker.clone();
        kept.push("[broker]");
    }
    if new.console != old.console {
        new.console = old.console.clone();
        kept.push("[console]");
    }
    if (new.meetings == MeetingRooms::None) != (old.meetings == MeetingRooms::None) {
        new.meetings = old.meetings.clone();
        kept.push("[meetings] on or off");
    }
    if new.meeting_mail != old.meeting_mail {
        new.meeting_mail = old.meeting_mail.clone();
        kept.push("[meetings.mail]");
    }
    kept
}

/// The config file and the command files it names, checked as at start.
fn read(path: &std::path::Path) -> Result<(Config, CommandSet), ConfigError> {
    let cfg = Config::load(path)?;
    let commands = command_files::load_dir(&cfg.bot.commands_dir)?;
    Ok((cfg, commands))
}

impl Reloader {
    /// One SIGHUP.
    pub(super) async fn reload(&mut self) {
        let path = self.cfg.path.clone();
        let (mut cfg, commands) = match blocking(move || read(&path)).await {
            Ok(read) => read,
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: config not reloaded; the running config stays");
                return;
            }
        };
        let relay = match Relay::new(&cfg.relays) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: config not reloaded; the running config stays");
                return;
            }
        };
        for setting in keep_restart_only(&self.cfg, &mut cfg) {
            tracing::warn!(
                setting,
                "SIGHUP: this setting changed but needs a restart; its running value stays"
            );
        }
        let filters = all_mqtt_filters(&cfg, &relay, &Triggers::new(&cfg.watches));
        let plan = Plan::new(&self.cfg, &cfg, &self.filters, &filters);
        for name in &plan.removed {
            self.stop(name, true).await;
        }
        for name in &plan.changed {
            self.stop(name, false).await;
        }
        for name in plan.added.iter().chain(&plan.changed) {
            self.start(&cfg, name, &filters);
        }
        let watch = self.reload_watches(&cfg);
        let settings = ReloadHandle(Arc::new(Reload {
            settings: core_settings(&cfg),
            bridges: bridge_settings(&cfg),
            meetings: meeting_settings(&cfg),
            relays: cfg.relays.clone(),
            commands: Arc::new(commands),
            schedules: cfg.meeting_schedules.clone(),
        }));
        // The calendars serve the new schedules from now on.
        *self.schedules.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(cfg.meeting_schedules.clone());
        let commands = settings.0.commands.len();
        let (done, applied) = oneshot::channel();
        let handover = CoreReload {
            handles: self.handles.clone(),
            mqtt: self.mqtt.clone(),
            watch,
            settings,
            done,
        };
        // The core task is gone only when the bot stops.
        if self.to_core.send(handover).await.is_err() || applied.await.is_err() {
            return;
        }
        for name in &plan.kept {
            tracing::info!(network = %name, "SIGHUP: network unchanged; its connection is kept");
        }
        tracing::info!(
            kept = plan.kept.len(),
            started = plan.added.len(),
            stopped = plan.removed.len(),
            restarted = plan.changed.len(),
            bridges = cfg.bridges.len(),
            relays = cfg.relays.len(),
            watches = cfg.watches.len(),
            commands,
            "SIGHUP: config reloaded"
        );
        (self.on_reload)(&cfg);
        self.cfg = cfg;
        self.filters = filters;
    }

    /// Stops a network after its adapter has drained its queue. A removed network's
    /// messages still in the outbox stay there (they go out if it comes back); a changed
    /// one keeps its place in the outbox for the connection that replaces it.
    async fn stop(&mut self, name: &str, removed: bool) {
        self.handles.remove(name);
        self.mqtt.remove(name);
        self.media_sources().remove(name);
        if removed {
            self.outbox.remove_network(name);
            self.launcher.health.remove(name);
        }
        let Some(task) = self.networks.remove(name) else {
            return;
        };
        let what = if removed { "removed" } else { "changed" };
        if task.stop().await {
            tracing::info!(network = %name, what, "SIGHUP: network stopped");
        } else {
            tracing::warn!(network = %name, what, "SIGHUP: network did not stop in time; going on");
        }
    }

    /// Starts a network added (or changed) by the reload.
    fn start(&mut self, cfg: &Config, name: &str, filters: &BTreeMap<String, Vec<String>>) {
        // Before it starts: one that dies at once is named again.
        for task in [format!("network:{name}"), format!("outbox:{name}")] {
            self.launcher.health.task_restarted(&task);
        }
        if let Some(m) = cfg.mqtt.iter().find(|m| m.name == name) {
            let f = filters.get(name).cloned().unwrap_or_default();
            let (h, task) = self.launcher.start_mqtt(m, f);
            self.mqtt.insert(name.to_owned(), h);
            self.networks.insert(name.to_owned(), task);
        } else if let Some((h, media, task)) = self.launcher.start_chat(cfg, name) {
            self.launcher.deliver(&self.outbox, &h, &task);
            if let Some(m) = media {
                self.media_sources().insert(name.to_owned(), m);
            }
            self.handles.insert(name.to_owned(), h);
            self.networks.insert(name.to_owned(), task);
        } else {
            return;
        }
        tracing::info!(network = %name, "SIGHUP: network started");
    }

    fn media_sources(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, MediaSource>> {
        self.media.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Restarts the package watcher when the watches changed; the triggers in force.
    fn reload_watches(&mut self, cfg: &Config) -> Option<WatchTriggers> {
        if cfg.watches != self.cfg.watches {
            if let Some(old) = self.watch.take() {
                old.stop.cancel();
            }
            self.launcher.health.task_restarted("watch");
            match WatchTask::start(&self.launcher, &cfg.watches, &self.outbox) {
                Ok(task) => self.watch = task,
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: package watches not restarted (HTTP client)")
                }
            }
        }
        self.watch.as_ref().map(|w| WatchTriggers {
            triggers: Triggers::new(&cfg.watches),
            tx: w.tx.clone(),
        })
    }
}

#[cfg(test)]
mod tests;
