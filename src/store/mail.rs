//! The `mail_queue` table: the minutes mailed at `#endmeeting` (`[meetings.mail]`), kept until
//! the SMTP server has taken them, with each one's attempts and when to try again.

use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use rusqlite::{OptionalExtension as _, Transaction, params};

use super::{Store, StoreError};

/// A mail to queue: the whole message as it goes on the wire, and its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    /// The `Message-ID` in `message`, for the log.
    pub message_id: String,
    pub envelope_from: String,
    pub envelope_to: Vec<String>,
    /// The formatted message (RFC 5322), `Message-ID` and `Date` included: every attempt
    /// sends these same bytes.
    pub message: Vec<u8>,
    pub queued_at: DateTime<Utc>,
}

/// A mail waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailRow {
    pub id: i64,
    pub mail: QueuedMail,
    /// Attempts made so far.
    pub attempts: u32,
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Queues `mail` for the meeting `meeting_id`, once: a meeting that already has its mail
/// keeps it.
pub(super) fn queue(
    tx: &Transaction<'_>,
    meeting_id: i64,
    mail: &QueuedMail,
) -> rusqlite::Result<()> {
    let to = serde_json::to_string(&mail.envelope_to).unwrap_or_else(|_| "[]".to_owned());
    tx.execute(
        "INSERT OR IGNORE INTO mail_queue
            (meeting_id, message_id, envelope_from, envelope_to, message, queued_ms,
             next_attempt_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![
            meeting_id,
            mail.message_id,
            mail.envelope_from,
            to,
            mail.message,
            ms(mail.queued_at)
        ],
    )?;
    Ok(())
}

impl Store {
    /// The oldest unsent mail due at `now`, if any.
    pub fn due_mail(&self, now: DateTime<Utc>) -> Result<Option<MailRow>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT id, message_id, envelope_from, envelope_to, message, queued_ms, attempts
                 FROM mail_queue WHERE sent_ms IS NULL AND next_attempt_ms <= ?1
                 ORDER BY next_attempt_ms, id LIMIT 1",
                [ms(now)],
                |r| {
                    let to: String = r.get(3)?;
                    Ok(MailRow {
                        id: r.get(0)?,
                        mail: QueuedMail {
                            message_id: r.get(1)?,
                            envelope_from: r.get(2)?,
                            envelope_to: serde_json::from_str(&to).unwrap_or_default(),
                            message: r.get(4)?,
                            queued_at: time(r.get(5)?),
                        },
                        attempts: r.get(6)?,
                    })
                },
            )
            .optional()
        })
    }

    /// When the next unsent mail is due (`None`: nothing waits).
    pub fn next_mail_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT MIN(next_attempt_ms) FROM mail_queue WHERE sent_ms IS NULL",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
        })
        .map(|t| t.map(time))
    }

    /// The server took mail `id`: it is never sent again.
    pub fn mail_sent(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE mail_queue SET sent_ms = ?2, attempts = attempts + 1, last_error = NULL
                 WHERE id = ?1",
                params![id, ms(now)],
            )
            .map(|_| ())
        })
    }

    /// An attempt at mail `id` failed with `error`: it is tried again `retry_in` from `now`.
    pub fn mail_failed(
        &self,
        id: i64,
        error: &str,
        now: DateTime<Utc>,
        retry_in: Duration,
    ) -> Result<(), StoreError> {
        let next = now + chrono::Duration::from_std(retry_in).unwrap_or(chrono::Duration::MAX);
        self.with(|c| {
            c.execute(
                "UPDATE mail_queue SET attempts = attempts + 1, last_error = ?2,
                   next_attempt_ms = ?3 WHERE id = ?1 AND sent_ms IS NULL",
                params![id, error, ms(next)],
            )
            .map(|_| ())
        })
    }

    /// Mails not sent yet.
    pub fn unsent_mail_count(&self) -> Result<u64, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM mail_queue WHERE sent_ms IS NULL",
                [],
                |r| r.get(0),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;
    use crate::core::RoomRef;
    use crate::core::meeting::JournalLine;
    use crate::core::meeting::replay;

    fn finished_meeting(t: DateTime<Utc>) -> crate::core::meeting::Meeting {
        let room = RoomRef::new("libera", "#sig");
        let line = JournalLine {
            time: t,
            nick: "alice".into(),
            text: "#startmeeting Budget".into(),
            ..JournalLine::default()
        };
        let mut m = replay(&room, &[line], "!").unwrap();
        m.add_line("alice", "#endmeeting", t, false);
        m
    }

    fn mail(t: DateTime<Utc>) -> QueuedMail {
        QueuedMail {
            message_id: "<abc@sigbot>".into(),
            envelope_from: "bot@example.org".into(),
            envelope_to: vec!["list@example.org".into(), "b@example.org".into()],
            message: b"Message-ID: <abc@sigbot>\r\n\r\nminutes\r\n".to_vec(),
            queued_at: t,
        }
    }

    #[test]
    fn a_finished_meetings_mail_is_queued_once_with_its_files_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let t = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
        let m = finished_meeting(t);
        let files = dir.path().join("files");
        let store = Store::open(dir.path()).unwrap();
        // A #save (not finished) queues nothing.
        store
            .record_meeting_files_and_mail(&m, &files, false, Some(&mail(t)))
            .unwrap();
        assert_eq!(store.unsent_mail_count().unwrap(), 0);
        store
            .record_meeting_files_and_mail(&m, &files, true, Some(&mail(t)))
            .unwrap();
        // Recorded again (a crash between the files and the journal's end): still one mail.
        store
            .record_meeting_files_and_mail(&m, &files, true, Some(&mail(t)))
            .unwrap();
        assert_eq!(store.unsent_mail_count().unwrap(), 1);
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.next_mail_due().unwrap(), Some(t));
        let row = store.due_mail(t).unwrap().expect("due");
        assert_eq!(row.mail, mail(t));
        assert_eq!(row.attempts, 0);
    }

    #[test]
    fn a_failed_mail_waits_its_backoff_and_a_sent_one_is_never_due_again() {
        let dir = tempfile::tempdir().unwrap();
        let t = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .record_meeting_files_and_mail(&finished_meeting(t), dir.path(), true, Some(&mail(t)))
            .unwrap();
        let row = store.due_mail(t).unwrap().expect("due");
        store
            .mail_failed(row.id, "connection refused", t, Duration::from_secs(30))
            .unwrap();
        assert_eq!(store.due_mail(t).unwrap(), None);
        let later = t + chrono::Duration::seconds(30);
        assert_eq!(store.next_mail_due().unwrap(), Some(later));
        let again = store
            .due_mail(later)
            .unwrap()
            .expect("due after the backoff");
        assert_eq!(again.attempts, 1);
        assert_eq!(again.mail.message_id, "<abc@sigbot>", "the same Message-ID");
        store.mail_sent(again.id, later).unwrap();
        assert_eq!(
            store.due_mail(later + chrono::Duration::days(1)).unwrap(),
            None
        );
        assert_eq!(store.next_mail_due().unwrap(), None);
        assert_eq!(store.unsent_mail_count().unwrap(), 0);
        // A late failure report for a sent mail does not make it due again.
        store
            .mail_failed(again.id, "late", later, Duration::ZERO)
            .unwrap();
        assert_eq!(store.unsent_mail_count().unwrap(), 0);
    }
}
