//! The outbox's tables: `outbox`, everything the bot must still say, delivered per network in
//! id order; `bridge_seen`, the source messages whose bridged copies were stored, so that a
//! message handled again after a crash is stored once; and `relay_seen`, the dedup keys of
//! relayed MQTT events.

use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use rusqlite::{Transaction, params};

use super::{Store, StoreError};
use crate::core::relay::SeenKey;
use crate::core::watch::AlertKey;
use crate::core::{RoomRef, SendKind};

/// A message as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub room: RoomRef,
    pub text: String,
    pub html: Option<String>,
    /// Matrix user IDs the message mentions on purpose (pills).
    pub mentions: Vec<String>,
    pub kind: SendKind,
    /// Who queued it: `bridge:<name>`, `relay:<route>` or `watch:<name>` (`relay` alone for
    /// rows from before the outboxes were merged).
    pub origin: String,
    pub queued_at: DateTime<Utc>,
    /// Past `queued_at + staleness` the message is dropped instead of delivered; `None`:
    /// it waits however long its network is away.
    pub staleness: Option<Duration>,
}

/// A message waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub message: Queued,
}

fn kind_name(kind: SendKind) -> &'static str {
    match kind {
        SendKind::Reply => "reply",
        SendKind::Relay => "relay",
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Inserts one message; its id.
fn insert(tx: &Transaction<'_>, m: &Queued) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO outbox
            (network, room, text, html, mentions, kind, origin, queued_at_ms, staleness_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        m.room.network,
        m.room.room,
        m.text,
        m.html,
        m.mentions.join("\n"),
        kind_name(m.kind),
        m.origin,
        m.queued_at.timestamp_millis(),
        m.staleness.map(millis),
    ])?;
    Ok(tx.last_insert_rowid())
}

impl Store {
    /// Stores a bridged message; `None` when `source` (the message it copies) was stored for
    /// that room before.
    pub fn outbox_put_bridged(
        &self,
        source: Option<&str>,
        m: &Queued,
    ) -> Result<Option<i64>, StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            if let Some(source) = source {
                // A day of memory is plenty: replays come from the last few minutes.
                let now = Utc::now().timestamp_millis();
                tx.prepare_cached("DELETE FROM bridge_seen WHERE at_ms < ?1")?
                    .execute([now - 86_400_000])?;
                let fresh = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO bridge_seen (source, network, room, at_ms)
                         VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![source, m.room.network, m.room.room, now])?;
                if fresh == 0 {
                    return Ok(None);
                }
            }
            let id = insert(&tx, m)?;
            tx.commit()?;
            Ok(Some(id))
        })
    }

    /// Stores relayed messages and the dedup keys of their events in one transaction.
    pub fn outbox_put_relayed(
        &self,
        messages: &[Queued],
        seen: &[SeenKey],
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            for m in messages {
                insert(&tx, m)?;
            }
            {
                let mut put = tx.prepare_cached(
                    "INSERT INTO relay_seen (key, until) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET until = excluded.until",
                )?;
                for s in seen {
                    put.execute(params![s.key, s.until.timestamp()])?;
                }
            }
            tx.commit()
        })
    }

    /// Stores package-update alerts and records their versions as announced, in one
    /// transaction: an alert is either queued and remembered, or neither.
    pub fn outbox_put_alerts(
        &self,
        messages: &[Queued],
        announced: &[AlertKey],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            for m in messages {
                insert(&tx, m)?;
            }
            {
                let mut seen = tx.prepare_cached(
                    "INSERT OR IGNORE INTO watch_alerts (watch, package, upstream, at)
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                for k in announced {
                    seen.execute(params![k.watch, k.package, k.upstream, now.to_rfc3339()])?;
                }
            }
            tx.commit()
        })
    }

    /// The oldest message waiting for `network`.
    pub fn outbox_next(&self, network: &str) -> Result<Option<OutboxRow>, StoreError> {
        Ok(self.outbox_after(network, 0, 1)?.into_iter().next())
    }

    /// At most `limit` messages waiting for `network` whose ids come after `after`, oldest
    /// first (ids only grow: the table is `AUTOINCREMENT`).
    pub fn outbox_after(
        &self,
        network: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(|c| {
            let mut q = c.prepare_cached(
                "SELECT id, room, text, html, mentions, kind, origin, queued_at_ms, staleness_ms
                 FROM outbox WHERE network = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
            )?;
            let rows = q.query_map(params![network, after, limit], |r| {
                let mentions: String = r.get(4)?;
                let kind: String = r.get(5)?;
                let queued_at_ms: i64 = r.get(7)?;
                let staleness_ms: Option<i64> = r.get(8)?;
                Ok(OutboxRow {
                    id: r.get(0)?,
                    message: Queued {
                        room: RoomRef::new(network, r.get::<_, String>(1)?),
                        text: r.get(2)?,
                        html: r.get(3)?,
                        mentions: mentions.lines().map(str::to_owned).collect(),
                        kind: if kind == "reply" {
                            SendKind::Reply
                        } else {
                            SendKind::Relay
                        },
                        origin: r.get(6)?,
                        queued_at: DateTime::from_timestamp_millis(queued_at_ms)
                            .unwrap_or_default(),
                        staleness: staleness_ms
                            .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
                    },
                })
            })?;
            rows.collect()
        })
    }

    /// Removes a delivered (or dropped) message from the outbox.
    pub fn outbox_remove(&self, id: i64) -> Result<(), StoreError> {
        self.outbox_remove_many(&[id])
    }

    /// Removes delivered (or dropped) messages from the outbox, in one transaction.
    pub fn outbox_remove_many(&self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut del = tx.prepare_cached("DELETE FROM outbox WHERE id = ?1")?;
                for id in ids {
                    del.execute([id])?;
                }
            }
            tx.commit()
        })
    }

    /// Messages waiting, by network.
    pub fn outbox_len(&self, network: &str) -> Result<usize, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM outbox WHERE network = ?1",
                [network],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| usize::try_from(n).unwrap_or(0))
        })
    }

    /// Every network with messages waiting, and how many.
    pub fn outbox_networks(&self) -> Result<Vec<(String, usize)>, StoreError> {
        self.with(|c| {
            let mut q = c.prepare(
                "SELECT network, COUNT(*) FROM outbox GROUP BY network ORDER BY network",
            )?;
            let rows = q.query_map([], |r| {
                Ok((r.get(0)?, usize::try_from(r.get::<_, i64>(1)?).unwrap_or(0)))
            })?;
            rows.collect()
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
}

#[cfg(test)]
mod tests;
