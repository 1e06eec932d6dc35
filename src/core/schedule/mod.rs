//! Meeting schedules and their reminders (DESIGN §7 "Schedules"): `[[meetings.schedule]]`
//! entries, their occurrences (RFC 5545 recurrence rules in an IANA time zone, through the
//! `rrule` crate), the reminders due at a given time, and the `!nextmeeting` answer.
//!
//! Pure like the rest of the core: time comes in as `now`. Which reminders were posted is
//! told at start ([`Schedules::new`]) and recorded through [`Action::ReminderPosted`], so
//! that each one is posted once, across restarts too.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use rrule::{Frequency, RRule, RRuleSet, Unvalidated};

use super::action::Action;
use super::event::RoomRef;

/// The longest `remind` offset: a reminder more than this long before a meeting is refused.
pub const MAX_REMIND: Duration = Duration::from_secs(30 * 86_400);
/// How far ahead occurrences are looked for (`!nextmeeting`, the calendar).
pub const LOOKAHEAD: TimeDelta = TimeDelta::days(366);
/// The most occurrences the calendar lists.
pub const CALENDAR_OCCURRENCES: usize = 20;
/// How long after its time a reminder is still posted when the meeting started meanwhile
/// (a `0s` reminder, or one missed while the bot was down).
pub const LATE: TimeDelta = TimeDelta::seconds(60);
/// The most occurrences one look-up reads from the start on (a daily meeting since 2000 is
/// under 10,000): past that it stops, whatever the rule.
const MAX_SCAN: usize = 100_000;
/// The earliest first occurrence: occurrences are read from the start on, so an old start
/// costs every look-up.
pub const EARLIEST_START: i32 = 2000;
/// How often the occurrences the reminders need are computed again.
const REFRESH: TimeDelta = TimeDelta::hours(1);
/// The most occurrences of one schedule kept for the reminders (a daily meeting over
/// [`MAX_REMIND`] and the refresh).
const KEPT: usize = 64;

/// Why a schedule is refused (the config reports it at the schedule's key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("{start} does not exist in {tz} (the clocks skip it); pick another time")]
    NoSuchTime { start: NaiveDateTime, tz: Tz },
    #[error("bad rrule: {0}")]
    Rrule(String),
    #[error("rrule FREQ={0} is too frequent for a meeting: use DAILY, WEEKLY, MONTHLY or YEARLY")]
    TooFrequent(String),
    #[error("the rrule gives no occurrence at all")]
    NoOccurrence,
    #[error("{0} is before {EARLIEST_START}: give a later first occurrence")]
    TooEarly(NaiveDateTime),
}

/// One `[[meetings.schedule]]` entry, checked.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub room: RoomRef,
    pub name: String,
    /// The first occurrence, in `timezone`'s local time.
    pub start: NaiveDateTime,
    pub timezone: Tz,
    /// The recurrence rule as written (without `RRULE:`); `None`: the meeting happens once.
    pub rrule: Option<String>,
    pub duration: Duration,
    pub agenda: Option<String>,
    /// Offsets before the start, longest first, each once.
    pub remind: Vec<Duration>,
    /// The occurrences: `start` and the rule, in `timezone`.
    set: Option<RRuleSet>,
    first: DateTime<Utc>,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.room,
            &self.name,
            self.start,
            self.timezone,
            &self.rrule,
            self.duration,
            &self.agenda,
            &self.remind,
        ) == (
            &other.room,
            &other.name,
            other.start,
            other.timezone,
            &other.rrule,
            other.duration,
            &other.agenda,
            &other.remind,
        )
    }
}

/// The key a posted reminder is recorded under: the schedule, the occurrence, the offset.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReminderKey {
    /// [`Schedule::id`]
    pub schedule: String,
    pub occurrence: DateTime<Utc>,
    /// The offset before the start, in seconds.
    pub offset_secs: i64,
}

impl Schedule {
    /// Checks a schedule: the start exists in the time zone (an ambiguous one, in the hour
    /// the clocks go back, is the first of the two), the rule parses, recurs at most daily
    /// and gives at least one occurrence.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        room: RoomRef,
        name: String,
        start: NaiveDateTime,
        timezone: Tz,
        rrule: Option<&str>,
        duration: Duration,
        agenda: Option<String>,
        mut remind: Vec<Duration>,
    ) -> Result<Schedule, ScheduleError> {
        if chrono::Datelike::year(&start) < EARLIEST_START {
            return Err(ScheduleError::TooEarly(start));
        }
        let local =
            start
                .and_local_timezone(timezone)
                .earliest()
                .ok_or(ScheduleError::NoSuchTime {
                    start,
                    tz: timezone,
                })?;
        let first = local.with_timezone(&Utc);
        let rrule = rrule
            .map(|r| {
                let r = r.trim();
                r.strip_prefix("RRULE:").unwrap_or(r).trim().to_owned()
            })
            .filter(|r| !r.is_empty());
        let set = match &rrule {
            None => None,
            Some(text) => {
                if text.contains(['\n', '\r']) || text.to_uppercase().contains("DTSTART") {
                    return Err(ScheduleError::Rrule(
                        "give only the rule (FREQ=...;...); the start is `start`".to_owned(),
                    ));
                }
                let parsed: RRule<Unvalidated> = text
                    .parse()
                    .map_err(|e: rrule::RRuleError| ScheduleError::Rrule(e.to_string()))?;
                let dt_start = local.with_timezone(&rrule::Tz::Tz(timezone));
                let rule = parsed
                    .validate(dt_start)
                    .map_err(|e| ScheduleError::Rrule(e.to_string()))?;
                match rule.get_freq() {
                    Frequency::Yearly
                    | Frequency::Monthly
                    | Frequency::Weekly
                    | Frequency::Daily => {}
                    f => return Err(ScheduleError::TooFrequent(f.to_string())),
                }
                let set = RRuleSet::new(dt_start).rrule(rule).limit();
                if (&set).into_iter().next().is_none() {
                    return Err(ScheduleError::NoOccurrence);
                }
                Some(set)
            }
        };
        remind.sort_unstable_by(|a, b| b.cmp(a));
        remind.dedup();
        Ok(Schedule {
            room,
            name,
            start,
            timezone,
            rrule,
            duration,
            agenda,
            remind,
            set,
            first,
        })
    }

    /// What names the schedule in the store: its room and name.
    pub fn id(&self) -> String {
        format!("{} {}", self.room, self.name)
    }

    /// The starts of the occurrences after `after` (excluded), in order: at most `max`, and
    /// none later than [`LOOKAHEAD`] past `after`.
    pub fn occurrences_after(&self, after: DateTime<Utc>, max: usize) -> Vec<DateTime<Utc>> {
        let horizon = after + LOOKAHEAD;
        let Some(set) = &self.set else {
            return if self.first > after && self.first <= horizon && max > 0 {
                vec![self.first]
            } else {
                Vec::new()
            };
        };
        let mut out = Vec::new();
        if max == 0 {
            return out;
        }
        for t in set.into_iter().take(MAX_SCAN) {
            let t = t.with_timezone(&Utc);
            if t > horizon {
                break;
            }
            if t > after {
                out.push(t);
                if out.len() >= max {
                    break;
                }
            }
        }
        out
    }

    /// The next occurrence that has not started at `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.occurrences_after(now, 1).into_iter().next()
    }

    /// `2026-12-09 15:00 UTC (16:00 Europe/Prague)`: the local date too when it differs.
    pub fn when(&self, t: DateTime<Utc>) -> String {
        let local = t.with_timezone(&self.timezone);
        let utc = t.format("%Y-%m-%d %H:%M UTC");
        let local = if local.date_naive() == t.date_naive() {
            local.format("%H:%M").to_string()
        } else {
            local.format("%Y-%m-%d %H:%M").to_string()
        };
        format!("{utc} ({local} {})", self.timezone.name())
    }
}

/// "in 15 minutes", "in 2 days 3 hours", "now": how long until `t`, rounded to its two
/// largest units.
pub fn relative(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    if secs <= 0 {
        return if secs > -LATE.num_seconds() {
            "now".to_owned()
        } else {
            format!("{} ago", span(-secs))
        };
    }
    format!("in {}", span(secs))
}

fn span(secs: i64) -> String {
    let unit = |n: i64, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    if secs < 60 {
        return unit(secs, "second");
    }
    // Whole minutes, rounded: a tick late is still "in 15 minutes".
    let mins = (secs + 30) / 60;
    if mins < 60 {
        return unit(mins, "minute");
    }
    let (days, hours, mins) = (mins / 1440, mins % 1440 / 60, mins % 60);
    match (days, hours, mins) {
        (0, h, 0) => unit(h, "hour"),
        (0, h, m) => format!("{} {}", unit(h, "hour"), unit(m, "minute")),
        (d, 0, _) => unit(d, "day"),
        (d, h, _) => format!("{} {}", unit(d, "day"), unit(h, "hour")),
    }
}

/// The schedules in force, what of them is coming soon, and the reminders posted.
#[derive(Debug, Default)]
pub struct Schedules {
    list: Vec<Schedule>,
    /// Per schedule, the occurrences the reminders may need (from a little before the last
    /// refresh to [`MAX_REMIND`] and a day after it).
    upcoming: Vec<Vec<DateTime<Utc>>>,
    refreshed: Option<DateTime<Utc>>,
    /// Reminders posted (or passed over for a later one), recent ones only.
    posted: BTreeSet<ReminderKey>,
}

impl Schedules {
    /// The schedules, with the reminders that earlier runs posted.
    pub fn new(list: Vec<Schedule>, posted: impl IntoIterator<Item = ReminderKey>) -> Self {
        Schedules {
            upcoming: vec![Vec::new(); list.len()],
            list,
            refreshed: None,
            posted: posted.into_iter().collect(),
        }
    }

    /// New schedules in force (a config reload); the reminders posted are kept, so that a
    /// schedule that keeps its room and name posts none twice.
    pub fn replace(&mut self, list: Vec<Schedule>) {
        self.upcoming = vec![Vec::new(); list.len()];
        self.list = list;
        self.refreshed = None;
    }

    pub fn list(&self) -> &[Schedule] {
        &self.list
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn refresh(&mut self, now: DateTime<Utc>) {
        let stale = match self.refreshed {
            None => true,
            Some(at) => now < at || now - at >= REFRESH,
        };
        if !stale {
            return;
        }
        let until = now
            + TimeDelta::from_std(MAX_REMIND).unwrap_or(TimeDelta::days(30))
            + REFRESH
            + TimeDelta::days(1);
        self.upcoming = self
            .list
            .iter()
            .map(|s| {
                let mut v = s.occurrences_after(now - LATE - TimeDelta::seconds(1), KEPT);
                v.retain(|t| *t <= until);
                v
            })
            .collect();
        let forget = now - REFRESH;
        self.posted.retain(|k| k.occurrence >= forget);
        self.refreshed = Some(now);
    }

    /// The reminders due at `now`: for each occurrence, the one reminder whose time came
    /// last among those not posted yet, posted while the meeting has not started (or up to
    /// [`LATE`] after the reminder's own time). The earlier ones it stands for are recorded
    /// as posted too, so that a bot that was down says it once, not once per offset; and a
    /// late one waits when the next reminder comes within [`LATE`].
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Action> {
        if self.list.is_empty() {
            return Vec::new();
        }
        self.refresh(now);
        let mut out = Vec::new();
        for (s, upcoming) in self.list.iter().zip(&self.upcoming) {
            for &t in upcoming {
                let due: Vec<ReminderKey> = s
                    .remind
                    .iter()
                    .filter_map(|d| {
                        let offset = TimeDelta::from_std(*d).ok()?;
                        let at = t - offset;
                        let until = t.max(at + LATE);
                        (at <= now && now < until).then(|| ReminderKey {
                            schedule: s.id(),
                            occurrence: t,
                            offset_secs: offset.num_seconds(),
                        })
                    })
                    .filter(|k| !self.posted.contains(k))
                    .collect();
                if due.is_empty() {
                    continue;
                }
                // A late reminder (the bot was down, or the schedule is new) whose next one
                // comes within a minute waits for it: one line, not two in a row.
                let latest = due.iter().map(|k| k.offset_secs).min().unwrap_or(0);
                let late = now - (t - TimeDelta::seconds(latest)) > LATE;
                let next_soon = s.remind.iter().any(|d| {
                    TimeDelta::from_std(*d).is_ok_and(|d| {
                        let at = t - d;
                        at > now && at - now <= LATE
                    })
                });
                if late && next_soon {
                    continue;
                }
                for k in due {
                    self.posted.insert(k.clone());
                    out.push(Action::ReminderPosted(k));
                }
                out.push(Action::reply(&s.room, reminder_text(s, t, now)));
            }
        }
        out
    }

    /// The next occurrence of `s` after `now`: from the reminders' occurrences when they
    /// hold it, else computed.
    fn next_of(&self, s: &Schedule, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cached = self
            .list
            .iter()
            .position(|l| std::ptr::eq(l, s))
            .and_then(|i| self.upcoming.get(i))
            .filter(|_| self.refreshed.is_some_and(|at| at <= now))
            .and_then(|u| u.iter().find(|t| **t > now).copied());
        cached.or_else(|| s.next_after(now))
    }

    /// The `!nextmeeting [name]` answer in `room`: the next occurrence of the schedules of
    /// `rooms` (the room and its bridge's), or of every schedule when they have none; with a
    /// name, of the schedule of that name (in those rooms first).
    pub fn next_answer(&self, rooms: &[RoomRef], name: &str, now: DateTime<Utc>) -> String {
        let name = name.trim();
        if self.list.is_empty() {
            return "no meetings are scheduled".to_owned();
        }
        let here: Vec<&Schedule> = self
            .list
            .iter()
            .filter(|s| rooms.contains(&s.room))
            .collect();
        let pool: Vec<&Schedule> = if here.is_empty() {
            self.list.iter().collect()
        } else {
            here.clone()
        };
        let candidates: Vec<&Schedule> = if name.is_empty() {
            pool
        } else {
            let mut found = named(&here, name);
            if found.is_empty() {
                found = named(&self.list.iter().collect::<Vec<_>>(), name);
            }
            if found.is_empty() {
                return format!(
                    "no scheduled meeting named \"{}\"",
                    super::commands::excerpt(name)
                );
            }
            found
        };
        let next = candidates
            .iter()
            .filter_map(|s| self.next_of(s, now).map(|t| (t, *s)))
            .min_by_key(|(t, s)| (*t, s.name.clone()));
        match next {
            Some((t, s)) => {
                let mut text = format!(
                    "next meeting: {} in {}, {}, {}",
                    s.name,
                    s.room.room,
                    s.when(t),
                    relative(now, t)
                );
                if let Some(a) = &s.agenda {
                    text.push_str(&format!("; agenda: {a}"));
                }
                text
            }
            None if name.is_empty() => "no meeting is scheduled from now on".to_owned(),
            None => format!("{}: no further meeting is scheduled", candidates[0].name),
        }
    }
}

/// The schedules of `list` called `name`, case aside.
fn named<'a>(list: &[&'a Schedule], name: &str) -> Vec<&'a Schedule> {
    list.iter()
        .copied()
        .filter(|s| s.name.eq_ignore_ascii_case(name))
        .collect()
}

/// `Reminder: weekly-sync starts in 15 minutes, 2026-12-09 15:00 UTC (16:00 Europe/Prague);
/// agenda: <url>`
pub fn reminder_text(s: &Schedule, t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let mut text = format!(
        "Reminder: {} starts {}, {}",
        s.name,
        relative(now, t),
        s.when(t)
    );
    if let Some(a) = &s.agenda {
        text.push_str(&format!("; agenda: {a}"));
    }
    text
}

#[cfg(test)]
mod tests;
