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
