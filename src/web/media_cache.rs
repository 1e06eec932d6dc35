//! The files behind `/media/<id>`, kept on disk so that a link many people open is fetched
//! from its network once, and so that no file is ever held whole in memory.
//!
//! Files are keyed by network and URI. A file is written to a temporary name while it
//! arrives and gets its final name only when complete, so a reader never sees part of one;
//! the index lives in memory, so whatever a previous run left in the directory is removed at
//! start and never served. While a file is being fetched, other requests for it wait for
//! that one download. Downloads run in their own tasks: a reader that gives up does not
//! stop the file for the others. At most `downloads` files are fetched at once; a file waits
//! at most `slot_wait` for its turn, and at most `queue` files wait, so a flood of requests
//! is answered "busy" instead of piling up. Past `capacity`, the least recently used files
//! are removed; a reader that has one open keeps reading it (the file system keeps an
//! unlinked file until it is closed).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::adapters::media::{ByteStream, FileSource, MediaError};

/// How much the cache may hold and fetch.
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    /// Bytes of complete files kept on disk (files being written come on top).
    pub capacity: u64,
    /// The largest file fetched; a body that grows past it is cut off and dropped.
    pub max_file: u64,
    /// Downloads from the networks at once.
    pub downloads: usize,
    /// Files that may wait for a download slot, beyond those being fetched.
    pub queue: usize,
    /// How long a file waits for a download slot before its readers are told "busy".
    pub slot_wait: Duration,
}

impl CacheLimits {
    /// The site's limits, with `capacity` bytes on disk.
    pub fn with_capacity(capacity: u64) -> Self {
        Self {
            capacity,
            max_file: super::media::MAX_MEDIA_BYTES,
            downloads: 4,
            queue: 32,
            // Well inside the site's per-request limit, so that the reader hears "busy".
            slot_wait: Duration::from_secs(10),
        }
    }
}

/// Why a file cannot be served. Cloneable: every reader waiting for one download gets it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FetchError {
    #[error("larger than {max} bytes")]
    TooLarge { max: u64 },
    #[error("the network has no such file")]
    NotFound,
    #[error("too many downloads at once")]
    Busy,
    #[error("{0}")]
    Failed(String),
}

impl From<MediaError> for FetchError {
    fn from(e: MediaError) -> Self {
        match e {
            MediaError::TooLarge { max } => FetchError::TooLarge { max },
            MediaError::Status(s) if s == reqwest::StatusCode::NOT_FOUND => FetchError::NotFound,
            other => FetchError::Failed(other.to_string()),
        }
    }
}

/// A complete cached file, opened for reading.
#[derive(Debug)]
pub struct CachedFile {
    pub file: tokio::fs::File,
    pub len: u64,
    /// The content type the network gave.
    pub content_type: Option<String>,
}

/// The cache; clones share it.
#[derive(Clone)]
pub struct MediaCache(Arc<Inner>);

struct Inner {
    dir: PathBuf,
    limits: CacheLimits,
    slots: Semaphore,
    state: Mutex<State>,
}

/// One download, awaited by every reader of its file.
type Fetch = Shared<BoxFuture<'static, Result<(), FetchError>>>;

/// What a reader does next.
enum Step {
    Open((String, u64, Option<String>)),
    Wait(Fetch),
}

#[derive(Default)]
struct State {
    files: HashMap<String, Entry>,
    /// Keys by last use, oldest first.
    by_use: BTreeMap<u64, String>,
    clock: u64,
    /// Bytes of the files in `files`.
    total: u64,
    /// Downloads under way, by key, with the serial of their file.
    fetching: HashMap<String, (u64, Fetch)>,
    /// Makes every file name unique, so that removing an evicted file never hits a newer
    /// download of the same key.
    serial: u64,
}

struct Entry {
    name: String,
    len: u64,
    content_type: Option<String>,
    used: u64,
}

impl State {
    /// The file of `key`, marked as just used.
    fn touch(&mut self, key: &str) -> Option<(String, u64, Option<String>)> {
        self.clock += 1;
        let now = self.clock;
        let entry = self.files.get_mut(key)?;
        self.by_use.remove(&entry.used);
        entry.used = now;
        self.by_use.insert(now, key.to_owned());
        Some((entry.name.clone(), entry.len, entry.content_type.clone()))
    }

    /// Ends the download `serial` of `key`, and not a later one of the same key.
    fn unregister(&mut self, key: &str, serial: u64) {
        if self.fetching.get(key).is_some_and(|(s, _)| *s == serial) {
            self.fetching.remove(key);
        }
    }

    fn forget(&mut self, key: &str) -> Option<Entry> {
        let entry = self.files.remove(key)?;
        self.by_use.remove(&entry.used);
        self.total -= entry.len;
        Some(entry)
    }

    /// Adds a complete file and returns the names of the files evicted to make room.
    fn insert(&mut self, key: String, entry: Entry, capacity: u64) -> Vec<String> {
        let mut evicted = Vec::new();
        if let Some(old) = self.forget(&key) {
            evicted.push(old.name);
        }
        self.total += entry.len;
        self.by_use.insert(entry.used, key.clone());
        self.files.insert(key.clone(), entry);
        while self.total > capacity {
            let Some(oldest) = self.by_use.values().find(|k| **k != key).cloned() else {
                break;
            };
            if let Some(old) = self.forget(&oldest) {
                evicted.push(old.name);
            }
        }
        evicted
    }
}

impl MediaCache {
    /// A cache in `dir` (created when the first file arrives). Whatever a previous run left
    /// there is removed: its types are unknown and a crash may have cut a file short.
    pub fn new(dir: PathBuf, limits: CacheLimits) -> Self {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Harmless: leftovers are never in the index, and new files get new names.
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "old media cache not removed");
            }
        }
        Self(Arc::new(Inner {
            dir,
            slots: Semaphore::new(limits.downloads),
            limits,
            state: Mutex::new(State::default()),
        }))
    }

    /// The file `uri` of `network`, from the cache, or fetched from `source` first (once,
    /// however many ask for it at the same time).
    pub async fn get<S: FileSource>(
        &self,
        source: &S,
        network: &str,
        uri: &str,
    ) -> Result<CachedFile, FetchError> {
        let key = key_of(network, uri);
        // A file evicted between its download and its opening is fetched again; a cache
        // too busy for that to work twice in a row is busy.
        for _ in 0..3 {
            let step = {
                let mut st = self.0.lock();
                if let Some(found) = st.touch(&key) {
                    Step::Open(found)
                } else if let Some((_, fetch)) = st.fetching.get(&key) {
                    Step::Wait(fetch.clone())
                } else if st.fetching.len() >= self.0.limits.downloads + self.0.limits.queue {
                    return Err(FetchError::Busy);
                } else {
                    Step::Wait(self.start(&mut st, source.clone(), network, uri, key.clone()))
                }
            };
            match step {
                Step::Wait(fetch) => fetch.await?,
                Step::Open((name, len, content_type)) => {
                    match tokio::fs::File::open(self.0.dir.join(&name)).await {
                        Ok(file) => {
                            return Ok(CachedFile {
                                file,
                                len,
                                content_type,
                            });
                        }
                        Err(e) => {
                            tracing::warn!(file = %name, error = %e, "cached media file gone");
                            let mut st = self.0.lock();
                            if st.files.get(&key).is_some_and(|e| e.name == name) {
                                st.forget(&key);
                            }
                        }
                    }
                }
            }
        }
        Err(FetchError::Busy)
    }

    /// Starts the download of `key` in its own task and registers it.
    fn start<S: FileSource>(
        &self,
        st: &mut State,
        source: S,
        network: &str,
        uri: &str,
        key: String,
    ) -> Fetch {
        st.serial += 1;
        let serial = st.serial;
        let guard = InFlight {
            inner: Arc::clone(&self.0),
            key: key.clone(),
            serial,
        };
        let network = network.to_owned();
        let uri = uri.to_owned();
        let task = tokio::spawn(async move {
            let inner = &guard.inner;
            let temp = inner.dir.join(format!("{serial}.part"));
            let name = format!("{}-{serial}", guard.key);
            let fetched = inner
                .fetch(&source, &uri, &temp, &inner.dir.join(&name))
                .await;
            if let Err(e) = &fetched {
                let _ = tokio::fs::remove_file(&temp).await;
                match e {
                    FetchError::Failed(_) => {
                        tracing::warn!(network = %network, error = %e, "media not fetched");
                    }
                    FetchError::Busy => {
                        tracing::info!(network = %network, "media download found no free slot in time");
                    }
                    FetchError::TooLarge { .. } | FetchError::NotFound => {}
                }
            }
            let evicted = inner.commit(&guard.key, serial, name, fetched)?;
            for old in evicted {
                if let Err(e) = tokio::fs::remove_file(inner.dir.join(&old)).await {
                    tracing::warn!(file = %old, error = %e, "evicted media file not removed");
                }
            }
            Ok(())
        });
        let fetch = async move {
            task.await
                .unwrap_or_else(|e| Err(FetchError::Failed(format!("download task: {e}"))))
        }
        .boxed()
        .shared();
        st.fetching.insert(key, (serial, fetch.clone()));
        fetch
    }

    /// Bytes of complete files in the cache.
    pub fn total(&self) -> u64 {
        self.0.lock().total
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the download `serial` of `key`: a complete file named `name` joins the index,
    /// in the same step, so a reader finds either the download or the file. Gives the
    /// names of the files evicted to make room.
    fn commit(
        &self,
        key: &str,
        serial: u64,
        name: String,
        fetched: Result<(u64, Option<String>), FetchError>,
    ) -> Result<Vec<String>, FetchError> {
        let mut st = self.lock();
        st.unregister(key, serial);
        let (len, content_type) = fetched?;
        st.clock += 1;
        let entry = Entry {
            name,
            len,
            content_type,
            used: st.clock,
        };
        Ok(st.insert(key.to_owned(), entry, self.limits.capacity))
    }

    /// Waits for a download slot, then writes the file to `temp` and renames it to `path`
    /// once complete; gives its length and the content type the network gave.
    async fn fetch<S: FileSource>(
        &self,
        source: &S,
        uri: &str,
        temp: &Path,
        path: &Path,
    ) -> Result<(u64, Option<String>), FetchError> {
        let Ok(Ok(_slot)) = tokio::time::timeout(self.limits.slot_wait, self.slots.acquire()).await
        else {
            return Err(FetchError::Busy);
        };
        let download = source.download(uri, self.limits.max_file).await?;
        // 0700: files from private rooms are kept here.
        crate::store::private::make_private_dir(&self.dir)
            .map_err(|e| io_failed("cannot create the cache directory", &e))?;
        let len = write_capped(download.body, temp, self.limits.max_file).await?;
        tokio::fs::rename(temp, path)
            .await
            .map_err(|e| io_failed("cannot name the cached file", &e))?;
        Ok((len, download.content_type))
    }
}

/// Writes `body` to a new file at `path`, giving up as soon as it grows past `max` bytes
/// (whatever length the network announced).
async fn write_capped(mut body: ByteStream, path: &Path, max: u64) -> Result<u64, FetchError> {
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .await
        .map_err(|e| io_failed("cannot write the cache", &e))?;
    let mut len = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        len += chunk.len() as u64;
        if len > max {
            return Err(FetchError::TooLarge { max });
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| io_failed("cannot write the cache", &e))?;
    }
    // A tokio file writes in the background: without this the last chunk may not be there yet.
    file.flush()
        .await
        .map_err(|e| io_failed("cannot write the cache", &e))?;
    Ok(len)
}

fn io_failed(what: &str, e: &std::io::Error) -> FetchError {
    FetchError::Failed(format!("{what}: {e}"))
}

/// The key of a file: a hash, so that it is a safe file name whatever the URI holds.
fn key_of(network: &str, uri: &str) -> String {
    let mut h = blake3::Hasher::new();
    h.update(&(network.len() as u64).to_le_bytes());
    h.update(network.as_bytes());
    h.update(uri.as_bytes());
    h.finalize().to_hex().to_string()
}

/// Unregisters a download however its task ends (a panic included), so that the next
/// reader starts a new one instead of waiting on a dead one.
struct InFlight {
    inner: Arc<Inner>,
    key: String,
    serial: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.inner.lock().unregister(&self.key, self.serial);
    }
}

#[cfg(test)]
mod tests;
