//! Stopping the real binary the way an operator does: Ctrl-C (SIGINT) in a terminal, or
//! SIGTERM from systemd, while its console still has stdin open.

use std::time::Duration;

use crate::support::bot::Bot;
use crate::support::{free_port, temp_dir};

const T: Duration = Duration::from_secs(30);

fn console_config() -> String {
    format!(
        r#"
[bot]
nick = "sigbot"
data_dir = "data"

[console]

[web]
listen = "127.0.0.1:{}"
"#,
        free_port()
    )
}

async fn stops_on(signal: &str) {
    let dir = temp_dir(&format!("stop-{}", signal.to_lowercase()));
    let mut bot = Bot::start(dir.path(), &console_config());
    bot.say("!ping").await;
    assert_eq!(
        bot.wait_stdout(T, "").await,
        "[console/#local] <sigbot> pong"
    );
    let code = bot.signal_with_stdin_open(signal, T).await;
    assert_eq!(
        code,
        Some(0),
        "SIGINT/SIGTERM with stdin open must end the process\n{}",
        bot.log_tail(20)
    );
    assert!(
        bot.log().iter().any(|l| l.contains("sigbot stopped")),
        "{}",
        bot.log_tail(20)
    );
}

#[tokio::test]
async fn sigint_with_stdin_open_exits() {
    stops_on("INT").await;
}

#[tokio::test]
async fn sigterm_with_stdin_open_exits() {
    stops_on("TERM").await;
}
