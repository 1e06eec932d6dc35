//! The Matrix network adapter, on matrix-sdk.
//!
//! One driver task per `[[matrix]]` logs in (or restores the saved session, so that the bot
//! keeps one device and its keys across restarts), joins the configured rooms, and syncs.
//! After each sync it hands the new timeline events to the core and then records, in one
//! transaction, their IDs and the next-batch token ([`state`]): a restart continues where the
//! last handled sync ended, handles what was sent meanwhile once, and skips what is older
//! than the catch-up window. A second task sends the core's messages, one at a time so that
//! each room keeps their order, retrying transient failures (the SDK itself waits out 429s
//! for the `retry_after_ms` the server asks).
//!
//! Wire events are turned into core events by pure functions in [`convert`].

pub mod convert;
pub mod state;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::{RequestConfig, SyncSettings};
use matrix_sdk::deserialized_responses::TimelineEvent;
use matrix_sdk::room::MessagesOptions;
use matrix_sdk::ruma::api::client::filter::FilterDefinition;
use matrix_sdk::ruma::api::client::sync::sync_events::v3::Filter;
use matrix_sdk::ruma::api::error::ErrorKind;
use matrix_sdk::ruma::events::Mentions;
use matrix_sdk::ruma::events::room::message::RoomMessageEventContent;
use matrix_sdk::ruma::{
    OwnedEventId, OwnedRoomId, RoomAliasId, RoomId, RoomOrAliasId, TransactionId, UInt, UserId,
};
use matrix_sdk::store::RoomLoadSettings;
use matrix_sdk::sync::SyncResponse;
use matrix_sdk::{Client, Room, RoomMemberships, RoomState, SessionMeta, SessionTokens};
use rand::Rng as _;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::state::{NetworkDir, SavedSession, StateError, SyncState};
use super::backoff::Backoff;
use super::{NetworkHandle, Outgoing, OutgoingOp};
use crate::config::{MatrixAuth, MatrixConfig};
use crate::core::{Event, LinkState, Member, RoomRef, SendKind};

/// How long one `/sync` long poll waits for news.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Events asked per room and sync; a longer gap is paged back through `/messages`.
const TIMELINE_LIMIT: u32 = 50;
/// Pages of `/messages` read back at most to fill one gap.
const MAX_BACKFILL_PAGES: usize = 20;
/// Attempts to send one message before it is dropped (429s are waited out by the SDK).
const SEND_ATTEMPTS: u32 = 8;
/// After shutdown, how long queued messages may still take to go out.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

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
}

/// Starts the driver of one Matrix connection; returns its handle and what fetches its
/// files for the web site.
pub fn spawn(
    cfg: MatrixConfig,
    data_dir: &Path,
    events: mpsc::Sender<Event>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> (NetworkHandle, MediaSource) {
    let (tx, rx) = mpsc::channel::<Outgoing>(1024);
    let name = cfg.name.clone();
    let (client_tx, client_rx) = watch::channel(None);
    let names = Arc::new(Mutex::new(RoomNames::default()));
    let media = MediaSource {
        client: client_rx.clone(),
        http: reqwest::Client::new(),
    };
    let sender = Sender {
        tagged: Mutex::new(HashMap::new()),
        client: client_rx,
        cfg: cfg.clone(),
        names: names.clone(),
        shutdown: shutdown.clone(),
        events: events.clone(),
    };
    let driver = Driver {
        dir: NetworkDir::new(data_dir, &cfg.name),
        cfg,
        events,
        shutdown,
        started: Instant::now(),
        names,
        client: client_tx,
        members_reported: Mutex::new(std::collections::HashSet::new()),
    };
    tracker.spawn(sender.run(rx));
    tracker.spawn(driver.run());
    (NetworkHandle::new(name, tx), media)
}

/// Why a file could not be fetched from the homeserver.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("not logged in to the homeserver yet")]
    NotLoggedIn,
    #[error("not an mxc:// URI: {0:?}")]
    BadUri(String),
    #[error("download failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the homeserver answered {0}")]
    Status(reqwest::StatusCode),
    #[error("larger than {max} bytes")]
    TooLarge { max: u64 },
}

/// A file fetched from the homeserver.
#[derive(Debug)]
pub struct Download {
    pub bytes: Vec<u8>,
    /// The content type the homeserver gave.
    pub content_type: Option<String>,
}

/// Fetches files (`mxc://` URIs) with the bot's own login, through the authenticated media
/// API. Cloneable; waits for nothing: before the first login it fails.
#[derive(Clone)]
pub struct MediaSource {
    client: watch::Receiver<Option<Client>>,
    http: reqwest::Client,
}

impl MediaSource {
    /// Downloads `uri`, at most `max` bytes.
    pub async fn download(&self, uri: &str, max: u64) -> Result<Download, MediaError> {
        let (server, media_id) = parse_mxc(uri).ok_or_else(|| MediaError::BadUri(uri.into()))?;
        let client = self
            .client
            .borrow()
            .clone()
            .ok_or(MediaError::NotLoggedIn)?;
        let token = client.access_token().ok_or(MediaError::NotLoggedIn)?;
        let url = format!(
            "{}/_matrix/client/v1/media/download/{server}/{media_id}",
            client.homeserver().as_str().trim_end_matches('/')
        );
        let mut response = self
            .http
            .get(url)
            .bearer_auth(token)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(reqwest::Error::without_url)?;
        if !response.status().is_success() {
            return Err(MediaError::Status(response.status()));
        }
        if response.content_length().is_some_and(|n| n > max) {
            return Err(MediaError::TooLarge { max });
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(reqwest::Error::without_url)?
        {
            if (bytes.len() + chunk.len()) as u64 > max {
                return Err(MediaError::TooLarge { max });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Download {
            bytes,
            content_type,
        })
    }
}

/// `mxc://server/id` as (server, id), both checked to be safe in a URL path.
pub fn parse_mxc(uri: &str) -> Option<(&str, &str)> {
    let (server, id) = uri.strip_prefix("mxc://")?.split_once('/')?;
    let server_ok = !server.is_empty()
        && server
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    let id_ok = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
    (server_ok && id_ok).then_some((server, id))
}

/// How rooms are named in room references: as configured (an alias stays an alias), else by
/// room ID.
#[derive(Debug, Default)]
struct RoomNames {
    by_id: HashMap<OwnedRoomId, String>,
    by_name: HashMap<String, OwnedRoomId>,
}

impl RoomNames {
    fn insert(&mut self, id: OwnedRoomId, name: String) {
        self.by_name.insert(name.clone(), id.clone());
        self.by_id.insert(id, name);
    }

    fn name_of(&self, id: &RoomId) -> String {
        self.by_id
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }
}

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
    members_reported: Mutex<std::collections::HashSet<OwnedRoomId>>,
}

/// Why a session with the homeserver ended.
enum SyncEnd {
    Shutdown,
    /// The access token is no longer valid: log in again.
    LoggedOut,
}

impl Driver {
    async fn report(&self, state: LinkState) {
        let _ = self
            .events
            .send(Event::NetworkState {
                network: self.cfg.name.clone(),
                state,
                queue_len: 0,
            })
            .await;
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

    /// Restores the saved session, or logs in and saves it.
    async fn connect(&self) -> Result<Client, MatrixError> {
        self.dir.create()?;
        let saved = self.dir.load_session().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "saved session unreadable; logging in again");
            None
        });
        let saved = saved.filter(|s| {
            s.homeserver == self.cfg.homeserver && s.session.meta.user_id == self.cfg.user
        });
        if saved.is_none() {
            // A new login is a new device: the old device's stores are of no use to it.
            self.dir.forget_session()?;
        }
        let client = Client::builder()
            .homeserver_url(&self.cfg.homeserver)
            .sqlite_store(self.dir.sdk_store(), None)
            .request_config(
                RequestConfig::new()
                    .timeout(Duration::from_secs(60))
                    .retry_limit(4),
            )
            .build()
            .await?;
        let auth = client.matrix_auth();
        if let Some(saved) = saved {
            tracing::info!(device = %saved.session.meta.device_id, "restoring the saved session");
            auth.restore_session(saved.session, RoomLoadSettings::default())
                .await?;
            return Ok(client);
        }
        let session = match &self.cfg.auth {
            MatrixAuth::Password(password) => {
                auth.login_username(&self.cfg.user, password.expose())
                    .initial_device_display_name(&self.cfg.device_name)
                    .send()
                    .await?;
                auth.session()
                    .ok_or_else(|| MatrixError::Auth("the login gave no session".into()))?
            }
            MatrixAuth::AccessToken(token) => {
                let (user_id, device_id) = whoami(&self.cfg.homeserver, token.expose()).await?;
                let session = MatrixSession {
                    meta: SessionMeta {
                        user_id: UserId::parse(&user_id)
                            .map_err(|e| MatrixError::Auth(e.to_string()))?,
                        device_id: device_id.into(),
                    },
                    tokens: SessionTokens {
                        access_token: token.expose().to_owned(),
                        refresh_token: None,
                    },
                };
                auth.restore_session(session.clone(), RoomLoadSettings::default())
                    .await?;
                session
            }
        };
        if session.meta.user_id != self.cfg.user {
            return Err(MatrixError::WrongUser {
                configured: self.cfg.user.clone(),
                actual: session.meta.user_id.to_string(),
            });
        }
        tracing::info!(device = %session.meta.device_id, "logged in as a new device");
        self.dir.save_session(&SavedSession {
            homeserver: self.cfg.homeserver.clone(),
            session,
        })?;
        Ok(client)
    }

    async fn sync_loop(&self, client: &Client) -> Result<SyncEnd, MatrixError> {
        let state = self.dir.open_sync_state()?;
        let own = client
            .user_id()
            .map(|u| u.to_string())
            .unwrap_or_else(|| self.cfg.user.clone());
        let mut filter = FilterDefinition::with_lazy_loading();
        filter.room.timeline.limit = Some(UInt::from(TIMELINE_LIMIT));
        let filter = Filter::FilterDefinition(filter);
        let mut joined_configured = false;
        self.learn_names(client).await;
        // Whether the last sync succeeded, and whether any did since this login.
        let mut connected = false;
        let mut synced_once = false;
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(120));
        loop {
            let position = blocking({
                let s = state.clone();
                move || s.position()
            })
            .await?;
            let mut settings = SyncSettings::default().filter(filter.clone());
            if let Some((token, _)) = &position {
                settings = settings.token(token.clone());
            }
            // The first sync answers at once; later ones wait for news.
            if synced_once {
                settings = settings.timeout(SYNC_TIMEOUT);
            }
            let response = tokio::select! {
                () = self.shutdown.cancelled() => return Ok(SyncEnd::Shutdown),
                r = client.sync_once(settings) => r,
            };
            let response = match response {
                Ok(r) => r,
                Err(e) => {
                    if matches!(e.client_api_error_kind(), Some(ErrorKind::UnknownToken(_))) {
                        return Ok(SyncEnd::LoggedOut);
                    }
                    tracing::warn!(error = %e, "sync failed");
                    if connected {
                        connected = false;
                        self.report(LinkState::Reconnecting).await;
                    }
                    if !self.pause(&mut backoff).await {
                        return Ok(SyncEnd::Shutdown);
                    }
                    continue;
                }
            };
            backoff.reset();
            let now = Utc::now();
            let handled = self
                .on_sync(client, &own, &response, position.as_ref(), &state, now)
                .await?;
            let keep_since = now - TimeDelta::from_std(self.cfg.catch_up).unwrap_or_default() * 2;
            let next_batch = response.next_batch.clone();
            blocking({
                let s = state.clone();
                move || s.commit(&next_batch, &handled, now, keep_since)
            })
            .await?;
            if !synced_once {
                synced_once = true;
                tracing::info!(
                    elapsed_ms = self.started.elapsed().as_millis() as u64,
                    rooms = client.joined_rooms().len(),
                    "first sync completed"
                );
            }
            if !connected {
                connected = true;
                self.report(LinkState::Connected).await;
            }
            if !joined_configured {
                joined_configured = true;
                self.join_configured(client).await;
                for room in client.joined_rooms() {
                    self.report_members(&room).await;
                }
            }
        }
    }

    /// Learns the room IDs of the configured rooms, before the first sync hands their
    /// events over: a room configured by alias must be named by its alias from the first
    /// event on (a bridge knows it by that name; catch-up after a restart depends on it).
    async fn learn_names(&self, client: &Client) {
        for name in &self.cfg.rooms {
            let Ok(alias) = RoomAliasId::parse(name) else {
                continue;
            };
            match client.resolve_room_alias(&alias).await {
                Ok(r) => {
                    self.names.lock().unwrap().insert(r.room_id, name.clone());
                }
                Err(e) => tracing::warn!(room = %name, error = %e, "cannot resolve the alias"),
            }
        }
    }

    /// Joins the configured rooms (those not joined yet) and learns their names.
    async fn join_configured(&self, client: &Client) {
        for name in &self.cfg.rooms {
            let id = if let Ok(alias) = RoomAliasId::parse(name) {
                match client.resolve_room_alias(&alias).await {
                    Ok(r) => Some(r.room_id),
                    Err(e) => {
                        tracing::warn!(room = %name, error = %e, "cannot resolve the alias");
                        None
                    }
                }
            } else {
                RoomId::parse(name).ok()
            };
            if let Some(id) = &id {
                self.names.lock().unwrap().insert(id.clone(), name.clone());
                if client
                    .get_room(id)
                    .is_some_and(|r| r.state() == RoomState::Joined)
                {
                    continue;
                }
            }
            let Ok(target) = RoomOrAliasId::parse(name) else {
                continue;
            };
            match client.join_room_by_id_or_alias(&target, &[]).await {
                Ok(room) => {
                    tracing::info!(room = %name, room_id = %room.room_id(), "joined");
                    self.names
                        .lock()
                        .unwrap()
                        .insert(room.room_id().to_owned(), name.clone());
                }
                Err(e) => tracing::warn!(room = %name, error = %e, "cannot join"),
            }
        }
    }

    /// Tells the core who is in a room (for the bridge's pills and name clashes).
    async fn report_members(&self, room: &Room) {
        let own = room.own_user_id().to_owned();
        let members = match room.members(RoomMemberships::JOIN).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(room_id = %room.room_id(), error = %e, "cannot list the members");
                return;
            }
        };
        let members = members
            .iter()
            .filter(|m| m.user_id() != own)
            .map(|m| Member {
                id: Some(m.user_id().to_string()),
                name: m.name().to_owned(),
            })
            .collect();
        let name = self.names.lock().unwrap().name_of(room.room_id());
        self.members_reported
            .lock()
            .unwrap()
            .insert(room.room_id().to_owned());
        let _ = self
            .events
            .send(Event::RoomMembers {
                room: RoomRef::new(&self.cfg.name, name),
                members,
            })
            .await;
    }

    /// Hands the sync's new events to the core and answers invitations; returns the IDs of
    /// the events handed over.
    async fn on_sync(
        &self,
        client: &Client,
        own: &str,
        response: &SyncResponse,
        position: Option<&(String, DateTime<Utc>)>,
        state: &SyncState,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, MatrixError> {
        for (room_id, invite) in &response.rooms.invited {
            let stripped: Vec<Value> = invite
                .invite_state
                .events
                .iter()
                .filter_map(|raw| serde_json::from_str(raw.json().get()).ok())
                .collect();
            let inviter = convert::inviter(&stripped, own);
            self.on_invite(client, room_id, inviter.as_deref()).await;
        }

        let mut handled = Vec::new();
        // On the very first start, everything in the rooms is history: nothing is replayed.
        let Some((_, first_sync)) = position else {
            return Ok(handled);
        };
        let catch_up = TimeDelta::from_std(self.cfg.catch_up).unwrap_or_default();
        let cutoff = now - catch_up;
        let mut skipped_old = 0usize;
        for (room_id, update) in &response.rooms.joined {
            let Some(room) = client.get_room(room_id) else {
                continue;
            };
            let mut events: Vec<&TimelineEvent> = update.timeline.events.iter().collect();
            let backfill;
            if update.timeline.limited
                && let Some(prev) = &update.timeline.prev_batch
            {
                // Never page back to before the first start.
                let floor = cutoff.max(*first_sync);
                backfill = self.backfill(&room, prev, own, floor, state).await;
                events = backfill.iter().chain(events).collect();
            }
            let values: Vec<Value> = events
                .iter()
                .filter_map(|ev| serde_json::from_str(ev.raw().json().get()).ok())
                .collect();
            let room_ref =
                RoomRef::new(&self.cfg.name, self.names.lock().unwrap().name_of(room_id));
            let selection = convert::select(&values, own, cutoff);
            skipped_old += selection.too_old;
            let encrypted = room.encryption_state().is_encrypted();
            if encrypted && !self.cfg.encrypted_rooms {
                if !selection.handle.is_empty() {
                    tracing::warn!(room = %room_ref, "encrypted room, but encrypted_rooms = false: ignored");
                }
                continue;
            }
            let members_changed = values.iter().any(|v| v["type"] == "m.room.member");
            let reported = self.members_reported.lock().unwrap().contains(room_id);
            if members_changed || !reported {
                self.report_members(&room).await;
            }
            for &i in &selection.undecryptable {
                let id = values[i]["event_id"].as_str().unwrap_or_default();
                tracing::warn!(room = %room_ref, event_id = id, "cannot decrypt this event");
            }
            for &i in &selection.handle {
                let value = &values[i];
                let Some(env) = convert::envelope(value) else {
                    continue;
                };
                let id = env.event_id.to_owned();
                if handled.contains(&id)
                    || blocking({
                        let s = state.clone();
                        let id = id.clone();
                        move || s.is_handled(&id)
                    })
                    .await?
                {
                    continue;
                }
                let nick = display_name(&room, env.sender).await;
                let Some(event) = convert::to_core_event(value, &room_ref, &nick, encrypted) else {
                    continue;
                };
                tracing::debug!(room = %room_ref, event_id = %id, "to the core");
                if self.events.send(event).await.is_err() {
                    break;
                }
                handled.push(id);
            }
        }
        if skipped_old > 0 {
            tracing::info!(
                skipped = skipped_old,
                catch_up_s = self.cfg.catch_up.as_secs(),
                "skipped events older than the catch-up window"
            );
        }
        Ok(handled)
    }

    /// Pages back from `prev_batch` to fill a gap the server left in a timeline, stopping at
    /// the cutoff, at an event already handled or at the bot's own join. Oldest first.
    async fn backfill(
        &self,
        room: &Room,
        prev_batch: &str,
        own: &str,
        cutoff: DateTime<Utc>,
        state: &SyncState,
    ) -> Vec<TimelineEvent> {
        let mut found = Vec::new();
        let mut from = Some(prev_batch.to_owned());
        'pages: for _ in 0..MAX_BACKFILL_PAGES {
            let Some(token) = from.take() else { break };
            let options = MessagesOptions::backward().from(Some(token.as_str()));
            let page = match room.messages(options).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(room_id = %room.room_id(), error = %e, "cannot read the gap back");
                    break;
                }
            };
            for ev in page.chunk {
                let Ok(value) = serde_json::from_str::<Value>(ev.raw().json().get()) else {
                    continue;
                };
                let Some(env) = convert::envelope(&value) else {
                    continue;
                };
                let seen = {
                    let s = state.clone();
                    let id = env.event_id.to_owned();
                    blocking(move || s.is_handled(&id)).await.unwrap_or(false)
                };
                if env.sent_at.is_some_and(|t| t < cutoff)
                    || seen
                    || convert::is_own_join(&value, own)
                {
                    break 'pages;
                }
                found.push(ev);
            }
            from = page.end;
        }
        found.reverse();
        found
    }

    async fn on_invite(&self, client: &Client, room_id: &RoomId, inviter: Option<&str>) {
        let allowed = inviter.is_some_and(|s| convert::invite_allowed(&self.cfg.invites_from, s));
        let inviter = inviter.unwrap_or("(unknown)");
        if allowed {
            match client.join_room_by_id(room_id).await {
                Ok(_) => tracing::info!(%room_id, %inviter, "invitation accepted"),
                Err(e) => {
                    tracing::warn!(%room_id, %inviter, error = %e, "cannot accept the invitation")
                }
            }
        } else if let Some(room) = client.get_room(room_id) {
            match room.leave().await {
                Ok(()) => tracing::info!(%room_id, %inviter, "invitation declined"),
                Err(e) => {
                    tracing::warn!(%room_id, %inviter, error = %e, "cannot decline the invitation")
                }
            }
        }
    }
}

/// The sender's name in the room ([`convert::sender_name`]): the display name, with the user
/// ID when another member shares it.
///
/// The sync is lazy-loaded, so the SDK knows only the members who spoke lately; telling
/// namesakes apart needs them all. `get_member` fetches the whole list once per room (the SDK
/// keeps it current from then on); when that fails, the members known so far have to do.
async fn display_name(room: &Room, sender: &str) -> String {
    let Ok(user) = UserId::parse(sender) else {
        return convert::sender_name(sender, None, false);
    };
    let member = match room.get_member(&user).await {
        Ok(m) => Ok(m),
        Err(e) => {
            tracing::debug!(room_id = %room.room_id(), error = %e, "cannot fetch the member list");
            room.get_member_no_sync(&user).await
        }
    };
    match member {
        Ok(Some(m)) => convert::sender_name(sender, m.display_name(), m.name_ambiguous()),
        _ => convert::sender_name(sender, None, false),
    }
}

/// Runs a short store call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StateError> + Send + 'static,
) -> Result<T, StateError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Asks the homeserver whose access token this is: (user ID, device ID).
async fn whoami(homeserver: &str, token: &str) -> Result<(String, String), MatrixError> {
    let reply = reqwest::Client::new()
        .get(format!("{homeserver}/_matrix/client/v3/account/whoami"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| MatrixError::Auth(e.without_url().to_string()))?;
    let body: Value = reply
        .json()
        .await
        .map_err(|e| MatrixError::Auth(e.to_string()))?;
    match (body["user_id"].as_str(), body["device_id"].as_str()) {
        (Some(u), Some(d)) => Ok((u.to_owned(), d.to_owned())),
        _ => Err(MatrixError::Auth(
            "the token has no device; log in with a password instead".into(),
        )),
    }
}

/// Sends the core's messages, in order.
struct Sender {
    /// The event IDs of the bot's tagged messages, for later edits.
    tagged: Mutex<HashMap<String, OwnedEventId>>,
    client: watch::Receiver<Option<Client>>,
    cfg: MatrixConfig,
    names: Arc<Mutex<RoomNames>>,
    shutdown: CancellationToken,
    /// Where the event IDs of relayed messages are reported (for replies to them).
    events: mpsc::Sender<Event>,
}

impl Sender {
    #[tracing::instrument(skip_all, fields(network = %self.cfg.name))]
    async fn run(self, mut rx: mpsc::Receiver<Outgoing>) {
        // Runs until every handle is gone (after the core's last answer), so that nothing
        // queued before shutdown is lost.
        while let Some(out) = rx.recv().await {
            self.send(out).await;
        }
    }

    async fn room(&self, client: &Client, name: &str) -> Option<Room> {
        let known = self.names.lock().unwrap().by_name.get(name).cloned();
        let id = match known {
            Some(id) => id,
            None => match (RoomId::parse(name), RoomAliasId::parse(name)) {
                (Ok(id), _) => id,
                (_, Ok(alias)) => match client.resolve_room_alias(&alias).await {
                    Ok(r) => r.room_id,
                    Err(e) => {
                        tracing::warn!(room = %name, error = %e, "cannot resolve the alias");
                        return None;
                    }
                },
                _ => return None,
            },
        };
        client
            .get_room(&id)
            .filter(|r| r.state() == RoomState::Joined)
    }

    async fn send(&self, out: Outgoing) {
        // Waits for the first login; fails once the driver has stopped.
        let client = match self.client.clone().wait_for(Option::is_some).await {
            Ok(c) => c.clone().expect("checked by wait_for"),
            Err(_) => {
                tracing::warn!(room = %out.room, "never logged in; message dropped");
                out.receipt.dropped();
                return;
            }
        };
        let Some(room) = self.room(&client, &out.room).await else {
            tracing::warn!(room = %out.room, "not in this room; message dropped");
            out.receipt.dropped();
            return;
        };
        if !self.cfg.encrypted_rooms && room.encryption_state().is_encrypted() {
            tracing::warn!(room = %out.room, "encrypted room, but encrypted_rooms = false; message dropped");
            out.receipt.dropped();
            return;
        }
        let (event_type, content) = match &out.op {
            OutgoingOp::Message | OutgoingOp::Tagged(_) => (
                "m.room.message",
                serde_json::to_value(message_content(&out)).expect("event content serializes"),
            ),
            OutgoingOp::Edit(tag) => {
                let Some(of) = self.tagged.lock().unwrap().get(tag).cloned() else {
                    tracing::debug!(room = %out.room, %tag, "nothing sent under this tag; edit dropped");
                    return;
                };
                ("m.room.message", edit_content(&out, of))
            }
            OutgoingOp::React { to, key } => {
                let Ok(to) = OwnedEventId::try_from(to.as_str()) else {
                    tracing::debug!(room = %out.room, %to, "not an event ID; reaction dropped");
                    return;
                };
                ("m.reaction", reaction_content(to, key))
            }
        };
        // One transaction ID for every attempt: the homeserver keeps a retried message once.
        let txn = TransactionId::new();
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        // A message from the bridge's durable outbox waits out a homeserver restart: its
        // outbox judges staleness. The bot's own replies give up after a few attempts.
        let attempts = if out.receipt.is_wanted() {
            u32::MAX
        } else {
            SEND_ATTEMPTS
        };
        for attempt in 1..=attempts {
            match room
                .send_raw(event_type, content.clone())
                .with_transaction_id(&txn)
                .await
            {
                Ok(sent) => {
                    out.receipt.sent();
                    if out.receipt.is_wanted() && out.kind == SendKind::Relay {
                        // Never waits: the core may be waiting for room in this queue, and
                        // a lost report only costs a reply its `nick:`.
                        let _ = self.events.try_send(Event::Delivered {
                            room: RoomRef::new(&self.cfg.name, &out.room),
                            id: sent.response.event_id.to_string(),
                            text: out.text.clone(),
                        });
                    }
                    if let OutgoingOp::Tagged(tag) = &out.op {
                        self.tagged
                            .lock()
                            .unwrap()
                            .insert(tag.clone(), sent.response.event_id);
                    }
                    return;
                }
                Err(e) => {
                    let permanent = e.client_api_error_kind().is_some_and(|k| {
                        !matches!(k, ErrorKind::LimitExceeded(_) | ErrorKind::Unknown)
                    });
                    let stopping = self.shutdown.is_cancelled() && Instant::now() >= deadline;
                    if stopping && !permanent {
                        // No verdict: a bridged message stays in its outbox for the next start.
                        tracing::warn!(room = %out.room, error = %e, attempt, "shutting down; message not sent");
                        return;
                    }
                    if permanent || attempt == attempts {
                        tracing::warn!(room = %out.room, error = %e, attempt, "message dropped");
                        out.receipt.dropped();
                        return;
                    }
                    tracing::info!(room = %out.room, error = %e, attempt, "send failed; retrying");
                    let delay = backoff.next_delay(rand::rng().random());
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

/// The event content for a message: the bot's own replies are `m.notice` so that other bots
/// do not answer them, and mentions are always explicit (none: never `@room`).
pub fn message_content(out: &Outgoing) -> RoomMessageEventContent {
    let mut content = match (out.kind, &out.html) {
        (SendKind::Reply, None) => RoomMessageEventContent::notice_plain(&out.text),
        (SendKind::Reply, Some(html)) => RoomMessageEventContent::notice_html(&out.text, html),
        (SendKind::Relay, None) => RoomMessageEventContent::text_plain(&out.text),
        (SendKind::Relay, Some(html)) => RoomMessageEventContent::text_html(&out.text, html),
    };
    content.mentions = Some(if out.mentions.is_empty() {
        Mentions::new()
    } else {
        Mentions::with_user_ids(
            out.mentions
                .iter()
                .filter_map(|id| matrix_sdk::ruma::OwnedUserId::try_from(id.as_str()).ok()),
        )
    });
    content
}

/// An `m.replace` edit of the bot's message `of`, with the new text.
pub fn edit_content(out: &Outgoing, of: OwnedEventId) -> Value {
    let content = message_content(out).make_replacement(
        matrix_sdk::ruma::events::room::message::ReplacementMetadata::new(
            of,
            Some(Mentions::new()),
        ),
    );
    serde_json::to_value(content).expect("event content serializes")
}

/// An `m.reaction` annotation of `to` with `key`.
pub fn reaction_content(to: OwnedEventId, key: &str) -> Value {
    use matrix_sdk::ruma::events::reaction::ReactionEventContent;
    use matrix_sdk::ruma::events::relation::Annotation;
    serde_json::to_value(ReactionEventContent::new(Annotation::new(
        to,
        key.to_owned(),
    )))
    .expect("event content serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Priority;

    #[test]
    fn replies_are_notices_with_empty_mentions() {
        let out = Outgoing {
            room: "!r:e".into(),
            text: "pong".into(),
            html: None,
            mentions: Vec::new(),
            kind: SendKind::Reply,
            priority: Priority::Command,
            op: crate::adapters::OutgoingOp::Message,
            receipt: crate::adapters::Receipt::default(),
        };
        let json = serde_json::to_value(message_content(&out)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"msgtype": "m.notice", "body": "pong", "m.mentions": {}})
        );
        let out = Outgoing {
            html: Some("<b>a</b>: b".into()),
            kind: SendKind::Relay,
            text: "a: b".into(),
            ..out
        };
        let json = serde_json::to_value(message_content(&out)).unwrap();
        assert_eq!(json["msgtype"], "m.text");
        assert_eq!(json["format"], "org.matrix.custom.html");
        assert_eq!(json["formatted_body"], "<b>a</b>: b");
        assert_eq!(json["m.mentions"], serde_json::json!({}));
    }

    #[test]
    fn pills_mention_their_users_and_nobody_else() {
        let out = Outgoing {
            room: "!r:e".into(),
            text: "bob: alice: hi".into(),
            html: Some("<b>bob</b>: <a href=\"https://matrix.to/#/@alice:e\">alice</a>: hi".into()),
            mentions: vec!["@alice:e".into(), "not a user id".into()],
            kind: SendKind::Relay,
            priority: Priority::Relay,
            op: crate::adapters::OutgoingOp::Message,
            receipt: crate::adapters::Receipt::default(),
        };
        let json = serde_json::to_value(message_content(&out)).unwrap();
        assert_eq!(
            json["m.mentions"],
            serde_json::json!({"user_ids": ["@alice:e"]})
        );
    }

    #[test]
    fn only_plain_mxc_uris_are_fetched() {
        assert_eq!(
            parse_mxc("mxc://example.org:8448/AbC-d_9"),
            Some(("example.org:8448", "AbC-d_9"))
        );
        for bad in [
            "https://e/x",
            "mxc://e/../x",
            "mxc://e/x?y",
            "mxc:///x",
            "mxc://e/",
            "mxc://e/a/b",
        ] {
            assert_eq!(parse_mxc(bad), None, "{bad}");
        }
    }
}
