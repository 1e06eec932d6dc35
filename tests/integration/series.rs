//! Series of meetings (issue 15, points 2 and 3) against the real InspIRCd and Chromium: the
//! second `#startmeeting` of a name in a channel tells the first's action items by person and
//! its minutes link, `#endmeeting` tells the agreed items and action items, a `#restrictlogs`
//! meeting is never recalled nor listed, the room page links the series, and the series page
//! shows its charts in a headless browser (one circle per point), of which a screenshot is
//! kept at `<target dir>/test-artifacts/series-page.png`.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::Value;

use crate::support::bot::Bot;
use crate::support::{
    BOT_NICK, BotConfig, IrcClass, IrcClient, IrcServer, LOCALHOST, Section, free_port, from_bot,
    temp_dir,
};
use crate::web::{ChromeDriver, PAGE_TIMEOUT};

const T: Duration = Duration::from_secs(60);

/// The bot's lines in `#sig`, in order, up to and including the first for which `last` holds.
async fn bot_lines_until(client: &mut IrcClient, last: impl Fn(&str) -> bool) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let line = client
            .wait_for(T, |l| from_bot(l) && l.param(0) == Some("#sig"))
            .await;
        let text = line.text().to_owned();
        let done = last(&text);
        lines.push(text);
        if done {
            return lines;
        }
    }
}

/// Says each line in `#sig` as `client`.
async fn say_all(client: &IrcClient, lines: &[&str]) {
    for l in lines {
        client.privmsg("#sig", l).await;
    }
}

/// The URL after `Minutes:` among the bot's lines at the end of a meeting.
fn minutes_url(lines: &[String]) -> String {
    lines
        .iter()
        .find_map(|l| l.strip_prefix("Minutes:"))
        .unwrap_or_else(|| panic!("no Minutes: line in {lines:#?}"))
        .trim()
        .to_owned()
}

async fn get(url: &str) -> (u16, String) {
    let resp = reqwest::get(url).await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// What the browser measured on the series page, for each chart: its circles, its title,
/// the rows of its table; and whether the page fits a phone's width.
const CHARTS_JS: &str = r#"
const out = {};
for (const f of document.querySelectorAll("figure")) {
    const svg = f.querySelector("svg");
    out[f.id] = {
        circles: svg ? svg.querySelectorAll("circle").length : -1,
        role: svg ? svg.getAttribute("role") : null,
        title: svg && svg.querySelector("title") ? svg.querySelector("title").textContent : null,
        caption: f.querySelector("figcaption").textContent,
        rows: f.querySelectorAll("table tr").length,
        legend: Array.from(f.querySelectorAll("ul.legend li")).map(li => li.textContent.trim()),
        width: svg ? svg.getBoundingClientRect().width : 0,
        height: svg ? svg.getBoundingClientRect().height : 0,
    };
}
return {
    charts: out,
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    scrollHeight: document.documentElement.scrollHeight,
    meetings: document.querySelectorAll("h2 + ul > li").length,
};
"#;

#[tokio::test]
async fn a_series_on_irc_recalls_its_last_public_meeting_and_its_page_charts_it() {
    let server = IrcServer::start(IrcClass::Unlimited).await;
    let dir = temp_dir("series-irc");
    let port = free_port();
    let site = format!("http://{LOCALHOST}:{port}");
    let config = BotConfig::new()
        .console()
        .table(
            "web",
            Section::new()
                .set("listen", format!("{LOCALHOST}:{port}"))
                .set("public_url", site.clone()),
        )
        .irc(Section::irc("testnet", &server).set("channels", vec!["#sig"]))
        .meetings(&["testnet/#sig"])
        .build();
    let mut bot = Bot::start(dir.path(), &config);
    bot.wait_log(T, "joined").await;
    let mut alice = IrcClient::connect(&server, "alice").await;
    alice.join_and_wait_for("#sig", BOT_NICK, T).await;
    let mut bob = IrcClient::connect(&server, "bob").await;
    bob.join("#sig").await;

    // The first meeting of the series: nothing to recall (the pong comes right after the
    // greeting; a recalled meeting would come before it).
    say_all(&alice, &["#startmeeting Weekly", "!ping"]).await;
    let said = bot_lines_until(&mut alice, |l| l.contains("pong")).await;
    assert!(
        !said.iter().any(|l| l.contains("Previous")),
        "a first meeting recalls nothing: {said:#?}"
    );
    bob.privmsg("#sig", "I can write the notes").await;
    say_all(
        &alice,
        &[
            "#agreed we ship on Friday",
            "#action bob writes the notes",
            "#action alice tests the build",
            "#action carol buys cake",
            "#endmeeting",
        ],
    )
    .await;
    let ended = bot_lines_until(&mut alice, |l| l.starts_with("Log:")).await;
    let first = minutes_url(&ended);
    assert!(
        first.starts_with(&format!("{site}/meetings/sig/")),
        "{first}"
    );
    println!("IRC lines at the first #endmeeting:\n{}", ended.join("\n"));
    // Four entries, three lines (the default max_lines): the last says what is left out.
    let at = ended
        .iter()
        .position(|l| l.starts_with("Meeting ended"))
        .unwrap();
    assert_eq!(
        ended[at + 1..at + 4],
        [
            "AGREED: we ship on Friday".to_owned(),
            "ACTION alice: alice tests the build".to_owned(),
            format!("…and 2 more items in the minutes: {first}"),
        ],
        "{ended:#?}"
    );
    assert!(ended[at + 4].starts_with("Minutes:"), "{ended:#?}");

    // The second: the first's action items by person and its link, within three lines.
    alice.privmsg("#sig", "#startmeeting Weekly").await;
    let started = bot_lines_until(&mut alice, |l| l.starts_with("…and")).await;
    println!(
        "IRC lines at the second #startmeeting:\n{}",
        started.join("\n")
    );
    let at = started
        .iter()
        .position(|l| l.starts_with("Previous"))
        .unwrap_or_else(|| panic!("no recall: {started:#?}"));
    assert!(
        started[at].starts_with("Previous 'weekly' meeting (")
            && started[at].ends_with(&format!(" UTC): 3 action items. Minutes: {first}")),
        "{started:#?}"
    );
    assert_eq!(
        started[at + 1..],
        [
            "ACTION alice: alice tests the build".to_owned(),
            format!("…and 2 more items in the minutes: {first}"),
        ],
        "{started:#?}"
    );
    bob.privmsg("#sig", "hello again").await;
    bob.privmsg("#sig", "the mirror is slow").await;
    say_all(&alice, &["#action bob fixes the mirror", "#endmeeting"]).await;
    let ended = bot_lines_until(&mut alice, |l| l.starts_with("Log:")).await;
    let second = minutes_url(&ended);
    assert!(
        ended.contains(&"ACTION bob: bob fixes the mirror".to_owned()),
        "{ended:#?}"
    );

    // A restricted meeting of the series is told nothing of and recalled by nobody.
    alice.privmsg("#sig", "#startmeeting Weekly").await;
    let started = bot_lines_until(&mut alice, |l| l.starts_with("ACTION")).await;
    assert!(
        started
            .iter()
            .any(|l| l.ends_with(&format!("Minutes: {second}"))),
        "{started:#?}"
    );
    say_all(
        &alice,
        &[
            "#restrictlogs",
            "#action alice keeps a secret",
            "#endmeeting",
        ],
    )
    .await;
    bot_lines_until(&mut alice, |l| l.starts_with("Log:")).await;
    say_all(&alice, &["#startmeeting Weekly"]).await;
    let started = bot_lines_until(&mut alice, |l| l.starts_with("ACTION")).await;
    let recalled = started.iter().find(|l| l.starts_with("Previous")).unwrap();
    assert!(
        recalled.ends_with(&format!("1 action item. Minutes: {second}")),
        "the restricted meeting is skipped: {started:#?}"
    );
    assert_eq!(started.last().unwrap(), "ACTION bob: bob fixes the mirror");
    alice.privmsg("#sig", "#endmeeting").await;
    let ended = bot_lines_until(&mut alice, |l| l.starts_with("Log:")).await;
    assert!(
        !ended
            .iter()
            .any(|l| l.starts_with("AGREED") || l.starts_with("ACTION")),
        "nothing agreed, no actions: nothing more said: {ended:#?}"
    );

    // The site: the room links the series; the series lists its three public meetings.
    let (status, room) = get(&format!("{site}/meetings/sig/")).await;
    assert_eq!(status, 200, "{room}");
    assert!(
        room.contains("href=\"/meetings/sig/series/weekly/\">weekly</a>")
            && room.contains("3 meetings"),
        "{room}"
    );
    let (status, page) = get(&format!("{site}/meetings/sig/series/weekly/")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("bob fixes the mirror"), "{page}");
    assert!(
        !page.contains("secret"),
        "a restricted meeting leaks: {page}"
    );
    for bad in [
        "Weekly",
        "nope",
        "we%2Fekly",
        "a%20b",
        ".weekly",
        "weekly%00",
    ] {
        let (status, _) = get(&format!("{site}/meetings/sig/series/{bad}/")).await;
        assert_eq!(status, 404, "{bad}");
    }

    // In the browser, at a phone's width.
    let mut driver = ChromeDriver::start(dir.path()).await;
    let client = driver.session().await;
    let seen: Result<(Value, Vec<u8>), String> = async {
        client
            .set_window_size(412, 900)
            .await
            .map_err(|e| format!("window size: {e}"))?;
        client
            .goto(&format!("{site}/meetings/sig/"))
            .await
            .map_err(|e| format!("open the room page: {e}"))?;
        client
            .wait()
            .at_most(PAGE_TIMEOUT)
            .for_element(Locator::Css("a.series"))
            .await
            .map_err(|e| format!("no series link on the room page: {e}"))?
            .click()
            .await
            .map_err(|e| format!("follow the series link: {e}"))?;
        client
            .wait()
            .at_most(PAGE_TIMEOUT)
            .for_element(Locator::Css("figure#chart-lines svg circle"))
            .await
            .map_err(|e| format!("no chart on the series page: {e}"))?;
        let seen = client
            .execute(CHARTS_JS, Vec::new())
            .await
            .map_err(|e| format!("measure the page: {e}"))?;
        // The whole page in one picture.
        let height = seen["scrollHeight"].as_u64().unwrap_or(900).min(8000);
        client
            .set_window_size(412, u32::try_from(height).unwrap_or(900) + 40)
            .await
            .map_err(|e| format!("window size: {e}"))?;
        let png = client
            .screenshot()
            .await
            .map_err(|e| format!("screenshot: {e}"))?;
        Ok((seen, png))
    }
    .await;
    let _ = client.close().await;
    let (seen, png) = seen.unwrap_or_else(|e| panic!("{e}\n--- bot log ---\n{}", bot.log_tail(30)));
    let shot = crate::support::artifact_path("series-page.png");
    std::fs::write(&shot, &png).unwrap();
    println!("screenshot of the series page: {}", shot.display());
    assert!(png.starts_with(b"\x89PNG"), "a PNG");

    let charts = &seen["charts"];
    // Three meetings: one point each; lines said by alice and bob: two lines of three.
    for (id, points) in [
        ("chart-attendance", 3),
        ("chart-actions", 3),
        ("chart-duration", 3),
        ("chart-lines", 6),
    ] {
        let c = &charts[id];
        assert_eq!(c["circles"], points, "{id}: {seen:#}");
        assert_eq!(c["role"], "img", "{id}: {seen:#}");
        assert_eq!(c["title"], c["caption"], "{id}: {seen:#}");
        // Header and one row per meeting: the numbers in words for screen readers.
        assert_eq!(c["rows"], 4, "{id}: {seen:#}");
        // Scaled to the phone's width, not cut.
        let w = c["width"].as_f64().unwrap();
        assert!(w > 300.0 && w <= 412.0, "{id} is {w} wide: {seen:#}");
        assert!(c["height"].as_f64().unwrap() > 100.0, "{id}: {seen:#}");
    }
    assert_eq!(
        charts["chart-lines"]["caption"],
        "Lines said per person (the 2 who said the most)"
    );
    assert_eq!(
        charts["chart-lines"]["legend"],
        serde_json::json!(["alice", "bob"]),
        "{seen:#}"
    );
    assert!(
        seen["scrollWidth"].as_f64() <= seen["innerWidth"].as_f64(),
        "no sideways scrolling on a phone: {seen:#}"
    );
    assert_eq!(seen["meetings"], 3, "{seen:#}");
    drop(driver);
    bot.terminate(T).await;
}
