//! Stopping the real binary the way an operator does: Ctrl-C (SIGINT) in a terminal, or
//! SIGTERM from systemd, while its console still has stdin open.

use std::time::Duration;

use crate::support::bot::Bot;
use crate::support::{BotConfig, free_port, temp_dir};

const T: Duration = Duration::from_secs(30);

fn console_config() -> String {
    BotConfig::new().console().web(free_port()).build()
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

/// A second bot on a data directory in use stops at once and names the first one's PID; once
/// the first has stopped, the directory is free again.
#[tokio::test]
async fn a_second_instance_on_one_data_dir_is_refused() {
    let first_dir = temp_dir("lock-first");
    let second_dir = temp_dir("lock-second");
    let data = first_dir.path().join("data");
    let config = || {
        BotConfig::new()
            .bot("data_dir", data.display().to_string())
            .console()
            .web(free_port())
            .build()
    };
    let mut first = Bot::start(first_dir.path(), &config());
    first.say("!ping").await;
    assert_eq!(
        first.wait_stdout(T, "").await,
        "[console/#local] <sigbot> pong"
    );
    let pid = first.pid().expect("the first bot runs");

    let mut second = Bot::start(second_dir.path(), &config());
    assert_eq!(
        second.wait_exit(T).await,
        Some(1),
        "{}",
        second.log_tail(20)
    );
    let expected = format!("data_dir {} is used by sigbot pid {pid}", data.display());
    assert!(
        second.log().iter().any(|l| l.contains(&expected)),
        "{}",
        second.log_tail(20)
    );

    // The first bot was not disturbed, and once it stops the directory is free.
    first.say("!ping").await;
    assert_eq!(
        first.wait_stdout(T, "").await,
        "[console/#local] <sigbot> pong"
    );
    assert_eq!(first.terminate(T).await, Some(0));
    let mut third = Bot::start(second_dir.path(), &config());
    third.say("!ping").await;
    assert_eq!(
        third.wait_stdout(T, "").await,
        "[console/#local] <sigbot> pong"
    );
    assert_eq!(third.terminate(T).await, Some(0));
}
