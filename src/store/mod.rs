//! The durable store: one SQLite database in `data_dir`, with schema migrations kept in code.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

mod audit;
mod links;
mod mail;
mod meetings;
mod outbox;
pub mod private;
mod retention;
mod schedule;
mod watch;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, params};

pub use links::MediaLink;
pub use mail::{MailRow, QueuedMail};
pub use meetings::{
    HIT_END, HIT_START, MeetingSummary, SearchError, SearchHit, SeriesInfo, SeriesMeeting,
};
pub use outbox::{OutboxRow, Queued};
pub use retention::{Link, Pruned, Retention};

/// Audit times are stored as fixed-width RFC 3339 in UTC, so text order is time order.
fn audit_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data directory {}: cannot create it: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data directory {}: not writable: {source}", path.display())]
    NotWritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{}: cannot make it readable by sigbot's user only: {source}", path.display())]
    Private {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database {}: schema version {found} is newer than this sigbot knows ({known}); upgrade sigbot", path.display())]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
}

impl StoreError {
    /// Whether the database or the disk is full (`SQLITE_FULL`).
    pub fn is_full(&self) -> bool {
        matches!(self, StoreError::Sqlite { source, .. } if retention::is_full(source))
    }
}

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
/// Never edit a released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: key/value facts about this installation (first start, last version).
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    // 2: meetings (DESIGN §7): the journal of running meetings, finished meetings with
    // where their files are, and the full-text index over their minutes and logs.
    "CREATE TABLE meetings (
        id INTEGER PRIMARY KEY,
        room TEXT NOT NULL,
        started TEXT NOT NULL,
        ended TEXT,
        room_slug TEXT,
        base TEXT,
        files_dir TEXT,
        title TEXT,
        attendees TEXT,
        restricted INTEGER NOT NULL DEFAULT 0,
        UNIQUE (room, started)
     );
     CREATE TABLE meeting_lines (
        id INTEGER PRIMARY KEY,
        meeting INTEGER NOT NULL REFERENCES meetings(id),
        time TEXT NOT NULL,
        nick TEXT NOT NULL,
        text TEXT NOT NULL,
        emote INTEGER NOT NULL,
        bot INTEGER NOT NULL
     );
     CREATE INDEX meeting_lines_by_meeting ON meeting_lines (meeting, id);
     CREATE VIRTUAL TABLE meeting_search USING fts5(
        meeting UNINDEXED, kind UNINDEXED, line UNINDEXED, nick, text
     );",
    // 3: the audit log of guarded declarative commands.
    "CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        principal TEXT NOT NULL,
        room TEXT NOT NULL,
        command TEXT NOT NULL,
        args TEXT NOT NULL,
        result TEXT NOT NULL,
        http_status INTEGER
    );
    CREATE INDEX audit_time ON audit (time);",
    // 4: the bridge: one durable outbox for every destination network, delivered
    // in id order, and the pastes that long relayed messages link to.
    "CREATE TABLE bridge_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        network TEXT NOT NULL,
        room TEXT NOT NULL,
        text TEXT NOT NULL,
        html TEXT,
        reply INTEGER NOT NULL,
        at_ms INTEGER NOT NULL,
        staleness_ms INTEGER NOT NULL,
        bridge TEXT NOT NULL
    );
    CREATE INDEX bridge_outbox_by_network ON bridge_outbox (network, id);
    CREATE TABLE pastes (
        id TEXT PRIMARY KEY,
        created TEXT NOT NULL,
        text TEXT NOT NULL
    );",
    // 5: the MQTT relay's outbox (messages stored before the MQTT ack, delivered in id
    // order) and the dedup keys of relayed events (src/outbox/relay.rs).
    "CREATE TABLE relay_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        network TEXT NOT NULL,
        room TEXT NOT NULL,
        text TEXT NOT NULL,
        html TEXT,
        queued_at INTEGER NOT NULL
     );
     CREATE TABLE relay_seen (key TEXT PRIMARY KEY, until INTEGER NOT NULL);",
    // 6: the Matrix side of the bridge: the users a relayed message mentions (its pills'
    // `m.mentions`, one user ID a line), and the files served at `/media/<id>`.
    "ALTER TABLE bridge_outbox ADD COLUMN mentions TEXT NOT NULL DEFAULT '';
    CREATE TABLE media (
        id TEXT PRIMARY KEY,
        created TEXT NOT NULL,
        network TEXT NOT NULL,
        uri TEXT NOT NULL,
        name TEXT NOT NULL,
        mimetype TEXT
    );",
    // 7: the relayed messages already stored in the bridge outbox, by source message and
    // destination room, so that a message handled again after a crash is stored once.
    "CREATE TABLE bridge_seen (
        source TEXT NOT NULL,
        network TEXT NOT NULL,
        room TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        PRIMARY KEY (source, network, room)
    );
    CREATE INDEX bridge_seen_by_age ON bridge_seen (at_ms);",
    // 8: package-update alerts (`[[watch]]`): every upstream version already announced, so
    // that a restart does not announce it again.
    "CREATE TABLE watch_alerts (
        watch TEXT NOT NULL,
        package TEXT NOT NULL,
        upstream TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (watch, package, upstream)
    );",
    // 9: one outbox for everything the bot must still say (src/outbox/): bridged messages,
    // relayed MQTT events and package-update alerts, delivered per network in id order. The
    // rows of the two old outboxes move in interleaved by queued time; each table's rows keep
    // their own order per network, because they are merged on the running maximum of their
    // times in id order. `staleness_ms` is NULL where a message never goes stale.
    "CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        network TEXT NOT NULL,
        room TEXT NOT NULL,
        text TEXT NOT NULL,
        html TEXT,
        mentions TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL,
        origin TEXT NOT NULL,
        queued_at_ms INTEGER NOT NULL,
        staleness_ms INTEGER
    );
    CREATE INDEX outbox_by_network ON outbox (network, id);
    INSERT INTO outbox
        (network, room, text, html, mentions, kind, origin, queued_at_ms, staleness_ms)
    SELECT network, room, text, html, mentions, kind, origin, queued_at_ms, staleness_ms
    FROM (
        SELECT network, room, text, html, mentions,
            CASE WHEN reply THEN 'reply' ELSE 'relay' END AS kind,
            'bridge:' || bridge AS origin,
            at_ms AS queued_at_ms,
            staleness_ms,
            MAX(at_ms) OVER (PARTITION BY network ORDER BY id ROWS UNBOUNDED PRECEDING)
                AS merge_at,
            0 AS part,
            id
        FROM bridge_outbox
        UNION ALL
        SELECT network, room, text, html, '', 'relay', 'relay', queued_at * 1000, NULL,
            MAX(queued_at * 1000) OVER (PARTITION BY network ORDER BY id ROWS UNBOUNDED PRECEDING),
            1,
            id
        FROM relay_outbox
    )
    ORDER BY merge_at, part, id;
    DROP TABLE bridge_outbox;
    DROP TABLE relay_outbox;",
    // 10: meetings keep apart (DESIGN §7): a meeting's directory (`room_slug`, set when it
    // starts) and its number among the meetings started in that minute there (`seq`; 0 for
    // an imported archive, which claims no directory); and who said each journaled line
    // (network, principal: chair rights follow them) and which message it came from
    // (`source`: a message handled again after a crash is journaled once).
    "ALTER TABLE meetings ADD COLUMN seq INTEGER NOT NULL DEFAULT 1;
    UPDATE meetings SET seq = 0 WHERE room LIKE 'archive/%';
    ALTER TABLE meeting_lines ADD COLUMN network TEXT;
    ALTER TABLE meeting_lines ADD COLUMN principal TEXT;
    ALTER TABLE meeting_lines ADD COLUMN source TEXT;
    CREATE UNIQUE INDEX meeting_lines_by_source ON meeting_lines (source)
        WHERE source IS NOT NULL;",
    // 11: minutes by mail (DESIGN §7 `[meetings.mail]`): one mail per finished meeting, queued
    // in the transaction that records its files, kept whole (its Message-ID and Date in it)
    // so that every attempt sends the same bytes; `sent_ms` set once the server took it.
    "CREATE TABLE mail_queue (
        id INTEGER PRIMARY KEY,
        meeting_id INTEGER NOT NULL UNIQUE REFERENCES meetings (id),
        message_id TEXT NOT NULL,
        envelope_from TEXT NOT NULL,
        envelope_to TEXT NOT NULL,
        message BLOB NOT NULL,
        queued_ms INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL,
        last_error TEXT,
        sent_ms INTEGER
    );
    CREATE INDEX mail_queue_due ON mail_queue (next_attempt_ms) WHERE sent_ms IS NULL;",
    // 12: the reminders of scheduled meetings (DESIGN §7 "Schedules") already posted, by
    // schedule (room and name), occurrence (UTC, RFC 3339) and offset: each is posted once,
    // across restarts too. Rows of occurrences long past are deleted as new ones come.
    "CREATE TABLE meeting_reminders (
        schedule TEXT NOT NULL,
        occurrence TEXT NOT NULL,
        offset_s INTEGER NOT NULL,
        posted TEXT NOT NULL,
        PRIMARY KEY (schedule, occurrence, offset_s)
    );
    CREATE INDEX meeting_reminders_by_occurrence ON meeting_reminders (occurrence);",
    // 13: series (DESIGN §7 "Series"): a finished meeting's name (its files' name; meetings
    // of a room with the same name are a series) and its recap (JSON: people with the lines
    // they said, agreed items, action items by person), for the series posts and pages.
    "ALTER TABLE meetings ADD COLUMN name TEXT;
    ALTER TABLE meetings ADD COLUMN recap TEXT;
    CREATE INDEX meetings_by_series ON meetings (room_slug, name, started)
        WHERE name IS NOT NULL;",
];

/// A cloneable handle on the database. Calls block: run them in `spawn_blocking` from async
/// code, or from the core task where a write must be committed before going on.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    /// Connections of their own for web searches, which must never hold `conn`.
    searchers: Arc<meetings::Searchers>,
    /// A write was refused with `SQLITE_FULL` and no probe went through since.
    full: Arc<std::sync::atomic::AtomicBool>,
    retention: Retention,
}

impl Store {
    /// Opens (creating if needed) `data_dir/sigbot.db` and brings its schema up to date. A new
    /// `data_dir` is made 0700; the database (and SQLite's files beside it) are 0600.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Self::open_at(data_dir, MIGRATIONS.len())
    }

    /// Opens the store migrated only up to schema `version`, as an older sigbot left it, so
    /// that tests can write rows the way it did before opening it with [`Store::open`].
    #[cfg(test)]
    pub(crate) fn open_at_version(data_dir: &Path, version: usize) -> Result<Store, StoreError> {
        Self::open_at(data_dir, version.min(MIGRATIONS.len()))
    }

    fn open_at(data_dir: &Path, version: usize) -> Result<Store, StoreError> {
        private::create_private_dir(data_dir).map_err(|source| StoreError::CreateDir {
            path: data_dir.to_owned(),
            source,
        })?;
        // SQLite's own error for a read-only directory is vague; probe it ourselves.
        let probe = data_dir.join(".sigbot-write-test");
        std::fs::write(&probe, b"ok")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|source| StoreError::NotWritable {
                path: data_dir.to_owned(),
                source,
            })?;
        let path = data_dir.join("sigbot.db");
        private::prepare_database(&path).map_err(|source| StoreError::Private {
            path: path.clone(),
            source,
        })?;
        let sql = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql)?;
        migrate(&mut conn, &path, version)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            path,
            searchers: Arc::default(),
            full: Arc::default(),
            retention: Retention::default(),
        })
    }

    /// How long what expires is kept; set before the store is shared, as clones keep theirs.
    pub fn set_retention(&mut self, retention: Retention) {
        self.retention = retention;
    }

    pub fn retention(&self) -> &Retention {
        &self.retention
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the connection. Keep `f` short: every writer waits on it. Private to the
    /// store, so that every statement lives in this module.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        f(&mut conn).map_err(|source| {
            if retention::is_full(&source) {
                self.note_full(&source);
            }
            StoreError::Sqlite {
                path: self.path.clone(),
                source,
            }
        })
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
        })
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
        })
    }

    pub fn schema_version(&self) -> Result<usize, StoreError> {
        self.with(|c| c.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0)))
            .map(|v| usize::try_from(v).unwrap_or(0))
    }
}

/// Applies the migrations after the database's version, up to `version`.
fn migrate(conn: &mut Connection, path: &Path, version: usize) -> Result<(), StoreError> {
    let sql = |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let current: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sql)?;
    let current = usize::try_from(current).unwrap_or(0);
    if current > MIGRATIONS.len() {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found: current,
            known: MIGRATIONS.len(),
        });
    }
    for (i, step) in MIGRATIONS.iter().enumerate().take(version).skip(current) {
        let tx = conn.transaction().map_err(sql)?;
        tx.execute_batch(step).map_err(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(sql)?;
        tx.commit().map_err(sql)?;
        tracing::info!(version = i + 1, "store schema migrated");
    }
    Ok(())
}

/// The number of migrations this build knows.
pub fn schema_version_known() -> usize {
    MIGRATIONS.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_migrates_and_keeps_values_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nested/data");
        let store = Store::open(&data).unwrap();
        assert_eq!(store.schema_version().unwrap(), schema_version_known());
        store.set_meta("first_start", "2026-11-26").unwrap();
        store.set_meta("first_start", "2026-11-27").unwrap();
        drop(store);
        let store = Store::open(&data).unwrap();
        assert_eq!(
            store.meta("first_start").unwrap().as_deref(),
            Some("2026-11-27")
        );
        assert_eq!(store.meta("missing").unwrap(), None);
    }

    #[test]
    fn a_data_dir_that_cannot_be_created_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, "x").unwrap();
        let err = Store::open(&file.join("data"))
            .err()
            .expect("must fail")
            .to_string();
        assert!(
            err.starts_with(&format!(
                "data directory {}: cannot create it:",
                file.join("data").display()
            )),
            "{err}"
        );
    }

    #[test]
    fn the_store_is_readable_by_the_bot_s_user_only_and_loose_files_are_tightened() {
        use private::mode_of;
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = Store::open(&data).unwrap();
        store.set_meta("k", "v").unwrap();
        let db = data.join("sigbot.db");
        let wal = data.join("sigbot.db-wal");
        let shm = data.join("sigbot.db-shm");
        assert_eq!(mode_of(&data), 0o700);
        for f in [&db, &wal, &shm] {
            assert_eq!(mode_of(f), 0o600, "{}", f.display());
        }
        drop(store);
        // As an older sigbot under a loose umask left them.
        for f in [&db, &wal, &shm] {
            if f.exists() {
                std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
        let _store = Store::open(&data).unwrap();
        for f in [&db, &wal, &shm] {
            if f.exists() {
                assert_eq!(mode_of(f), 0o600, "{}", f.display());
            }
        }
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .with(|c| c.pragma_update(None, "user_version", 999))
            .unwrap();
        drop(store);
        let err = Store::open(dir.path())
            .err()
            .expect("must fail")
            .to_string();
        assert!(err.contains("schema version 999 is newer"), "{err}");
    }
}
