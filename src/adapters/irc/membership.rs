//! Who is in which channel, from NAMES, JOIN, PART, KICK, QUIT and NICK.

use super::*;

impl Driver {
    pub(super) async fn presence(&self, chan: &str, nick: &str, what: PresenceChange) {
        let ev = Event::Presence(Presence {
            room: RoomRef::new(&self.cfg.name, chan),
            nick: nick.to_owned(),
            what,
        });
        let _ = self.events.send(ev).await;
    }
}

/// Who is in one joined channel.
#[derive(Debug, Default)]
pub(super) struct Channel {
    /// The channel's name as the server spells it.
    pub(super) name: String,
    /// Lower-cased nick -> nick.
    pub(super) nicks: HashMap<String, String>,
}

impl Session {
    /// Takes `nick` out of every channel; returns the channels it was in.
    pub(super) fn remove_member(&mut self, nick: &str) -> Vec<String> {
        let key = lower(nick);
        let mut rooms: Vec<String> = self
            .channels
            .values_mut()
            .filter_map(|c| c.nicks.remove(&key).map(|_| c.name.clone()))
            .collect();
        rooms.sort();
        rooms
    }

    /// Renames a member in every channel; returns the channels it was in.
    pub(super) fn rename_member(&mut self, old: &str, new: &str) -> Vec<String> {
        let rooms = self.remove_member(old);
        for r in &rooms {
            if let Some(c) = self.channels.get_mut(&lower(r)) {
                c.nicks.insert(lower(new), new.to_owned());
            }
        }
        rooms
    }
}
