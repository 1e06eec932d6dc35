//! The audit log of guarded declarative commands.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{Store, StoreError, audit_time};
use crate::core::AuditEntry;

impl Store {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
