//! What the outside world tells the core: messages, network state changes, timer ticks.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::commands::declarative::{CommandSetHandle, FetchOutcome};

/// A room on a network: `<network>/<room>`, split at the first `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RoomRef {
    pub network: String,
    pub room: String,
}

/// Why a room reference could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomRefError {
    #[error("room reference {0:?} has no '/': expected <network>/<room>, e.g. libera/#channel")]
    NoSlash(String),
    #[error("room reference {0:?} has an empty network name")]
    EmptyNetwork(String),
    #[error("room reference {0:?} has an empty room")]
    EmptyRoom(String),
    #[error("room reference {0:?} contains whitespace or control characters")]
    BadCharacters(String),
}

impl RoomRef {
    pub fn new(network: impl Into<String>, room: impl Into<String>) -> Self {
        Self {
            network: network.into(),
            room: room.into(),
        }
    }

    pub fn parse(s: &str) -> Result<Self, RoomRefError> {
        let (network, room) = s
            .split_once('/')
            .ok_or_else(|| RoomRefError::NoSlash(s.to_owned()))?;
        if network.is_empty() {
            return Err(RoomRefError::EmptyNetwork(s.to_owned()));
        }
        if room.is_empty() {
            return Err(RoomRefError::EmptyRoom(s.to_owned()));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(RoomRefError::BadCharacters(s.to_owned()));
        }
        Ok(Self::new(network, room))
    }
}

impl fmt::Display for RoomRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.room)
    }
}

/// Who someone is, for permissions: `<network>:<identity>`. On IRC the identity is the
/// services account, never the nick; on Matrix the user ID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Principal {
    pub network: String,
    pub identity: String,
}

impl Principal {
    pub fn new(network: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            network: network.into(),
            identity: identity.into(),
        }
    }

    /// Reads `<network>:<identity>`, split at the first `:` (Matrix IDs contain more).
    pub fn parse(s: &str) -> Option<Self> {
        let (network, identity) = s.split_once(':')?;
        if network.is_empty() || identity.is_empty() || network.contains('/') {
            return None;
        }
        Some(Self::new(network, identity))
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.network, self.identity)
    }
}

/// The person behind a message: a display nick, and a principal only when the network
/// vouches for the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    pub nick: String,
    pub principal: Option<Principal>,
    /// On IRC, the `user@host` the message came from: what keeps a caller's cooldown
    /// across nick changes when there is no principal.
    pub mask: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    Text,
    Notice,
    Emote,
}

/// A chat message that arrived in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingMessage {
    pub room: RoomRef,
    pub sender: Sender,
    pub kind: MessageKind,
    pub text: String,
    /// The network's own ID for the message, when it has one (Matrix event ID, IRCv3 msgid).
    pub id: Option<String>,
    /// The time the network says the message was sent, when it says it (server-time).
    pub sent_at: Option<DateTime<Utc>>,
}

/// A message that carries more than plain text: its HTML rendering and the message it
/// answers. Commands see `message` exactly as they would a plain one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RichMessage {
    pub message: IncomingMessage,
    /// The network's HTML rendering (Matrix `formatted_body`), reply fallback removed.
    pub html: Option<String>,
    /// The network's ID of the message this one replies to.
    pub reply_to: Option<String>,
    /// Whether the room is end-to-end encrypted: a bridge relays it only when it says so.
    pub encrypted: bool,
}

/// Something that happened to or around a message, other than a new text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomActivity {
    pub room: RoomRef,
    pub sender: Sender,
    /// The network's ID of this event.
    pub id: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub what: Activity,
    /// Whether the room is end-to-end encrypted (see [`RichMessage::encrypted`]).
    pub encrypted: bool,
}

/// Someone in a room, as a bridge needs to know them: the name shown for them and, on
/// networks with stable IDs (Matrix), their ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: Option<String>,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    /// The sender changed an earlier message of theirs to this text.
    Edit {
        of: String,
        text: String,
        html: Option<String>,
    },
    /// The sender reacted to a message with `key` (usually an emoji).
    Reaction { to: String, key: String },
    /// An earlier event was removed.
    Redaction { of: String, reason: Option<String> },
    /// The sender shared a file.
    Media(Media),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Image,
    File,
    Video,
    Audio,
}

/// A shared file, as the network names it; fetching it is the adapter's business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub kind: MediaKind,
    /// The file name or description the sender gave.
    pub body: String,
    /// Where the network keeps it (a Matrix `mxc://` URI).
    pub url: String,
    pub mimetype: Option<String>,
    pub size: Option<u64>,
    /// Whether the file itself is end-to-end encrypted.
    pub encrypted: bool,
}

/// Someone arrived in, left or renamed themselves in a room, or changed its topic (IRC
/// JOIN, PART, KICK, QUIT, NICK, TOPIC). A QUIT or NICK reaches every room the bot shares
/// with that person, one event each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub room: RoomRef,
    pub nick: String,
    pub what: PresenceChange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceChange {
    Join,
    Part { reason: Option<String> },
    Kick { by: String, reason: Option<String> },
    Quit { reason: Option<String> },
    Nick { new: String },
    Topic { text: String },
}

/// How a network connection is doing, for `status` and `/healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    Starting,
    Connected,
    Reconnecting,
    Stopped,
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkState::Starting => "starting",
            LinkState::Connected => "connected",
            LinkState::Reconnecting => "reconnecting",
            LinkState::Stopped => "stopped",
        })
    }
}

/// Everything the core reacts to.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Message(IncomingMessage),
    /// A message with HTML or a reply relation (Matrix); handled like `Message` by commands.
    RichMessage(RichMessage),
    /// Edits, reactions, redactions, media (Matrix).
    Activity(RoomActivity),
    /// Who is in a room now (Matrix members), replacing what was known before.
    RoomMembers {
        room: RoomRef,
        members: Vec<Member>,
    },
    /// A relayed message was written to `room` as `text`, where the network calls it `id`:
    /// replies and reactions to it there can then name who said it.
    Delivered {
        room: RoomRef,
        id: String,
        text: String,
    },
    /// An adapter reports its state and the length of its outgoing queue.
    NetworkState {
        network: String,
        state: LinkState,
        queue_len: usize,
    },
    /// Joins, parts, quits, nick and topic changes (IRC).
    Presence(Presence),
    /// Everyone in a room, as the network lists them (IRC NAMES on joining).
    Members {
        room: RoomRef,
        nicks: Vec<String>,
    },
    /// A periodic tick, for time-based work (cooldowns, digests, expiries).
    Tick,
    /// A declarative command's request (`Action::Fetch` with this id) finished.
    FetchDone {
        id: u64,
        outcome: FetchOutcome,
    },
    /// `commands/` was read again (SIGHUP): the new set replaces the old one.
    CommandsReloaded(CommandSetHandle),
    /// The config was read again (SIGHUP): new settings for the whole core, swapped at once.
    Reloaded(super::ReloadHandle),
    /// A message from an `[[mqtt]]` connection, for the relay.
    Mqtt(super::relay::MqttMessage),
    /// The store's answer to `Action::RecallSeries`: the previous public meeting of the
    /// series of the meeting `key`, if there is one, to be told in `room`.
    SeriesRecalled {
        key: super::meeting::MeetingKey,
        room: RoomRef,
        previous: Option<Box<super::meeting::PreviousMeeting>>,
    },
}
