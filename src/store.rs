//! The durable store: one SQLite database in `data_dir`, with schema migrations kept in code.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

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
    // 2: the MQTT relay's outbox (messages stored before the MQTT ack, delivered in id
    // order) and the dedup keys of relayed events (src/outbox.rs).
    "CREATE TABLE relay_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        network TEXT NOT NULL,
        room TEXT NOT NULL,
        text TEXT NOT NULL,
        html TEXT,
        queued_at INTEGER NOT NULL
     );
     CREATE TABLE relay_seen (key TEXT PRIMARY KEY, until INTEGER NOT NULL);",
];

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

    pub fn schema_version(&self) -> Result<usize, StoreError> {
        self.with(|c| c.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0)))
            .map(|v| usize::try_from(v).unwrap_or(0))
    }
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
