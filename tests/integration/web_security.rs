//! The web site as a stranger on the internet reaches it: every answer carries headers that
//! keep a browser from running, framing or sniffing what the bot serves.

use std::time::Duration;

use crate::support::bot::Bot;
use crate::support::{BotConfig, free_port, temp_dir};

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn every_page_and_file_carries_the_security_headers() {
    let dir = temp_dir("web-headers");
    let web = free_port();
    let config = BotConfig::new()
        .console()
        .web(web)
        .meetings(&["console/#local"])
        .build();
    let mut bot = Bot::start(dir.path(), &config);
    bot.wait_log(T, "web site listening").await;
    // A meeting, so that minutes, logs and a room page exist.
    for line in ["#startmeeting headers", "#info one thing", "#endmeeting"] {
        bot.say(line).await;
    }
    bot.wait_log(T, "meeting files written").await;
    let site = format!("http://127.0.0.1:{web}");
    let index = reqwest::get(format!("{site}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let minutes = index
        .split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .find(|h| h.starts_with("/meetings/"))
        .unwrap_or_else(|| panic!("no meeting link on the index:\n{index}"))
        .to_owned();
    let pages = [
        "/".to_owned(),
        "/healthz".to_owned(),
        "/search?q=thing".to_owned(),
        minutes,
        "/paste/aaaaaaaaaaaaaaaaaaaa".to_owned(),
        "/no/such/page".to_owned(),
    ];
    for page in pages {
        let resp = reqwest::get(format!("{site}{page}")).await.unwrap();
        let h = resp.headers();
        let csp = h
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{page}: no Content-Security-Policy"))
            .to_str()
            .unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{page}: {csp}");
        assert!(!csp.contains("script-src"), "{page}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{page}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{page}");
        assert_eq!(h["x-frame-options"], "DENY", "{page}");
    }
    assert_eq!(bot.terminate(T).await, Some(0));
}

/// An imported archive is someone else's tree: a link in it that leads out of its meeting's
/// directory is never followed, whatever it points to.
#[tokio::test]
async fn an_imported_archive_never_serves_a_link_that_leaves_it() {
    let dir = temp_dir("web-archive-links");
    let day = dir.path().join("archive/fedora-meeting/2020-06-10");
    std::fs::create_dir_all(&day).unwrap();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/meetbot/fedora-meeting/2020-06-10");
    let base = "magazine.2020-06-10-12.02";
    for ext in ["log.txt", "log.html", "txt"] {
        let name = format!("{base}.{ext}");
        std::fs::copy(fixtures.join(&name), day.join(&name)).unwrap();
    }
    // The minutes page is a link to a secret outside the archive.
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "the bot's password").unwrap();
    std::os::unix::fs::symlink(&secret, day.join(format!("{base}.html"))).unwrap();

    let web = free_port();
    let config = BotConfig::new()
        .console()
        .web(web)
        .meetings(&["console/#local"])
        .build();
    import_archive(dir.path(), &config);
    let mut bot = Bot::start(dir.path(), &config);
    bot.wait_log(T, "web site listening").await;
    let page = |ext: &str| {
        format!("http://127.0.0.1:{web}/meetings/fedora-meeting/2020-06-10/{base}.{ext}")
    };
    let log = reqwest::get(page("log.txt")).await.unwrap();
    assert_eq!(log.status(), 200, "a real file of the archive is served");
    let linked = reqwest::get(page("html")).await.unwrap();
    assert_eq!(linked.status(), 404);
    assert!(!linked.text().await.unwrap().contains("password"));
    assert_eq!(bot.terminate(T).await, Some(0));
}

/// A thousand idle connections neither starve the site, nor the bot's own outgoing
/// connections (a `!bug` lookup), nor keep the bot from stopping.
#[tokio::test]
async fn idle_and_half_sent_connections_neither_block_the_site_nor_the_stop() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = temp_dir("web-idle");
    let web = free_port();
    let services = format!("http://{}", crate::commands::fake_services().await);
    let commands = dir.path().join("commands");
    crate::commands::shipped_commands(&commands, &services);
    let config = BotConfig::new()
        .console()
        .web(web)
        .commands_dir(&commands)
        .build();
    let mut bot = Bot::start(dir.path(), &config);
    bot.wait_log(T, "web site listening").await;
    let mut idle = Vec::new();
    for _ in 0..1_100 {
        idle.push(
            tokio::net::TcpStream::connect(("127.0.0.1", web))
                .await
                .expect("connect"),
        );
    }
    // One that sent half a request.
    let mut half = tokio::net::TcpStream::connect(("127.0.0.1", web))
        .await
        .unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();

    let health = reqwest::get(format!("http://127.0.0.1:{web}/healthz"))
        .await
        .expect("the site answers with 1,100 idle connections open");
    assert_eq!(health.status(), 200);
    bot.say("!ping").await;
    assert_eq!(
        bot.wait_stdout(T, "").await,
        "[console/#local] <sigbot> pong"
    );
    // A lookup opens a connection of its own to the Bugzilla-shaped server.
    bot.say("!bug 1839234").await;
    assert_eq!(
        bot.wait_stdout(T, "").await,
        "[console/#local] <sigbot> rhbz#1839234: sqlite-3.32.0 is available [MODIFIED] (Fedora/sqlite) https://bugzilla.redhat.com/show_bug.cgi?id=1839234"
    );

    // The server ends a connection that sends nothing, without being asked to.
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(T, idle[0].read(&mut byte)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "an idle connection stays open: {closed:?}"
    );

    // SIGTERM with the half-sent request still open: the bot stops within its grace.
    assert_eq!(bot.terminate(T).await, Some(0));
    drop(half);
    drop(idle);
}

/// Searches whose cost grows with every word are bounded: on a 20,000-line archive, one of
/// 800 words and one of 15,000 get a clear refusal, and the bot answers meanwhile.
#[tokio::test]
async fn huge_searches_are_refused_and_never_stall_the_bot() {
    let dir = temp_dir("web-search-bounds");
    let day = dir.path().join("archive/sig-meeting/2026-12-01");
    std::fs::create_dir_all(&day).unwrap();
    let mut log = String::from("10:00:00 <nick0> #startmeeting sig\n");
    for i in 1..20_000u32 {
        let (h, m, s) = (10 + i / 3600, (i / 60) % 60, i % 60);
        log.push_str(&format!(
            "{h:02}:{m:02}:{s:02} <nick{}> line {i} about the mirror and the build\n",
            i % 7
        ));
    }
    log.push_str("15:33:20 <nick0> #endmeeting\n");
    std::fs::write(day.join("sig.2026-12-01-10.00.log.txt"), log).unwrap();
    let web = free_port();
    let config = BotConfig::new()
        .console()
        .web(web)
        .meetings(&["console/#local"])
        .build();
    import_archive(dir.path(), &config);
    let mut bot = Bot::start(dir.path(), &config);
    bot.wait_log(T, "web site listening").await;
    // Raw HTTP: a 15,000-word query is longer than any URI an HTTP library will build.
    let search = |words: usize| {
        let q: Vec<String> = (0..words).map(|i| format!("the{i}")).collect();
        let request = format!(
            "GET /search?q={} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            q.join("+")
        );
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", web))
                .await
                .unwrap();
            // The server may answer and close before it has read everything.
            let _ = conn.write_all(request.as_bytes()).await;
            let mut answer = Vec::new();
            let _ = conn.read_to_end(&mut answer).await;
            let answer = String::from_utf8_lossy(&answer).into_owned();
            let status: u16 = answer
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no status line: {:.200}", answer));
            (status, answer)
        })
    };
    let (eight_hundred, fifteen_thousand) = (search(800), search(15_000));
    bot.say("!ping").await;
    assert_eq!(
        bot.wait_stdout(T, "").await,
        "[console/#local] <sigbot> pong"
    );
    let (status, body) = eight_hundred.await.unwrap();
    assert_eq!(status, 400, "{body:.300}");
    assert!(body.contains("at most 200 characters"), "{body:.300}");
    let (status, _) = fifteen_thousand.await.unwrap();
    assert!(
        [400, 414, 431].contains(&status),
        "a 15,000-word search is refused, not run: {status}"
    );
    // A reasonable search still finds things.
    let resp = reqwest::get(format!("http://127.0.0.1:{web}/search?q=mirror+build"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    assert!(page.contains("100 result(s)"), "{page:.400}");
    assert_eq!(bot.terminate(T).await, Some(0));
}

/// Runs `sigbot meetings import <dir>/archive` with `config`, as an operator would.
fn import_archive(dir: &std::path::Path, config: &str) {
    let config_path = dir.join("import.toml");
    std::fs::write(&config_path, config).unwrap();
    let import = std::process::Command::new(crate::support::bot::bot_binary())
        .current_dir(dir)
        .arg("--config")
        .arg(&config_path)
        .args(["meetings", "import"])
        .arg(dir.join("archive"))
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
}
