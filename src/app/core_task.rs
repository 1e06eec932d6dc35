//! The one task that owns the core: it feeds it events, keeps the health page current and
//! has the core's actions carried out.

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::execute::Executors;
use super::notify::Notifier;
use crate::core::{Action, Core, Event};
use crate::web::Health;

/// Runs the core. It stops on shutdown after handling every event that was already queued,
/// then drops the network handles so that each adapter drains its outgoing queue and ends.
pub(super) async fn core_task(
    mut core: Core,
    mut events: mpsc::Receiver<Event>,
    mut exec: Executors,
    health: Health,
    mut notifier: Notifier,
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
            () = shutdown.cancelled() => break,
        };
        dispatch(&mut core, event, &mut exec, &health, &mut notifier).await;
    }
    // Whatever was already queued still gets its answer.
    while let Ok(event) = events.try_recv() {
        dispatch(&mut core, event, &mut exec, &health, &mut notifier).await;
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
/// health page and systemd's status, queue lengths and the watchdog's heartbeat on each tick,
/// watch triggers), and carries out the answer.
async fn dispatch(
    core: &mut Core,
    event: Event,
    exec: &mut Executors,
    health: &Health,
    notifier: &mut Notifier,
) {
    match &event {
        Event::NetworkState {
            network,
            state,
            queue_len,
        } => {
            health.update(network, *state, *queue_len);
            notifier.refresh(health);
        }
        Event::Tick => {
            notifier.heartbeat();
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
