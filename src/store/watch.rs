//! Package-update alerts already announced (`watch_alerts`).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{Store, StoreError};
use crate::core::watch::{Alert, AlertKey};

impl Store {
    /// The upstream versions already announced by watch `watch`.
    pub fn watch_alerts(&self, watch: &str) -> Result<HashSet<AlertKey>, StoreError> {
        self.with(|c| {
            let mut q =
                c.prepare_cached("SELECT package, upstream FROM watch_alerts WHERE watch = ?1")?;
            let rows = q.query_map([watch], |r| {
                Ok(AlertKey {
                    watch: watch.to_owned(),
                    package: r.get(0)?,
                    upstream: r.get(1)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Queues package-update alerts in the relay outbox and records them as announced, in one
    /// transaction: an alert is either queued and remembered, or neither.
    pub fn queue_watch_alerts(
        &self,
        alerts: &[Alert],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut put = tx.prepare_cached(
                    "INSERT INTO relay_outbox (network, room, text, html, queued_at)
                     VALUES (?1, ?2, ?3, NULL, ?4)",
                )?;
                let mut seen = tx.prepare_cached(
                    "INSERT OR IGNORE INTO watch_alerts (watch, package, upstream, at)
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                for a in alerts {
                    for room in &a.to {
                        put.execute(params![room.network, room.room, a.text, now.timestamp()])?;
                    }
                    seen.execute(params![
                        a.key.watch,
                        a.key.package,
                        a.key.upstream,
                        now.to_rfc3339()
                    ])?;
                }
            }
            tx.commit()
        })
    }
}
