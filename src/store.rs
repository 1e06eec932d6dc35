//! The durable store: one SQLite database in `data_dir`, with schema migrations kept in code.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::core::AuditEntry;
use crate::core::RoomRef;
use crate::core::meeting::{JournalLine, Meeting, MeetingKey, room_slug};

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
    #[error("database {}: schema version {found} is newer than this sigbot knows ({known}); upgrade sigbot", path.display())]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
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
    // 3: the audit log of guarded declarative commands (issue 7).
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
    // 4: the bridge (issue 8): one durable outbox for every destination network, delivered
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
    // order) and the dedup keys of relayed events (src/relay_outbox.rs).
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
];

/// A file a bridged message links to (`/media/<id>`): where the network keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLink {
    pub network: String,
    /// The `mxc://` URI.
    pub uri: String,
    /// The file name the sender gave.
    pub name: String,
    pub mimetype: Option<String>,
}

/// A message waiting in the bridge outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub message: crate::core::Bridged,
}

/// A cloneable handle on the database. Calls block: run them in `spawn_blocking` from async
/// code, or from the core task where a write must be committed before going on.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) `data_dir/sigbot.db` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::CreateDir {
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
        migrate(&mut conn, &path)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the connection. Keep `f` short: every writer waits on it.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        f(&mut conn).map_err(|source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
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

    /// The upstream versions already announced by watch `watch`.
    pub fn watch_alerts(
        &self,
        watch: &str,
    ) -> Result<std::collections::HashSet<crate::core::watch::AlertKey>, StoreError> {
        self.with(|c| {
            let mut q =
                c.prepare_cached("SELECT package, upstream FROM watch_alerts WHERE watch = ?1")?;
            let rows = q.query_map([watch], |r| {
                Ok(crate::core::watch::AlertKey {
                    watch: watch.to_owned(),
                    package: r.get(0)?,
                    upstream: r.get(1)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Appends one line to the audit log.
    pub fn insert_audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO audit (time, principal, room, command, args, result, http_status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    audit_time(e.time),
                    e.principal,
                    e.room,
                    e.command,
                    e.args,
                    e.result,
                    e.http_status
                ],
            )
            .map(drop)
        })
    }

    /// The audit log from `since` on, oldest first.
    pub fn audit_since(&self, since: DateTime<Utc>) -> Result<Vec<AuditEntry>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT time, principal, room, command, args, result, http_status
                 FROM audit WHERE time >= ?1 ORDER BY time, id",
            )?;
            let rows = st.query_map([audit_time(since)], |r| {
                let time: String = r.get(0)?;
                Ok(AuditEntry {
                    time: DateTime::parse_from_rfc3339(&time)
                        .map(|t| t.with_timezone(&Utc))
                        .unwrap_or_default(),
                    principal: r.get(1)?,
                    room: r.get(2)?,
                    command: r.get(3)?,
                    args: r.get(4)?,
                    result: r.get(5)?,
                    http_status: r.get(6)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Stores a bridged message in its network's outbox; returns its row id.
    /// Stores a bridged message; `None` when its source was stored for that room before.
    pub fn outbox_put(&self, m: &crate::core::Bridged) -> Result<Option<i64>, StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            if let Some(source) = &m.source {
                // A day of memory is plenty: replays come from the last few minutes.
                let cutoff = chrono::Utc::now().timestamp_millis() - 86_400_000;
                tx.prepare_cached("DELETE FROM bridge_seen WHERE at_ms < ?1")?
                    .execute([cutoff])?;
                let fresh = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO bridge_seen (source, network, room, at_ms)
                         VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![
                        source,
                        m.room.network,
                        m.room.room,
                        chrono::Utc::now().timestamp_millis()
                    ])?;
                if fresh == 0 {
                    return Ok(None);
                }
            }
            tx.prepare_cached(
                "INSERT INTO bridge_outbox (network, room, text, html, reply, at_ms, staleness_ms, bridge, mentions)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                m.room.network,
                m.room.room,
                m.text,
                m.html,
                m.kind == crate::core::SendKind::Reply,
                m.at.timestamp_millis(),
                i64::try_from(m.staleness.as_millis()).unwrap_or(i64::MAX),
                m.bridge,
                m.mentions.join("\n"),
            ])?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(Some(id))
        })
    }

    /// The oldest message waiting for `network`.
    pub fn outbox_next(&self, network: &str) -> Result<Option<OutboxRow>, StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT id, room, text, html, reply, at_ms, staleness_ms, bridge, mentions
                 FROM bridge_outbox WHERE network = ?1 ORDER BY id LIMIT 1",
            )?
            .query_row([network], |r| {
                let at_ms: i64 = r.get(5)?;
                let staleness_ms: i64 = r.get(6)?;
                let mentions: String = r.get(8)?;
                Ok(OutboxRow {
                    id: r.get(0)?,
                    message: crate::core::Bridged {
                        source: None,
                        room: RoomRef::new(network, r.get::<_, String>(1)?),
                        text: r.get(2)?,
                        html: r.get(3)?,
                        mentions: mentions.lines().map(str::to_owned).collect(),
                        kind: if r.get(4)? {
                            crate::core::SendKind::Reply
                        } else {
                            crate::core::SendKind::Relay
                        },
                        at: DateTime::from_timestamp_millis(at_ms).unwrap_or_default(),
                        staleness: std::time::Duration::from_millis(
                            u64::try_from(staleness_ms).unwrap_or(0),
                        ),
                        bridge: r.get(7)?,
                    },
                })
            })
            .optional()
        })
    }

    /// Removes a delivered (or dropped) message from the outbox.
    pub fn outbox_remove(&self, id: i64) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached("DELETE FROM bridge_outbox WHERE id = ?1")?
                .execute([id])
                .map(drop)
        })
    }

    /// Messages waiting, by network.
    pub fn outbox_len(&self, network: &str) -> Result<usize, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM bridge_outbox WHERE network = ?1",
                [network],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| usize::try_from(n).unwrap_or(0))
        })
    }

    /// Keeps a paste (`/paste/<id>`).
    pub fn put_paste(&self, id: &str, text: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO pastes (id, created, text) VALUES (?1, ?2, ?3)",
                params![id, audit_time(now), text],
            )
            .map(drop)
        })
    }

    pub fn paste(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            c.query_row("SELECT text FROM pastes WHERE id = ?1", [id], |r| r.get(0))
                .optional()
        })
    }

    /// Keeps where a linked file is (`/media/<id>`).
    pub fn put_media(
        &self,
        id: &str,
        link: &MediaLink,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO media (id, created, network, uri, name, mimetype)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id,
                    audit_time(now),
                    link.network,
                    link.uri,
                    link.name,
                    link.mimetype
                ],
            )
            .map(drop)
        })
    }

    pub fn media(&self, id: &str) -> Result<Option<MediaLink>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT network, uri, name, mimetype FROM media WHERE id = ?1",
                [id],
                |r| {
                    Ok(MediaLink {
                        network: r.get(0)?,
                        uri: r.get(1)?,
                        name: r.get(2)?,
                        mimetype: r.get(3)?,
                    })
                },
            )
            .optional()
        })
    }

    pub fn schema_version(&self) -> Result<usize, StoreError> {
        self.with(|c| c.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0)))
            .map(|v| usize::try_from(v).unwrap_or(0))
    }
}

/// A finished meeting, as the web site lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MeetingSummary {
    pub id: i64,
    pub room: String,
    pub room_slug: String,
    pub started: String,
    pub ended: String,
    /// The files' path below the room (`<date>/<name>.<stamp>`), without extension.
    pub base: String,
    pub files_dir: String,
    pub title: Option<String>,
    pub attendees: String,
    pub restricted: bool,
}

/// One search hit: which meeting, which log line, and a snippet with `\u{2}`/`\u{3}`
/// around the matched words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    pub meeting: MeetingSummary,
    pub kind: String,
    pub line: i64,
    pub nick: String,
    pub snippet: String,
}

/// Marks around matched words in [`SearchHit::snippet`] (never in chat text: control
/// characters are removed from meeting lines).
pub const HIT_START: char = '\u{2}';
pub const HIT_END: char = '\u{3}';

impl Store {
    /// Journals one line of a running meeting, committed before it returns.
    pub fn journal_meeting_line(
        &self,
        key: &MeetingKey,
        line: &JournalLine,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let id = meeting_id(&tx, &key.room.to_string(), &key.started.to_rfc3339())?;
            tx.execute(
                "INSERT INTO meeting_lines (meeting, time, nick, text, emote, bot)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id,
                    line.time.to_rfc3339(),
                    line.nick,
                    line.text,
                    line.emote,
                    line.bot
                ],
            )?;
            tx.commit()
        })
    }

    /// The journals of meetings that have not ended, oldest first.
    pub fn unfinished_meetings(&self) -> Result<Vec<(MeetingKey, Vec<JournalLine>)>, StoreError> {
        self.with(|c| {
            let mut out = Vec::new();
            let mut meetings =
                c.prepare("SELECT id, room, started FROM meetings WHERE ended IS NULL ORDER BY id")?;
            let rows: Vec<(i64, String, String)> = meetings
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            let mut lines = c.prepare(
                "SELECT time, nick, text, emote, bot FROM meeting_lines WHERE meeting = ?1 ORDER BY id",
            )?;
            for (id, room, started) in rows {
                let (Ok(room), Ok(started)) = (
                    RoomRef::parse(&room),
                    chrono::DateTime::parse_from_rfc3339(&started),
                ) else {
                    tracing::warn!(id, %room, "unreadable meeting journal; skipped");
                    continue;
                };
                let journal: Vec<JournalLine> = lines
                    .query_map([id], |r| {
                        let time: String = r.get(0)?;
                        Ok(JournalLine {
                            time: chrono::DateTime::parse_from_rfc3339(&time)
                                .map(|t| t.to_utc())
                                .unwrap_or_default(),
                            nick: r.get(1)?,
                            text: r.get(2)?,
                            emote: r.get(3)?,
                            bot: r.get(4)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                out.push((
                    MeetingKey {
                        room,
                        started: started.to_utc(),
                    },
                    journal,
                ));
            }
            Ok(out)
        })
    }

    /// Records a meeting whose files are written (`files_dir/base.<ext>`) and indexes its log
    /// and minutes for search. A finished meeting leaves the journal's running list; a
    /// `#save` only updates where the files are.
    pub fn record_meeting_files(
        &self,
        m: &Meeting,
        files_dir: &Path,
        finished: bool,
    ) -> Result<(), StoreError> {
        let base = m.base_path();
        let base = base.split_once('/').map_or(base.as_str(), |(_, b)| b);
        self.record(m, &room_slug(&m.room), base, files_dir, finished)
    }

    /// Records (and indexes) a finished meeting from an existing archive, whose files are
    /// `files_dir/<last part of base>.<ext>`.
    pub fn record_imported_meeting(
        &self,
        m: &Meeting,
        room_slug: &str,
        base: &str,
        files_dir: &Path,
    ) -> Result<(), StoreError> {
        self.record(m, room_slug, base, files_dir, true)
    }

    fn record(
        &self,
        m: &Meeting,
        slug: &str,
        base: &str,
        files_dir: &Path,
        finished: bool,
    ) -> Result<(), StoreError> {
        let attendees = m
            .attendees()
            .iter()
            .map(|a| a.nick.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        self.with(|c| {
            let tx = c.transaction()?;
            let id = meeting_id(&tx, &m.room.to_string(), &m.started.to_rfc3339())?;
            tx.execute(
                "UPDATE meetings SET room_slug = ?2, base = ?3, files_dir = ?4, title = ?5,
                   attendees = ?6, restricted = ?7, ended = ?8 WHERE id = ?1",
                params![
                    id,
                    slug,
                    base,
                    files_dir.to_string_lossy(),
                    m.title,
                    attendees,
                    m.restrict_logs,
                    if finished {
                        Some(m.ended.unwrap_or(m.started).to_rfc3339())
                    } else {
                        None
                    }
                ],
            )?;
            if finished {
                index_meeting(&tx, id, m)?;
            }
            tx.commit()
        })
    }

    /// Rooms with their meetings, newest first (restricted meetings left out).
    pub fn finished_meetings(
        &self,
        room_slug: Option<&str>,
    ) -> Result<Vec<MeetingSummary>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT id, room, room_slug, started, ended, base, files_dir, title, attendees, restricted
                 FROM meetings WHERE ended IS NOT NULL AND base IS NOT NULL AND restricted = 0
                   AND (?1 IS NULL OR room_slug = ?1)
                 ORDER BY started DESC",
            )?;
            st.query_map([room_slug], summary_row)?.collect()
        })
    }

    /// Full-text search over finished meetings' logs and minutes.
    pub fn search_meetings(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>, StoreError> {
        // Every word is quoted, so that what people type is never FTS5 syntax.
        let q = query
            .split_whitespace()
            .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(" ");
        if q.is_empty() {
            return Ok(Vec::new());
        }
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT m.id, m.room, m.room_slug, m.started, m.ended, m.base, m.files_dir, m.title,
                        m.attendees, m.restricted,
                        s.kind, s.line, s.nick, snippet(meeting_search, 4, char(2), char(3), '…', 16)
                 FROM meeting_search s JOIN meetings m ON m.id = s.meeting
                 WHERE meeting_search MATCH ?1 AND m.restricted = 0
                 ORDER BY rank LIMIT ?2",
            )?;
            st.query_map(params![q, limit as i64], |r| {
                Ok(SearchHit {
                    meeting: summary_row(r)?,
                    kind: r.get(10)?,
                    line: r.get(11)?,
                    nick: r.get(12)?,
                    snippet: r.get(13)?,
                })
            })?
            .collect()
        })
    }
}

fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MeetingSummary> {
    Ok(MeetingSummary {
        id: r.get(0)?,
        room: r.get(1)?,
        room_slug: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
        started: r.get(3)?,
        ended: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
        base: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
        files_dir: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
        title: r.get(7)?,
        attendees: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
        restricted: r.get(9)?,
    })
}

fn meeting_id(tx: &rusqlite::Transaction<'_>, room: &str, started: &str) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT OR IGNORE INTO meetings (room, started) VALUES (?1, ?2)",
        params![room, started],
    )?;
    tx.query_row(
        "SELECT id FROM meetings WHERE room = ?1 AND started = ?2",
        params![room, started],
        |r| r.get(0),
    )
}

fn index_meeting(tx: &rusqlite::Transaction<'_>, id: i64, m: &Meeting) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM meeting_search WHERE meeting = ?1", [id])?;
    let mut ins = tx.prepare(
        "INSERT INTO meeting_search (meeting, kind, line, nick, text) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (n, l) in m.lines.iter().enumerate() {
        ins.execute(params![id, "log", (n + 1) as i64, l.nick, l.text])?;
    }
    for i in &m.items {
        ins.execute(params![id, i.kind.label(), i.line as i64, i.nick, i.text])?;
    }
    Ok(())
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
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
    for (i, step) in MIGRATIONS.iter().enumerate().skip(current) {
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
    fn meeting_journal_survives_reopen_and_finished_meetings_are_searchable() {
        use crate::core::meeting::replay;
        use chrono::TimeZone;
        let dir = tempfile::tempdir().unwrap();
        let room = RoomRef::new("libera", "#sig");
        let t = chrono::Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
        let key = MeetingKey {
            room: room.clone(),
            started: t,
        };
        let store = Store::open(dir.path()).unwrap();
        for (text, bot) in [
            ("#startmeeting Budget", false),
            ("ok", true),
            ("#info zebras <b>", false),
        ] {
            let line = JournalLine {
                time: t,
                nick: "alice".into(),
                text: text.into(),
                emote: false,
                bot,
            };
            store.journal_meeting_line(&key, &line).unwrap();
        }
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let journals = store.unfinished_meetings().unwrap();
        assert_eq!(journals.len(), 1);
        assert_eq!(journals[0].0, key);
        assert_eq!(journals[0].1.len(), 3);
        assert!(journals[0].1[1].bot);
        let mut m = replay(&room, &journals[0].1, "!").unwrap();
        m.add_line("alice", "#endmeeting", t, false);
        store
            .record_meeting_files(&m, &dir.path().join("files"), true)
            .unwrap();
        assert!(store.unfinished_meetings().unwrap().is_empty());
        let listed = store.finished_meetings(Some("sig")).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].base, "2026-03-04/budget.2026-03-04-05.06");
        let hits = store.search_meetings("zebras", 10).unwrap();
        assert_eq!(hits.len(), 2, "{hits:?}");
        assert!(hits.iter().any(|h| h.kind == "log" && h.line == 3));
        assert!(hits[0].snippet.contains("\u{2}zebras\u{3}"));
        // FTS5 syntax in a query is only text.
        assert!(store.search_meetings("\"AND OR (", 10).unwrap().is_empty());
    }

    #[test]
    fn audit_entries_come_back_in_time_order_from_since() {
        use chrono::TimeZone;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let at = |h| Utc.with_ymd_and_hms(2026, 11, 26, h, 0, 0).unwrap();
        let entry = |h, result: &str| AuditEntry {
            time: at(h),
            principal: "libera:dcavalca".into(),
            room: "libera/#sig".into(),
            command: "release".into(),
            args: "version=1.2".into(),
            result: result.into(),
            http_status: Some(201),
        };
        store.insert_audit(&entry(12, "success")).unwrap();
        store.insert_audit(&entry(9, "refused: no role")).unwrap();
        store.insert_audit(&entry(11, "confirmed")).unwrap();
        let got = store.audit_since(at(10)).unwrap();
        assert_eq!(got, vec![entry(11, "confirmed"), entry(12, "success")]);
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

    #[test]
    fn every_line_of_a_source_message_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let line = |n: usize| crate::core::Bridged {
            bridge: "sig".into(),
            room: RoomRef::new("libera", "#sig"),
            text: format!("<alice> line {n}"),
            html: None,
            mentions: Vec::new(),
            kind: crate::core::SendKind::Relay,
            at: Utc::now(),
            staleness: std::time::Duration::from_secs(600),
            source: Some(format!("hs/!r:example.org/$ev#{n}")),
        };
        for n in 1..=3 {
            assert!(store.outbox_put(&line(n)).unwrap().is_some(), "line {n}");
        }
        // The same message handled again after a crash: nothing new is stored.
        for n in 1..=3 {
            assert_eq!(store.outbox_put(&line(n)).unwrap(), None, "line {n} again");
        }
        assert_eq!(store.outbox_len("libera").unwrap(), 3);
        let mut texts = Vec::new();
        while let Some(row) = store.outbox_next("libera").unwrap() {
            texts.push(row.message.text.clone());
            store.outbox_remove(row.id).unwrap();
        }
        assert_eq!(
            texts,
            ["<alice> line 1", "<alice> line 2", "<alice> line 3"]
        );
    }
}
