//! Package-update alerts (`[[watch]]`) end to end: the real binary compares two RPM
//! repositories served by a local HTTP server in the real `repomd.xml`/`primary.xml.gz`
//! shapes, posts one alert into its console room, does not post it again after a restart, and
//! posts the next upstream version when an MQTT event on the watch's `on` filter arrives.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest as _, Sha256};

use crate::support::bot::Bot;
use crate::support::{
    BotConfig, MosquittoOptions, MosquittoServer, MqttClient, Section, free_port, temp_dir,
};

const T: Duration = Duration::from_secs(30);
const FIXTURE_REPO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/lookups/repodata/libdnf_modules_all_x86_64"
);

/// The fixture's primary metadata, decompressed.
fn fixture_primary() -> String {
    let dir = Path::new(FIXTURE_REPO).join("repodata");
    let gz = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-primary.xml.gz"))
        .expect("fixture primary");
    let mut xml = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(gz).unwrap())
        .read_to_string(&mut xml)
        .unwrap();
    xml
}

/// The fixture's packages plus `extra` builds of httpd (version, release), with the package
/// count in `<metadata packages=…>` kept right.
fn primary_with(extra: &[(&str, &str)]) -> String {
    let xml = fixture_primary();
    let count: usize = xml
        .split("packages=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|n| n.parse().ok())
        .expect("packages count");
    let mut added = String::new();
    for (ver, rel) in extra {
        added.push_str(&format!(
            r#"<package type="rpm">
  <name>httpd</name>
  <arch>x86_64</arch>
  <version epoch="0" ver="{ver}" rel="{rel}"/>
  <checksum type="sha256" pkgid="YES">{sum:x}</checksum>
  <summary>Apache HTTP Server</summary>
  <location href="httpd-{ver}-{rel}.x86_64.rpm"/>
</package>
"#,
            sum = Sha256::digest(format!("{ver}-{rel}"))
        ));
    }
    xml.replacen(
        &format!("packages=\"{count}\""),
        &format!("packages=\"{}\"", count + extra.len()),
        1,
    )
    .replacen("</metadata>", &format!("{added}</metadata>"), 1)
}

/// Writes `dir/repodata/` for `primary`: the gzipped primary named by its checksum, and a
/// `repomd.xml` with its checksums, sizes and a new revision. repomd.xml is written last
/// (renamed into place), as createrepo does, so a reader never sees it name a missing file.
fn publish_repo(dir: &Path, primary: &str, revision: u64) {
    let repodata = dir.join("repodata");
    std::fs::create_dir_all(&repodata).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(primary.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let sum = format!("{:x}", Sha256::digest(&gz));
    let open_sum = format!("{:x}", Sha256::digest(primary.as_bytes()));
    let href = format!("repodata/{sum}-primary.xml.gz");
    std::fs::write(dir.join(&href), &gz).unwrap();
    let repomd = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>{revision}</revision>
  <data type="primary">
    <checksum type="sha256">{sum}</checksum>
    <open-checksum type="sha256">{open_sum}</open-checksum>
    <location href="{href}"/>
    <timestamp>{revision}</timestamp>
    <size>{size}</size>
    <open-size>{open_size}</open-size>
  </data>
</repomd>
"#,
        size = gz.len(),
        open_size = primary.len(),
    );
    let tmp = repodata.join("repomd.xml.tmp");
    std::fs::write(&tmp, repomd).unwrap();
    std::fs::rename(tmp, repodata.join("repomd.xml")).unwrap();
}

async fn repo_file(
    State(root): State<PathBuf>,
    UrlPath((name, file)): UrlPath<(String, String)>,
) -> Response {
    if name.contains("..") || file.contains("..") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    match std::fs::read(root.join(name).join("repodata").join(file)) {
        Ok(b) => b.into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Serves `root/<name>/repodata/<file>` on a free loopback port, read at each request.
async fn serve_repos(root: PathBuf) -> SocketAddr {
    let app = Router::new()
        .route("/{name}/repodata/{file}", get(repo_file))
        .with_state(root);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn a_newer_upstream_is_announced_once_across_a_restart_and_the_next_on_an_mqtt_event() {
    let mosquitto = MosquittoServer::start(MosquittoOptions::default()).await;
    let dir = temp_dir("watch");
    let repos = dir.path().join("repos");
    // Ours is the fixture (httpd 2.4.25-8); upstream has httpd 2.4.62-1 besides.
    publish_repo(&repos.join("ours"), &primary_with(&[]), 1);
    publish_repo(
        &repos.join("upstream"),
        &primary_with(&[("2.4.62", "1")]),
        1,
    );
    let addr = serve_repos(repos.clone()).await;
    let bot_dir = dir.path().join("bot");
    std::fs::create_dir_all(&bot_dir).unwrap();
    let cbs = Section::mqtt("cbs", format!("mqtt://127.0.0.1:{}", mosquitto.port()))
        .set("client_id", format!("sigbot-watch-{}", free_port()));
    let repodata = |side: &str| Section::new().set("repodata", format!("http://{addr}/{side}/"));
    let watch = Section::named("hs")
        // httpd-doc is newer on neither side; not-here is in neither repository.
        .set("packages", vec!["httpd", "httpd-doc", "not-here"])
        .set("ours", repodata("ours"))
        .set("upstream", repodata("upstream"))
        .set("to", vec!["console/#local"])
        .set("poll", "1h")
        .set("on", "cbs-signing/#");
    let config = BotConfig::new().console().mqtt(cbs).watch(watch).build();

    let mut bot = Bot::start(&bot_dir, &config);
    let alert = bot.wait_stdout(T, "is newer than ours").await;
    assert!(
        alert.contains("httpd: upstream 2.4.62-1 is newer than ours 2.4.25-8 (hs)"),
        "{alert}"
    );
    let checked = bot.wait_log(T, "watch checked").await;
    assert!(checked.contains("alerts=1"), "{checked}");
    assert_eq!(bot.terminate(T).await, Some(0));
    let rest = bot.drain_stdout(T).await;
    assert!(
        !rest.iter().any(|l| l.contains("is newer than ours")),
        "a second alert: {rest:?}"
    );

    // After a restart the same upstream version is not announced again.
    bot.restart();
    let checked = bot.wait_log(T, "watch checked").await;
    assert!(checked.contains("alerts=0"), "{checked}");
    // The subscription may have come before or after that check.
    if !bot.log().iter().any(|l| l.contains("subscribed")) {
        bot.wait_log(T, "subscribed").await;
    }

    // Upstream moves on; a signing event triggers the check long before the next poll.
    publish_repo(
        &repos.join("upstream"),
        &primary_with(&[("2.4.62", "1"), ("2.4.63", "1")]),
        2,
    );
    let mut publisher = MqttClient::connect(&mosquitto, "cbs-publisher").await;
    publisher
        .publish("cbs-signing/1", r#"{"build": "httpd-2.4.63-1"}"#)
        .await;
    let alert = bot.wait_stdout(T, "is newer than ours").await;
    assert!(
        alert.contains("httpd: upstream 2.4.63-1 is newer than ours 2.4.25-8 (hs)"),
        "the first alert after the restart is the new version's: {alert}"
    );
    let checked = bot.wait_log(T, "watch checked").await;
    assert!(
        checked.contains("alerts=1") && checked.contains("mqtt"),
        "{checked}"
    );
    assert_eq!(bot.terminate(T).await, Some(0));
    let rest = bot.drain_stdout(T).await;
    assert!(
        !rest.iter().any(|l| l.contains("is newer than ours")),
        "a second alert: {rest:?}"
    );
}

/// A watch added by SIGHUP (DESIGN §5 "Reload") starts the watcher, which announces at once;
/// one removed by the next SIGHUP stops it.
#[tokio::test]
async fn a_watch_added_by_sighup_announces_and_one_removed_stops() {
    let dir = temp_dir("watch-reload");
    let repos = dir.path().join("repos");
    publish_repo(&repos.join("ours"), &primary_with(&[]), 1);
    publish_repo(
        &repos.join("upstream"),
        &primary_with(&[("2.4.62", "1")]),
        1,
    );
    let addr = serve_repos(repos.clone()).await;
    let bot_dir = dir.path().join("bot");
    std::fs::create_dir_all(&bot_dir).unwrap();
    let repodata = |side: &str| Section::new().set("repodata", format!("http://{addr}/{side}/"));
    let watch = Section::named("hs")
        .set("packages", vec!["httpd"])
        .set("ours", repodata("ours"))
        .set("upstream", repodata("upstream"))
        .set("to", vec!["console/#local"])
        .set("poll", "1h");

    let mut bot = Bot::start(&bot_dir, &BotConfig::new().console().build());
    bot.wait_log(T, "sigbot started").await;
    bot.rewrite_config(&BotConfig::new().console().watch(watch).build());
    bot.hangup();
    let alert = bot.wait_stdout(T, "is newer than ours").await;
    assert!(
        alert.contains("httpd: upstream 2.4.62-1 is newer than ours 2.4.25-8 (hs)"),
        "{alert}"
    );
    let reloaded = bot.wait_log(T, "SIGHUP: config reloaded").await;
    assert!(reloaded.contains("watches=1"), "{reloaded}");

    bot.rewrite_config(&BotConfig::new().console().build());
    bot.hangup();
    let reloaded = bot.wait_log(T, "SIGHUP: config reloaded").await;
    assert!(reloaded.contains("watches=0"), "{reloaded}");
    assert_eq!(bot.terminate(T).await, Some(0));
    assert!(
        !bot.log()
            .iter()
            .any(|l| l.contains("task ended while the bot runs")),
        "the watcher stopped by the reload was taken for dead"
    );
}
