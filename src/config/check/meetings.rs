//! `[meetings]`: the rooms where MeetBot commands work.

use super::Checker;
use crate::config::raw::{RawMeetingRooms, RawMeetings};
use crate::config::{ConfigError, MeetingRooms};

impl Checker<'_> {
    pub(super) fn meetings(&self, raw: Option<&RawMeetings>) -> Result<MeetingRooms, ConfigError> {
        let Some(m) = raw else {
            return Ok(MeetingRooms::None);
        };
        match m.rooms.get_ref() {
            RawMeetingRooms::All(s) if s == "all" => Ok(MeetingRooms::All),
            RawMeetingRooms::All(s) => Err(self.loc.span(
                &m.rooms,
                format!("meetings.rooms {s:?}: give a list of rooms or \"all\""),
            )),
            RawMeetingRooms::List(rooms) => Ok(MeetingRooms::Some(self.chat_rooms(rooms)?)),
        }
    }
}
