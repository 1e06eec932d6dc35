use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::stream;
use tokio::io::AsyncReadExt;
use tokio::sync::{Notify, Semaphore};

use super::*;
use crate::adapters::media::Download;

/// One file of the fake network: its chunks, and optionally a gate the body stops at after
/// the first chunk until the test opens it (then the rest arrives, or `fail` is given).
#[derive(Clone, Default)]
struct FakeFile {
    chunks: Vec<Bytes>,
    gate: Option<Arc<Gate>>,
    fail: bool,
}

struct Gate {
    /// Told when the reader asks for the second chunk (so the first is written).
    reached: Notify,
    open: Semaphore,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            reached: Notify::new(),
            open: Semaphore::new(0),
        }
    }
}

#[derive(Clone, Default)]
struct Fake {
    files: Arc<Mutex<HashMap<String, FakeFile>>>,
    downloads: Arc<AtomicUsize>,
}

impl Fake {
    fn put(&self, uri: &str, file: FakeFile) {
        self.files.lock().unwrap().insert(uri.to_owned(), file);
    }

    fn downloads(&self) -> usize {
        self.downloads.load(Ordering::SeqCst)
    }
}

impl FileSource for Fake {
    async fn download(&self, uri: &str, _max: u64) -> Result<Download, MediaError> {
        self.downloads.fetch_add(1, Ordering::SeqCst);
        let Some(file) = self.files.lock().unwrap().get(uri).cloned() else {
            return Err(MediaError::Status(reqwest::StatusCode::NOT_FOUND));
        };
        let mut chunks = file.chunks.into_iter().map(Ok);
        let first: Vec<Result<Bytes, MediaError>> = chunks.next().into_iter().collect();
        let rest: Vec<Result<Bytes, MediaError>> = chunks.collect();
        let (gate, fail) = (file.gate, file.fail);
        let tail = stream::once(async move {
            if let Some(g) = gate {
                g.reached.notify_one();
                let _ = g.open.acquire().await;
            }
            let mut rest = rest;
            if fail {
                rest.push(Err(MediaError::NotLoggedIn));
            }
            stream::iter(rest)
        })
        .flatten();
        Ok(Download {
            body: Box::pin(stream::iter(first).chain(tail)),
            content_type: Some("image/png".to_owned()),
        })
    }
}

fn limits(capacity: u64, max_file: u64) -> CacheLimits {
    CacheLimits {
        capacity,
        max_file,
        downloads: 4,
        queue: 4,
        slot_wait: Duration::from_secs(30),
    }
}

fn plain(bytes: &[u8]) -> FakeFile {
    FakeFile {
        chunks: bytes.chunks(3).map(Bytes::copy_from_slice).collect(),
        ..FakeFile::default()
    }
}

async fn read(mut c: CachedFile) -> Vec<u8> {
    let mut out = Vec::new();
    c.file.read_to_end(&mut out).await.unwrap();
    assert_eq!(out.len() as u64, c.len);
    out
}

/// The names in the cache directory, sorted.
fn on_disk(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

#[tokio::test]
async fn a_file_is_fetched_once_and_then_read_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cache = MediaCache::new(dir.path().join("c"), limits(100, 50));
    let fake = Fake::default();
    fake.put("mxc://s/a", plain(b"hello world"));
    for _ in 0..3 {
        let c = cache.get(&fake, "hs", "mxc://s/a").await.unwrap();
        assert_eq!(c.content_type.as_deref(), Some("image/png"));
        assert_eq!(read(c).await, b"hello world");
    }
    assert_eq!(fake.downloads(), 1);
    // Another network's file of the same URI is another file.
    cache.get(&fake, "other", "mxc://s/a").await.unwrap();
    assert_eq!(fake.downloads(), 2);
    assert_eq!(
        cache.get(&fake, "hs", "mxc://s/missing").await.unwrap_err(),
        FetchError::NotFound
    );
    assert_eq!(cache.total(), 22);
}

#[tokio::test]
async fn the_least_recently_used_files_make_room() {
    let dir = tempfile::tempdir().unwrap();
    let cache = MediaCache::new(dir.path().join("c"), limits(10, 10));
    let fake = Fake::default();
    for (uri, body) in [
        ("mxc://s/a", b"aaaa"),
        ("mxc://s/b", b"bbbb"),
        ("mxc://s/c", b"cccc"),
    ] {
        fake.put(uri, plain(body));
    }
    cache.get(&fake, "hs", "mxc://s/a").await.unwrap();
    let b = cache.get(&fake, "hs", "mxc://s/b").await.unwrap();
    // a is used again, so b is the oldest when c needs room.
    cache.get(&fake, "hs", "mxc://s/a").await.unwrap();
    cache.get(&fake, "hs", "mxc://s/c").await.unwrap();
    assert_eq!(fake.downloads(), 3);
    assert_eq!(cache.total(), 8);
    assert_eq!(on_disk(&dir.path().join("c")).len(), 2);
    // A reader that had b open still reads all of it.
    assert_eq!(read(b).await, b"bbbb");
    cache.get(&fake, "hs", "mxc://s/a").await.unwrap();
    cache.get(&fake, "hs", "mxc://s/c").await.unwrap();
    assert_eq!(fake.downloads(), 3);
    assert_eq!(
        read(cache.get(&fake, "hs", "mxc://s/b").await.unwrap()).await,
        b"bbbb"
    );
    assert_eq!(fake.downloads(), 4);
    assert_eq!(cache.total(), 8);
}

#[tokio::test]
async fn a_body_that_grows_past_the_cap_is_cut_and_never_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cache = MediaCache::new(dir.path().join("c"), limits(100, 10));
    let fake = Fake::default();
    // The fake announces no length: only the bytes themselves show the size.
    fake.put("mxc://s/big", plain(b"0123456789A"));
    fake.put("mxc://s/fits", plain(b"0123456789"));
    for tries in 1..=2 {
        assert_eq!(
            cache.get(&fake, "hs", "mxc://s/big").await.unwrap_err(),
            FetchError::TooLarge { max: 10 }
        );
        assert_eq!(fake.downloads(), tries);
        assert_eq!(on_disk(&dir.path().join("c")), Vec::<String>::new());
    }
    assert_eq!(cache.total(), 0);
    let fits = cache.get(&fake, "hs", "mxc://s/fits").await.unwrap();
    assert_eq!(read(fits).await, b"0123456789");
}

#[tokio::test]
async fn readers_wait_for_the_one_download_and_a_partial_file_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("c");
    let cache = MediaCache::new(cache_dir.clone(), limits(100, 50));
    let fake = Fake::default();
    let gate = Arc::new(Gate::default());
    fake.put(
        "mxc://s/slow",
        FakeFile {
            chunks: vec![Bytes::from_static(b"first "), Bytes::from_static(b"second")],
            gate: Some(gate.clone()),
            fail: false,
        },
    );
    let readers: Vec<_> = (0..5)
        .map(|_| {
            let (cache, fake) = (cache.clone(), fake.clone());
            tokio::spawn(async move {
                let c = cache.get(&fake, "hs", "mxc://s/slow").await?;
                Ok::<_, FetchError>(read(c).await)
            })
        })
        .collect();
    gate.reached.notified().await;
    // Half the file is on disk under a temporary name, and nobody is served it.
    let names = on_disk(&cache_dir);
    assert_eq!(names.len(), 1);
    assert!(names[0].ends_with(".part"), "{names:?}");
    assert_eq!(cache.total(), 0);
    let late = cache.get(&fake, "hs", "mxc://s/slow");
    tokio::pin!(late);
    assert!(futures_util::poll!(&mut late).is_pending());
    assert!(readers.iter().all(|r| !r.is_finished()));
    gate.open.add_permits(1);
    for r in readers {
        assert_eq!(r.await.unwrap().unwrap(), b"first second");
    }
    assert_eq!(read(late.await.unwrap()).await, b"first second");
    assert_eq!(fake.downloads(), 1);
    let names = on_disk(&cache_dir);
    assert_eq!(names.len(), 1);
    assert!(!names[0].ends_with(".part"), "{names:?}");
}

#[tokio::test]
async fn a_download_that_fails_midway_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("c");
    let cache = MediaCache::new(cache_dir.clone(), limits(100, 50));
    let fake = Fake::default();
    let gate = Arc::new(Gate::default());
    fake.put(
        "mxc://s/cut",
        FakeFile {
            chunks: vec![Bytes::from_static(b"first ")],
            gate: Some(gate.clone()),
            fail: true,
        },
    );
    let (c2, f2) = (cache.clone(), fake.clone());
    let reader = tokio::spawn(async move { c2.get(&f2, "hs", "mxc://s/cut").await.map(|_| ()) });
    gate.reached.notified().await;
    gate.open.add_permits(1);
    assert!(matches!(reader.await.unwrap(), Err(FetchError::Failed(_))));
    assert_eq!(on_disk(&cache_dir), Vec::<String>::new());
    // Nothing was kept: the next reader starts a new download.
    gate.open.add_permits(1);
    assert!(cache.get(&fake, "hs", "mxc://s/cut").await.is_err());
    assert_eq!(fake.downloads(), 2);
}

#[tokio::test]
async fn downloads_past_the_limit_wait_a_bounded_time_then_are_busy() {
    let dir = tempfile::tempdir().unwrap();
    let cache = MediaCache::new(
        dir.path().join("c"),
        CacheLimits {
            capacity: 100,
            max_file: 50,
            downloads: 1,
            queue: 1,
            slot_wait: Duration::from_millis(50),
        },
    );
    let fake = Fake::default();
    let gate = Arc::new(Gate::default());
    fake.put(
        "mxc://s/slow",
        FakeFile {
            chunks: vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
            gate: Some(gate.clone()),
            fail: false,
        },
    );
    fake.put("mxc://s/x", plain(b"x"));
    fake.put("mxc://s/y", plain(b"y"));
    let (c2, f2) = (cache.clone(), fake.clone());
    let slow = tokio::spawn(async move { c2.get(&f2, "hs", "mxc://s/slow").await.map(|_| ()) });
    gate.reached.notified().await;
    // x waits for the one slot and gives up; while it waits the queue is full, so y is
    // refused at once.
    let x = cache.get(&fake, "hs", "mxc://s/x");
    tokio::pin!(x);
    assert!(futures_util::poll!(&mut x).is_pending());
    assert_eq!(
        cache.get(&fake, "hs", "mxc://s/y").await.unwrap_err(),
        FetchError::Busy
    );
    assert_eq!(x.await.unwrap_err(), FetchError::Busy);
    gate.open.add_permits(1);
    slow.await.unwrap().unwrap();
    assert_eq!(fake.downloads(), 1);
    // With the slot free again, x is fetched.
    assert_eq!(
        read(cache.get(&fake, "hs", "mxc://s/x").await.unwrap()).await,
        b"x"
    );
}

#[tokio::test]
async fn what_a_previous_run_left_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("c");
    std::fs::create_dir_all(&cache_dir).unwrap();
    std::fs::write(cache_dir.join("1.part"), b"half").unwrap();
    std::fs::write(
        cache_dir.join(format!("{}-1", key_of("hs", "mxc://s/a"))),
        b"old",
    )
    .unwrap();
    let cache = MediaCache::new(cache_dir.clone(), limits(100, 50));
    assert_eq!(on_disk(&cache_dir), Vec::<String>::new());
    let fake = Fake::default();
    fake.put("mxc://s/a", plain(b"new"));
    assert_eq!(
        read(cache.get(&fake, "hs", "mxc://s/a").await.unwrap()).await,
        b"new"
    );
}
