//! Carrying out the core's actions: one arm per action, one method per concern (saying
//! things, keeping what the web site and the bridge need, the relay, the audit log,
//! meetings).

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::mpsc;

use crate::adapters::mqtt::MqttHandle;
use crate::adapters::{NetworkHandle, Outgoing};
use crate::core::relay::{MqttMessage, RelayBatch};
use crate::core::schedule::ReminderKey;
use crate::core::watch::Triggers;
use crate::core::{
    Action, AuditEntry, Bridged, CommandSet, Event, FetchOutcome, JournalLine, Meeting, MeetingKey,
    RoomRef,
};
use crate::lookup::fetch::Fetcher;
use crate::outbox::Outbox;
use crate::store::{MediaLink, Store, StoreError};

/// Whatever carries out the core's actions.
pub(super) struct Executors {
    pub(super) handles: BTreeMap<String, NetworkHandle>,
    pub(super) fetcher: Fetcher,
    pub(super) store: Store,
    pub(super) meetings: MeetingsIo,
    pub(super) outbox: Outbox,
    pub(super) relay: RelaySinks,
    pub(super) watch: Option<WatchTriggers>,
    /// The commands in force, to know which requests are guarded (audited).
    pub(super) commands: Arc<CommandSet>,
    /// Writes refused because the database is full, oldest first, tried again on each tick.
    pub(super) held: VecDeque<Held>,
    /// Writes dropped because `held` was full, since the last time room came back.
    pub(super) overflow: u64,
}

/// At most this many writes wait in memory for room in the database; past that, the newest
/// are dropped (and counted in the log).
const MAX_HELD: usize = 10_000;

/// What a guarded command's caller is told when its audit entry cannot be written.
const CANNOT_AUDIT: &str =
    "not run: the audit log cannot be written (the bot's database is full); try again later";

/// A write the store refused for lack of room, kept to be tried again in order.
pub(super) enum Held {
    Paste { id: String, text: String },
    Media { id: String, link: MediaLink },
    Bridged(Box<Bridged>),
    Relayed(Box<RelayBatch>),
    Audit(AuditEntry),
    Journal { key: MeetingKey, line: JournalLine },
    Reminder(ReminderKey),
}

/// Where meetings are journaled and their files written.
pub(super) struct MeetingsIo {
    pub(super) store: Store,
    /// `data_dir/meetings`
    pub(super) dir: PathBuf,
    /// `[meetings.mail]` with the site's public URL, and the mail sender to wake.
    pub(super) mail: Option<MeetingsMail>,
}

/// What a finished meeting's mail needs.
#[derive(Clone)]
pub(super) struct MeetingsMail {
    pub(super) cfg: crate::config::MeetingMailConfig,
    pub(super) public_url: String,
    pub(super) wake: std::sync::Arc<tokio::sync::Notify>,
}

/// Where relayed MQTT events go: the durable outbox, then the MQTT ack.
pub(super) struct RelaySinks {
    pub(super) outbox: Outbox,
    pub(super) mqtt: BTreeMap<String, MqttHandle>,
    /// While the core task handles a group of MQTT events ([`Executors::begin_relay_group`]):
    /// their relay batches, committed together at its end (or before any other write).
    pub(super) group: Option<Vec<RelayBatch>>,
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
    /// Carries out `actions`; the events they answer at once (guarded requests refused
    /// because they cannot be audited), for the core.
    pub(super) async fn execute(&mut self, actions: Vec<Action>) -> Vec<Event> {
        let mut answers = Vec::new();
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
                Action::Fetch(req) => {
                    if self.guarded(&req.command) && !self.can_audit() {
                        tracing::warn!(command = %req.command, "guarded command refused: its audit entry cannot be written (database full)");
                        answers.push(Event::FetchDone {
                            id: req.id,
                            outcome: FetchOutcome::Failed(CANNOT_AUDIT.into()),
                        });
                    } else {
                        self.fetcher.start(req);
                    }
                }
                // Read before the next event: the answer is handled right after these
                // actions, so the post follows the greeting.
                Action::RecallSeries { key, room, name } => {
                    let previous = self
                        .store
                        .previous_in_series(&key.slug, &name, key.started)
                        .inspect_err(|e| {
                            tracing::warn!(%room, series = %name, error = %e, "previous meeting of the series not read");
                        })
                        .ok()
                        .flatten()
                        .map(Box::new);
                    answers.push(Event::SeriesRecalled {
                        key,
                        room,
                        previous,
                    });
                }
                Action::Paste { id, text } => self.write(Held::Paste { id, text }),
                Action::MediaLink {
                    id,
                    network,
                    uri,
                    name,
                    mimetype,
                } => self.write(Held::Media {
                    id,
                    link: MediaLink {
                        network,
                        uri,
                        name,
                        mimetype,
                    },
                }),
                Action::Bridged(m) => self.write(Held::Bridged(Box::new(m))),
                Action::Relay(batch) => match &mut self.relay.group {
                    Some(group) if self.held.is_empty() => group.push(batch),
                    _ => self.write(Held::Relayed(Box::new(batch))),
                },
                Action::Audit(entry) => {
                    tracing::info!(command = %entry.command, principal = %entry.principal, room = %entry.room, result = %entry.result, "audit");
                    self.write(Held::Audit(entry));
                }
                // Committed before the next event is handled: a crash loses no line.
                Action::MeetingJournal { key, line } => self.write(Held::Journal { key, line }),
                // Recorded before the reminder is handed to its network: never posted twice.
                Action::ReminderPosted(key) => self.write(Held::Reminder(key)),
                Action::MeetingFiles {
                    meeting,
                    finished,
                    stale_base,
                } => {
                    // Lines of this meeting still held (the database is full) are in no
                    // journal yet: the files get them from here.
                    let key = MeetingKey::of(&meeting);
                    let held: Vec<JournalLine> = self
                        .held
                        .iter()
                        .filter_map(|h| match h {
                            Held::Journal { key: k, line } if *k == key => Some(line.clone()),
                            _ => None,
                        })
                        .collect();
                    self.meetings
                        .write(meeting, held, finished, stale_base)
                        .await;
                }
            }
        }
        answers
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

    /// Whether `command` is guarded (a role or a confirmation), and so audited. A command
    /// no longer in the set (reloaded meanwhile) counts as guarded.
    fn guarded(&self, command: &str) -> bool {
        self.commands.get(command).is_none_or(|c| c.audited())
    }

    /// Whether an audit entry can be written now: nothing is held for lack of room, and a
    /// probe write goes through.
    fn can_audit(&self) -> bool {
        self.held.is_empty() && self.store.probe_room()
    }

    /// From now until [`Executors::end_relay_group`], relay batches are gathered and
    /// committed together (group commit, DESIGN §11): the core task calls it around a group
    /// of MQTT events that were waiting together.
    pub(super) fn begin_relay_group(&mut self) {
        self.flush_relays();
        self.relay.group = Some(Vec::new());
    }

    /// Commits the relay batches gathered since [`Executors::begin_relay_group`] in one
    /// transaction, then acknowledges their MQTT messages.
    pub(super) fn end_relay_group(&mut self) {
        self.flush_relays();
        self.relay.group = None;
    }

    /// Commits the relay batches gathered so far in one transaction and then acks them; while
    /// the database is full they are held, each on its own, in order.
    fn flush_relays(&mut self) {
        let batches = match &mut self.relay.group {
            Some(group) if !group.is_empty() => std::mem::take(group),
            _ => return,
        };
        if !self.held.is_empty() {
            for b in batches {
                self.hold(Held::Relayed(Box::new(b)));
            }
            return;
        }
        match self.relay.outbox.put_relayed_group(&batches, Utc::now()) {
            Ok(()) => {
                for b in &batches {
                    self.ack(b);
                }
            }
            Err(e) if e.is_full() => {
                for b in batches {
                    self.hold(Held::Relayed(Box::new(b)));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, events = batches.len(), "cannot store relayed MQTT messages; not acknowledging them");
            }
        }
    }

    /// Commits a write before the next event is handled (so that a crash loses nothing),
    /// or holds it in memory, after those already held, while the database is full.
    fn write(&mut self, w: Held) {
        // Relay batches gathered before this write are stored before it.
        self.flush_relays();
        if !self.held.is_empty() {
            self.hold(w);
            return;
        }
        match self.store_now(&w) {
            Ok(()) => {}
            Err(e) if e.is_full() => self.hold(w),
            Err(e) => w.lost(&e),
        }
    }

    fn hold(&mut self, w: Held) {
        if self.held.len() < MAX_HELD {
            self.held.push_back(w);
            tracing::debug!(
                held = self.held.len(),
                "write held until the database has room"
            );
            return;
        }
        self.overflow += 1;
        if self.overflow.is_power_of_two() {
            tracing::error!(
                dropped = self.overflow,
                held = MAX_HELD,
                "database still full and the writes held in memory at their limit: newest writes dropped"
            );
        }
    }

    /// On each tick while the database is full or writes are held: once it has room again,
    /// commits them in order.
    pub(super) fn retry_held(&mut self) {
        if self.held.is_empty() && !self.store.is_full() {
            return;
        }
        if !self.store.probe_room() || self.held.is_empty() {
            return;
        }
        let mut stored = 0usize;
        while let Some(w) = self.held.pop_front() {
            match self.store_now(&w) {
                Ok(()) => stored += 1,
                Err(e) if e.is_full() => {
                    self.held.push_front(w);
                    break;
                }
                Err(e) => w.lost(&e),
            }
        }
        let dropped = std::mem::take(&mut self.overflow);
        tracing::info!(
            stored,
            still_held = self.held.len(),
            dropped,
            "writes held while the database was full are stored"
        );
    }

    /// One write, and what follows it once committed (a relayed MQTT message is acknowledged
    /// only then; if it is never stored, the broker sends it again after a reconnect).
    fn store_now(&self, w: &Held) -> Result<(), StoreError> {
        let now = Utc::now();
        match w {
            Held::Paste { id, text } => self.store.put_paste(id, text, now),
            Held::Media { id, link } => self.store.put_media(id, link, now),
            Held::Bridged(m) => self.outbox.put_bridged(m),
            Held::Relayed(batch) => {
                self.relay.outbox.put_relayed(batch, now)?;
                self.ack(batch);
                Ok(())
            }
            Held::Audit(entry) => self.store.insert_audit(entry),
            Held::Journal { key, line } => self.meetings.store.journal_meeting_line(key, line),
            Held::Reminder(key) => self.store.record_reminder(key, now),
        }
    }

    fn ack(&self, batch: &RelayBatch) {
        if let Some(ack) = &batch.ack {
            match self.relay.mqtt.get(&ack.network) {
                Some(h) => h.ack(ack.delivery),
                None => {
                    tracing::warn!(network = %ack.network, "ack for an unknown MQTT connection")
                }
            }
        }
    }
}

impl Held {
    /// Logs a write that failed for another reason than a full database.
    fn lost(&self, e: &StoreError) {
        match self {
            Held::Paste { .. } => tracing::error!(error = %e, "paste not stored"),
            Held::Media { .. } => tracing::error!(error = %e, "media link not stored"),
            Held::Bridged(m) => {
                tracing::error!(room = %m.room, error = %e, "bridged message not stored; dropped")
            }
            Held::Relayed(_) => {
                tracing::error!(error = %e, "cannot store relayed MQTT messages; not acknowledging them")
            }
            Held::Audit(_) => tracing::error!(error = %e, "audit entry not stored"),
            Held::Journal { key, .. } => {
                tracing::error!(room = %key.room, error = %e, "meeting line not journaled")
            }
            Held::Reminder(key) => {
                tracing::error!(schedule = %key.schedule, error = %e, "posted reminder not recorded")
            }
        }
    }
}

impl MeetingsIo {
    /// Writes a meeting's files off the core task, and waits for them.
    /// Writes a meeting's files; a meeting that keeps its log only in the journal gets it
    /// back from there first (with `held`, its lines not yet stored).
    async fn write(
        &self,
        mut meeting: Box<Meeting>,
        held: Vec<JournalLine>,
        finished: bool,
        stale_base: Option<String>,
    ) {
        let store = self.store.clone();
        let dir = self.dir.clone();
        let room = meeting.room.clone();
        let mail = self.mail.clone();
        let wake = mail.as_ref().map(|m| m.wake.clone());
        let done = tokio::task::spawn_blocking(move || {
            if meeting.lines_in_journal() {
                let expected = meeting.line_count();
                let mut journal = store
                    .meeting_journal(&MeetingKey::of(&meeting))
                    .map_err(|e| format!("cannot read the meeting's journal: {e}"))?;
                journal.extend(held);
                meeting.restore_lines(&journal);
                if meeting.line_count() != expected {
                    tracing::warn!(room = %meeting.room, journal = meeting.line_count(), expected, "the meeting's journal and its count of lines differ; the files follow the journal");
                }
            }
            write_meeting_files(
                &store,
                &dir,
                &meeting,
                finished,
                stale_base.as_deref(),
                mail.as_ref(),
            )
        })
        .await;
        if let (Ok(Ok(())), true, Some(wake)) = (&done, finished, wake) {
            wake.notify_one();
        }
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
    mail: Option<&MeetingsMail>,
) -> Result<(), String> {
    let written = crate::minutes::write_files(dir, m, stale_base).map_err(|e| e.to_string())?;
    let files_dir = written
        .first()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.to_path_buf());
    // The minutes by mail: composed here, queued with the files' record (an SMTP failure
    // only delays the mail; a mail that cannot be composed is logged and the files stay).
    let queued = mail
        .filter(|mm| finished && super::mail::wanted(&mm.cfg, m))
        .and_then(|mm| {
            super::mail::compose(&mm.cfg, m, &mm.public_url, chrono::Utc::now())
                .inspect_err(
                    |e| tracing::error!(room = %m.room, error = %e, "meeting minutes not mailed"),
                )
                .ok()
        });
    store
        .record_meeting_files_and_mail(m, &files_dir, finished, queued.as_ref())
        .map_err(|e| e.to_string())
}
