//! What one Matrix network keeps in `data_dir/matrix/<network>/`, every directory 0700 and
//! every file 0600 (`crate::store::private`):
//! - `session.json`: the user, device and tokens, so that a restart reuses the device and its
//!   keys instead of logging in as a new one;
//! - `sdk/`: matrix-sdk's own SQLite state, crypto and event-cache stores, encrypted with
//!   `store_passphrase` when it is set;
//! - `sync.db`: the next-batch token and the IDs of events already handed to the core, written
//!   in one transaction after each sync, so that a restart neither repeats nor skips events.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use matrix_sdk::authentication::matrix::MatrixSession;
use rusqlite::{Connection, OptionalExtension as _, params};
use serde::{Deserialize, Serialize};

use crate::store::private;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{}: not a saved session: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The SDK's crypto store in `sdk/` (matrix-sdk-sqlite's name for it).
const SDK_CRYPTO_DB: &str = "matrix-sdk-crypto.sqlite3";

/// A login, with what it was made for: a changed homeserver or user means a new login.
#[derive(Serialize, Deserialize)]
pub struct SavedSession {
    pub homeserver: String,
    pub session: MatrixSession,
}

/// The directory of one network and the files in it.
#[derive(Debug, Clone)]
pub struct NetworkDir {
    root: PathBuf,
}

impl NetworkDir {
    pub fn new(data_dir: &Path, network: &str) -> Self {
        Self {
            root: data_dir.join("matrix").join(network),
        }
    }

    /// Creates the directory, and makes it and what it holds readable by the bot's user only:
    /// `data_dir/matrix/` and this directory 0700, the session and `sync.db` 0600. (The SDK's
    /// stores are made private around the client's build, see [`NetworkDir::private_sdk_store`].)
    pub fn create(&self) -> Result<(), StateError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StateError::Io { path, source }
        };
        if let Some(parent) = self.root.parent() {
            private::make_private_dir(parent).map_err(io(parent))?;
        }
        private::make_private_dir(&self.root).map_err(io(&self.root))?;
        let session = self.session_path();
        private::make_private_file(&session).map_err(io(&session))?;
        let sync = self.sync_path();
        private::make_private_database(&sync).map_err(io(&sync))
    }

    /// Makes the SDK's store directory 0700 (creating it) and the files in it 0600. Called
    /// before the client opens the stores, so that new files are made in a private directory,
    /// and after, for the files it made.
    pub fn private_sdk_store(&self) -> Result<(), StateError> {
        let dir = self.sdk_store();
        private::make_private_dir(&dir)
            .and_then(|()| private::make_private_files_in(&dir))
            .map_err(|source| StateError::Io { path: dir, source })
    }

    pub fn sdk_store(&self) -> PathBuf {
        self.root.join("sdk")
    }

    fn session_path(&self) -> PathBuf {
        self.root.join("session.json")
    }

    fn sync_path(&self) -> PathBuf {
        self.root.join("sync.db")
    }

    /// Whether the SDK's crypto store, if there is one, was made with a store passphrase (it
    /// then holds the passphrase-wrapped key of its cipher).
    pub fn sdk_store_encrypted(&self) -> Result<Option<bool>, StateError> {
        let path = self.sdk_store().join(SDK_CRYPTO_DB);
        if !path.exists() {
            return Ok(None);
        }
        let sql = |source| StateError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sql)?;
        let has_kv: bool = conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kv'",
                [],
                |_| Ok(()),
            )
            .optional()
            .map_err(sql)?
            .is_some();
        if !has_kv {
            return Ok(None);
        }
        conn.query_row("SELECT 1 FROM kv WHERE key = 'cipher'", [], |_| Ok(()))
            .optional()
            .map(|row| Some(row.is_some()))
            .map_err(sql)
    }

    pub fn load_session(&self) -> Result<Option<SavedSession>, StateError> {
        let path = self.session_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Io { path, source }),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| StateError::Json { path, source })
    }

    /// Writes the session readable by the bot's user only, replacing the old one atomically.
    pub fn save_session(&self, saved: &SavedSession) -> Result<(), StateError> {
        let path = self.session_path();
        let tmp = self.root.join("session.json.tmp");
        let io = |source| StateError::Io {
            path: path.clone(),
            source,
        };
        let json = serde_json::to_vec_pretty(saved).map_err(|source| StateError::Json {
            path: path.clone(),
            source,
        })?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(&json).and_then(|()| f.sync_all()).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    /// Forgets the login and the SDK's stores (their keys belong to the old device).
    pub fn forget_session(&self) -> Result<(), StateError> {
        for path in [self.session_path(), self.sdk_store()] {
            let res = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match res {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(StateError::Io { path, source }),
            }
        }
        Ok(())
    }

    pub fn open_sync_state(&self) -> Result<SyncState, StateError> {
        SyncState::open(&self.sync_path())
    }
}

/// The sync position and the events already handled. Cloneable; calls block briefly.
#[derive(Clone)]
pub struct SyncState {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl SyncState {
    fn open(path: &Path) -> Result<Self, StateError> {
        let sql = |source| StateError::Sqlite {
            path: path.to_owned(),
            source,
        };
        private::prepare_database(path).map_err(|source| StateError::Io {
            path: path.to_owned(),
            source,
        })?;
        let conn = Connection::open(path).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS sync (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 next_batch TEXT NOT NULL,
                 first_sync TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS handled (
                 event_id TEXT PRIMARY KEY,
                 at INTEGER NOT NULL
             );",
        )
        .map_err(sql)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_owned(),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|source| StateError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    /// The token to continue from, and when the first sync ever completed.
    pub fn position(&self) -> Result<Option<(String, DateTime<Utc>)>, StateError> {
        let row: Option<(String, String)> = self.with(|c| {
            c.query_row(
                "SELECT next_batch, first_sync FROM sync WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })?;
        Ok(row.map(|(token, first)| {
            let first = DateTime::parse_from_rfc3339(&first)
                .map(|d| d.with_timezone(&Utc))
                .unwrap_or_else(|_| Utc::now());
            (token, first)
        }))
    }

    pub fn is_handled(&self, event_id: &str) -> Result<bool, StateError> {
        self.with(|c| {
            c.query_row(
                "SELECT 1 FROM handled WHERE event_id = ?1",
                [event_id],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
        })
    }

    /// Records, in one transaction, the events handed to the core and the token after them;
    /// forgets handled events older than `keep_since` (they can no longer come back).
    pub fn commit(
        &self,
        next_batch: &str,
        handled: &[String],
        now: DateTime<Utc>,
        keep_since: DateTime<Utc>,
    ) -> Result<(), StateError> {
        self.with(|c| {
            let tx = c.transaction()?;
            for id in handled {
                tx.execute(
                    "INSERT OR IGNORE INTO handled (event_id, at) VALUES (?1, ?2)",
                    params![id, now.timestamp()],
                )?;
            }
            tx.execute(
                "INSERT INTO sync (id, next_batch, first_sync) VALUES (1, ?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET next_batch = excluded.next_batch",
                params![next_batch, now.to_rfc3339()],
            )?;
            tx.execute(
                "DELETE FROM handled WHERE at < ?1",
                params![keep_since.timestamp()],
            )?;
            tx.commit()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[tokio::test]
    async fn a_crypto_store_tells_whether_it_was_made_with_a_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        for (network, passphrase, encrypted) in [("plain", None, false), ("enc", Some("pw"), true)]
        {
            let net = NetworkDir::new(dir.path(), network);
            net.create().unwrap();
            assert_eq!(net.sdk_store_encrypted().unwrap(), None, "no store yet");
            let store = matrix_sdk::SqliteCryptoStore::open(net.sdk_store(), passphrase)
                .await
                .unwrap();
            drop(store);
            assert_eq!(net.sdk_store_encrypted().unwrap(), Some(encrypted));
        }
    }

    #[test]
    fn the_network_s_files_are_made_private_at_start() {
        use crate::store::private::mode_of;
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let net = NetworkDir::new(dir.path(), "fedora");
        net.create().unwrap();
        drop(net.open_sync_state().unwrap());
        let root = dir.path().join("matrix/fedora");
        std::fs::write(root.join("session.json"), "{}").unwrap();
        for (path, mode) in [
            (dir.path().join("matrix"), 0o755),
            (root.clone(), 0o755),
            (root.join("session.json"), 0o644),
            (root.join("sync.db"), 0o644),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        net.create().unwrap();
        assert_eq!(mode_of(&dir.path().join("matrix")), 0o700);
        assert_eq!(mode_of(&root), 0o700);
        assert_eq!(mode_of(&root.join("session.json")), 0o600);
        assert_eq!(mode_of(&root.join("sync.db")), 0o600);
    }

    #[test]
    fn position_and_handled_events_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let net = NetworkDir::new(dir.path(), "fedora");
        net.create().unwrap();
        let t0 = Utc::now();
        {
            let s = net.open_sync_state().unwrap();
            assert!(s.position().unwrap().is_none());
            s.commit("s1", &["$a".into()], t0, t0 - TimeDelta::hours(1))
                .unwrap();
            s.commit("s2", &["$b".into()], t0 + TimeDelta::seconds(5), t0)
                .unwrap();
        }
        let s = net.open_sync_state().unwrap();
        let (token, first) = s.position().unwrap().unwrap();
        assert_eq!(token, "s2");
        // The first sync's time stays.
        assert_eq!(first.timestamp(), t0.timestamp());
        assert!(s.is_handled("$a").unwrap());
        assert!(s.is_handled("$b").unwrap());
        assert!(!s.is_handled("$c").unwrap());
        // Old entries are pruned.
        s.commit("s3", &[], t0, t0 + TimeDelta::seconds(1)).unwrap();
        assert!(!s.is_handled("$a").unwrap());
        assert!(s.is_handled("$b").unwrap());
    }
}
