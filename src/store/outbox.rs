//! The outboxes' tables: the bridge's (`bridge_outbox`, with `bridge_seen` so that a message
//! handled again after a crash is stored once) and the relay's (`relay_outbox`, with the dedup
//! keys of relayed events in `relay_seen`).

use chrono::{DateTime, TimeZone as _, Utc};
use rusqlite::{OptionalExtension as _, params};

use super::{Store, StoreError};
use crate::core::RoomRef;
use crate::core::relay::{RelayBatch, SeenKey};

/// A message waiting in the bridge outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub message: crate::core::Bridged,
}

/// A message waiting in the relay outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub id: i64,
    pub room: RoomRef,
    pub text: String,
    pub html: Option<String>,
}

impl Store {
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

    /// Stores a relay batch's messages and dedup keys in one transaction.
    pub fn relay_store_batch(
        &self,
        batch: &RelayBatch,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut put = tx.prepare_cached(
                    "INSERT INTO relay_outbox (network, room, text, html, queued_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for m in &batch.messages {
                    put.execute(params![
                        m.room.network,
                        m.room.room,
                        m.text,
                        m.html,
                        now.timestamp()
                    ])?;
                }
                let mut seen = tx.prepare_cached(
                    "INSERT INTO relay_seen (key, until) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET until = excluded.until",
                )?;
                for s in &batch.seen {
                    seen.execute(params![s.key, s.until.timestamp()])?;
                }
            }
            tx.commit()
        })
    }

    /// The relay's dedup keys still valid at `now`; forgets the others.
    pub fn relay_seen_keys(&self, now: DateTime<Utc>) -> Result<Vec<SeenKey>, StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM relay_seen WHERE until <= ?1",
                [now.timestamp()],
            )?;
            let mut q = c.prepare("SELECT key, until FROM relay_seen")?;
            let rows = q.query_map([], |r| {
                let until: i64 = r.get(1)?;
                Ok(SeenKey {
                    key: r.get(0)?,
                    until: Utc.timestamp_opt(until, 0).single().unwrap_or(now),
                })
            })?;
            rows.collect()
        })
    }

    /// The oldest messages waiting in the relay outbox, up to `limit`.
    pub fn relay_pending(&self, limit: usize) -> Result<Vec<QueuedMessage>, StoreError> {
        self.with(|c| {
            let mut q = c.prepare_cached(
                "SELECT id, network, room, text, html FROM relay_outbox ORDER BY id LIMIT ?1",
            )?;
            let rows = q.query_map([limit as i64], |r| {
                Ok(QueuedMessage {
                    id: r.get(0)?,
                    room: RoomRef::new(r.get::<_, String>(1)?, r.get::<_, String>(2)?),
                    text: r.get(3)?,
                    html: r.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Removes a delivered (or dropped) message from the relay outbox.
    pub fn relay_remove(&self, id: i64) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached("DELETE FROM relay_outbox WHERE id = ?1")?
                .execute([id])
                .map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
