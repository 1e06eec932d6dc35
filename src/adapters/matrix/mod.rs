//! The Matrix network adapter, on matrix-sdk.
//!
//! One driver task per `[[matrix]]` logs in (`login`: the saved session is restored, so that
//! the bot keeps one device and its keys across restarts), joins the configured rooms
//! (`rooms`), and syncs (`sync`): after each sync it hands the new timeline events to the
//! core and then records, in one transaction, their IDs and the next-batch token ([`state`]),
//! so that a restart handles what was sent meanwhile once and skips what is older than the
//! catch-up window. A second task sends the core's messages, one at a time so that each room
//! keeps their order (`sending`). `media` fetches files for the web site.
//!
//! Wire events are turned into core events by pure functions in [`convert`].

pub mod convert;
mod login;
mod media;
pub mod probe;
mod rooms;
mod sending;
pub mod state;
mod sync;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use matrix_sdk::Client;
use matrix_sdk::ruma::OwnedRoomId;
use rand::Rng as _;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use self::media::{MediaSource, parse_mxc};
use self::rooms::RoomNames;
use self::sending::Sender;
pub use self::sending::{edit_content, message_content, reaction_content};
use self::state::{NetworkDir, StateError};
use self::sync::SyncEnd;
use super::backoff::Backoff;
use super::{NetworkHandle, Outgoing};
use crate::config::MatrixConfig;
use crate::core::{Event, LinkState};
use crate::metrics::NetworkMetrics;

#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("matrix-sdk: {0}")]
    Sdk(#[from] matrix_sdk::Error),
    #[error("cannot set up the client: {0}")]
    Build(#[from] matrix_sdk::ClientBuildError),
    #[error("cannot log in: {0}")]
    Auth(String),
    #[error("the homeserver says this login is {actual}, but the config says {configured}")]
    WrongUser { configured: String, actual: String },
    /// The SDK's stores cannot be opened with the configured `store_passphrase`: the bot
    /// stops this network rather than log in as a new device.
    #[error("Matrix store: {why} ({})", path.display())]
    StoreSecret {
        path: std::path::PathBuf,
        why: &'static str,
    },
}

/// Starts the driver of one Matrix connection; returns its handle and what fetches its
/// files for the web site.
pub fn spawn(
    cfg: MatrixConfig,
    data_dir: &Path,
    metrics: NetworkMetrics,
    events: mpsc::Sender<Event>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> (NetworkHandle, MediaSource) {
    let (tx, rx) = mpsc::channel::<Outgoing>(1024);
    let name = cfg.name.clone();
    let (client_tx, client_rx) = watch::channel(None);
    let names = Arc::new(Mutex::new(RoomNames::default()));
    let media = MediaSource::new(client_rx.clone());
    let sender = Sender {
        tagged: Mutex::new(HashMap::new()),
        client: client_rx,
        cfg: cfg.clone(),
        names: names.clone(),
        shutdown: shutdown.clone(),
        events: events.clone(),
        metrics,
        paused_until: Mutex::new(None),
    };
    let driver = Driver {
        dir: NetworkDir::new(data_dir, &cfg.name),
        cfg,
        events,
        shutdown,
        started: Instant::now(),
        names,
        client: client_tx,
        members_reported: Mutex::new(HashSet::new()),
    };
    tracker.spawn(sender.run(rx));
    tracker.spawn(driver.run());
    (
        NetworkHandle::new(name, tx).with_window(sending::MATRIX_WINDOW),
        media,
    )
}

/// The connection's driver task: logs in, syncs, and logs in again when the session ends.
struct Driver {
    cfg: MatrixConfig,
    dir: NetworkDir,
    events: mpsc::Sender<Event>,
    shutdown: CancellationToken,
    started: Instant,
    names: Arc<Mutex<RoomNames>>,
    /// The logged-in client, for the sender; replaced after a new login.
    client: watch::Sender<Option<Client>>,
    /// Rooms whose members the core has been told about since this start.
    members_reported: Mutex<HashSet<OwnedRoomId>>,
}

impl Driver {
    async fn report(&self, state: LinkState) {
        crate::adapters::report_link(&self.events, &self.cfg.name, state, 0).await;
    }

    /// Sleeps for the next backoff delay; false when shutdown came first.
    async fn pause(&self, backoff: &mut Backoff) -> bool {
        let delay = backoff.next_delay(rand::rng().random());
        tracing::info!(delay_ms = delay.as_millis() as u64, "retrying after delay");
        tokio::select! {
            () = self.shutdown.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }

    #[tracing::instrument(skip_all, fields(network = %self.cfg.name))]
    async fn run(self) {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        loop {
            if self.shutdown.is_cancelled() {
                break;
            }
            let client = match self.connect().await {
                Ok(c) => c,
                Err(e @ MatrixError::StoreSecret { .. }) => {
                    tracing::error!(error = %e, "cannot open the Matrix store; this network stays stopped");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot log in");
                    self.report(LinkState::Reconnecting).await;
                    if !self.pause(&mut backoff).await {
                        break;
                    }
                    continue;
                }
            };
            backoff.reset();
            self.client.send_replace(Some(client.clone()));
            match self.sync_loop(&client).await {
                Ok(SyncEnd::Shutdown) => break,
                Ok(SyncEnd::LoggedOut) => {
                    tracing::warn!("the homeserver ended the session; logging in again");
                    if let Err(e) = self.dir.forget_session() {
                        tracing::warn!(error = %e, "cannot forget the old session");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "sync state unusable"),
            }
            self.report(LinkState::Reconnecting).await;
            if !self.pause(&mut backoff).await {
                break;
            }
        }
        self.report(LinkState::Stopped).await;
        tracing::info!("stopped");
    }
}
