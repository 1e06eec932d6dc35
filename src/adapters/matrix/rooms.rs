//! Rooms: how they are named (as configured: an alias stays an alias), joining the
//! configured ones, the invitation policy, and who is in them.

use std::collections::HashMap;
use std::sync::Mutex;

use matrix_sdk::ruma::{OwnedRoomId, RoomAliasId, RoomId, RoomOrAliasId, UserId};
use matrix_sdk::{Client, Room, RoomMemberships, RoomState};

use super::{Driver, convert};
use crate::core::{Event, Member, RoomRef};

/// How rooms are named in room references: as configured (an alias stays an alias), else by
/// room ID.
#[derive(Debug, Default)]
pub(super) struct RoomNames {
    by_id: HashMap<OwnedRoomId, String>,
    by_name: HashMap<String, OwnedRoomId>,
}

impl RoomNames {
    fn insert(&mut self, id: OwnedRoomId, name: String) {
        self.by_name.insert(name.clone(), id.clone());
        self.by_id.insert(id, name);
    }

    pub(super) fn name_of(&self, id: &RoomId) -> String {
        self.by_id
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }
}

/// The room ID behind an alias; `None`, logged, when the homeserver cannot say.
async fn resolve_alias(client: &Client, name: &str, alias: &RoomAliasId) -> Option<OwnedRoomId> {
    match client.resolve_room_alias(alias).await {
        Ok(r) => Some(r.room_id),
        Err(e) => {
            tracing::warn!(room = %name, error = %e, "cannot resolve the alias");
            None
        }
    }
}

/// The joined room a room reference names: by a name learned from the config, a room ID or
/// an alias.
pub(super) async fn joined_room(
    client: &Client,
    names: &Mutex<RoomNames>,
    name: &str,
) -> Option<Room> {
    let known = names.lock().unwrap().by_name.get(name).cloned();
    let id = match known {
        Some(id) => id,
        None => match (RoomId::parse(name), RoomAliasId::parse(name)) {
            (Ok(id), _) => id,
            (_, Ok(alias)) => resolve_alias(client, name, &alias).await?,
            _ => return None,
        },
    };
    client
        .get_room(&id)
        .filter(|r| r.state() == RoomState::Joined)
}

impl Driver {
    /// Learns the room IDs of the configured rooms, before the first sync hands their
    /// events over: a room configured by alias must be named by its alias from the first
    /// event on (a bridge knows it by that name; catch-up after a restart depends on it).
    pub(super) async fn learn_names(&self, client: &Client) {
        for name in &self.cfg.rooms {
            let Ok(alias) = RoomAliasId::parse(name) else {
                continue;
            };
            if let Some(id) = resolve_alias(client, name, &alias).await {
                self.names.lock().unwrap().insert(id, name.clone());
            }
        }
    }

    /// Joins the configured rooms (those not joined yet) and learns their names.
    pub(super) async fn join_configured(&self, client: &Client) {
        for name in &self.cfg.rooms {
            let id = match RoomAliasId::parse(name) {
                Ok(alias) => resolve_alias(client, name, &alias).await,
                Err(_) => RoomId::parse(name).ok(),
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
    pub(super) async fn report_members(&self, room: &Room) {
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

    /// Whether the core has been told who is in this room since this start.
    pub(super) fn members_known(&self, room_id: &RoomId) -> bool {
        self.members_reported.lock().unwrap().contains(room_id)
    }

    /// Accepts an invitation from someone `invites_from` allows, declines any other.
    pub(super) async fn on_invite(&self, client: &Client, room_id: &RoomId, inviter: Option<&str>) {
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
pub(super) async fn display_name(room: &Room, sender: &str) -> String {
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
