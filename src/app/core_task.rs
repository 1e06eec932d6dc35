//! The one task that owns the core: it feeds it events, keeps the health page and the
//! metrics current and has the core's actions carried out.

use std::collections::HashMap;
use std::time::Instant;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::execute::Executors;
use super::notify::Notifier;
use super::reload::CoreReload;
use crate::core::{Action, Core, Event, LinkState, Request};
use crate::metrics::Metrics;
use crate::web::Health;

/// What the core task keeps current for the web site: the health page, with the core's
/// heartbeat, and the metrics.
pub(super) struct Observers {
    health: Health,
    metrics: Metrics,
    /// systemd's status line and watchdog.
    notifier: Notifier,
    /// Ticks seen, to do the costlier counts only now and then.
    ticks: u64,
    /// Lookups under way: when each started, and its kind.
    lookups: HashMap<u64, (Instant, &'static str)>,
}

impl Observers {
    pub(super) fn new(health: Health, metrics: Metrics, notifier: Notifier) -> Self {
        Self {
            health,
            metrics,
            notifier,
            ticks: 0,
            lookups: HashMap::new(),
        }
    }

    /// Notes the lookups among `actions`, to time them, and counts the meeting lines.
    fn starting(&mut self, actions: &[Action]) {
        for a in actions {
            match a {
                Action::Fetch(req) => {
                    let kind = match req.request {
                        Request::Http { .. } => "http",
                        Request::Koji { .. } => "koji",
                        Request::Repodata { .. } => "repodata",
                    };
                    self.lookups.insert(req.id, (Instant::now(), kind));
                }
                Action::MeetingJournal { .. } => self.metrics.meeting_line_journaled(),
                _ => {}
            }
        }
    }

    /// What an event tells the metrics before the core sees it.
    fn before(&mut self, event: &Event) {
        match event {
            Event::Message(m) => self.metrics.received(&m.room.network),
            Event::RichMessage(r) => self.metrics.received(&r.message.room.network),
            Event::NetworkState { network, state, .. } => {
                let was = self.health.snapshot().get(network).map(|h| h.state);
                if *state == LinkState::Reconnecting && was != Some(LinkState::Reconnecting) {
                    self.metrics.reconnecting(network);
                }
                self.metrics
                    .set_connected(network, *state == LinkState::Connected);
            }
            Event::FetchDone { id, .. } => {
                if let Some((started, kind)) = self.lookups.remove(id) {
                    self.metrics.lookup_took(kind, started.elapsed());
                }
            }
            _ => {}
        }
    }

    /// On each tick: the counts the core keeps, queue lengths and meetings; every few
    /// seconds the outbox's rows.
    fn tick(&mut self, core: &Core, exec: &Executors) {
        self.ticks += 1;
        let m = &self.metrics;
        for (name, h) in self.health.snapshot() {
            m.set_queue_length(&name, h.queue_len);
        }
        if let Some(relay) = core.relay() {
            let stats = relay.stats();
            for ((route, outcome), n) in &stats.by_route {
                m.set_relay_events(route, outcome, *n);
            }
            for (route, n) in &stats.digests_by_route {
                m.set_relay_digests(route, *n);
            }
        }
        for ((command, outcome), n) in core.command_counts() {
            m.set_command_invocations(command, outcome, *n);
        }
        m.set_meetings_active(core.meetings().running().count());
        if self.ticks % 5 == 1 {
            // The core task's own thread may wait for the store (DESIGN §12).
            match exec.store.outbox_networks() {
                Ok(waiting) => {
                    for name in exec.handles.keys() {
                        let n = waiting
                            .iter()
                            .find(|(w, _)| w == name)
                            .map_or(0, |(_, n)| *n);
                        m.set_outbox_rows(name, n as u64);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "outbox rows not counted"),
            }
        }
    }
}

/// Runs the core. It stops on shutdown after handling every event that was already queued,
/// then drops the network handles so that each adapter drains its outgoing queue and ends.
pub(super) async fn core_task(
    mut core: Core,
    mut events: mpsc::Receiver<Event>,
    mut reloads: mpsc::Receiver<CoreReload>,
    mut exec: Executors,
    mut obs: Observers,
    first_actions: Vec<Action>,
    shutdown: CancellationToken,
) {
    carry_out(&mut core, first_actions, &mut exec, &mut obs).await;
    loop {
        let event = tokio::select! {
            biased;
            ev = events.recv() => match ev {
                Some(ev) => ev,
                None => break,
            },
            Some(reload) = reloads.recv() => {
                apply_reload(&mut core, reload, &mut exec, &mut obs).await;
                continue;
            }
            () = shutdown.cancelled() => break,
        };
        if !matches!(event, Event::Mqtt(_)) {
            dispatch(&mut core, event, &mut exec, &mut obs).await;
            continue;
        }
        // Group commit: the MQTT events waiting behind this one are handled with it, their
        // relay batches committed in one transaction and then acknowledged. Under low load
        // a group is the one event: nothing waits for more to come.
        let (group, after) = gather_mqtt(event, || events.try_recv().ok());
        exec.begin_relay_group();
        for event in group {
            dispatch(&mut core, event, &mut exec, &mut obs).await;
        }
        exec.end_relay_group();
        if let Some(event) = after {
            dispatch(&mut core, event, &mut exec, &mut obs).await;
        }
    }
    // Whatever was already queued still gets its answer.
    while let Ok(event) = events.try_recv() {
        dispatch(&mut core, event, &mut exec, &mut obs).await;
    }
    let last = core.on_shutdown();
    carry_out(&mut core, last, &mut exec, &mut obs).await;
    if !exec.held.is_empty() {
        tracing::error!(
            writes = exec.held.len(),
            "stopping while the database is full: writes held in memory are lost"
        );
    }
}

/// At most this many MQTT events are committed in one transaction.
const MAX_GROUP: usize = 1_000;

/// Past this many payload bytes, a group of MQTT events takes no more.
const MAX_GROUP_BYTES: usize = 8 << 20;

/// The MQTT events that wait behind `first` (taken with `next`, which never waits): those
/// that come before any other event, at most [`MAX_GROUP`] of them and (past the first)
/// [`MAX_GROUP_BYTES`] of payload; and the other event taken that ended the group, which is
/// handled after it.
fn gather_mqtt(
    first: Event,
    mut next: impl FnMut() -> Option<Event>,
) -> (Vec<Event>, Option<Event>) {
    let size = |e: &Event| match e {
        Event::Mqtt(m) => match &m.payload {
            crate::core::relay::MqttPayload::Bytes(b) => b.len(),
            crate::core::relay::MqttPayload::TooLarge { .. } => 0,
        },
        _ => 0,
    };
    let mut bytes = size(&first);
    let mut group = vec![first];
    while group.len() < MAX_GROUP && bytes < MAX_GROUP_BYTES {
        match next() {
            Some(e @ Event::Mqtt(_)) => {
                bytes += size(&e);
                group.push(e);
            }
            Some(other) => return (group, Some(other)),
            None => break,
        }
    }
    (group, None)
}

/// Carries out `actions`, and hands the core the events they answer at once.
async fn carry_out(
    core: &mut Core,
    actions: Vec<Action>,
    exec: &mut Executors,
    obs: &mut Observers,
) {
    obs.starting(&actions);
    let mut answers = exec.execute(actions).await;
    while !answers.is_empty() {
        let mut next = Vec::new();
        for event in answers {
            obs.before(&event);
            let actions = core.handle(event, Utc::now());
            obs.starting(&actions);
            next.extend(exec.execute(actions).await);
        }
        answers = next;
    }
}

/// Hands one event to the core, after what the app itself takes from it (link states for the
/// health page and systemd's status, queue lengths and the watchdog's heartbeat on each tick,
/// watch triggers), and carries out the answer.
async fn dispatch(core: &mut Core, event: Event, exec: &mut Executors, obs: &mut Observers) {
    obs.health.beat();
    obs.before(&event);
    let health = &obs.health;
    match &event {
        Event::NetworkState {
            network,
            state,
            queue_len,
        } => {
            health.update(network, *state, *queue_len);
            obs.notifier.refresh(health);
        }
        Event::Tick => {
            obs.notifier.heartbeat();
            refresh_queue_lengths(core, exec, health);
            exec.retry_held();
        }
        Event::Mqtt(msg) => {
            if let Some(w) = &exec.watch {
                w.on_mqtt(msg);
            }
        }
        _ => {}
    }
    let reloaded = match &event {
        Event::CommandsReloaded(set) => {
            exec.commands = set.0.clone();
            Some(set.0.len())
        }
        _ => None,
    };
    let tick = matches!(event, Event::Tick);
    let actions = core.handle(event, Utc::now());
    if tick {
        obs.tick(core, exec);
    }
    if let Some(commands) = reloaded {
        tracing::info!(commands, "SIGHUP: commands reloaded");
    }
    carry_out(core, actions, exec, obs).await;
}

/// A config reload: the networks, MQTT connections and watch triggers in force, and the
/// core's new settings, swapped between two events; the reloader is told when it is done.
async fn apply_reload(
    core: &mut Core,
    reload: CoreReload,
    exec: &mut Executors,
    obs: &mut Observers,
) {
    let CoreReload {
        handles,
        mqtt,
        watch,
        settings,
        done,
    } = reload;
    exec.handles = handles;
    exec.relay.mqtt = mqtt;
    exec.watch = watch;
    exec.commands = settings.0.commands.clone();
    let actions = core.handle(Event::Reloaded(settings), Utc::now());
    // A network started by the reload may have reported before the core knew it.
    for (network, h) in obs.health.snapshot() {
        core.handle(
            Event::NetworkState {
                network,
                state: h.state,
                queue_len: h.queue_len,
            },
            Utc::now(),
        );
    }
    carry_out(core, actions, exec, obs).await;
    obs.notifier.refresh(&obs.health);
    let _ = done.send(());
}

/// Tells the health page and the core how many messages wait in each adapter's queue, when
/// that changed.
fn refresh_queue_lengths(core: &mut Core, exec: &Executors, health: &Health) {
    for (name, h) in &exec.handles {
        if let Some(cur) = health.snapshot().get(name) {
            let queued = h.queued();
            if cur.queue_len != queued {
                health.update(name, cur.state, queued);
                // A link state carries no actions: the core only takes note.
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
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::core::relay::{MqttMessage, MqttPayload};

    fn mqtt(n: usize, len: usize) -> Event {
        Event::Mqtt(MqttMessage {
            network: "local".into(),
            topic: format!("t/{n}"),
            payload: MqttPayload::Bytes(vec![b'x'; len]),
            delivery: None,
        })
    }

    fn topic(e: &Event) -> String {
        match e {
            Event::Mqtt(m) => m.topic.clone(),
            other => format!("{other:?}"),
        }
    }

    fn gather(first: Event, queue: &mut VecDeque<Event>) -> (Vec<String>, Option<Event>) {
        let (group, after) = gather_mqtt(first, || queue.pop_front());
        (group.iter().map(topic).collect(), after)
    }

    #[test]
    fn alone_an_event_is_its_own_group() {
        let mut queue = VecDeque::new();
        let (group, after) = gather(mqtt(0, 10), &mut queue);
        assert_eq!(group, ["t/0"]);
        assert!(after.is_none());
    }

    #[test]
    fn the_events_waiting_join_in_order_up_to_another_kind_of_event() {
        let mut queue: VecDeque<Event> = (1..5).map(|n| mqtt(n, 10)).collect();
        queue.push_back(Event::Tick);
        queue.push_back(mqtt(9, 10));
        let (group, after) = gather(mqtt(0, 10), &mut queue);
        assert_eq!(group, ["t/0", "t/1", "t/2", "t/3", "t/4"]);
        // The tick is handled after the group, and the event behind it is left waiting.
        assert_eq!(after, Some(Event::Tick));
        assert_eq!(queue.len(), 1);
    }

    #[test]
    fn a_group_is_capped_by_count_and_by_bytes() {
        let mut queue: VecDeque<Event> = (1..=MAX_GROUP + 5).map(|n| mqtt(n, 1)).collect();
        let (group, after) = gather(mqtt(0, 1), &mut queue);
        assert_eq!(group.len(), MAX_GROUP);
        assert!(after.is_none());
        assert_eq!(queue.len(), 6);

        let big = MAX_GROUP_BYTES / 3 + 1;
        let mut queue: VecDeque<Event> = (1..10).map(|n| mqtt(n, big)).collect();
        let (group, _) = gather(mqtt(0, big), &mut queue);
        assert_eq!(group, ["t/0", "t/1", "t/2"]);
        // A first event over the budget still goes, alone.
        let mut queue: VecDeque<Event> = (1..3).map(|n| mqtt(n, 1)).collect();
        let (group, _) = gather(mqtt(0, MAX_GROUP_BYTES * 2), &mut queue);
        assert_eq!(group, ["t/0"]);
    }
}
