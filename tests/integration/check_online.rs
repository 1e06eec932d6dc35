//! `sigbot check-config --online` (DESIGN §4) against the harness's servers: each network is
//! tried as the bot would, one line per check, `ok` or `FAILED: reason`, exit 1 if any failed.

use std::path::Path;

use crate::support::bot::bot_binary;
use crate::support::{
    BotConfig, IrcClass, IrcServer, MatrixClient, MosquittoOptions, MosquittoServer, Section,
    SynapseServer, TlsFiles, temp_dir,
};

/// Runs `sigbot check-config --online` on `config` in `dir`: exit code and stdout, after
/// checking that no secret in `secrets` was printed.
fn check_online(dir: &Path, config: &BotConfig, secrets: &[&str]) -> (i32, String) {
    // No command files unless the test writes some: the shipped ones name real hosts.
    let commands = dir.join("commands");
    std::fs::create_dir_all(&commands).unwrap();
    let path = dir.join("sigbot.toml");
    std::fs::write(&path, config.clone().commands_dir(&commands).build()).unwrap();
    let out = std::process::Command::new(bot_binary())
        .args(["check-config", "--online", "--config"])
        .arg(&path)
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    for secret in secrets {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "a secret was printed:\n{stdout}\n{stderr}"
        );
    }
    eprintln!("check-config --online said:\n{stdout}{stderr}");
    (out.status.code().unwrap_or(-1), stdout)
}

/// The line of the check that starts with `what`.
fn line<'a>(stdout: &'a str, what: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(what))
        .unwrap_or_else(|| panic!("no line for {what:?} in:\n{stdout}"))
}

#[tokio::test]
async fn irc_checks_tls_and_sasl_as_the_bot_does() {
    let server = IrcServer::start(IrcClass::Unlimited).await;
    server.register_account("checker", "right-pw-123").await;
    let tls = server.tls_files().clone();
    let dir = temp_dir("check-online-irc");
    let trusted = |name: &str, nick: &str| {
        Section::irc_tls(name, &server)
            .set("ca_file", tls.ca_cert.display().to_string())
            .set("nick", nick)
    };
    let config = BotConfig::new()
        .irc(trusted("good", "chk-good").raw(
            "sasl = { mechanism = \"PLAIN\", user = \"checker\", password = \"right-pw-123\" }",
        ))
        .irc(trusted("wrongpw", "chk-wrong").raw(
            "sasl = { mechanism = \"PLAIN\", user = \"checker\", password = \"wrong-pw-456\" }",
        ))
        // The harness's CA is not among the system's roots.
        .irc(Section::irc_tls("unknownca", &server).set("nick", "chk-ca"))
        .irc(Section::irc("plain", &server).set("nick", "chk-plain"));
    let (code, stdout) = check_online(dir.path(), &config, &["right-pw-123", "wrong-pw-456"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        line(&stdout, "irc good ")
            .ends_with(": ok (TLS, SASL credentials accepted, registered as chk-good)"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "irc wrongpw ").contains(": FAILED: SASL credentials refused"),
        "{stdout}"
    );
    let ca = line(&stdout, "irc unknownca ");
    assert!(
        ca.contains(": FAILED: ") && ca.contains("the server's certificate is not trusted"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "irc plain ").ends_with(": ok (registered as chk-plain)"),
        "{stdout}"
    );
    // Only the four checks follow the summary, one line each.
    let checks = stdout
        .lines()
        .filter(|l| l.starts_with("irc ") && l.contains("): "))
        .count();
    assert_eq!(checks, 4, "{stdout}");
}

async fn devices(synapse: &SynapseServer, user_id: &str, token: &str) -> Vec<String> {
    let client = MatrixClient::with_token(&synapse.url(), user_id, token);
    client.device_ids().await
}

#[tokio::test]
async fn matrix_checks_the_token_or_the_password_and_leaves_no_device() {
    let synapse = SynapseServer::start().await;
    let bot = synapse.register_user("sigbot", "bot-secret-pw").await;
    let before = devices(&synapse, &bot.user_id, &bot.access_token).await;
    let dir = temp_dir("check-online-matrix");
    let config = BotConfig::new()
        .matrix(Section::matrix("pw", &synapse, &bot))
        .matrix(Section::matrix("badpw", &synapse, &bot).set("password", "not-the-pw"))
        .matrix(
            Section::matrix("token", &synapse, &bot)
                .remove("password")
                .set("access_token", bot.access_token.as_str()),
        )
        .matrix(
            Section::matrix("badtoken", &synapse, &bot)
                .remove("password")
                .set("access_token", "syt_not_a_token"),
        );
    let (code, stdout) = check_online(
        dir.path(),
        &config,
        &["bot-secret-pw", "not-the-pw", &bot.access_token],
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(
        line(&stdout, "matrix pw ")
            .ends_with(": ok (password accepted; the check's device was logged out)"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "matrix badpw ")
            .contains(": FAILED: password refused: HTTP 403: M_FORBIDDEN"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "matrix token ").ends_with(&format!(
            ": ok (access token accepted, device {})",
            bot.device_id
        )),
        "{stdout}"
    );
    assert!(
        line(&stdout, "matrix badtoken ")
            .contains(": FAILED: access token refused: HTTP 401: M_UNKNOWN_TOKEN"),
        "{stdout}"
    );
    assert_eq!(
        devices(&synapse, &bot.user_id, &bot.access_token).await,
        before,
        "the password check left a device behind"
    );
}

#[tokio::test]
async fn mqtt_checks_the_client_certificate_and_commands_their_hosts() {
    let mosquitto = MosquittoServer::start(MosquittoOptions::default()).await;
    let tls = mosquitto.tls_files().clone();
    let dir = temp_dir("check-online-mqtt");
    let other = dir.path().join("other-ca");
    std::fs::create_dir_all(&other).unwrap();
    let stranger = TlsFiles::generate(&other);
    let url = format!("mqtts://127.0.0.1:{}", mosquitto.tls_port());
    let config = BotConfig::new()
        .mqtt(
            Section::mqtt("good", url.clone())
                .set("ca_file", tls.ca_cert.display().to_string())
                .set("cert_file", tls.client_cert.display().to_string())
                .set("key_file", tls.client_key.display().to_string()),
        )
        // The broker's CA is not among the system's roots.
        .mqtt(
            Section::mqtt("unknownca", url.clone())
                .set("cert_file", tls.client_cert.display().to_string())
                .set("key_file", tls.client_key.display().to_string()),
        )
        // A client certificate from a CA the broker does not trust.
        .mqtt(
            Section::mqtt("stranger", url)
                .set("ca_file", tls.ca_cert.display().to_string())
                .set("cert_file", stranger.client_cert.display().to_string())
                .set("key_file", stranger.client_key.display().to_string()),
        )
        .mqtt(Section::mqtt(
            "plain",
            format!("mqtt://127.0.0.1:{}", mosquitto.port()),
        ));
    let commands = dir.path().join("commands");
    std::fs::create_dir_all(&commands).unwrap();
    let command = |name: &str, url: &str| {
        format!(
            "name = \"{name}\"\nsummary = \"x\"\n[[args]]\nname = \"id\"\npattern = \"[0-9]+\"\n\
             [http]\nurl = \"{url}\"\n[reply]\nsuccess = \"ok\"\n"
        )
    };
    std::fs::write(
        commands.join("here.toml"),
        command("here", "http://localhost:1/{{ args.id }}"),
    )
    .unwrap();
    std::fs::write(
        commands.join("nowhere.toml"),
        command("nowhere", "https://sigbot-check.invalid/x"),
    )
    .unwrap();
    let (code, stdout) = check_online(dir.path(), &config, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        line(&stdout, "mqtt good ").ends_with(": ok (TLS, connected with a client certificate)"),
        "{stdout}"
    );
    let ca = line(&stdout, "mqtt unknownca ");
    assert!(
        ca.contains(": FAILED: ") && ca.contains("the broker's certificate is not trusted"),
        "{stdout}"
    );
    let refused = line(&stdout, "mqtt stranger ");
    assert!(
        refused.contains(": FAILED: ")
            && refused.contains("the broker refused our TLS client certificate"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "mqtt plain ").ends_with(": ok (connected without login)"),
        "{stdout}"
    );
    assert_eq!(
        line(&stdout, "command here "),
        "command here (localhost): ok"
    );
    assert!(
        line(&stdout, "command nowhere ").starts_with(
            "command nowhere (sigbot-check.invalid): FAILED: sigbot-check.invalid does not resolve"
        ),
        "{stdout}"
    );
}
