//! `[meetings.mail]` against a real SMTP server (aiosmtpd with AUTH): the minutes of a
//! meeting that ends arrive as a mail, over STARTTLS and over smtps; a server that is down at
//! `#endmeeting` gets the mail once after it is back, across a restart of the bot; a wrong
//! password is logged and retried.

use std::time::Duration;

use crate::support::bot::Bot;
use crate::support::smtp::{SMTP_PASSWORD, SMTP_USER, SmtpServer};
use crate::support::{BotConfig, free_port, temp_dir, wait_until};

const T: Duration = Duration::from_secs(30);
/// Past the first retries' backoff (5 s, then 10 s).
const RETRY: Duration = Duration::from_secs(60);

fn config(server: &SmtpServer, password: &str) -> String {
    BotConfig::new()
        .console()
        .web(free_port())
        .meetings(&["console/#local"])
        .raw(&format!(
            "[meetings.mail]\n\
             to = [\"SIG list <sig@lists.example.org>\"]\n\
             from = \"sigbot <sigbot@example.org>\"\n\
             smtp = \"{}\"\n\
             user = \"{SMTP_USER}\"\n\
             password = \"{password}\"\n\
             ca_file = \"{}\"\n",
            server.url(),
            server.tls.ca_cert.display()
        ))
        .build()
}

async fn hold_meeting(bot: &mut Bot) {
    bot.say("#startmeeting Budget review").await;
    bot.wait_stdout(T, "Meeting started").await;
    bot.say("#info zebras are striped").await;
    bot.say("#endmeeting").await;
    bot.wait_stdout(T, "Meeting ended").await;
}

async fn one_mail(server: &SmtpServer, within: Duration) -> String {
    wait_until("the minutes by mail", within, || async {
        server.received().into_iter().next()
    })
    .await
}

#[tokio::test]
async fn the_minutes_arrive_by_mail_over_starttls_with_auth() {
    let mut server = SmtpServer::new();
    server.start().await;
    let dir = temp_dir("mail");
    let mut bot = Bot::start(dir.path(), &config(&server, SMTP_PASSWORD));
    hold_meeting(&mut bot).await;
    let mail = one_mail(&server, T).await;
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert!(
        mail.contains(&format!("Subject: Minutes: Budget review ({today})")),
        "{mail}"
    );
    assert!(mail.contains("Message-ID: <budget_review."), "{mail}");
    assert!(mail.contains("\nDate: "), "{mail}");
    assert!(mail.contains("Content-Type: text/plain"), "{mail}");
    assert!(
        mail.contains("To: \"SIG list\" <sig@lists.example.org>")
            || mail.contains("To: SIG list <sig@lists.example.org>"),
        "{mail}"
    );
    assert!(mail.contains("multipart/alternative"), "{mail}");
    assert!(mail.contains("text/html"), "{mail}");
    assert!(mail.contains("zebras are striped"), "{mail}");
    assert!(mail.contains("Meeting summary"), "{mail}");
    assert!(mail.contains(".log.html"), "{mail}");
    bot.wait_log(T, "meeting minutes mailed").await;
    assert_eq!(server.received().len(), 1);
    // The mail as the server received it, for a person to read.
    let kept = crate::support::artifact_path("minutes-mail.eml");
    std::fs::write(&kept, &mail).unwrap();
    eprintln!("the mail as received: {}", kept.display());
}

#[tokio::test]
async fn a_mail_for_a_server_that_is_down_arrives_once_after_a_restart() {
    let mut server = SmtpServer::new();
    let dir = temp_dir("mail-down");
    let mut bot = Bot::start(dir.path(), &config(&server, SMTP_PASSWORD));
    hold_meeting(&mut bot).await;
    // The meeting ended all the same; the mail waits.
    bot.wait_log(T, "meeting minutes not mailed; will retry")
        .await;
    bot.kill().await;
    server.start().await;
    bot.restart();
    let mail = one_mail(&server, RETRY).await;
    assert!(mail.contains("Minutes: Budget review"), "{mail}");
    bot.wait_log(RETRY, "meeting minutes mailed").await;
    // Marked sent: a later restart sends nothing more.
    bot.terminate(T).await;
    bot.restart();
    bot.say("#startmeeting Second").await;
    bot.wait_stdout(T, "Meeting started").await;
    bot.say("#endmeeting").await;
    bot.wait_stdout(T, "Meeting ended").await;
    bot.wait_log(RETRY, "meeting minutes mailed").await;
    let all = server.received();
    assert_eq!(all.len(), 2, "one mail per meeting");
    assert_eq!(
        all.iter().filter(|m| m.contains("Budget review")).count(),
        1,
        "the first meeting's mail arrived once"
    );
}

#[tokio::test]
async fn a_wrong_password_is_logged_and_retried() {
    let mut server = SmtpServer::new();
    server.start().await;
    let dir = temp_dir("mail-auth");
    let mut bot = Bot::start(dir.path(), &config(&server, "wrong"));
    hold_meeting(&mut bot).await;
    let line = bot
        .wait_log(T, "meeting minutes not mailed; will retry")
        .await;
    assert!(line.contains("535"), "{line}");
    assert!(line.contains("attempts=1"), "{line}");
    assert!(
        line.contains("check [meetings.mail] user and password"),
        "{line}"
    );
    let again = bot
        .wait_log(RETRY, "meeting minutes not mailed; will retry")
        .await;
    assert!(again.contains("attempts=2"), "{again}");
    assert!(server.received().is_empty());
    // The bot goes on answering.
    bot.say("!ping").await;
    bot.wait_stdout(T, "pong").await;
}

#[tokio::test]
async fn the_minutes_arrive_over_implicit_tls_too() {
    let mut server = SmtpServer::implicit_tls();
    server.start().await;
    let dir = temp_dir("mail-smtps");
    let mut bot = Bot::start(dir.path(), &config(&server, SMTP_PASSWORD));
    hold_meeting(&mut bot).await;
    let mail = one_mail(&server, T).await;
    assert!(mail.contains("Subject: Minutes: Budget review ("), "{mail}");
    bot.wait_log(T, "meeting minutes mailed").await;
}
