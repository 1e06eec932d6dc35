//! What the store forgets, and when it is full.
//!
//! Pastes and media links expire after the link ttl (`[web] paste_ttl`); relay dedup keys at
//! their own `until`; audit entries and the journals of ended meetings after their retention
//! (`[store]`). [`Store::prune`] deletes all of those; the app runs it periodically.
//!
//! A write refused with `SQLITE_FULL` (the disk, or `[store] max_db_size`) marks the store
//! full; [`Store::probe_room`] tries a write and clears the mark once one goes through.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::ErrorCode;

use super::{Store, StoreError, audit_time};

/// How long the store keeps what expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Pastes and media links.
    pub links: Duration,
    pub audit: Duration,
    /// The journal lines of meetings that ended.
    pub journals: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            links: Duration::from_secs(30 * 86_400),
            audit: Duration::from_secs(365 * 86_400),
            journals: Duration::from_secs(30 * 86_400),
        }
    }
}

/// What one [`Store::prune`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub pastes: usize,
    pub media: usize,
    pub relay_keys: usize,
    pub audit: usize,
    pub journal_lines: usize,
}

impl Pruned {
    pub fn total(&self) -> usize {
        self.pastes + self.media + self.relay_keys + self.audit + self.journal_lines
    }
}

/// A link's target, looked up by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link<T> {
    Found(T),
    /// It was there, and is past the link ttl (the next prune deletes it).
    Expired,
    Unknown,
}

/// `now - d`, or the earliest time when that is out of range.
pub(super) fn before(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Whether SQLite said the database or disk is full.
pub(super) fn is_full(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::DiskFull)
}

/// How much a probe writes: room for a few messages and an audit entry.
const PROBE_BYTES: i64 = 64 * 1024;

impl Store {
    /// Deletes whatever is past its time at `now`.
    pub fn prune(&self, now: DateTime<Utc>) -> Result<Pruned, StoreError> {
        let r = &self.retention;
        let links = audit_time(before(now, r.links));
        let audit = audit_time(before(now, r.audit));
        // `meetings.ended` is RFC 3339 in UTC of varying precision: compare to the second.
        let journals = before(now, r.journals)
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string();
        self.with(|c| {
            let tx = c.transaction()?;
            let pruned = Pruned {
                pastes: tx.execute("DELETE FROM pastes WHERE created < ?1", [&links])?,
                media: tx.execute("DELETE FROM media WHERE created < ?1", [&links])?,
                relay_keys: tx.execute(
                    "DELETE FROM relay_seen WHERE until <= ?1",
                    [now.timestamp()],
                )?,
                audit: tx.execute("DELETE FROM audit WHERE time < ?1", [&audit])?,
                journal_lines: tx.execute(
                    "DELETE FROM meeting_lines WHERE meeting IN (
                        SELECT id FROM meetings
                        WHERE ended IS NOT NULL AND substr(ended, 1, 19) < ?1)",
                    [&journals],
                )?,
            };
            tx.commit()?;
            Ok(pruned)
        })
    }

    /// Caps the database at `bytes` (rounded down to whole pages); the cap in force, which
    /// SQLite never sets below the pages already used.
    pub fn set_max_size(&self, bytes: u64) -> Result<u64, StoreError> {
        self.with(|c| {
            let page: i64 = c.pragma_query_value(None, "page_size", |r| r.get(0))?;
            let page = u64::try_from(page.max(512)).unwrap_or(4096);
            let pages = i64::try_from((bytes / page).max(1)).unwrap_or(i64::MAX);
            let set: i64 =
                c.pragma_update_and_check(None, "max_page_count", pages, |r| r.get(0))?;
            Ok(u64::try_from(set).unwrap_or(0) * page)
        })
    }

    /// Whether a write was refused because the database or disk is full, and no probe went
    /// through since.
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::SeqCst)
    }

    /// Writes (and deletes again) a little data: whether there is room. Clears the full mark
    /// when there is.
    pub fn probe_room(&self) -> bool {
        let wrote = self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('room-probe', zeroblob(?1))",
                [PROBE_BYTES],
            )?;
            c.execute("DELETE FROM meta WHERE key = 'room-probe'", [])
                .map(drop)
        });
        match wrote {
            Ok(()) => {
                if self.full.swap(false, Ordering::SeqCst) {
                    tracing::warn!(db = %self.path.display(), "database has room again: held messages are stored and guarded commands run again");
                }
                true
            }
            Err(e) => {
                if !self.is_full() {
                    tracing::error!(error = %e, "database probe write failed");
                }
                false
            }
        }
    }

    /// Marks the store full after `e`, and says so once.
    pub(super) fn note_full(&self, e: &rusqlite::Error) {
        if !self.full.swap(true, Ordering::SeqCst) {
            tracing::error!(db = %self.path.display(), error = %e, "database full (SQLITE_FULL: disk full or [store] max_db_size reached): bridged and relayed messages are held in memory and guarded commands refused until there is room");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::AuditEntry;
    use chrono::TimeZone as _;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, 12, 0, 0).unwrap()
    }

    #[test]
    fn prune_deletes_what_is_past_its_retention_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store.set_retention(Retention {
            links: Duration::from_secs(5 * 86_400),
            audit: Duration::from_secs(5 * 86_400),
            journals: Duration::from_secs(5 * 86_400),
        });
        store.put_paste("old", "a", at(1)).unwrap();
        store.put_paste("new", "b", at(20)).unwrap();
        let entry = |t| AuditEntry {
            time: t,
            principal: "console:x".into(),
            room: "console/#local".into(),
            command: "release".into(),
            args: String::new(),
            result: "success".into(),
            http_status: None,
        };
        store.insert_audit(&entry(at(2))).unwrap();
        store.insert_audit(&entry(at(19))).unwrap();
        store
            .outbox_put_relayed(
                &[],
                &[
                    crate::core::relay::SeenKey {
                        key: "gone".into(),
                        until: at(20),
                    },
                    crate::core::relay::SeenKey {
                        key: "kept".into(),
                        until: at(22),
                    },
                ],
            )
            .unwrap();
        assert_eq!(store.paste_link("old", at(21)).unwrap(), Link::Expired);
        let pruned = store.prune(at(21)).unwrap();
        assert_eq!(
            pruned,
            Pruned {
                pastes: 1,
                media: 0,
                relay_keys: 1,
                audit: 1,
                journal_lines: 0,
            }
        );
        assert_eq!(store.paste_link("old", at(21)).unwrap(), Link::Unknown);
        assert_eq!(
            store.paste_link("new", at(21)).unwrap(),
            Link::Found("b".into())
        );
        assert_eq!(store.audit_since(at(1)).unwrap(), vec![entry(at(19))]);
        let keys = store.relay_seen_keys(at(21)).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].key, "kept");
    }

    #[test]
    fn journals_of_meetings_ended_before_the_retention_go_and_running_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store.set_retention(Retention {
            journals: Duration::from_secs(5 * 86_400),
            ..Retention::default()
        });
        store
            .with(|c| {
                c.execute_batch(&format!(
                    "INSERT INTO meetings (id, room, started, ended) VALUES
                        (1, 'console/#a', '{s1}', '{e1}'),
                        (2, 'console/#b', '{s2}', '{e2}'),
                        (3, 'console/#c', '{s1}', NULL);
                     INSERT INTO meeting_lines (meeting, time, nick, text, emote, bot) VALUES
                        (1, 't', 'n', 'old', 0, 0), (1, 't', 'n', 'old', 0, 0),
                        (2, 't', 'n', 'recent', 0, 0),
                        (3, 't', 'n', 'running', 0, 0);",
                    s1 = at(1).to_rfc3339(),
                    e1 = at(2).to_rfc3339(),
                    s2 = at(18).to_rfc3339(),
                    e2 = (at(18) + TimeDelta::nanoseconds(123_456_789)).to_rfc3339(),
                ))
            })
            .unwrap();
        let pruned = store.prune(at(21)).unwrap();
        assert_eq!(pruned.journal_lines, 2);
        let left: Vec<String> = store
            .with(|c| {
                let mut q = c.prepare("SELECT text FROM meeting_lines ORDER BY id")?;
                let rows = q.query_map([], |r| r.get(0))?;
                rows.collect()
            })
            .unwrap();
        assert_eq!(left, ["recent", "running"]);
        let meetings: i64 = store
            .with(|c| c.query_row("SELECT COUNT(*) FROM meetings", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(meetings, 3, "only the journal lines go");
    }

    #[test]
    fn a_capped_store_says_it_is_full_and_has_room_again_once_space_is_freed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.set_max_size(1 << 20).unwrap();
        assert!(store.probe_room());
        // Fill it from a connection of our own, which the cap does not bind.
        let other = rusqlite::Connection::open(store.path()).unwrap();
        other
            .execute_batch(
                "CREATE TABLE ballast (b BLOB); INSERT INTO ballast VALUES (zeroblob(2000000));",
            )
            .unwrap();
        let err = store
            .put_paste("p", &"x".repeat(20_000), at(1))
            .unwrap_err();
        assert!(err.to_string().contains("full"), "{err}");
        assert!(store.is_full());
        assert!(!store.probe_room());
        other.execute_batch("DELETE FROM ballast;").unwrap();
        assert!(store.probe_room());
        assert!(!store.is_full());
        store.put_paste("p", &"x".repeat(20_000), at(1)).unwrap();
    }
}
