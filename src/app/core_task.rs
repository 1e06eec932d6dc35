//! The one task that owns the core: it feeds it events, keeps the health page current and
//! has the core's actions carried out.

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::execute::Executors;
use crate::core::{Action, Core, Event};
use crate::web::Health;

/// Runs the core. It stops on shutdown after handling every event that was already queued,
/// then drops the network handles so that each adapter drains its outgoing queue and ends.
pub(super) async fn core_task(
    mut core: Core,
    mut events: mpsc::Receiver<Event>,
    exec: Executors,
    health: Health,
    first_actions: Vec<Action>,
    shutdown: CancellationToken,
) {
    exec.execute(first_actions).await;
    loop {
        let event = tokio::select! {
            biased;
            ev = events.recv() => match ev {
                Some(ev) => ev,
                None => break,
            },
            () = shutdown.cancelled() => break,
        };
        dispatch(&mut core, event, &exec, &health).await;
    }
    // Whatever was already queued still gets its answer.
    while let Ok(event) = events.try_recv() {
        dispatch(&mut core, event, &exec, &health).await;
    }
    exec.execute(core.on_shutdown()).await;
}

/// Hands one event to the core, after what the app itself takes from it (link states for the
/// health page, queue lengths on each tick, watch triggers), and carries out the answer.
async fn dispatch(core: &mut Core, event: Event, exec: &Executors, health: &Health) {
    match &event {
        Event::NetworkState {
            network,
            state,
            queue_len,
        } => health.update(network, *state, *queue_len),
        Event::Tick => refresh_queue_lengths(core, exec, health),
        Event::Mqtt(msg) => {
            if let Some(w) = &exec.watch {
                w.on_mqtt(msg);
            }
        }
        _ => {}
    }
    let reloaded = match &event {
        Event::CommandsReloaded(set) => Some(set.0.len()),
        _ => None,
    };
    let actions = core.handle(event, Utc::now());
    if let Some(commands) = reloaded {
        tracing::info!(commands, "SIGHUP: commands reloaded");
    }
    exec.execute(actions).await;
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
