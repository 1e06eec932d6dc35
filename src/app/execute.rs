//! Carrying out the core's actions: one arm per action, one method per concern (saying
//! things, keeping what the web site and the bridge need, the relay, the audit log,
//! meetings).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::Utc;
use tokio::sync::mpsc;

use crate::adapters::mqtt::MqttHandle;
use crate::adapters::{NetworkHandle, Outgoing};
use crate::core::relay::{MqttMessage, RelayBatch};
use crate::core::watch::Triggers;
use crate::core::{Action, AuditEntry, Bridged, Meeting, RoomRef};
use crate::lookup::fetch::Fetcher;
use crate::outbox::Outbox;
use crate::store::{MediaLink, Store};

/// Whatever carries out the core's actions.
pub(super) struct Executors {
    pub(super) handles: BTreeMap<String, NetworkHandle>,
    pub(super) fetcher: Fetcher,
    pub(super) store: Store,
    pub(super) meetings: MeetingsIo,
    pub(super) outbox: Outbox,
    pub(super) relay: RelaySinks,
    pub(super) watch: Option<WatchTriggers>,
}

/// Where meetings are journaled and their files written.
pub(super) struct MeetingsIo {
    pub(super) store: Store,
    /// `data_dir/meetings`
    pub(super) dir: PathBuf,
}

/// Where relayed MQTT events go: the durable outbox, then the MQTT ack.
pub(super) struct RelaySinks {
    pub(super) outbox: Outbox,
    pub(super) mqtt: BTreeMap<String, MqttHandle>,
}

/// Which MQTT events trigger a check of which watch, and the watch task to tell.
pub(super) struct WatchTriggers {
    pub(super) triggers: Triggers,
    pub(super) tx: mpsc::Sender<usize>,
}

impl WatchTriggers {
    pub(super) fn on_mqtt(&self, msg: &MqttMessage) {
        for i in self.triggers.matching(&msg.network, &msg.topic) {
            // A full queue means checks are pending already; the watch is checked soon.
            if self.tx.try_send(i).is_err() {
                tracing::debug!(watch = i, topic = %msg.topic, "watch trigger dropped: checks pending");
            }
        }
    }
}

impl Executors {
    pub(super) async fn execute(&self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send {
                    room,
                    text,
                    html,
                    kind,
                    priority,
                    tag,
                } => {
                    let out = Outgoing::message(room.room.clone(), text)
                        .html(html)
                        .kind(kind)
                        .priority(priority)
                        .tagged(tag);
                    self.send_to(&room, out).await;
                }
                Action::Edit { room, tag, text } => {
                    let out = Outgoing::edit(room.room.clone(), tag, text);
                    self.send_to(&room, out).await;
                }
                Action::React { room, to, key } => {
                    let out = Outgoing::react(room.room.clone(), to, key);
                    self.send_to(&room, out).await;
                }
                Action::Fetch(req) => self.fetcher.start(req),
                Action::Paste { id, text } => self.keep_paste(&id, &text),
                Action::MediaLink {
                    id,
                    network,
                    uri,
                    name,
                    mimetype,
                } => self.keep_media_link(
                    &id,
                    &MediaLink {
                        network,
                        uri,
                        name,
                        mimetype,
                    },
                ),
                Action::Bridged(m) => self.queue_bridged(&m),
                Action::Relay(batch) => self.queue_relayed(&batch),
                Action::Audit(entry) => self.audit(&entry),
                Action::MeetingJournal { key, line } => {
                    // Committed before the next event is handled: a crash loses no line.
                    if let Err(e) = self.meetings.store.journal_meeting_line(&key, &line) {
                        tracing::error!(room = %key.room, error = %e, "meeting line not journaled");
                    }
                }
                Action::MeetingFiles {
                    meeting,
                    finished,
                    stale_base,
                } => self.meetings.write(meeting, finished, stale_base).await,
            }
        }
    }

    /// Hands a message to its network's adapter, or says why it could not.
    async fn send_to(&self, room: &RoomRef, out: Outgoing) {
        let Some(h) = self.handles.get(&room.network) else {
            tracing::warn!(%room, "no running network for this room; message dropped");
            return;
        };
        if h.send(out).await.is_err() {
            tracing::warn!(network = %h.name, "network stopped; message dropped");
        }
    }

    /// Stored before the message that links to it is.
    fn keep_paste(&self, id: &str, text: &str) {
        if let Err(e) = self.store.put_paste(id, text, Utc::now()) {
            tracing::error!(error = %e, "paste not stored");
        }
    }

    /// Stored before the message that links to it is.
    fn keep_media_link(&self, id: &str, link: &MediaLink) {
        if let Err(e) = self.store.put_media(id, link, Utc::now()) {
            tracing::error!(error = %e, "media link not stored");
        }
    }

    /// Committed before the next event is handled: a crash loses no message.
    fn queue_bridged(&self, m: &Bridged) {
        if let Err(e) = self.outbox.put_bridged(m) {
            tracing::error!(room = %m.room, error = %e, "bridged message not stored; dropped");
        }
    }

    /// Stores a relay batch, then acknowledges its MQTT message. If the store fails the
    /// message is not acknowledged: the broker sends it again after the next reconnect.
    fn queue_relayed(&self, batch: &RelayBatch) {
        let sinks = &self.relay;
        if let Err(e) = sinks.outbox.put_relayed(batch, Utc::now()) {
            tracing::error!(error = %e, "cannot store relayed MQTT messages; not acknowledging them");
            return;
        }
        if let Some(ack) = &batch.ack {
            match sinks.mqtt.get(&ack.network) {
                Some(h) => h.ack(ack.delivery),
                None => {
                    tracing::warn!(network = %ack.network, "ack for an unknown MQTT connection")
                }
            }
        }
    }

    fn audit(&self, entry: &AuditEntry) {
        tracing::info!(command = %entry.command, principal = %entry.principal, room = %entry.room, result = %entry.result, "audit");
        if let Err(e) = self.store.insert_audit(entry) {
            tracing::error!(error = %e, "audit entry not stored");
        }
    }
}

impl MeetingsIo {
    /// Writes a meeting's files off the core task, and waits for them.
    async fn write(&self, meeting: Box<Meeting>, finished: bool, stale_base: Option<String>) {
        let store = self.store.clone();
        let dir = self.dir.clone();
        let room = meeting.room.clone();
        let done = tokio::task::spawn_blocking(move || {
            write_meeting_files(&store, &dir, &meeting, finished, stale_base.as_deref())
        })
        .await;
        match done {
            Ok(Ok(())) => tracing::info!(%room, finished, "meeting files written"),
            Ok(Err(e)) => tracing::error!(%room, error = %e, "meeting files not written"),
            Err(e) => tracing::error!(%room, error = %e, "meeting file writer failed"),
        }
    }
}

/// Writes a meeting's files, then records them (and, when it is finished, closes its journal
/// and indexes it): in that order, so that a crash in between only writes them again.
fn write_meeting_files(
    store: &Store,
    dir: &Path,
    m: &Meeting,
    finished: bool,
    stale_base: Option<&str>,
) -> Result<(), String> {
    let written = crate::minutes::write_files(dir, m, stale_base).map_err(|e| e.to_string())?;
    let files_dir = written
        .first()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.to_path_buf());
    store
        .record_meeting_files(m, &files_dir, finished)
        .map_err(|e| e.to_string())
}
