//! The meetings web site in a real browser: Debian's chromium, headless,
//! driven through chromedriver by WebDriver, against the real bot with MeetBot's magazine
//! meeting imported from its archive.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::support::bot::{Bot, bot_binary};
use crate::support::{
    BotConfig, LOCALHOST, ProcessSpec, SERVER_START_TIMEOUT, Section, ServerProcess, free_port,
    port_accepts, require_program, temp_dir, wait_until,
};

/// How long one page may take to load and show what the test waits for.
pub(crate) const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

const INSTALL_CHROMIUM: &str = "the browser test needs Debian's chromium and chromium-driver: \
     run scripts/test, which installs them (apt-get install -y chromium chromium-driver)";

/// The magazine meeting's archive day, as MeetBot left it (with the stub of its renamed log).
fn magazine_day() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/meetbot/fedora-meeting/2020-06-10")
}

/// Copies the archive day into `<archive>/fedora-meeting/2020-06-10/`, the layout the importer
/// reads the room and the date from; returns `<archive>`.
fn copy_archive(into: &Path) -> PathBuf {
    let archive = into.join("archive");
    let day = archive.join("fedora-meeting/2020-06-10");
    std::fs::create_dir_all(&day).unwrap();
    for entry in std::fs::read_dir(magazine_day()).expect("the meetbot fixtures in tests/fixtures")
    {
        let from = entry.unwrap().path();
        std::fs::copy(&from, day.join(from.file_name().unwrap())).unwrap();
    }
    archive
}

/// chromedriver on a free port, driving chromium from a fresh profile; killed when dropped.
pub(crate) struct ChromeDriver {
    process: ServerProcess,
    port: u16,
    chromium: PathBuf,
    profile: PathBuf,
}

impl ChromeDriver {
    pub(crate) async fn start(dir: &Path) -> ChromeDriver {
        let chromium = require_program("chromium", INSTALL_CHROMIUM);
        let driver = require_program("chromedriver", INSTALL_CHROMIUM);
        let port = free_port();
        let process = ServerProcess::spawn(
            ProcessSpec::new("chromedriver", driver, dir)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1"),
        );
        let addr: std::net::SocketAddr =
            (LOCALHOST.parse::<std::net::IpAddr>().unwrap(), port).into();
        wait_until(
            "chromedriver to listen",
            SERVER_START_TIMEOUT,
            || async move { port_accepts(addr).await.then_some(()) },
        )
        .await;
        let profile = dir.join("chromium-profile");
        std::fs::create_dir_all(&profile).unwrap();
        ChromeDriver {
            process,
            port,
            chromium,
            profile,
        }
    }

    /// A new browser session: headless, no network of its own besides the pages it is sent
    /// to, nothing from a previous run.
    pub(crate) async fn session(&mut self) -> Client {
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=800,600".to_owned(),
            format!("--user-data-dir={}", self.profile.display()),
        ];
        let mut caps = Capabilities::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": self.chromium, "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://{LOCALHOST}:{}", self.port))
            .await
        {
            Ok(client) => client,
            Err(e) => {
                self.process.assert_running();
                panic!(
                    "no browser session from chromedriver: {e}\n{}",
                    self.process.log_tail(40)
                )
            }
        }
    }
}

/// Where the browser is and what it shows at the anchor: the line's text and where the line
/// sits in the window. The anchor is an element with that id (our logs) or MeetBot's empty
/// `<a name>` followed by the line.
const LANDED_JS: &str = r#"
const id = decodeURIComponent(location.hash.slice(1));
const el = document.getElementById(id) || document.getElementsByName(id)[0];
if (!el) { return { url: location.href, found: false }; }
let text = el.textContent;
if (!text.trim()) {
    text = "";
    for (let n = el.nextSibling; n && !(n.nodeName === "A" && n.name); n = n.nextSibling) {
        text += n.textContent;
    }
}
const top = el.getBoundingClientRect().top;
return { url: location.href, found: true, text: text.trim(), top: top, height: window.innerHeight };
"#;

/// What the browser saw, gathered before the session is closed (so a failed assertion
/// still closes the browser).
struct Visit {
    hits: Vec<(String, String)>,
    landed: Value,
}

async fn browse(client: &Client, site: &str, word: &str) -> Result<Visit, String> {
    client
        .goto(&format!("{site}/"))
        .await
        .map_err(|e| format!("open {site}/: {e}"))?;
    let field = client
        .wait()
        .at_most(PAGE_TIMEOUT)
        .for_element(Locator::Css("form[action='/search'] input[name='q']"))
        .await
        .map_err(|e| format!("no search form on the index: {e}"))?;
    field
        .send_keys(word)
        .await
        .map_err(|e| format!("type into the search field: {e}"))?;
    let button = client
        .find(Locator::Css("form[action='/search'] button[type='submit']"))
        .await
        .map_err(|e| format!("no search button: {e}"))?;
    button
        .click()
        .await
        .map_err(|e| format!("submit the search: {e}"))?;

    // The results page: every hit's label ("TOPIC line 249 <bcotton>") and link.
    client
        .wait()
        .at_most(PAGE_TIMEOUT)
        .for_element(Locator::Css("a.hit"))
        .await
        .map_err(|e| format!("no search hit for {word:?}: {e}"))?;
    let mut hits = Vec::new();
    for a in client
        .find_all(Locator::Css("a.hit"))
        .await
        .map_err(|e| format!("list the hits: {e}"))?
    {
        let label = a.text().await.map_err(|e| format!("hit label: {e}"))?;
        let href = a
            .attr("href")
            .await
            .map_err(|e| format!("hit link: {e}"))?
            .unwrap_or_default();
        hits.push((label, href));
    }

    // Follow the topic's hit by clicking it, as a reader would.
    let topic = client
        .find(Locator::XPath(
            "//a[@class='hit'][starts-with(normalize-space(.), 'TOPIC ')]",
        ))
        .await
        .map_err(|e| format!("no TOPIC hit among {hits:?}: {e}"))?;
    topic
        .click()
        .await
        .map_err(|e| format!("follow the hit: {e}"))?;
    let landed = wait_until(
        "the log page at its anchor",
        PAGE_TIMEOUT,
        move || async move {
            let seen = client.execute(LANDED_JS, Vec::new()).await.ok()?;
            (seen["found"] == true).then_some(seen)
        },
    )
    .await;
    Ok(Visit { hits, landed })
}

#[tokio::test]
async fn a_search_hit_takes_the_browser_to_the_log_line() {
    let dir = temp_dir("web-browser");
    let archive = copy_archive(dir.path());
    let port = free_port();
    let web = Section::new()
        .set("listen", format!("{LOCALHOST}:{port}"))
        .set("public_url", format!("http://{LOCALHOST}:{port}"));
    let config = BotConfig::new()
        .data_dir(&dir.path().join("data"))
        .console()
        .table("web", web)
        // The meetings site is on when meetings are.
        .meetings(&["console/#local"])
        .build();
    let config_path = dir.path().join("sigbot.toml");
    std::fs::write(&config_path, &config).unwrap();
    let import = Command::new(bot_binary())
        .arg("--config")
        .arg(&config_path)
        .args(["meetings", "import"])
        .arg(&archive)
        .output()
        .expect("run sigbot meetings import");
    assert!(
        import.status.success(),
        "sigbot meetings import: {}",
        String::from_utf8_lossy(&import.stderr)
    );
    assert!(
        String::from_utf8_lossy(&import.stdout).contains("indexed 1 meeting"),
        "{}",
        String::from_utf8_lossy(&import.stdout)
    );

    let mut bot = Bot::start(dir.path(), &config);
    let site = format!("http://{LOCALHOST}:{port}");
    let http = reqwest::Client::new();
    wait_until("the bot's web site", PAGE_TIMEOUT, || {
        let req = http.get(format!("{site}/healthz"));
        async move { req.send().await.ok().filter(|r| r.status().is_success()) }
    })
    .await;

    let mut driver = ChromeDriver::start(dir.path()).await;
    let client = driver.session().await;
    let visit = browse(&client, &site, "infographic").await;
    let _ = client.close().await;
    let visit = visit.unwrap_or_else(|e| panic!("{e}\n--- bot log ---\n{}", bot.log_tail(30)));

    // Every hit links to a line of the magazine meeting's log.
    let log_page = "/meetings/fedora-meeting/2020-06-10/magazine.2020-06-10-12.02.log.html";
    assert!(
        visit.hits.len() >= 2,
        "the word is in the minutes and the log: {:?}",
        visit.hits
    );
    for (label, href) in &visit.hits {
        assert!(
            href.starts_with(&format!("{log_page}#l-")),
            "{label}: {href}"
        );
    }
    // The topic "Infographic request" is line 249 of zodbot's log: the browser is on that
    // line's anchor, the line is there and in view.
    let landed = &visit.landed;
    assert_eq!(
        landed["url"].as_str().unwrap(),
        format!("{site}{log_page}#l-249"),
        "{landed}"
    );
    let text = landed["text"].as_str().unwrap();
    assert!(text.contains("12:55:21"), "{text}");
    assert!(text.contains("#topic Infographic request"), "{text}");
    let (top, height) = (
        landed["top"].as_f64().unwrap(),
        landed["height"].as_f64().unwrap(),
    );
    assert!(
        (0.0..height).contains(&top),
        "line 249 is scrolled into the window: top {top}, height {height}"
    );
    drop(driver);
    bot.terminate(PAGE_TIMEOUT).await;
}
