//! The one task that owns the core: it feeds it events, keeps the health page current and
//! has the core's actions carried out.

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::execute::Executors;
use super::reload::CoreReload;
use crate::core::{Action, Core, Event};
use crate::web::Health;

/// Runs the core. It stops on shutdown after handling every event that was already queued,
/// then drops the network handles so that each adapter drains its outgoing queue and ends.
pub(super) async fn core_task(
    mut core: Core,
    mut events: mpsc::Receiver<Event>,
    mut reloads: mpsc::Receiver<CoreReload>,
    mut exec: Executors,
    health: Health,
    first_actions: Vec<Action>,
    shutdown: CancellationToken,
) {
    carry_out(&mut core, first_actions, &mut exec).await;
    loop {
        let event = tokio::select! {
            biased;
            ev = events.recv() => match ev {
                Some(ev) => ev,
                None => break,
            },
            Some(reload) = reloads.recv() => {
                apply_reload(&mut core, reload, &mut exec, &health).await;
                continue;
            }
            () = shutdown.cancelled() => break,
        };
        dispatch(&mut core, event, &mut exec, &health).await;
    }
    // Whatever was already queued still gets its answer.
    while let Ok(event) = events.try_recv() {
        dispatch(&mut core, event, &mut exec, &health).await;
    }
    let last = core.on_shutdown();
    carry_out(&mut core, last, &mut exec).await;
    if !exec.held.is_empty() {
        tracing::error!(
            writes = exec.held.len(),
            "stopping while the database is full: writes held in memory are lost"
        );
    }
}

/// Carries out `actions`, and hands the core the events they answer at once.
async fn carry_out(core: &mut Core, actions: Vec<Action>, exec: &mut Executors) {
    let mut answers = exec.execute(actions).await;
    while !answers.is_empty() {
        let mut next = Vec::new();
        for event in answers {
            let actions = core.handle(event, Utc::now());
            next.extend(exec.execute(actions).await);
        }
        answers = next;
    }
}

/// Hands one event to the core, after what the app itself takes from it (link states for the
/// health page, queue lengths on each tick, watch triggers), and carries out the answer.
async fn dispatch(core: &mut Core, event: Event, exec: &mut Executors, health: &Health) {
    match &event {
        Event::NetworkState {
            network,
            state,
            queue_len,
        } => health.update(network, *state, *queue_len),
        Event::Tick => {
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
    let actions = core.handle(event, Utc::now());
    if let Some(commands) = reloaded {
        tracing::info!(commands, "SIGHUP: commands reloaded");
    }
    carry_out(core, actions, exec).await;
}

/// A config reload: the networks, MQTT connections and watch triggers in force, and the
/// core's new settings, swapped between two events; the reloader is told when it is done.
async fn apply_reload(core: &mut Core, reload: CoreReload, exec: &mut Executors, health: &Health) {
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
    for (network, h) in health.snapshot() {
        core.handle(
            Event::NetworkState {
                network,
                state: h.state,
                queue_len: h.queue_len,
            },
            Utc::now(),
        );
    }
    carry_out(core, actions, exec).await;
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
