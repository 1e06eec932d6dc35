//! `/media/<id>` against a real Synapse: a file shared in a Matrix room bridged to the console
//! is fetched from the homeserver once, however many read it at the same time, and every
//! reader gets all of it. Synapse's own access log counts the downloads. The bot's resident
//! memory is reported (`MEASURE` lines) for 20 readers and for 200 readers that stop reading.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::support::bot::Bot;
use crate::support::{
    BotConfig, MatrixClient, RoomSpec, Section, SynapseServer, free_port, temp_dir, wait_until,
};

/// Long enough for a debug-build bot to log in and sync on a busy 2-core machine.
const WAIT: Duration = Duration::from_secs(60);
const ALIAS: &str = "#media:sigbot.test";
const READERS: usize = 20;
const FILE_LEN: usize = 10_000_000;
const STALLED: usize = 200;
const DOWNLOAD_PATH: &str = "/_matrix/client/v1/media/download/";

/// Bytes no compression shrinks, so that the file really is 10 MB on every hop.
fn file_bytes() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..FILE_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// The downloads Synapse has answered so far, from its access log.
fn downloads_logged(synapse: &SynapseServer) -> usize {
    std::fs::read_to_string(synapse.dir().join("synapse.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("Processed request") && l.contains(DOWNLOAD_PATH))
        .count()
}

/// The process's resident memory in KiB (`VmRSS`).
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))
        .expect("read /proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Reads `url` to the end, comparing it with `want` as it arrives; gives the headers.
async fn read_all(
    http: reqwest::Client,
    url: String,
    want: Arc<Vec<u8>>,
) -> reqwest::header::HeaderMap {
    let response = http.get(&url).send().await.expect("GET /media");
    assert_eq!(response.status(), 200, "{url}");
    let headers = response.headers().clone();
    let mut body = response.bytes_stream();
    let mut at = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("body chunk");
        assert!(
            at + chunk.len() <= want.len(),
            "more bytes than the file has"
        );
        assert!(
            chunk[..] == want[at..at + chunk.len()],
            "bytes differ at {at}"
        );
        at += chunk.len();
    }
    assert_eq!(at, want.len(), "the whole file");
    headers
}

#[tokio::test]
async fn twenty_readers_of_one_file_cause_one_download_from_synapse() {
    let synapse = SynapseServer::start().await;
    let bot_user = synapse.register_user("sigbot", "bot-secret-pw").await;
    let alice_user = synapse.register_user("alice", "alice-secret-pw").await;
    let mut alice = synapse.client(&alice_user);
    let room = alice
        .create_room(RoomSpec {
            alias: Some("media".into()),
            public: true,
            ..RoomSpec::default()
        })
        .await;
    let web = free_port();
    let config = BotConfig::new()
        .console()
        .web(web)
        .matrix(Section::matrix("hs", &synapse, &bot_user))
        .bridge(Section::bridge(
            "m",
            &[&format!("hs/{ALIAS}"), "console/#local"],
        ))
        .build();
    let dir = temp_dir("media-single-download");
    let mut bot = Bot::start(dir.path(), &config);
    let bot_id = bot_user.user_id.clone();
    alice
        .wait_for_event(&room, WAIT, |ev| {
            ev["type"] == "m.room.member"
                && ev["state_key"] == bot_id
                && ev["content"]["membership"] == "join"
        })
        .await;

    let file = Arc::new(file_bytes());
    let url = share(
        &mut bot,
        &mut alice,
        &room,
        "big.bin",
        file.as_ref().clone(),
    )
    .await;
    assert_eq!(downloads_logged(&synapse), 0);

    let pid = bot.pid().expect("bot pid");
    let idle = resident_kib(pid);
    let http = reqwest::Client::new();
    let readers: Vec<_> = (0..READERS)
        .map(|_| tokio::spawn(read_all(http.clone(), url.clone(), file.clone())))
        .collect();
    // Memory is sampled on a tick while the test waits for the readers themselves to end.
    let mut peak = idle;
    let all = futures_util::future::join_all(readers);
    tokio::pin!(all);
    let mut sample = tokio::time::interval(Duration::from_millis(10));
    let finished = loop {
        tokio::select! {
            done = &mut all => break done,
            _ = sample.tick() => peak = peak.max(resident_kib(pid)),
        }
    };
    peak = peak.max(resident_kib(pid));
    for r in finished {
        let headers = r.expect("reader");
        assert_eq!(headers["content-type"], "application/octet-stream");
        assert_eq!(headers["content-length"], FILE_LEN.to_string().as_str());
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(
            headers["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment"),
            "{:?}",
            headers["content-disposition"]
        );
    }
    let after = resident_kib(pid);
    println!(
        "MEASURE media: {READERS} readers of one {FILE_LEN}-byte file: bot VmRSS idle {idle} KiB, \
         peak {peak} KiB (+{} KiB), after {after} KiB",
        peak - idle
    );

    // Readers that take the headers and then stop reading: what each one costs the bot is
    // what the server queues for it, not the file.
    let before = resident_kib(pid);
    let stalled = stalled_readers(web, &url, STALLED).await;
    let mut stalled_peak = before;
    // A measurement window, not a wait for anything.
    for _ in 0..200 {
        stalled_peak = stalled_peak.max(resident_kib(pid));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(stalled);
    println!(
        "MEASURE media: {STALLED} stalled readers: bot VmRSS before {before} KiB, peak \
         {stalled_peak} KiB (+{} KiB)",
        stalled_peak - before
    );

    // One more reader, later: still from the cache.
    read_all(http.clone(), url.clone(), file.clone()).await;
    // Synapse writes its access line once the answer is sent; the readers were served from
    // the cached file only after that answer was complete.
    let logged = wait_until("Synapse to log the download", WAIT, || {
        let n = downloads_logged(&synapse);
        async move { (n > 0).then_some(n) }
    })
    .await;
    assert_eq!(logged, 1, "downloads from Synapse");
    // Without the cache every reader held the whole file: 20 × 10 MB, and 200 × 10 MB for
    // the stalled ones. Generous on purpose.
    assert!(
        peak - idle < 100 * 1024,
        "resident memory grew by {} KiB",
        peak - idle
    );
    assert!(
        stalled_peak - before < 200 * 1024,
        "resident memory grew by {} KiB with stalled readers",
        stalled_peak - before
    );
    let cached: Vec<_> = std::fs::read_dir(dir.path().join("data/media-cache"))
        .expect("the cache directory")
        .map(|e| e.unwrap().metadata().unwrap())
        .collect();
    assert_eq!(
        cached.iter().map(|m| m.len()).collect::<Vec<_>>(),
        vec![FILE_LEN as u64]
    );
    // Files from private rooms are kept where no one else may read them.
    use std::os::unix::fs::PermissionsExt as _;
    let cache_mode = std::fs::metadata(dir.path().join("data/media-cache"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(cache_mode & 0o777, 0o700);
    assert_eq!(cached[0].permissions().mode() & 0o777, 0o600);

    // A file over the 25 MiB cap is refused and leaves nothing in the cache.
    let big = vec![7u8; 25 * 1024 * 1024 + 1];
    let url = share(&mut bot, &mut alice, &room, "huge.bin", big).await;
    let response = http.get(&url).send().await.expect("GET /media");
    assert_eq!(response.status(), 413);
    let cached = std::fs::read_dir(dir.path().join("data/media-cache"))
        .expect("the cache directory")
        .count();
    assert_eq!(cached, 1);

    assert_eq!(bot.terminate(WAIT).await, Some(0));
}

/// `n` connections that ask for `url`, read the first bytes of the answer and then nothing.
async fn stalled_readers(web: u16, url: &str, n: usize) -> Vec<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_, path) = url
        .split_once(&format!("127.0.0.1:{web}"))
        .expect("a URL of the bot's site");
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", web))
            .await
            .expect("connect to the web site");
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await
            .expect("send the request");
        let mut first = [0u8; 1024];
        let got = s.read(&mut first).await.expect("the answer's start");
        assert!(
            first[..got].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&first[..got])
        );
        held.push(s);
    }
    held
}

/// Uploads `bytes` as alice and shares them in `room` as the file `name`; gives the link the
/// bot announces on the console.
async fn share(
    bot: &mut Bot,
    alice: &mut MatrixClient,
    room: &str,
    name: &str,
    bytes: Vec<u8>,
) -> String {
    let len = bytes.len();
    let upload: Value = alice
        .request(
            reqwest::Method::POST,
            &format!("/_matrix/media/v3/upload?filename={name}"),
        )
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("upload reply");
    let mxc = upload["content_uri"].as_str().expect("content_uri");
    alice
        .send_message(
            room,
            json!({
                "msgtype": "m.file",
                "body": name,
                "url": mxc,
                "info": {"mimetype": "application/octet-stream", "size": len},
            }),
        )
        .await;
    let line = bot.wait_stdout(WAIT, &format!("sent {name}")).await;
    let (base, id) = line
        .split_once("/media/")
        .unwrap_or_else(|| panic!("no link in {line:?}"));
    let port = base.rsplit(':').next().expect("the web port");
    format!("http://127.0.0.1:{port}/media/{}", id.trim())
}
