//! Meetings: the journal of running meetings, finished meetings with where their files are,
//! and the full-text index over their logs and minutes.

use std::path::Path;

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};
use crate::core::meeting::{
    JournalLine, Meeting, MeetingClaims, MeetingKey, PreviousMeeting, Recap,
};
use crate::core::{Principal, RoomRef};

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

/// A meeting of a series, with what it left ([`Recap`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesMeeting {
    pub meeting: MeetingSummary,
    pub recap: Recap,
}

/// A series of a room: its name, how many public meetings it has, and when the latest
/// started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesInfo {
    pub name: String,
    pub meetings: usize,
    pub latest: String,
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
    /// Journals one line of a running meeting, committed before it returns. A line from a
    /// message that is already journaled (same source) is not stored again.
    pub fn journal_meeting_line(
        &self,
        key: &MeetingKey,
        line: &JournalLine,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let id = meeting_id(
                &tx,
                &key.room.to_string(),
                &key.started.to_rfc3339(),
                &key.slug,
                key.seq,
            )?;
            tx.execute(
                "INSERT OR IGNORE INTO meeting_lines
                   (meeting, time, nick, text, emote, bot, network, principal, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    id,
                    line.time.to_rfc3339(),
                    line.nick,
                    line.text,
                    line.emote,
                    line.bot,
                    line.network,
                    line.principal.as_ref().map(ToString::to_string),
                    line.source,
                ],
            )?;
            tx.commit()
        })
    }

    /// What new meetings must keep clear of: every room's directory (imported archives
    /// claim none), the meetings started since `since`, and the messages journaled since.
    pub fn meeting_claims(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<MeetingClaims, StoreError> {
        let since = since.to_rfc3339();
        self.with(|c| {
            let mut claims = MeetingClaims::default();
            let mut st = c.prepare(
                "SELECT room, room_slug FROM meetings
                 WHERE room_slug IS NOT NULL AND seq > 0 ORDER BY id",
            )?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?;
            for row in rows {
                let (room, slug) = row?;
                if let Ok(room) = RoomRef::parse(&room) {
                    claims.rooms.push((room, slug));
                }
            }
            let mut st = c.prepare(
                "SELECT room_slug, started, seq FROM meetings
                 WHERE room_slug IS NOT NULL AND seq > 0 AND started >= ?1",
            )?;
            let rows = st.query_map([&since], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
            })?;
            for row in rows {
                let (slug, started, seq) = row?;
                if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&started) {
                    claims.recent.push((slug, t.to_utc(), seq));
                }
            }
            let mut st = c.prepare(
                "SELECT source, time FROM meeting_lines WHERE source IS NOT NULL AND time >= ?1",
            )?;
            let rows = st.query_map([&since], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            for row in rows {
                let (source, time) = row?;
                if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&time) {
                    claims.sources.push((source, t.to_utc()));
                }
            }
            Ok(claims)
        })
    }

    /// The journals of meetings that have not ended, oldest first.
    pub fn unfinished_meetings(&self) -> Result<Vec<(MeetingKey, Vec<JournalLine>)>, StoreError> {
        self.with(|c| {
            let mut out = Vec::new();
            let mut meetings = c.prepare(
                "SELECT id, room, started, room_slug, seq FROM meetings
                 WHERE ended IS NULL ORDER BY id",
            )?;
            type Row = (i64, String, String, Option<String>, u32);
            let rows: Vec<Row> = meetings
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<Result<_, _>>()?;
            let mut lines = c.prepare(JOURNAL_LINES)?;
            for (id, room, started, slug, seq) in rows {
                let (Ok(room), Ok(started)) = (
                    RoomRef::parse(&room),
                    chrono::DateTime::parse_from_rfc3339(&started),
                ) else {
                    tracing::warn!(id, %room, "unreadable meeting journal; skipped");
                    continue;
                };
                let journal = read_journal(&mut lines, id)?;
                // Journals from before directories were fixed at the start used the room slug.
                let slug = slug.unwrap_or_else(|| crate::core::meeting::room_slug(&room));
                out.push((
                    MeetingKey {
                        room,
                        started: started.to_utc(),
                        slug,
                        seq: seq.max(1),
                    },
                    journal,
                ));
            }
            Ok(out)
        })
    }

    /// The journal of one meeting, in order (empty if it has none).
    pub fn meeting_journal(&self, key: &MeetingKey) -> Result<Vec<JournalLine>, StoreError> {
        self.with(|c| {
            let id: Option<i64> = c
                .query_row(
                    "SELECT id FROM meetings WHERE room = ?1 AND started = ?2",
                    params![key.room.to_string(), key.started.to_rfc3339()],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(id) = id else {
                return Ok(Vec::new());
            };
            read_journal(&mut c.prepare(JOURNAL_LINES)?, id)
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
        self.record_meeting_files_and_mail(m, files_dir, finished, None)
    }

    /// As [`Store::record_meeting_files`], and queues `mail` (the minutes by mail) for a
    /// finished meeting in the same transaction: a meeting's mail is queued once, however
    /// often its files are recorded.
    pub fn record_meeting_files_and_mail(
        &self,
        m: &Meeting,
        files_dir: &Path,
        finished: bool,
        mail: Option<&super::QueuedMail>,
    ) -> Result<(), StoreError> {
        let base = m.base_path();
        let base = base.split_once('/').map_or(base.as_str(), |(_, b)| b);
        let mail = mail.filter(|_| finished);
        self.record(m, &m.slug, base, files_dir, finished, m.seq, mail)
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
        self.record(m, room_slug, base, files_dir, true, 0, None)
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one call per kind of meeting, each naming what it knows"
    )]
    fn record(
        &self,
        m: &Meeting,
        slug: &str,
        base: &str,
        files_dir: &Path,
        finished: bool,
        seq: u32,
        mail: Option<&super::QueuedMail>,
    ) -> Result<(), StoreError> {
        let attendees = m
            .attendees()
            .iter()
            .map(|a| a.nick.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        // Only a finished meeting belongs to its series: a `#save` leaves no recap.
        let recap = finished
            .then(|| serde_json::to_string(&m.recap()).ok())
            .flatten();
        self.with(|c| {
            let tx = c.transaction()?;
            let id = meeting_id(&tx, &m.room.to_string(), &m.started.to_rfc3339(), slug, seq)?;
            tx.execute(
                "UPDATE meetings SET room_slug = ?2, base = ?3, files_dir = ?4, title = ?5,
                   attendees = ?6, restricted = ?7, ended = ?8, seq = ?9 WHERE id = ?1",
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
                    },
                    seq
                ],
            )?;
            tx.execute(
                "UPDATE meetings SET name = ?2, recap = ?3 WHERE id = ?1",
                params![id, m.file_name(), recap],
            )?;
            if finished {
                index_meeting(&tx, id, m)?;
            }
            if let Some(mail) = mail {
                super::mail::queue(&tx, id, mail)?;
            }
            tx.commit()
        })
    }

    /// Rooms with their meetings, newest first (restricted meetings left out, and so is a
    /// meeting whose files a restricted one wrote over, before meetings kept apart).
    pub fn finished_meetings(
        &self,
        room_slug: Option<&str>,
    ) -> Result<Vec<MeetingSummary>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT id, room, room_slug, started, ended, base, files_dir, title, attendees, restricted
                 FROM meetings WHERE ended IS NOT NULL AND base IS NOT NULL AND restricted = 0
                   AND (?1 IS NULL OR room_slug = ?1)
                   AND (files_dir, base) NOT IN (SELECT files_dir, base FROM meetings
                       WHERE restricted = 1 AND files_dir IS NOT NULL AND base IS NOT NULL)
                 ORDER BY started DESC",
            )?;
            st.query_map([room_slug], summary_row)?.collect()
        })
    }

    /// The latest public meeting of the series `name` in the room `room_slug` that started
    /// before `before` (DESIGN §7 "Series"); a `#restrictlogs` meeting is never one.
    pub fn previous_in_series(
        &self,
        room_slug: &str,
        name: &str,
        before: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<PreviousMeeting>, StoreError> {
        let row = self.with(|c| {
            c.query_row(
                "SELECT started, base, recap FROM meetings
                 WHERE room_slug = ?1 AND name = ?2 AND started < ?3 AND ended IS NOT NULL
                   AND restricted = 0 AND base IS NOT NULL AND recap IS NOT NULL
                 ORDER BY started DESC LIMIT 1",
                params![room_slug, name, before.to_rfc3339()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()
        })?;
        let Some((started, base, recap)) = row else {
            return Ok(None);
        };
        let (Ok(started), Ok(recap)) = (
            chrono::DateTime::parse_from_rfc3339(&started),
            serde_json::from_str::<Recap>(&recap),
        ) else {
            tracing::warn!(room_slug, name, "unreadable series recap; not told");
            return Ok(None);
        };
        Ok(Some(PreviousMeeting {
            name: name.to_owned(),
            started: started.to_utc(),
            base_path: format!("{room_slug}/{base}"),
            recap,
        }))
    }

    /// The latest `limit` public meetings of a series, newest first, with their recaps.
    pub fn series_meetings(
        &self,
        room_slug: &str,
        name: &str,
        limit: usize,
    ) -> Result<Vec<SeriesMeeting>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT id, room, room_slug, started, ended, base, files_dir, title, attendees,
                        restricted, recap
                 FROM meetings WHERE room_slug = ?1 AND name = ?2 AND ended IS NOT NULL
                   AND base IS NOT NULL AND restricted = 0 AND recap IS NOT NULL
                 ORDER BY started DESC LIMIT ?3",
            )?;
            let rows = st.query_map(
                params![room_slug, name, i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| Ok((summary_row(r)?, r.get::<_, String>(10)?)),
            )?;
            let mut out = Vec::new();
            for row in rows {
                let (meeting, recap) = row?;
                // A recap that does not read (a newer bot's?) counts as an empty one.
                let recap = serde_json::from_str(&recap).unwrap_or_default();
                out.push(SeriesMeeting { meeting, recap });
            }
            Ok(out)
        })
    }

    /// The series of a room with public meetings, the latest first.
    pub fn room_series(&self, room_slug: &str) -> Result<Vec<SeriesInfo>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT name, COUNT(*), MAX(started) FROM meetings
                 WHERE room_slug = ?1 AND name IS NOT NULL AND ended IS NOT NULL
                   AND base IS NOT NULL AND restricted = 0 AND recap IS NOT NULL
                 GROUP BY name ORDER BY MAX(started) DESC",
            )?;
            st.query_map([room_slug], |r| {
                Ok(SeriesInfo {
                    name: r.get(0)?,
                    meetings: r.get::<_, i64>(1)?.try_into().unwrap_or(0),
                    latest: r.get(2)?,
                })
            })?
            .collect()
        })
    }

    /// Full-text search over finished meetings' logs and minutes, on a read-only connection
    /// of its own: a search never waits for the bot's writes nor makes them wait, at most
    /// [`SEARCHES_AT_ONCE`] run at once, and each stops after [`SEARCH_TIME`].
    pub fn search_meetings(
        &self,
        query: &str,
        limit: usize,
    ) -> Result<Vec<SearchHit>, SearchError> {
        self.search_within(query, limit, SEARCH_TIME)
    }

    fn search_within(
        &self,
        query: &str,
        limit: usize,
        time: std::time::Duration,
    ) -> Result<Vec<SearchHit>, SearchError> {
        let q = search_terms(query)?;
        if q.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.searchers.take(&self.path)?;
        let deadline = std::time::Instant::now() + time;
        conn.progress_handler(100, Some(move || std::time::Instant::now() > deadline));
        let hits = run_search(&conn, &q, limit);
        conn.progress_handler(100, None::<fn() -> bool>);
        self.searchers.give_back(conn);
        hits.map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::OperationInterrupted =>
            {
                SearchError::TooSlow
            }
            source => SearchError::Store(StoreError::Sqlite {
                path: self.path.clone(),
                source,
            }),
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

/// The row of the meeting of `room` started at `started`, made with its directory and
/// number when it is new.
/// The lines of a meeting's journal (`?1`: its id), in the order they were said.
const JOURNAL_LINES: &str = "SELECT time, nick, text, emote, bot, network, principal, source
     FROM meeting_lines WHERE meeting = ?1 ORDER BY id";

fn read_journal(
    lines: &mut rusqlite::Statement<'_>,
    id: i64,
) -> rusqlite::Result<Vec<JournalLine>> {
    lines
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
                network: r.get(5)?,
                principal: r
                    .get::<_, Option<String>>(6)?
                    .and_then(|p| Principal::parse(&p)),
                source: r.get(7)?,
            })
        })?
        .collect()
}

fn meeting_id(
    tx: &rusqlite::Transaction<'_>,
    room: &str,
    started: &str,
    slug: &str,
    seq: u32,
) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT OR IGNORE INTO meetings (room, started, room_slug, seq) VALUES (?1, ?2, ?3, ?4)",
        params![room, started, slug, seq],
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

/// How many searches may run at once (each on its own connection).
pub const SEARCHES_AT_ONCE: usize = 2;
/// How long one search may take.
pub const SEARCH_TIME: std::time::Duration = std::time::Duration::from_secs(2);
/// How many different words a search may have: FTS5's work grows fast with each.
pub const SEARCH_MAX_WORDS: usize = 10;
/// How long a search may be, in bytes.
pub const SEARCH_MAX_BYTES: usize = 200;

/// Why a search gave no hits.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search for at most {SEARCH_MAX_WORDS} different words")]
    TooManyWords,
    #[error("search for at most {SEARCH_MAX_BYTES} characters")]
    TooLong,
    #[error("too many searches at once; try again in a moment")]
    Busy,
    #[error("this search took too long; try fewer or rarer words")]
    TooSlow,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The query as FTS5 reads it: every distinct word quoted, so that what people type is never
/// FTS5 syntax; refused past the caps.
fn search_terms(query: &str) -> Result<String, SearchError> {
    if query.len() > SEARCH_MAX_BYTES {
        return Err(SearchError::TooLong);
    }
    let mut words: Vec<&str> = Vec::new();
    for w in query.split_whitespace() {
        if !words.contains(&w) {
            words.push(w);
        }
    }
    if words.len() > SEARCH_MAX_WORDS {
        return Err(SearchError::TooManyWords);
    }
    Ok(words
        .iter()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" "))
}

fn run_search(c: &rusqlite::Connection, q: &str, limit: usize) -> rusqlite::Result<Vec<SearchHit>> {
    let mut st = c.prepare_cached(
        "SELECT m.id, m.room, m.room_slug, m.started, m.ended, m.base, m.files_dir, m.title,
                m.attendees, m.restricted,
                s.kind, s.line, s.nick, snippet(meeting_search, 4, char(2), char(3), '…', 16)
         FROM meeting_search s JOIN meetings m ON m.id = s.meeting
         WHERE meeting_search MATCH ?1 AND m.restricted = 0
           AND (m.files_dir, m.base) NOT IN (SELECT files_dir, base FROM meetings
               WHERE restricted = 1 AND files_dir IS NOT NULL AND base IS NOT NULL)
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
}

/// The read-only connections searches run on, opened when first needed.
#[derive(Default)]
pub(super) struct Searchers {
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
    open: std::sync::atomic::AtomicUsize,
}

impl Searchers {
    fn take(&self, path: &std::path::Path) -> Result<rusqlite::Connection, SearchError> {
        use std::sync::atomic::Ordering;
        if let Some(c) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(c);
        }
        if self.open.fetch_add(1, Ordering::AcqRel) >= SEARCHES_AT_ONCE {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(SearchError::Busy);
        }
        rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| {
            self.open.fetch_sub(1, Ordering::AcqRel);
            SearchError::Store(StoreError::Sqlite {
                path: path.to_owned(),
                source,
            })
        })
    }

    fn give_back(&self, c: rusqlite::Connection) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            slug: "sig".into(),
            seq: 1,
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
                bot,
                ..JournalLine::default()
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
    fn claims_name_rooms_recent_meetings_and_journaled_messages_and_a_source_is_stored_once() {
        use chrono::TimeZone;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t = chrono::Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
        let key = |room: &str, slug: &str, seq| MeetingKey {
            room: RoomRef::new("libera", room),
            started: t,
            slug: slug.into(),
            seq,
        };
        let line = |source: Option<&str>| JournalLine {
            time: t,
            nick: "alice".into(),
            text: "#startmeeting".into(),
            network: Some("libera".into()),
            principal: Some(Principal::new("libera", "alice")),
            source: source.map(str::to_owned),
            ..JournalLine::default()
        };
        store
            .journal_meeting_line(&key("#x", "x", 1), &line(Some("libera/m1#1")))
            .unwrap();
        store
            .journal_meeting_line(&key("#x", "x", 1), &line(Some("libera/m1#1")))
            .unwrap();
        store
            .journal_meeting_line(&key("##x", "x-2", 1), &line(None))
            .unwrap();
        let journals = store.unfinished_meetings().unwrap();
        assert_eq!(journals.len(), 2);
        assert_eq!(journals[0].1.len(), 1, "the same message is journaled once");
        assert_eq!(journals[0].1[0], line(Some("libera/m1#1")));
        assert_eq!(journals[1].0, key("##x", "x-2", 1));
        // One meeting's journal, read back by its key (as its files are written from it).
        assert_eq!(
            store.meeting_journal(&key("#x", "x", 1)).unwrap(),
            [line(Some("libera/m1#1"))]
        );
        assert_eq!(
            store.meeting_journal(&key("##x", "x-2", 1)).unwrap(),
            [line(None)]
        );
        assert!(
            store
                .meeting_journal(&key("#y", "y", 1))
                .unwrap()
                .is_empty()
        );
        let claims = store
            .meeting_claims(t - chrono::TimeDelta::hours(1))
            .unwrap();
        assert_eq!(
            claims.rooms,
            [
                (RoomRef::new("libera", "#x"), "x".to_owned()),
                (RoomRef::new("libera", "##x"), "x-2".to_owned())
            ]
        );
        assert_eq!(claims.recent.len(), 2);
        assert_eq!(claims.sources, [("libera/m1#1".to_owned(), t)]);
        assert!(
            store
                .meeting_claims(t + chrono::TimeDelta::hours(1))
                .unwrap()
                .recent
                .is_empty()
        );
    }

    #[test]
    fn a_public_meeting_whose_files_a_restricted_one_wrote_over_is_not_served() {
        use chrono::TimeZone;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t = chrono::Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 0).unwrap();
        // Two rooms with one slug, as stores from before meetings were kept apart hold them.
        for (room, restrict) in [("#x", false), ("##x", true)] {
            let mut m = crate::core::Meeting::new(RoomRef::new("libera", room), "a", t, "!");
            m.add_line("a", "#startmeeting same", t, false);
            m.add_line("a", "secret words", t, false);
            if restrict {
                m.add_line("a", "#restrictlogs", t, false);
            }
            m.add_line("a", "#endmeeting", t, false);
            m.slug = "x".into();
            store
                .record_meeting_files(&m, &dir.path().join("x/2026-03-04"), true)
                .unwrap();
        }
        assert!(store.finished_meetings(None).unwrap().is_empty());
        assert!(store.search_meetings("secret", 10).unwrap().is_empty());
    }

    #[test]
    fn a_series_is_its_rooms_public_meetings_of_one_name_with_their_recaps() {
        use chrono::TimeZone;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let room = RoomRef::new("libera", "#sig");
        let t = |h| chrono::Utc.with_ymd_and_hms(2026, 3, h, 5, 6, 0).unwrap();
        let meeting = |day, name: &str, action: &str, restrict: bool| {
            let mut m = crate::core::Meeting::new(room.clone(), "alice", t(day), "!");
            m.add_line("alice", &format!("#startmeeting {name}"), t(day), false);
            m.add_line("alice", &format!("#action alice {action}"), t(day), false);
            if restrict {
                m.add_line("alice", "#restrictlogs", t(day), false);
            }
            m.add_raw_line("sigbot", "noted", t(day), false);
            m.add_line("alice", "#endmeeting", t(day), false);
            m
        };
        for (day, name, action, restrict) in [
            (1, "weekly", "one", false),
            (2, "other", "two", false),
            (3, "weekly", "three", false),
            (4, "weekly", "secret", true),
        ] {
            let m = meeting(day, name, action, restrict);
            let files = dir.path().join(format!("files-{day}"));
            // A #save first: only the finished meeting has a recap.
            store.record_meeting_files(&m, &files, false).unwrap();
            assert!(store.series_meetings("sig", name, 10).unwrap().len() < 3);
            store.record_meeting_files(&m, &files, true).unwrap();
        }
        // Before the 5th, the latest public one is the 3rd (the 4th is restricted).
        let prev = store
            .previous_in_series("sig", "weekly", t(5))
            .unwrap()
            .unwrap();
        assert_eq!(prev.started, t(3));
        assert_eq!(prev.base_path, "sig/2026-03-03/weekly.2026-03-03-05.06");
        assert_eq!(prev.recap.actions[0].items, ["alice three"]);
        // The bot is no attendee.
        assert_eq!(prev.recap.people.len(), 1);
        // Before the 3rd: the 1st; before the 1st: none; another room or name: none.
        let prev = store.previous_in_series("sig", "weekly", t(3)).unwrap();
        assert_eq!(prev.unwrap().started, t(1));
        assert!(
            store
                .previous_in_series("sig", "weekly", t(1))
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .previous_in_series("x", "weekly", t(5))
                .unwrap()
                .is_none()
        );
        let list = store.series_meetings("sig", "weekly", 10).unwrap();
        let started: Vec<&str> = list.iter().map(|s| s.meeting.started.as_str()).collect();
        assert_eq!(started, [t(3).to_rfc3339(), t(1).to_rfc3339()]);
        assert_eq!(store.series_meetings("sig", "weekly", 1).unwrap().len(), 1);
        let series = store.room_series("sig").unwrap();
        let names: Vec<(&str, usize)> = series
            .iter()
            .map(|s| (s.name.as_str(), s.meetings))
            .collect();
        assert_eq!(names, [("weekly", 2), ("other", 1)]);
    }

    /// A store with one finished meeting of `lines` log lines.
    fn store_with_meeting(dir: &std::path::Path, lines: usize) -> Store {
        use chrono::TimeZone;
        let store = Store::open(dir).unwrap();
        let room = RoomRef::new("libera", "#sig");
        let t = chrono::Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 0).unwrap();
        let mut m = crate::core::Meeting::new(room, "alice", t, "!");
        m.add_line("alice", "#startmeeting search", t, false);
        for i in 0..lines {
            m.add_line(
                "alice",
                &format!("line {i} about zebras and the mirror"),
                t,
                false,
            );
        }
        m.add_line("alice", "#endmeeting", t, false);
        store
            .record_meeting_files(&m, &dir.join("files"), true)
            .unwrap();
        store
    }

    #[test]
    fn searches_past_the_caps_are_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_meeting(dir.path(), 10);
        let words: Vec<String> = (0..800).map(|i| format!("w{i}")).collect();
        let many = words[..11].join(" ");
        assert!(matches!(
            store.search_meetings(&many, 10),
            Err(SearchError::TooManyWords)
        ));
        assert!(matches!(
            store.search_meetings(&words.join(" "), 10),
            Err(SearchError::TooLong)
        ));
        // The same word again and again is one word.
        let same = vec!["zebras"; 20].join(" ");
        assert!(store.search_meetings(&same, 100).unwrap().len() >= 10);
        assert_eq!(
            SearchError::TooManyWords.to_string(),
            "search for at most 10 different words"
        );
    }

    #[test]
    fn a_third_search_at_once_is_told_to_wait_and_a_slow_one_stops() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_meeting(dir.path(), 2_000);
        let a = store.searchers.take(&store.path).unwrap();
        let b = store.searchers.take(&store.path).unwrap();
        assert!(matches!(
            store.search_meetings("zebras", 10),
            Err(SearchError::Busy)
        ));
        store.searchers.give_back(a);
        store.searchers.give_back(b);
        assert!(!store.search_meetings("zebras", 10).unwrap().is_empty());
        assert!(matches!(
            store.search_within("zebras mirror", 10_000, std::time::Duration::ZERO),
            Err(SearchError::TooSlow)
        ));
        // The connection is usable again afterwards.
        assert!(!store.search_meetings("mirror", 10).unwrap().is_empty());
    }
}
