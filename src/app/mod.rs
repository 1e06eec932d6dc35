//! Wires everything together: store, adapters, the core task, the web site, and one
//! shutdown path (SIGINT/SIGTERM cancel one token; every task drains and finishes).
//!
//! - [`start`]: the start steps and the runtime context they share;
//! - `core_task`: the task that owns the core; `execute`: what carries out its actions;
//! - `settings`: the config turned into the core's settings; `notify`: what systemd is told;
//! - `networks`: starting and stopping one network; `reload`: SIGHUP, the config read again;
//! - [`watch`]: the package watcher; [`archive`], [`cli`] and [`online`]: the CLI
//!   subcommands.

pub mod archive;
pub mod cli;
mod core_task;
mod execute;
mod lock;
mod mail;
mod networks;
mod notify;
pub mod online;
mod reload;
mod settings;
mod start;
mod supervise;
pub mod watch;

use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::store::StoreError;
use start::Runtime;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("web site: cannot listen on {addr}: {source}")]
    WebBind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics: cannot listen on {addr}: {source}")]
    MetricsBind {
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
    #[error("the core task died (see the log); sigbot stopped")]
    CoreDied,
    #[error(transparent)]
    Broker(#[from] crate::adapters::mqtt::broker::BrokerError),
    #[error(transparent)]
    Lock(#[from] lock::LockError),
}

/// What the bot calls after each config reload (SIGHUP) that took effect, with the config
/// now in force: for what `main` owns, the log filter.
pub type OnReload = Box<dyn Fn(&Config) + Send + Sync>;

/// Runs the bot until SIGINT/SIGTERM (or, console-only, the end of stdin).
pub async fn run(cfg: Config) -> Result<(), AppError> {
    run_with(cfg, Box::new(|_| {})).await
}

/// [`run`], calling `on_reload` after each config reload.
pub async fn run_with(cfg: Config, on_reload: OnReload) -> Result<(), AppError> {
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone())?;
    run_until(cfg, shutdown, on_reload).await
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
pub async fn run_until(
    cfg: Config,
    shutdown: CancellationToken,
    on_reload: OnReload,
) -> Result<(), AppError> {
    let _lock = lock::lock_data_dir(&cfg.bot.data_dir)?;
    let (mut rt, events) = Runtime::open_store(cfg, shutdown).await?;
    let commands = rt.load_commands()?;
    rt.start_networks();
    let mut relaying = rt.start_relay().await?;
    let watch = rt.start_watch(&mut relaying)?;
    rt.start_web().await?;
    rt.start_metrics().await?;
    rt.start_ticker();
    rt.start_pruning();
    let fetcher = rt.start_fetcher()?;
    let reloads = rt.start_reload_on_hangup(&relaying, on_reload)?;
    let running = rt
        .start_core(events, commands, relaying, watch, fetcher, reloads)
        .await?;
    running.wait_for_shutdown().await
}
