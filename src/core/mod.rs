//! The sans-I/O core: `Core::handle(event, now) -> Vec<Action>`.
//!
//! Adapters turn wire traffic into [`Event`]s; the core decides and returns [`Action`]s that
//! the adapters carry out. Nothing here touches a socket, a file or a clock of its own, so
//! every behaviour is unit-tested by feeding events and a fixed `now`.

pub mod action;
pub mod bridge;
pub mod commands;
pub mod event;
pub mod expiring;
pub mod format;
pub mod meeting;
pub mod package;
pub mod relay;
pub mod schedule;
pub mod secret;
pub mod watch;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

pub use action::{Action, Bridged, Priority, SendKind};
pub use bridge::{BridgeSettings, BridgeSpec, Bridges, EditMode, MatrixRelay, SideKind};
pub use commands::acl::Roles;
pub use commands::declarative::{
    AuditEntry, CommandSet, CommandSetHandle, CommandSpec, FetchOutcome, FetchRequest, Request,
    RequestBody,
};
pub use commands::{Builtin, Invocation, parse_invocation};
pub use event::{
    Activity, Event, IncomingMessage, LinkState, Media, MediaKind, Member, MessageKind, Presence,
    PresenceChange, Principal, RichMessage, RoomActivity, RoomRef, RoomRefError, Sender,
};
pub use meeting::{
    JournalLine, Meeting, MeetingClaims, MeetingKey, MeetingScope, MeetingSettings, Meetings,
};
pub use package::PackageVersion;
pub use secret::Secret;

/// The settings the core needs, taken from the validated config.
#[derive(Debug, Clone)]
pub struct CoreSettings {
    pub nick: String,
    pub prefix: String,
    pub roles: Roles,
    /// Every network's name, so `status` can list those that have not reported yet.
    pub networks: Vec<String>,
    pub version: String,
}

/// Everything a config reload changes in the core (DESIGN §5 "Reload"), handed over in one
/// event so that no event is handled with half of the old settings and half of the new.
#[derive(Debug)]
pub struct Reload {
    pub settings: CoreSettings,
    pub bridges: BridgeSettings,
    /// `None`: meetings stay as they are (off, or on with their settings).
    pub meetings: Option<MeetingSettings>,
    /// The relay's routes, compiled by the core (the app checked that they compile).
    pub relays: Vec<relay::RelaySpec>,
    pub commands: std::sync::Arc<CommandSet>,
    /// `[[meetings.schedule]]` (the reminders posted are kept).
    pub schedules: Vec<schedule::Schedule>,
}

/// A [`Reload`] on its way into the core (compared by identity, like command sets).
#[derive(Clone)]
pub struct ReloadHandle(pub std::sync::Arc<Reload>);

impl PartialEq for ReloadHandle {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for ReloadHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Reload({} networks, {} bridges, {} routes, {} commands)",
            self.0.settings.networks.len(),
            self.0.bridges.bridges.len(),
            self.0.relays.len(),
            self.0.commands.len()
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct NetworkStatus {
    state: LinkState,
    queue_len: usize,
}

pub struct Core {
    settings: CoreSettings,
    started: DateTime<Utc>,
    networks: BTreeMap<String, NetworkStatus>,
    meetings: Meetings,
    /// Declarative commands from `commands/*.toml`.
    commands: commands::declarative::Declarative,
    /// Bridges between rooms.
    bridges: Bridges,
    /// The MQTT relay's routes.
    relay: Option<relay::Relay>,
    /// Scheduled meetings and their reminders (`[[meetings.schedule]]`).
    schedules: schedule::Schedules,
}

impl Core {
    pub fn new(settings: CoreSettings, started: DateTime<Utc>) -> Self {
        let networks = settings
            .networks
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    NetworkStatus {
                        state: LinkState::Starting,
                        queue_len: 0,
                    },
                )
            })
            .collect();
        Self {
            settings,
            started,
            networks,
            meetings: Meetings::default(),
            relay: None,
            commands: commands::declarative::Declarative::default(),
            bridges: Bridges::default(),
            schedules: schedule::Schedules::default(),
        }
    }

    /// Installs the meeting schedules, with the reminders earlier runs posted.
    pub fn set_schedules(&mut self, schedules: schedule::Schedules) {
        self.schedules = schedules;
    }

    pub fn schedules(&self) -> &schedule::Schedules {
        &self.schedules
    }

    /// Turns the bridges on (DESIGN §8). Call before [`Core::enable_meetings`]: a bridge
    /// holds one meeting for all its rooms. `seed` drives the paste IDs. Without any
    /// bridge, call it all the same: the networks' kinds and the paste site in `settings`
    /// are what shapes the bot's own lines on IRC.
    pub fn enable_bridges(&mut self, settings: BridgeSettings, seed: u64) {
        self.bridges = Bridges::new(settings, seed);
        self.meetings.link_rooms(&self.bridges.groups());
        self.meetings.set_post_lines(self.bridges.post_lines());
    }

    pub fn bridges(&self) -> &Bridges {
        &self.bridges
    }

    /// Turns meetings on (DESIGN §7), taking back those that `journals` show unfinished;
    /// returns what resuming them needs done (notices, files of meetings that had ended).
    pub fn enable_meetings(
        &mut self,
        settings: MeetingSettings,
        journals: Vec<(MeetingKey, Vec<JournalLine>)>,
        now: DateTime<Utc>,
    ) -> Vec<Action> {
        self.meetings = Meetings::new(Some(settings));
        self.meetings.link_rooms(&self.bridges.groups());
        self.meetings.set_post_lines(self.bridges.post_lines());
        let actions = self.meetings.resume(journals, now);
        let actions = self.with_bridge_copies(actions, now);
        self.bridges.shape_for_irc(actions)
    }

    pub fn meetings(&self) -> &Meetings {
        &self.meetings
    }

    /// Tells the meetings what earlier runs left (rooms' directories, recent meetings and
    /// messages), so that a new meeting never takes another's files.
    pub fn claim_meeting_files(&mut self, claims: MeetingClaims) {
        self.meetings.claim(claims);
    }

    /// Installs the declarative commands (at start; later reloads come as events).
    pub fn set_commands(&mut self, set: std::sync::Arc<CommandSet>) {
        self.commands.replace(set);
    }

    /// Seeds the confirmation codes, so that tests see fixed codes.
    pub fn set_code_seed(&mut self, seed: u64) {
        self.commands.set_seed(seed);
    }

    /// Adds the MQTT relay's routes.
    pub fn with_relay(mut self, relay: relay::Relay) -> Self {
        self.relay = Some(relay);
        self
    }

    pub fn relay(&self) -> Option<&relay::Relay> {
        self.relay.as_ref()
    }

    pub fn settings(&self) -> &CoreSettings {
        &self.settings
    }

    /// Command invocations so far, by command and outcome (for the metrics).
    pub fn command_counts(&self) -> &BTreeMap<(String, &'static str), u64> {
        self.commands.counts()
    }

    pub fn handle(&mut self, event: Event, now: DateTime<Utc>) -> Vec<Action> {
        // A message in a bridged room goes to the bridge's other rooms first, so that the
        // bot's answer, copied there too, comes after the question.
        let mut out = match &event {
            Event::Message(msg) => self.bridges.relay(msg, now),
            Event::Presence(p) => self.bridges.presence(p, now),
            Event::Members { room, nicks } => {
                self.bridges.set_members(room, nicks.iter().cloned());
                Vec::new()
            }
            Event::Tick => self.bridges.presence_tick(now),
            Event::RichMessage(rich) => self.bridges.relay_rich(rich, now),
            Event::Activity(act) => self.bridges.relay_activity(act, now),
            _ => Vec::new(),
        };
        // Relayed copies of a message with an ID name it, line by line, so that the outbox
        // stores each line once: a message handled again after a crash is not relayed twice,
        // and every line of a message that became several is kept.
        if let Some(source) = source_id(&event) {
            name_sources(&mut out, &source);
        }
        let sent_at = source_time(&event);
        if let Some(sent_at) = sent_at {
            for a in &mut out {
                if let Action::Bridged(b) = a {
                    b.sent_at = Some(sent_at);
                }
            }
        }
        let actions = self.handle_event(event, now);
        // Whatever the bot says in a room that holds a meeting belongs to its log.
        // ...at the time of the line that made the bot speak (DESIGN §7: server time).
        let at = meeting::line_time(sent_at, now, None);
        let actions = self.meetings.log_outgoing(actions, at);
        out.extend(self.with_bridge_copies(actions, now));
        // Whatever made the bot speak, IRC gets it defused and within its line cap.
        self.bridges.shape_for_irc(out)
    }

    /// The actions, followed by copies of the bot's words for the other rooms of bridges.
    fn with_bridge_copies(&self, mut actions: Vec<Action>, now: DateTime<Utc>) -> Vec<Action> {
        let copies = self.bridges.fan_out(&actions, now);
        actions.extend(copies);
        actions
    }

    fn handle_event(&mut self, event: Event, now: DateTime<Utc>) -> Vec<Action> {
        match event {
            Event::Message(msg) => self.on_message(msg, now),
            Event::RichMessage(rich) => self.on_message(rich.message, now),
            // Only the bridge reacts to these (above).
            Event::Activity(_) => Vec::new(),
            // The bridge took these before.
            Event::Presence(_) | Event::Members { .. } => Vec::new(),
            Event::RoomMembers { room, members } => {
                self.bridges.set_room_members(&room, members);
                Vec::new()
            }
            Event::Delivered { room, id, text } => {
                self.bridges.remember_delivered(&room, &id, &text, now);
                Vec::new()
            }
            Event::NetworkState {
                network,
                state,
                queue_len,
            } => {
                // A network removed by a reload may still say that it stopped.
                if self.settings.networks.contains(&network) {
                    self.networks
                        .insert(network, NetworkStatus { state, queue_len });
                }
                Vec::new()
            }
            Event::Tick => {
                let mut out = self.commands.tick(now);
                out.extend(self.on_tick(now));
                out.extend(self.meetings.tick(now));
                out.extend(self.schedules.tick(now));
                out
            }
            Event::FetchDone { id, outcome } => self.commands.finished(id, outcome, now),
            Event::CommandsReloaded(set) => {
                self.commands.replace(set.0);
                Vec::new()
            }
            Event::Reloaded(r) => self.on_reload(&r.0),
            Event::Mqtt(m) => self.on_mqtt(m, now),
            Event::SeriesRecalled {
                key,
                room,
                previous,
            } => self.meetings.on_recalled(&key, &room, previous.as_deref()),
        }
    }

    /// Swaps every setting a reload changes, keeping what runs: meetings, pending
    /// confirmations of commands still defined, the bridges' memory, the relay's dedup
    /// keys and open windows of routes that keep their names. The digests of routes that
    /// are gone are told now.
    fn on_reload(&mut self, r: &Reload) -> Vec<Action> {
        self.settings = r.settings.clone();
        self.networks.retain(|n, _| r.settings.networks.contains(n));
        for n in &r.settings.networks {
            self.networks.entry(n.clone()).or_insert(NetworkStatus {
                state: LinkState::Starting,
                queue_len: 0,
            });
        }
        self.commands.replace(r.commands.clone());
        self.bridges.reconfigure(r.bridges.clone());
        self.meetings.link_rooms(&self.bridges.groups());
        self.meetings.set_post_lines(self.bridges.post_lines());
        if let Some(m) = &r.meetings {
            self.meetings.set_settings(m.clone());
        }
        self.schedules.replace(r.schedules.clone());
        // The app compiled the same routes before sending them: an error cannot happen, and
        // would keep the routes in force.
        let Ok(routes) = relay::Relay::new(&r.relays) else {
            return Vec::new();
        };
        match &mut self.relay {
            Some(relay) => {
                let batch = relay.adopt(routes);
                if batch.is_empty() {
                    Vec::new()
                } else {
                    vec![Action::Relay(batch)]
                }
            }
            None => {
                self.relay = Some(routes);
                Vec::new()
            }
        }
    }

    /// What must be stored before the process stops: digests of relay bursts still open.
    pub fn on_shutdown(&mut self) -> Vec<Action> {
        let actions = match &mut self.relay {
            Some(r) => {
                let batch = r.on_shutdown();
                if batch.is_empty() {
                    Vec::new()
                } else {
                    vec![Action::Relay(batch)]
                }
            }
            None => Vec::new(),
        };
        self.bridges.shape_for_irc(actions)
    }

    fn on_tick(&mut self, now: DateTime<Utc>) -> Vec<Action> {
        match &mut self.relay {
            Some(r) => {
                let batch = r.on_tick(now);
                if batch.is_empty() {
                    Vec::new()
                } else {
                    vec![Action::Relay(batch)]
                }
            }
            None => Vec::new(),
        }
    }

    fn on_mqtt(&mut self, m: relay::MqttMessage, now: DateTime<Utc>) -> Vec<Action> {
        let batch = match &mut self.relay {
            Some(r) => r.on_message(m, now),
            // No routes: acknowledge, or the broker would send it again and again.
            None => relay::RelayBatch {
                ack: m.delivery.map(|delivery| relay::MqttAck {
                    network: m.network,
                    delivery,
                }),
                ..Default::default()
            },
        };
        if batch.is_empty() {
            Vec::new()
        } else {
            vec![Action::Relay(batch)]
        }
    }

    fn on_message(&mut self, msg: IncomingMessage, now: DateTime<Utc>) -> Vec<Action> {
        if msg.kind == MessageKind::Notice {
            // Notices are never answered: that is how bots avoid talking to each other.
            return Vec::new();
        }
        // Meetings see every line first: they log it, and a meeting command is theirs alone.
        let (mut actions, meeting_command) = self.meetings.on_message(&msg, now);
        if meeting_command {
            return actions;
        }
        actions.extend(self.on_command(msg, now));
        actions
    }
}

/// The ID that names a network's message across a replay: `<network>/<network's ID>`.
/// Only the network and the ID: a network's message IDs are unique across its rooms, while a
/// room's name may change between runs (a Matrix room known by its ID until its alias is
/// learnt), and a replay must give the same key.
fn source_id(event: &Event) -> Option<String> {
    let (room, id) = match event {
        Event::Message(m) => (&m.room, m.id.as_ref()?),
        Event::RichMessage(r) => (&r.message.room, r.message.id.as_ref()?),
        Event::Activity(a) => (&a.room, a.id.as_ref()?),
        _ => return None,
    };
    Some(format!("{}/{id}", room.network))
}

/// When the network says a message was sent, if it says it.
fn source_time(event: &Event) -> Option<DateTime<Utc>> {
    match event {
        Event::Message(m) => m.sent_at,
        Event::RichMessage(r) => r.message.sent_at,
        Event::Activity(a) => a.sent_at,
        _ => None,
    }
}

/// Gives each bridged line of one source message its own key: the source and the line's
/// position among the lines for the same destination room (`<source>#<n>`, from 1).
fn name_sources(actions: &mut [Action], source: &str) {
    let mut positions: BTreeMap<RoomRef, usize> = BTreeMap::new();
    for a in actions {
        if let Action::Bridged(b) = a {
            let n = positions.entry(b.room.clone()).or_insert(0);
            *n += 1;
            b.source = Some(format!("{source}#{n}"));
        }
    }
}

#[cfg(test)]
mod reload_tests;
#[cfg(test)]
mod tests;
