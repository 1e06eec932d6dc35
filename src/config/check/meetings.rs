//! `[meetings]`: the rooms where MeetBot commands work, and when an idle meeting ends.

use std::time::Duration;

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

    /// `[meetings] idle_timeout`: 3 hours unless set; never zero.
    pub(super) fn meeting_idle_timeout(
        &self,
        raw: Option<&RawMeetings>,
    ) -> Result<Duration, ConfigError> {
        let Some(s) = raw.and_then(|m| m.idle_timeout.as_ref()) else {
            return Ok(MEETING_IDLE_TIMEOUT);
        };
        let d = self.duration(&Some(s.clone()), "idle_timeout", MEETING_IDLE_TIMEOUT)?;
        if d.is_zero() {
            return Err(self
                .loc
                .span(s, "meetings.idle_timeout must be longer than 0s".to_owned()));
        }
        Ok(d)
    }
}

/// How long a meeting may go without a line before it is ended, by default.
pub const MEETING_IDLE_TIMEOUT: Duration = Duration::from_secs(3 * 3600);
