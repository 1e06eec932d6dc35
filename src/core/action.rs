//! What the core asks the adapters to do.

use serde::Serialize;

use super::event::RoomRef;

/// How a message the bot sends should look on networks that distinguish them. The bot's
/// own replies are notices on Matrix (`m.notice`) so that other bots do not answer them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SendKind {
    /// A reply to a command or a bot announcement.
    Reply,
    /// Text relayed on behalf of someone else (bridge, MQTT relay).
    Relay,
}

/// Priority of an outgoing line on rate-limited networks (lower drains first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Priority {
    Protocol = 0,
    Command = 1,
    Relay = 2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Say something in a room.
    Send {
        room: RoomRef,
        text: String,
        /// Optional HTML rendering, for networks that show it.
        html: Option<String>,
        kind: SendKind,
        priority: Priority,
    },
    /// Relay MQTT events: store the messages (durably, to be delivered in order) and the
    /// dedup keys together, then acknowledge the MQTT message.
    Relay(super::relay::RelayBatch),
}

impl Action {
    /// A plain reply to a command.
    pub fn reply(room: &RoomRef, text: impl Into<String>) -> Self {
        Action::Send {
            room: room.clone(),
            text: text.into(),
            html: None,
            kind: SendKind::Reply,
            priority: Priority::Command,
        }
    }
}
