//! What the core asks the adapters to do.

use serde::Serialize;

use super::commands::declarative::{AuditEntry, FetchRequest};
use super::event::RoomRef;
use super::meeting::{JournalLine, Meeting, MeetingKey};
use super::schedule::ReminderKey;

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
        /// Names the message so that a later [`Action::Edit`] can replace its text.
        tag: Option<String>,
    },
    /// Replace the text of the bot's own message sent with `tag` (Matrix: an `m.replace`
    /// edit; networks without edits leave the old text alone).
    Edit {
        room: RoomRef,
        tag: String,
        text: String,
    },
    /// React to a message by its network ID (Matrix: an `m.reaction`; networks without
    /// reactions ignore it).
    React {
        room: RoomRef,
        to: String,
        key: String,
    },
    /// Journal one line of a running meeting. It must be committed before the next event is
    /// handled: that is what lets a meeting survive a crash.
    MeetingJournal { key: MeetingKey, line: JournalLine },
    /// Write a meeting's files (`#save`, `#endmeeting`); `finished` also closes its journal
    /// and indexes it for search. `stale_base` names files of an earlier save to remove.
    MeetingFiles {
        meeting: Box<Meeting>,
        finished: bool,
        stale_base: Option<String>,
    },
    /// Look up the previous public meeting of the series `name` in the room of `key` (started
    /// before it): the answer comes back as `Event::SeriesRecalled`, and the bot tells it in
    /// `room` (DESIGN §7 "Series").
    RecallSeries {
        key: MeetingKey,
        room: RoomRef,
        name: String,
    },
    /// Record that a scheduled meeting's reminder was posted (or passed over for a later
    /// one), before the message that posts it: a restart never posts it again.
    ReminderPosted(ReminderKey),
    /// Run a declarative command's request; its result comes back as `Event::FetchDone`.
    Fetch(FetchRequest),
    /// Record a guarded command's invocation in the audit log.
    Audit(AuditEntry),
    /// Relay a message across a bridge: stored in the destination network's durable outbox,
    /// then delivered in order once that network can take it.
    Bridged(Bridged),
    /// Keep `text` at `<public_url>/paste/<id>` (long relayed messages, code blocks). It must
    /// be stored before the actions that link to it are carried out.
    Paste { id: String, text: String },
    /// Relay MQTT events: store the messages (durably, to be delivered in order) and the
    /// dedup keys together, then acknowledge the MQTT message.
    Relay(super::relay::RelayBatch),
    /// Serve the file `uri` of `network` (a Matrix `mxc://` URI) at `<public_url>/media/<id>`.
    /// It must be stored before the actions that link to it are carried out.
    MediaLink {
        id: String,
        network: String,
        uri: String,
        name: String,
        mimetype: Option<String>,
    },
}

/// A message for one room of a bridge (see [`Action::Bridged`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridged {
    pub bridge: String,
    pub room: RoomRef,
    pub text: String,
    pub html: Option<String>,
    /// Matrix user IDs the message mentions (pills made from IRC mentions): its `m.mentions`.
    pub mentions: Vec<String>,
    /// `Relay` for someone's message, `Reply` for the bot's own answer copied to the room.
    pub kind: SendKind,
    /// When the original message arrived.
    pub at: chrono::DateTime<chrono::Utc>,
    /// When the network says the original message was sent (server-time), when it says it:
    /// the start of the bridge's relay delay in the metrics.
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Past `at + staleness`, the message is dropped instead of delivered (and counted).
    pub staleness: std::time::Duration,
    /// The line it relays, as `<network>/<network's message ID>#<line>`, when the network
    /// gives IDs: a message handled again after a crash (a Matrix event whose sync position
    /// was not saved yet, a CHATHISTORY replay) is stored once.
    pub source: Option<String>,
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
            tag: None,
        }
    }

    /// A reply that may be edited later through its `tag`.
    pub fn tagged_reply(room: &RoomRef, text: impl Into<String>, tag: impl Into<String>) -> Self {
        Action::Send {
            room: room.clone(),
            text: text.into(),
            html: None,
            kind: SendKind::Reply,
            priority: Priority::Command,
            tag: Some(tag.into()),
        }
    }
}
