//! The `meeting_reminders` table: which reminders of scheduled meetings were posted
//! (DESIGN §7 "Schedules"), and the room slug a schedule's calendar is served under.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use rusqlite::{OptionalExtension as _, params};

use super::{Store, StoreError};
use crate::core::RoomRef;
use crate::core::schedule::ReminderKey;

/// How long the record of a posted reminder is kept after its meeting started (well past
/// the time it could still be posted).
const KEEP: TimeDelta = TimeDelta::days(2);

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Store {
    /// Records a posted reminder (once: recording it again changes nothing), and forgets
    /// those of meetings that started more than two days before `now`.
    pub fn record_reminder(&self, key: &ReminderKey, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT OR IGNORE INTO meeting_reminders (schedule, occurrence, offset_s, posted)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    key.schedule,
                    time(key.occurrence),
                    key.offset_secs,
                    time(now)
                ],
            )?;
            tx.execute(
                "DELETE FROM meeting_reminders WHERE occurrence < ?1",
                [time(now - KEEP)],
            )?;
            tx.commit()
        })
    }

    /// The reminders posted for meetings that start at `since` or later.
    pub fn reminders_posted(&self, since: DateTime<Utc>) -> Result<Vec<ReminderKey>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT schedule, occurrence, offset_s FROM meeting_reminders
                 WHERE occurrence >= ?1",
            )?;
            let rows = st.query_map([time(since)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (schedule, occurrence, offset_secs) = row?;
                if let Ok(t) = DateTime::parse_from_rfc3339(&occurrence) {
                    out.push(ReminderKey {
                        schedule,
                        occurrence: t.to_utc(),
                        offset_secs,
                    });
                }
            }
            Ok(out)
        })
    }

    /// The directory (room slug) the room's meetings have, if it held one (DESIGN §7 Files).
    pub fn room_slug_of(&self, room: &RoomRef) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT room_slug FROM meetings
                 WHERE room = ?1 AND room_slug IS NOT NULL AND seq > 0 ORDER BY id LIMIT 1",
                [room.to_string()],
                |r| r.get(0),
            )
            .optional()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posted_reminders_are_kept_once_and_old_ones_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let key = |occ: &str, off: i64| ReminderKey {
            schedule: "libera/#m sync".into(),
            occurrence: t(occ),
            offset_secs: off,
        };
        let now = t("2026-12-09T14:45:00Z");
        store
            .record_reminder(&key("2026-12-01T15:00:00Z", 900), t("2026-12-01T14:45:00Z"))
            .unwrap();
        store
            .record_reminder(&key("2026-12-09T15:00:00Z", 900), now)
            .unwrap();
        store
            .record_reminder(&key("2026-12-09T15:00:00Z", 900), now)
            .unwrap();
        store
            .record_reminder(&key("2026-12-09T15:00:00Z", 0), now)
            .unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let mut got = store.reminders_posted(t("2026-11-01T00:00:00Z")).unwrap();
        got.sort();
        assert_eq!(
            got,
            vec![
                key("2026-12-09T15:00:00Z", 0),
                key("2026-12-09T15:00:00Z", 900)
            ],
            "the week-old one is gone, the repeated one kept once"
        );
        assert!(
            store
                .reminders_posted(t("2026-12-10T00:00:00Z"))
                .unwrap()
                .is_empty()
        );
    }
}
