//! The sync loop. After each sync the new timeline events go to the core, and then their IDs
//! and the next-batch token are recorded in one transaction ([`super::state`]): a restart
//! continues where the last handled sync ended, handles what was sent meanwhile once, and
//! skips what is older than the catch-up window. A gap the server leaves in a timeline is
//! paged back through `/messages`.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use matrix_sdk::config::SyncSettings;
use matrix_sdk::deserialized_responses::TimelineEvent;
use matrix_sdk::room::MessagesOptions;
use matrix_sdk::ruma::UInt;
use matrix_sdk::ruma::api::client::filter::FilterDefinition;
use matrix_sdk::ruma::api::client::sync::sync_events::v3::Filter;
use matrix_sdk::ruma::api::error::ErrorKind;
use matrix_sdk::sync::{SyncResponse, Timeline};
use matrix_sdk::{Client, Room};
use serde_json::Value;

use super::state::{StateError, SyncState};
use super::{Backoff, Driver, MatrixError, convert, rooms};
use crate::core::{LinkState, RoomRef};

/// How long one `/sync` long poll waits for news.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Events asked per room and sync; a longer gap is paged back through `/messages`.
const TIMELINE_LIMIT: u32 = 50;
/// Pages of `/messages` read back at most to fill one gap.
const MAX_BACKFILL_PAGES: usize = 20;

/// Why a session with the homeserver ended.
pub(super) enum SyncEnd {
    Shutdown,
    /// The access token is no longer valid: log in again.
    LoggedOut,
}

/// What the sync loop of one login has achieved so far.
#[derive(Default)]
struct Progress {
    /// Whether the last sync succeeded.
    connected: bool,
    /// Whether any sync succeeded.
    synced_once: bool,
    joined_configured: bool,
}

/// Where syncing continues: the next-batch token, and when the first sync ever completed.
type Position = (String, DateTime<Utc>);

impl Driver {
    pub(super) async fn sync_loop(&self, client: &Client) -> Result<SyncEnd, MatrixError> {
        let state = self.dir.open_sync_state()?;
        let own = client
            .user_id()
            .map(|u| u.to_string())
            .unwrap_or_else(|| self.cfg.user.clone());
        let filter = timeline_filter();
        self.learn_names(client).await;
        let mut progress = Progress::default();
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(120));
        loop {
            let position = blocking({
                let s = state.clone();
                move || s.position()
            })
            .await?;
            let settings = sync_settings(&filter, position.as_ref(), progress.synced_once);
            let response = tokio::select! {
                () = self.shutdown.cancelled() => return Ok(SyncEnd::Shutdown),
                r = client.sync_once(settings) => r,
            };
            let response = match response {
                Ok(r) => r,
                Err(e) => match self.sync_failed(&e, &mut progress, &mut backoff).await {
                    Some(end) => return Ok(end),
                    None => continue,
                },
            };
            backoff.reset();
            self.handle_sync(client, &own, &response, position.as_ref(), &state)
                .await?;
            self.after_sync(client, &mut progress).await;
        }
    }

    /// Reports a failed sync and waits out the backoff; says how the session ended when it
    /// did.
    async fn sync_failed(
        &self,
        e: &matrix_sdk::Error,
        progress: &mut Progress,
        backoff: &mut Backoff,
    ) -> Option<SyncEnd> {
        if matches!(e.client_api_error_kind(), Some(ErrorKind::UnknownToken(_))) {
            return Some(SyncEnd::LoggedOut);
        }
        tracing::warn!(error = %e, "sync failed");
        if progress.connected {
            progress.connected = false;
            self.report(LinkState::Reconnecting).await;
        }
        if !self.pause(backoff).await {
            return Some(SyncEnd::Shutdown);
        }
        None
    }

    /// Hands the sync's events to the core, then records them with the next-batch token.
    async fn handle_sync(
        &self,
        client: &Client,
        own: &str,
        response: &SyncResponse,
        position: Option<&Position>,
        state: &SyncState,
    ) -> Result<(), MatrixError> {
        let now = Utc::now();
        let handled = self
            .on_sync(client, own, response, position, state, now)
            .await?;
        let keep_since = now - TimeDelta::from_std(self.cfg.catch_up).unwrap_or_default() * 2;
        let next_batch = response.next_batch.clone();
        blocking({
            let s = state.clone();
            move || s.commit(&next_batch, &handled, now, keep_since)
        })
        .await?;
        Ok(())
    }

    /// What a successful sync starts: the first one is logged, a recovered link reported,
    /// and the configured rooms joined once per login.
    async fn after_sync(&self, client: &Client, progress: &mut Progress) {
        if !progress.synced_once {
            progress.synced_once = true;
            tracing::info!(
                elapsed_ms = self.started.elapsed().as_millis() as u64,
                rooms = client.joined_rooms().len(),
                "first sync completed"
            );
        }
        if !progress.connected {
            progress.connected = true;
            self.report(LinkState::Connected).await;
        }
        if !progress.joined_configured {
            progress.joined_configured = true;
            self.join_configured(client).await;
            for room in client.joined_rooms() {
                self.report_members(&room).await;
            }
        }
    }

    /// Hands the sync's new events to the core and answers invitations; returns the IDs of
    /// the events handed over.
    async fn on_sync(
        &self,
        client: &Client,
        own: &str,
        response: &SyncResponse,
        position: Option<&Position>,
        state: &SyncState,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, MatrixError> {
        self.answer_invites(client, own, response).await;
        let mut handled = Vec::new();
        // On the very first start, everything in the rooms is history: nothing is replayed.
        let Some((_, first_sync)) = position else {
            return Ok(handled);
        };
        let catch_up = TimeDelta::from_std(self.cfg.catch_up).unwrap_or_default();
        let cutoff = now - catch_up;
        // Never page back to before the first start.
        let floor = cutoff.max(*first_sync);
        let mut skipped_old = 0usize;
        for (room_id, update) in &response.rooms.joined {
            let Some(room) = client.get_room(room_id) else {
                continue;
            };
            let values = self
                .timeline_values(&room, &update.timeline, own, floor, state)
                .await;
            skipped_old += self
                .on_timeline(&room, &values, own, cutoff, state, &mut handled)
                .await?;
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

    async fn answer_invites(&self, client: &Client, own: &str, response: &SyncResponse) {
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
    }

    /// A room's new timeline events as JSON, oldest first, with a gap the server left filled
    /// in back to `floor`.
    async fn timeline_values(
        &self,
        room: &Room,
        timeline: &Timeline,
        own: &str,
        floor: DateTime<Utc>,
        state: &SyncState,
    ) -> Vec<Value> {
        let mut events: Vec<&TimelineEvent> = timeline.events.iter().collect();
        let backfill;
        if timeline.limited
            && let Some(prev) = &timeline.prev_batch
        {
            backfill = self.backfill(room, prev, own, floor, state).await;
            events = backfill.iter().chain(events).collect();
        }
        events
            .iter()
            .filter_map(|ev| serde_json::from_str(ev.raw().json().get()).ok())
            .collect()
    }

    /// Hands the events of one room's timeline that the core wants, and has not had yet, to
    /// the core, adding their IDs to `handled`; returns how many were older than `cutoff`.
    async fn on_timeline(
        &self,
        room: &Room,
        values: &[Value],
        own: &str,
        cutoff: DateTime<Utc>,
        state: &SyncState,
        handled: &mut Vec<String>,
    ) -> Result<usize, MatrixError> {
        let room_id = room.room_id();
        let room_ref = RoomRef::new(&self.cfg.name, self.names.lock().unwrap().name_of(room_id));
        let selection = convert::select(values, own, cutoff);
        let encrypted = room.encryption_state().is_encrypted();
        if encrypted && !self.cfg.encrypted_rooms {
            if !selection.handle.is_empty() {
                tracing::warn!(room = %room_ref, "encrypted room, but encrypted_rooms = false: ignored");
            }
            return Ok(selection.too_old);
        }
        let members_changed = values.iter().any(|v| v["type"] == "m.room.member");
        if members_changed || !self.members_known(room_id) {
            self.report_members(room).await;
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
            if handled.contains(&id) || is_handled(state, &id).await? {
                continue;
            }
            let nick = rooms::display_name(room, env.sender).await;
            let Some(event) = convert::to_core_event(value, &room_ref, &nick, encrypted) else {
                continue;
            };
            tracing::debug!(room = %room_ref, event_id = %id, "to the core");
            if self.events.send(event).await.is_err() {
                break;
            }
            handled.push(id);
        }
        Ok(selection.too_old)
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
                let seen = is_handled(state, env.event_id).await.unwrap_or(false);
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
}

/// The sync filter: lazy-loaded members, and at most [`TIMELINE_LIMIT`] events per room.
fn timeline_filter() -> Filter {
    let mut filter = FilterDefinition::with_lazy_loading();
    filter.room.timeline.limit = Some(UInt::from(TIMELINE_LIMIT));
    Filter::FilterDefinition(filter)
}

/// The settings of one sync: from the recorded position; the first sync of a login answers
/// at once, the ones after it wait for news.
fn sync_settings(filter: &Filter, position: Option<&Position>, synced_once: bool) -> SyncSettings {
    let mut settings = SyncSettings::default().filter(filter.clone());
    if let Some((token, _)) = position {
        settings = settings.token(token.clone());
    }
    // The SDK's own default is a 30 s long-poll: the first sync after a restart would wait for
    // news before the network counts as connected.
    settings.timeout(if synced_once {
        SYNC_TIMEOUT
    } else {
        Duration::ZERO
    })
}

/// Whether the event was handed to the core before.
async fn is_handled(state: &SyncState, event_id: &str) -> Result<bool, StateError> {
    let s = state.clone();
    let id = event_id.to_owned();
    blocking(move || s.is_handled(&id)).await
}

/// Runs a short store call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StateError> + Send + 'static,
) -> Result<T, StateError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}
