//! The web site as a stranger on the internet reaches it: every answer carries headers that
//! keep a browser from running, framing or sniffing what the bot serves.

use std::time::Duration;

use crate::support::bot::Bot;
use crate::support::{free_port, temp_dir};

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn every_page_and_file_carries_the_security_headers() {
    let dir = temp_dir("web-headers");
    let web = free_port();
    let config = format!(
        r##"
[bot]
nick = "sigbot"
data_dir = "data"

[console]

[web]
listen = "127.0.0.1:{web}"

[meetings]
rooms = ["console/#local"]
"##
    );
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
    let config = format!(
        r##"
[bot]
nick = "sigbot"
data_dir = "data"

[console]

[web]
listen = "127.0.0.1:{web}"

[meetings]
rooms = ["console/#local"]
"##
    );
    let config_path = dir.path().join("import.toml");
    std::fs::write(&config_path, &config).unwrap();
    let import = std::process::Command::new(crate::support::bot::bot_binary())
        .current_dir(dir.path())
        .arg("--config")
        .arg(&config_path)
        .args(["meetings", "import"])
        .arg(dir.path().join("archive"))
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
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
