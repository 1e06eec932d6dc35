//! `[[meetings.schedule]]`: meetings held at set times (a start in a time zone, an RFC 5545
//! recurrence rule), with reminders posted in their room (DESIGN §7 "Schedules").

use std::time::Duration;

use chrono::NaiveDateTime;
use toml::Spanned;

use super::Checker;
use crate::config::raw::{RawMeetings, RawSchedule};
use crate::config::{ConfigError, MeetingRooms};
use crate::core::schedule::{MAX_REMIND, Schedule, ScheduleError};

/// A meeting's length when `duration` is not given.
pub const DEFAULT_MEETING_DURATION: Duration = Duration::from_secs(3600);
/// The longest meeting.
const MAX_DURATION: Duration = Duration::from_secs(7 * 86_400);
/// The most reminders of one schedule.
const MAX_REMINDERS: usize = 10;
/// The longest schedule name, in characters.
const MAX_NAME: usize = 100;

impl Checker<'_> {
    pub(super) fn meeting_schedules(
        &self,
        raw: Option<&RawMeetings>,
        meetings: &MeetingRooms,
    ) -> Result<Vec<Schedule>, ConfigError> {
        let Some(m) = raw else {
            return Ok(Vec::new());
        };
        let mut out: Vec<Schedule> = Vec::with_capacity(m.schedule.len());
        for entry in &m.schedule {
            let s = self.schedule(entry, meetings)?;
            if out
                .iter()
                .any(|o| o.room == s.room && o.name.eq_ignore_ascii_case(&s.name))
            {
                return Err(self.loc.span(
                    &entry.get_ref().name,
                    format!(
                        "meetings.schedule.name: {} has two schedules named {:?}",
                        s.room, s.name
                    ),
                ));
            }
            out.push(s);
        }
        Ok(out)
    }

    fn schedule(
        &self,
        entry: &Spanned<RawSchedule>,
        meetings: &MeetingRooms,
    ) -> Result<Schedule, ConfigError> {
        let raw = entry.get_ref();
        let loc = &self.loc;
        let room = self.chat_room(&raw.room)?;
        if !meetings.contains(&room) {
            return Err(loc.span(
                &raw.room,
                format!(
                    "meetings.schedule.room: {room} holds no meetings (it is not in meetings.rooms)"
                ),
            ));
        }
        let name = raw.name.get_ref().trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control)
        {
            return Err(loc.span(
                &raw.name,
                format!(
                    "meetings.schedule.name {:?}: give a name of 1 to {MAX_NAME} characters, \
                     without control characters",
                    raw.name.get_ref()
                ),
            ));
        }
        let start = local_datetime(raw.start.get_ref().trim()).ok_or_else(|| {
            loc.span(
                &raw.start,
                format!(
                    "meetings.schedule.start {:?}: give a local date and time such as \
                     \"2026-12-09T16:00\" (no offset: the zone is `timezone`)",
                    raw.start.get_ref()
                ),
            )
        })?;
        let timezone = match &raw.timezone {
            None => chrono_tz::UTC,
            Some(tz) => tz.get_ref().trim().parse::<chrono_tz::Tz>().map_err(|_| {
                loc.span(
                    tz,
                    format!(
                        "meetings.schedule.timezone {:?}: not a time zone of the IANA database \
                         (such as \"Europe/Prague\" or \"UTC\")",
                        tz.get_ref()
                    ),
                )
            })?,
        };
        let duration = self.duration(
            &raw.duration,
            "meetings.schedule.duration",
            DEFAULT_MEETING_DURATION,
        )?;
        if duration.is_zero() || duration > MAX_DURATION {
            let at = raw.duration.as_ref().expect("the default is in range");
            return Err(loc.span(
                at,
                "meetings.schedule.duration must be longer than 0s and at most 7 days",
            ));
        }
        let agenda = match &raw.agenda {
            None => None,
            Some(a) => {
                let url = a.get_ref().trim();
                let ok = (url.starts_with("https://") || url.starts_with("http://"))
                    && url.len() > "https://".len()
                    && !url.chars().any(|c| c.is_whitespace() || c.is_control());
                if !ok {
                    return Err(loc.span(
                        a,
                        format!(
                            "meetings.schedule.agenda {:?}: give an http:// or https:// URL",
                            a.get_ref()
                        ),
                    ));
                }
                Some(url.to_owned())
            }
        };
        if raw.remind.len() > MAX_REMINDERS {
            return Err(loc.span(
                &raw.remind[MAX_REMINDERS],
                format!("meetings.schedule.remind: at most {MAX_REMINDERS} reminders"),
            ));
        }
        let mut remind = Vec::with_capacity(raw.remind.len());
        for r in &raw.remind {
            let d = self.duration(&Some(r.clone()), "meetings.schedule.remind", Duration::ZERO)?;
            if d > MAX_REMIND {
                return Err(loc.span(
                    r,
                    format!(
                        "meetings.schedule.remind {:?}: at most 30 days before the meeting",
                        r.get_ref()
                    ),
                ));
            }
            remind.push(d);
        }
        let rrule = raw.rrule.as_ref().map(|r| r.get_ref().as_str());
        Schedule::new(room, name, start, timezone, rrule, duration, agenda, remind).map_err(|e| {
            let (span, key) = match (&e, &raw.rrule) {
                (ScheduleError::NoSuchTime { .. } | ScheduleError::TooEarly(_), _) | (_, None) => {
                    (raw.start.span(), "start")
                }
                (_, Some(r)) => (r.span(), "rrule"),
            };
            loc.at(span.start, format!("meetings.schedule.{key}: {e}"))
        })
    }
}

/// `2026-12-09T16:00` or `2026-12-09T16:00:30` (a space for the `T` too).
fn local_datetime(s: &str) -> Option<NaiveDateTime> {
    [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    const BASE: &str = r##"
[bot]
nick = "sigbot"

[console]
enabled = true

[[irc]]
name = "libera"
server = "irc.libera.chat:6697"
channels = ["#sig", "#other"]

[meetings]
rooms = ["libera/#sig", "console/#local"]
"##;

    const GOOD: &str = r##"
[[meetings.schedule]]
room = "libera/#sig"
name = "sync"
start = "2026-12-09T16:00"
timezone = "Europe/Prague"
rrule = "FREQ=WEEKLY;INTERVAL=2"
duration = "45m"
agenda = "https://example.org/agenda"
remind = ["1d", "15m"]
"##;

    fn parse(extra: &str) -> Result<Config, crate::config::ConfigError> {
        Config::from_str_with_env(
            &format!("{BASE}{extra}"),
            Path::new("bot.toml"),
            &|_: &str| None,
        )
    }

    /// `bot.toml:L:C` of the first `needle` in the whole text.
    fn at(extra: &str, needle: &str) -> String {
        let text = format!("{BASE}{extra}");
        let i = text
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} not in {text}"));
        let line = text[..i].matches('\n').count() + 1;
        let col = i - text[..i].rfind('\n').map_or(0, |n| n + 1) + 1;
        format!("bot.toml:{line}:{col}")
    }

    /// The error of `GOOD` with `from` replaced by `to`; it must be at `to`.
    fn refused(from: &str, to: &str, message: &str) {
        let extra = GOOD.replacen(from, to, 1);
        let e = parse(&extra).expect_err("refused").to_string();
        let want = format!("{}: ", at(&extra, to));
        assert!(e.starts_with(&want), "{to}: want {want}…, got {e}");
        assert!(e.contains(message), "{to}: {e}");
    }

    #[test]
    fn a_schedule_is_read_with_its_zone_rule_and_reminders() {
        let c = parse(GOOD).unwrap();
        let s = &c.meeting_schedules[0];
        assert_eq!(s.room.to_string(), "libera/#sig");
        assert_eq!(s.name, "sync");
        assert_eq!(s.timezone, chrono_tz::Europe::Prague);
        assert_eq!(s.rrule.as_deref(), Some("FREQ=WEEKLY;INTERVAL=2"));
        assert_eq!(s.duration, Duration::from_secs(45 * 60));
        assert_eq!(
            s.remind,
            vec![Duration::from_secs(86_400), Duration::from_secs(900)]
        );
        assert!(
            c.summary()
                .contains("meeting schedule \"sync\" in libera/#sig")
        );
        // The least: room, name, start (UTC, an hour, held once, no reminders).
        let c = parse(
            "[[meetings.schedule]]\nroom = \"console/#local\"\nname = \"once\"\nstart = \"2026-12-09 16:00:30\"\n",
        )
        .unwrap();
        let s = &c.meeting_schedules[0];
        assert_eq!(s.timezone, chrono_tz::UTC);
        assert_eq!(s.rrule, None);
        assert_eq!(s.duration, DEFAULT_MEETING_DURATION);
        assert!(s.remind.is_empty());
    }

    #[test]
    fn bad_schedules_are_refused_at_their_key() {
        let q = |s: &str| format!("\"{s}\"");
        let cases = [
            (
                "FREQ=WEEKLY;INTERVAL=2",
                "FREQ=WEEKLY;INTERVAL=two",
                "bad rrule",
            ),
            (
                "FREQ=WEEKLY;INTERVAL=2",
                "FREQ=HOURLY;BYMINUTE=5",
                "too frequent",
            ),
            (
                "FREQ=WEEKLY;INTERVAL=2",
                "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
                "no occurrence",
            ),
            ("Europe/Prague", "Europe/Praha", "not a time zone"),
            (
                "2026-12-09T16:00",
                "2026-12-09T16:00Z",
                "local date and time",
            ),
            ("2026-12-09T16:00", "next tuesday", "local date and time"),
            (
                "2026-12-09T16:00",
                "2026-03-29T02:30",
                "does not exist in Europe/Prague",
            ),
            ("2026-12-09T16:00", "1999-12-31T16:00", "before 2000"),
            ("libera/#sig", "libera/#other", "holds no meetings"),
            ("libera/#sig", "nowhere/#sig", "not defined"),
            ("15m", "31d", "at most 30 days"),
            ("15m", "soon", "bad duration"),
            ("45m", "0s", "longer than 0s"),
            (
                "https://example.org/agenda",
                "javascript:alert(1)",
                "http:// or https://",
            ),
            ("sync", " ", "1 to 100 characters"),
        ];
        for (from, to, message) in cases {
            refused(&q(from), &q(to), message);
        }
        let e = parse(&GOOD.replacen("timezone", "tz", 1))
            .expect_err("unknown key")
            .to_string();
        assert!(e.contains("unknown field `tz`"), "{e}");
    }

    #[test]
    fn two_schedules_of_one_name_in_a_room_are_refused() {
        let twice = format!(
            "{GOOD}{}",
            GOOD.replacen("name = \"sync\"", "name = \"SYNC\"", 1)
        );
        let e = parse(&twice).expect_err("refused").to_string();
        let second = twice.rfind("SYNC").unwrap();
        let line = format!("{BASE}{twice}")[..BASE.len() + second]
            .matches('\n')
            .count()
            + 1;
        assert!(
            e.starts_with(&format!("bot.toml:{line}:8: meetings.schedule.name")),
            "{e}"
        );
        // The same name in another room is another schedule.
        let other = GOOD.replacen("libera/#sig", "console/#local", 1).replacen(
            "https://example.org/agenda",
            "https://example.org/b",
            1,
        );
        assert_eq!(
            parse(&format!("{GOOD}{other}"))
                .unwrap()
                .meeting_schedules
                .len(),
            2
        );
    }
}
