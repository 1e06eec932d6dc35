//! Secrets at rest (DESIGN §5): the store, the Matrix session and the Matrix SDK's stores are
//! readable by the bot's user only, and `store_passphrase` encrypts the SDK's stores: a wrong
//! one stops the network with a clear error instead of logging in as a new device.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::bot::Bot;
use crate::support::{BotConfig, MatrixClient, Section, SynapseServer, temp_dir};

/// Long enough for a debug-build bot to log in and sync on a busy 2-core machine.
const WAIT: Duration = Duration::from_secs(90);
const NETWORK: &str = "hs";
const PASSPHRASE_VAR: &str = "SIGBOT_TEST_STORE_PASSPHRASE";
const GOOD: &str = "correct-horse-battery-staple";
const WRONG: &str = "incorrect-donkey-battery-staple";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Every directory under (and including) `dir` is 0700 and every file 0600.
fn assert_private_tree(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_private_tree(&path);
        } else {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
}

/// The device ID and access token the bot saved.
fn saved_session(data: &Path) -> (String, String) {
    let path = data.join(format!("matrix/{NETWORK}/session.json"));
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let field = |name: &str| saved["session"][name].as_str().expect(name).to_owned();
    (field("device_id"), field("access_token"))
}

async fn devices(synapse: &SynapseServer, user_id: &str, token: &str) -> Vec<String> {
    let client = MatrixClient::with_token(&synapse.url(), user_id, token);
    client.device_ids().await
}

fn assert_no_passphrase_in(what: &str, lines: &[String]) {
    for line in lines {
        assert!(
            !line.contains(GOOD) && !line.contains(WRONG),
            "a store passphrase leaked into the {what}: {line}"
        );
    }
}

#[tokio::test]
async fn stores_are_private_and_a_wrong_store_passphrase_stops_matrix_without_a_new_device() {
    let synapse = SynapseServer::start().await;
    let bot_user = synapse.register_user("sigbot", "bot-secret-pw").await;
    let dir = temp_dir("secrets-at-rest");
    let data = dir.path().join("data");
    let config = BotConfig::new()
        .matrix(
            Section::matrix(NETWORK, &synapse, &bot_user)
                .set("store_passphrase", format!("${{{PASSPHRASE_VAR}}}")),
        )
        .build();

    // First start: a new device, with its stores encrypted by the passphrase.
    let mut bot = Bot::start_with_env(dir.path(), &config, &[(PASSPHRASE_VAR, GOOD)]);
    bot.wait_log(WAIT, "first sync completed").await;
    assert_eq!(mode(&data), 0o700);
    for f in ["sigbot.db", "sigbot.db-wal", "sigbot.db-shm"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    assert_eq!(mode(&data.join("matrix")), 0o700);
    let network_dir = data.join(format!("matrix/{NETWORK}"));
    assert_private_tree(&network_dir);
    let sdk = network_dir.join("sdk");
    assert!(
        std::fs::read_dir(&sdk).unwrap().count() >= 2,
        "the SDK's stores are in sdk/"
    );
    let (device, token) = saved_session(&data);
    let devices_before = devices(&synapse, &bot_user.user_id, &token).await;
    assert!(devices_before.contains(&device), "{devices_before:?}");
    assert_eq!(bot.terminate(WAIT).await, Some(0));
    assert_no_passphrase_in("log", &bot.log());

    // Loosened behind the bot's back (an older sigbot, a careless copy): tightened at start.
    let session = network_dir.join("session.json");
    std::fs::set_permissions(&session, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(
        data.join("sigbot.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();

    // A wrong passphrase: a clear error, the network stays down, no new device.
    let mut bot = Bot::start_with_env(dir.path(), &config, &[(PASSPHRASE_VAR, WRONG)]);
    let line = bot
        .wait_log(
            WAIT,
            "Matrix store: wrong store_passphrase (or the store was made with another)",
        )
        .await;
    eprintln!("the bot said: {line}");
    assert!(line.contains("ERROR"), "{line}");
    // The driver gives up at once: no retry, no login.
    bot.wait_log(WAIT, "adapters::matrix: stopped").await;
    assert!(
        !bot.log().iter().any(|l| l.contains("retrying after delay")),
        "{}",
        bot.log().join("\n")
    );
    assert_eq!(mode(&session), 0o600);
    assert_eq!(mode(&data.join("sigbot.db")), 0o600);
    assert_eq!(bot.terminate(WAIT).await, Some(0));
    let log = bot.log();
    assert!(
        !log.iter().any(|l| l.contains("logged in as a new device")),
        "a new device: {}",
        log.join("\n")
    );
    assert_no_passphrase_in("log", &log);
    assert_eq!(saved_session(&data), (device.clone(), token.clone()));
    assert_eq!(
        devices(&synapse, &bot_user.user_id, &token).await,
        devices_before
    );

    // The right passphrase again: the same device, its stores intact.
    let mut bot = Bot::start_with_env(dir.path(), &config, &[(PASSPHRASE_VAR, GOOD)]);
    bot.wait_log(WAIT, "first sync completed").await;
    assert_eq!(saved_session(&data).0, device);
    assert_eq!(bot.terminate(WAIT).await, Some(0));
    let log = bot.log();
    assert!(
        !log.iter().any(|l| l.contains("logged in as a new device")),
        "{}",
        log.join("\n")
    );
    assert_no_passphrase_in("log", &log);
    assert_private_tree(&network_dir);
}
