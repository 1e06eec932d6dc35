//! Long-lived tasks are watched: a task that panics, or ends while the bot is not stopping,
//! is logged and named on `/healthz` (503). The core task is special: without it nothing
//! works, so its death stops the bot with a non-zero status (see [`super::AppError::CoreDied`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::task::JoinError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::web::Health;

/// Spawns and watches long-lived tasks.
#[derive(Clone)]
pub(super) struct Supervisor {
    tracker: TaskTracker,
    shutdown: CancellationToken,
    health: Health,
    /// Set when the core task died: the process then ends with a non-zero status.
    core_died: Arc<AtomicBool>,
}

impl Supervisor {
    pub(super) fn new(tracker: TaskTracker, shutdown: CancellationToken, health: Health) -> Self {
        Self {
            tracker,
            shutdown,
            health,
            core_died: Arc::default(),
        }
    }

    pub(super) fn core_died(&self) -> bool {
        self.core_died.load(Ordering::SeqCst)
    }

    /// Runs `fut` as the task `name` on the async workers, and watches it.
    pub(super) fn spawn<F>(&self, name: impl Into<String>, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn_until(name, self.shutdown.clone(), fut);
    }

    /// Like [`Supervisor::spawn`], for a task that may be stopped on its own (`stop`, a
    /// child of the shutdown token: a network or watch removed by a reload); ending once
    /// `stop` is cancelled is then no death.
    pub(super) fn spawn_until<F>(&self, name: impl Into<String>, stop: CancellationToken, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let name = name.into();
        let task = tokio::spawn(fault::inject(&name, Box::pin(fut)));
        let this = self.clone();
        self.tracker.spawn(async move {
            let outcome = task.await;
            this.report(&name, &stop, outcome);
        });
    }

    /// Runs the core task on a thread of its own (a blocking-pool thread), so that its store
    /// calls, which must be committed before the next event is handled, never hold up an
    /// async worker; whatever it spawns still runs on the async workers. Its death stops the
    /// bot.
    pub(super) fn spawn_core<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let runtime = tokio::runtime::Handle::current();
        let fut = fault::inject("core", Box::pin(fut));
        let task = tokio::task::spawn_blocking(move || runtime.block_on(fut));
        let this = self.clone();
        self.tracker.spawn(async move {
            let outcome = task.await;
            if this.report("core", &this.shutdown, outcome) {
                tracing::error!("the core task is gone: sigbot stops");
                this.core_died.store(true, Ordering::SeqCst);
                this.shutdown.cancel();
            }
        });
    }

    /// Watches a network adapter from outside: it has stopped when its queue has no reader
    /// left, which before shutdown means it died.
    /// `stop` is the network's own token (a child of the shutdown token).
    pub(super) fn watch_adapter<F>(&self, name: &str, stop: CancellationToken, closed: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let name = format!("network:{name}");
        let shutdown = stop;
        let this = self.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = closed => {
                    if !shutdown.is_cancelled() {
                        tracing::error!(task = %name, "network adapter stopped while the bot runs; its network is down until a restart");
                        this.health.task_died(&name);
                    }
                }
            }
        });
    }

    /// Logs how a task ended and marks it dead on the health page when it should not have;
    /// whether it died.
    fn report(&self, name: &str, stop: &CancellationToken, outcome: Result<(), JoinError>) -> bool {
        match outcome {
            Ok(()) if stop.is_cancelled() => false,
            Ok(()) => {
                tracing::error!(task = %name, "task ended while the bot runs");
                self.health.task_died(name);
                true
            }
            Err(e) if e.is_panic() => {
                let panic = panic_message(e.into_panic());
                tracing::error!(task = %name, %panic, "task panicked");
                self.health.task_died(name);
                true
            }
            Err(_) => false,
        }
    }
}

/// Runs `f` (store calls) on the blocking pool, off the async workers; a panic in it goes on
/// in the caller.
pub(super) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("blocking call did not finish: {e}"),
        },
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Fault injection for tests of the supervision: debug builds only, so that no setting of a
/// release build can reach it. `SIGBOT_FAULT=<task>[,<task>…]` makes each named task
/// (`core`, `outbox:<network>`, `web`, `watch`, …) panic as it starts.
#[cfg(debug_assertions)]
mod fault {
    use super::Task;

    pub(super) fn inject(name: &str, fut: Task) -> Task {
        let named =
            std::env::var("SIGBOT_FAULT").is_ok_and(|v| v.split(',').any(|t| t.trim() == name));
        if !named {
            return fut;
        }
        let name = name.to_owned();
        Box::pin(async move {
            drop(fut);
            panic!("injected fault (SIGBOT_FAULT) in task {name}");
        })
    }
}

#[cfg(not(debug_assertions))]
mod fault {
    use super::Task;

    pub(super) fn inject(_name: &str, fut: Task) -> Task {
        fut
    }
}
