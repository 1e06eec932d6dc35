//! Starting and stopping one network at a time: at start every network, and on a reload
//! (DESIGN §5 "Reload") those added, removed or changed. Each network runs under a token of
//! its own, a child of the shutdown token, so that one can be stopped while the others go on.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::settings::kind_name;
use super::supervise::Supervisor;
use crate::adapters::matrix::MediaSource;
use crate::adapters::mqtt::MqttHandle;
use crate::adapters::{NetworkHandle, SHUTDOWN_GRACE};
use crate::config::{Config, MqttConfig, NetworkKind};
use crate::core::relay::Relay;
use crate::core::watch::Triggers;
use crate::core::{Event, LinkState};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::store::Store;
use crate::web::Health;

/// One running network: its adapter with whatever the adapter spawned, and its outbox
/// deliverer, stopped together by `stop`.
pub(super) struct NetTask {
    pub(super) stop: CancellationToken,
    tasks: TaskTracker,
}

impl NetTask {
    /// Where the network's adapter spawns its tasks.
    pub(super) fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Stops the network: the adapter drains its queue (within [`SHUTDOWN_GRACE`]) and ends,
    /// and so does the deliverer. Waits for both, a little longer than the grace; whether
    /// they ended in time.
    pub(super) async fn stop(self) -> bool {
        self.stop.cancel();
        tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(5), self.tasks.wait())
            .await
            .is_ok()
    }
}

/// What starting a network needs (cheap clones of the runtime's parts).
#[derive(Clone)]
pub(super) struct Launcher {
    pub(super) store: Store,
    pub(super) tracker: TaskTracker,
    pub(super) shutdown: CancellationToken,
    pub(super) supervisor: Supervisor,
    pub(super) events: mpsc::Sender<Event>,
    pub(super) health: Health,
    pub(super) metrics: Metrics,
    pub(super) data_dir: PathBuf,
}

impl Launcher {
    /// A token and a tracker for a new network; the runtime's tracker waits for its tasks.
    pub(super) fn task(&self) -> NetTask {
        let tasks = TaskTracker::new();
        tasks.close();
        let t = tasks.clone();
        self.tracker.spawn(async move { t.wait().await });
        NetTask {
            stop: self.shutdown.child_token(),
            tasks,
        }
    }

    /// Starts the IRC or Matrix network `name` of `cfg` (the console is started once, at
    /// start) and shows it as starting on the health page.
    pub(super) fn start_chat(
        &self,
        cfg: &Config,
        name: &str,
    ) -> Option<(NetworkHandle, Option<MediaSource>, NetTask)> {
        let task = self.task();
        let metrics = self.metrics.network(name);
        let started = if let Some(c) = cfg.irc.iter().find(|n| n.name == name) {
            let h = crate::adapters::irc::spawn(
                c.clone(),
                Some(self.store.clone()),
                metrics,
                self.events.clone(),
                &task.tasks,
                task.stop.clone(),
            );
            (h, None, NetworkKind::Irc)
        } else if let Some(c) = cfg.matrix.iter().find(|n| n.name == name) {
            let (h, media) = crate::adapters::matrix::spawn(
                c.clone(),
                &self.data_dir,
                metrics,
                self.events.clone(),
                &task.tasks,
                task.stop.clone(),
            );
            (h, Some(media), NetworkKind::Matrix)
        } else {
            return None;
        };
        let (handle, media, kind) = started;
        self.health
            .set(name, kind_name(kind), LinkState::Starting, 0);
        self.metrics.declare_network(name, kind == NetworkKind::Irc);
        self.watch(&handle.name, &task, handle.clone());
        Some((handle, media, task))
    }

    /// Starts an MQTT connection subscribed to `filters`.
    pub(super) fn start_mqtt(&self, m: &MqttConfig, filters: Vec<String>) -> (MqttHandle, NetTask) {
        let task = self.task();
        self.health.set(
            &m.name,
            kind_name(NetworkKind::Mqtt),
            LinkState::Starting,
            0,
        );
        self.metrics.declare_network(&m.name, false);
        let h = crate::adapters::mqtt::spawn(
            m.clone(),
            filters,
            self.events.clone(),
            &task.tasks,
            task.stop.clone(),
        );
        let acks = h.clone();
        self.supervisor.watch_adapter(
            &m.name,
            task.stop.clone(),
            async move { acks.closed().await },
        );
        (h, task)
    }

    /// Watches a chat network's adapter from outside (see [`Supervisor::watch_adapter`]).
    pub(super) fn watch(&self, name: &str, task: &NetTask, handle: NetworkHandle) {
        self.supervisor.watch_adapter(
            name,
            task.stop.clone(),
            async move { handle.closed().await },
        );
    }

    /// Starts a chat network's outbox deliverer, stopped with the network.
    pub(super) fn deliver(&self, outbox: &Outbox, handle: &NetworkHandle, task: &NetTask) {
        let d = outbox.add_network(handle, task.stop.clone());
        let counted = task.tasks.token();
        self.supervisor.spawn_until(
            format!("outbox:{}", handle.name),
            task.stop.clone(),
            async move {
                d.await;
                drop(counted);
            },
        );
    }
}

/// The topic filters an MQTT connection subscribes to: the relay's and the watches'.
pub(super) fn mqtt_filters(relay: &Relay, triggers: &Triggers, network: &str) -> Vec<String> {
    let mut filters = relay.filters_for(network);
    for f in triggers.filters_for(network) {
        if !filters.contains(&f) {
            filters.push(f);
        }
    }
    filters
}

/// The filters of every MQTT connection of `cfg`.
pub(super) fn all_mqtt_filters(
    cfg: &Config,
    relay: &Relay,
    triggers: &Triggers,
) -> BTreeMap<String, Vec<String>> {
    cfg.mqtt
        .iter()
        .map(|m| (m.name.clone(), mqtt_filters(relay, triggers, &m.name)))
        .collect()
}
