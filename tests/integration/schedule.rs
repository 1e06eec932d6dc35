//! `[[meetings.schedule]]` against the real servers: a reminder scheduled a few seconds ahead
//! is posted once in a real IRC channel although the bot restarts before it is due and again
//! after it was posted; `!nextmeeting` answers on IRC, the console and Matrix (Synapse),
//! where a schedule added by SIGHUP posts its reminder; the room's `calendar.ics` parses with
//! Python's `icalendar` and lists the next occurrences. Time is driven by the config (a start
//! a few seconds or minutes ahead), never by sleeping.

use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};

use crate::support::bot::Bot;
use crate::support::{
    BOT_NICK, BotConfig, IrcClass, IrcClient, IrcServer, Section, free_port, from_bot, temp_dir,
};

const T: Duration = Duration::from_secs(30);
const ZONE: chrono_tz::Tz = chrono_tz::Europe::Prague;

/// `t` as the config writes a start: local time in [`ZONE`], to the second.
fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&ZONE)
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

fn schedule(room: &str, name: &str, start: &str, extra: &str) -> String {
    format!(
        "[[meetings.schedule]]\nroom = \"{room}\"\nname = \"{name}\"\nstart = \"{start}\"\n\
         timezone = \"{}\"\n{extra}",
        ZONE.name()
    )
}

fn is_reminder(l: &crate::support::IrcLine) -> bool {
    from_bot(l) && l.command == "PRIVMSG" && l.text().starts_with("Reminder: ")
}

#[tokio::test]
async fn a_reminder_is_posted_once_on_irc_across_restarts() {
    let server = IrcServer::start(IrcClass::Unlimited).await;
    let dir = temp_dir("schedule-irc");
    // The meeting in five minutes, its reminder due twenty seconds from now: the first run
    // stops before that, the second posts it, the third (still before the meeting, so
    // that the reminder would still be due) must not post it again.
    let now = Utc::now();
    let start = now + TimeDelta::seconds(300);
    let config = BotConfig::new()
        .console()
        .web(free_port())
        .irc(Section::irc("testnet", &server).set("channels", vec!["#sig"]))
        .meetings(&["testnet/#sig"])
        .raw(&schedule(
            "testnet/#sig",
            "sig sync",
            &local(start),
            "remind = [\"280s\"]\nagenda = \"https://example.org/agenda\"\n",
        ))
        .build();
    let mut bot = Bot::start(dir.path(), &config);
    let mut alice = IrcClient::connect(&server, "alice").await;
    alice.join_and_wait_for("#sig", BOT_NICK, T * 2).await;
    bot.terminate(T).await;

    bot.restart();
    // The reminder, whichever run posted it.
    let reminder = alice.wait_for(T * 3, is_reminder).await;
    let text = reminder.text();
    let utc = start.format("%Y-%m-%d %H:%M UTC").to_string();
    let minutes = regex::Regex::new(r"^Reminder: sig sync starts in [45] minutes, ").unwrap();
    assert!(minutes.is_match(text), "{text}");
    assert!(text.contains(&utc), "{text}");
    assert!(text.contains("Europe/Prague)"), "{text}");
    assert!(
        text.ends_with("; agenda: https://example.org/agenda"),
        "{text}"
    );

    // Restarted while the reminder would still be due: the store says it was posted.
    bot.terminate(T).await;
    bot.restart();
    bot.wait_log(T, "reminders_posted=1").await;
    alice.join_and_wait_for("#sig", BOT_NICK, T * 2).await;
    alice.privmsg("#sig", "!nextmeeting").await;
    let answer = alice
        .wait_for(T, |l| {
            assert!(!is_reminder(l), "posted again after a restart: {}", l.raw);
            from_bot(l) && l.command == "PRIVMSG"
        })
        .await;
    assert!(
        answer
            .text()
            .starts_with(&format!("next meeting: sig sync in #sig, {utc} (")),
        "{}",
        answer.raw
    );
    let minutes = regex::Regex::new(r", in [1-5] minutes?; agenda: ").unwrap();
    assert!(minutes.is_match(answer.text()), "{}", answer.raw);
    // A second marker, past the bot's next ticks: still no second reminder.
    alice.privmsg("#sig", "!nextmeeting SIG SYNC").await;
    alice
        .wait_for(T, |l| {
            assert!(!is_reminder(l), "posted again: {}", l.raw);
            from_bot(l) && l.text().starts_with("next meeting: sig sync")
        })
        .await;
    alice.privmsg("#sig", "!nextmeeting board").await;
    alice
        .wait_for(T, |l| {
            from_bot(l) && l.text() == "no scheduled meeting named \"board\""
        })
        .await;
    bot.terminate(T).await;
}

/// Prints each VEVENT of the calendar read from stdin as
/// `DTSTART(UTC, ISO) | DTEND | SUMMARY | URL | UID`, in the file's order.
const READ_ICS: &str = r#"
import sys, datetime, icalendar
cal = icalendar.Calendar.from_ical(sys.stdin.buffer.read())
assert cal.name == "VCALENDAR"
for e in cal.walk("VEVENT"):
    s = e.decoded("DTSTART").astimezone(datetime.timezone.utc)
    n = e.decoded("DTEND").astimezone(datetime.timezone.utc)
    print(s.isoformat(), n.isoformat(), str(e.get("SUMMARY")), str(e.get("URL")), str(e.get("UID")), sep=" | ")
"#;

#[tokio::test]
async fn the_calendar_lists_the_next_occurrences_and_nextmeeting_answers_on_the_console() {
    let venv = crate::support::matrix::synapse_venv();
    let python = venv.join("bin/python");
    let has_icalendar = Command::new(&python)
        .args(["-c", "import icalendar"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_icalendar,
        "icalendar is missing from {}: run scripts/test once (it installs it)",
        venv.display()
    );
    let dir = temp_dir("schedule-ics");
    let port = free_port();
    // Every other Wednesday at 16:00 in Prague since January: the summer ones are at 14:00
    // UTC, the winter ones at 15:00.
    let first = NaiveDateTime::parse_from_str("2026-01-07T16:00", "%Y-%m-%dT%H:%M").unwrap();
    let config = BotConfig::new()
        .console()
        .web(port)
        .meetings(&["console/#local"])
        .raw(&schedule(
            "console/#local",
            "SIG sync",
            "2026-01-07T16:00",
            "rrule = \"FREQ=WEEKLY;INTERVAL=2\"\nduration = \"45m\"\n\
             agenda = \"https://example.org/agenda?week=1&x=y\"\n",
        ));
    let mut bot = Bot::start(dir.path(), &config.build());
    bot.wait_log(T, "meeting schedules loaded").await;

    let before = Utc::now();
    let resp = reqwest::get(format!(
        "http://127.0.0.1:{port}/meetings/local/calendar.ics"
    ))
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/calendar; charset=utf-8"
    );
    let ics = resp.text().await.unwrap();
    let mut child = std::process::Command::new(&python)
        .args(["-c", READ_ICS])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "icalendar could not read it: {}\n{ics}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    // The expected occurrences: every 14 days of local time, those not over yet.
    let expected: Vec<DateTime<Utc>> = (0..)
        .map(|k| {
            (first + TimeDelta::days(14 * k))
                .and_local_timezone(ZONE)
                .unwrap()
                .to_utc()
        })
        .filter(|t| *t + TimeDelta::minutes(45) > before)
        .take(20)
        .collect();
    assert_eq!(events.len(), 20, "{ics}");
    for (line, t) in events.iter().zip(&expected) {
        let fields: Vec<&str> = line.split(" | ").collect();
        assert_eq!(fields[0], t.to_rfc3339(), "{line}\n{ics}");
        assert_eq!(
            fields[1],
            (*t + TimeDelta::minutes(45)).to_rfc3339(),
            "{line}"
        );
        assert_eq!(fields[2], "SIG sync");
        assert_eq!(fields[3], "https://example.org/agenda?week=1&x=y");
        assert!(
            fields[4].starts_with(&t.format("%Y%m%dT%H%M%SZ-local-sig-sync@").to_string()),
            "{line}"
        );
    }

    // Other rooms and bad slugs have no calendar.
    for path in [
        "/meetings/sig/calendar.ics",
        "/meetings/LOCAL/calendar.ics",
        "/meetings/%2E%2E/calendar.ics",
    ] {
        let resp = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }

    // The console asks when the next one is.
    bot.say("!nextmeeting").await;
    let line = bot.wait_stdout(T, "next meeting:").await;
    let next = expected
        .iter()
        .find(|t| **t > Utc::now())
        .unwrap()
        .format("%Y-%m-%d %H:%M UTC")
        .to_string();
    assert!(
        line.contains(&format!("next meeting: SIG sync in #local, {next} (")),
        "{line}"
    );
    assert!(
        line.contains("; agenda: https://example.org/agenda?week=1&x=y"),
        "{line}"
    );
    bot.say("!nextmeeting nope").await;
    bot.wait_stdout(T, "no scheduled meeting named \"nope\"")
        .await;
    bot.say("!help nextmeeting").await;
    bot.wait_stdout(T, "!nextmeeting [name]: when the next scheduled meeting")
        .await;

    // SIGHUP: a schedule added to the room is answered and served at once.
    let tomorrow = local(Utc::now() + TimeDelta::days(1));
    bot.rewrite_config(
        &config
            .raw(&schedule("console/#local", "board", &tomorrow, ""))
            .build(),
    );
    bot.hangup();
    bot.wait_log(T, "SIGHUP: config reloaded").await;
    bot.say("!nextmeeting board").await;
    bot.wait_stdout(T, "next meeting: board in #local").await;
    let ics = reqwest::get(format!(
        "http://127.0.0.1:{port}/meetings/local/calendar.ics"
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert_eq!(ics.matches("SUMMARY:board").count(), 1, "{ics}");
    assert_eq!(ics.matches("SUMMARY:SIG sync").count(), 20, "{ics}");
}

/// On Matrix: a schedule added by SIGHUP once the bot is in the room, its reminder already
/// due (the meeting in five minutes, reminded ten before), is posted at once as a notice;
/// `!nextmeeting` answers there too.
#[tokio::test]
async fn a_reminder_and_nextmeeting_on_matrix() {
    use crate::support::{MatrixClient, RoomSpec, SynapseServer};

    const WAIT: Duration = Duration::from_secs(60);
    let synapse = SynapseServer::start().await;
    let bot_user = synapse.register_user("sigbot", "bot-secret-pw").await;
    let alice_user = synapse.register_user("alice", "alice-secret-pw").await;
    let mut alice: MatrixClient = synapse.client(&alice_user);
    let room = alice
        .create_room(RoomSpec {
            alias: Some("sig".into()),
            public: true,
            ..RoomSpec::default()
        })
        .await;
    let bot_id = bot_user.user_id.clone();
    let config = BotConfig::new()
        .matrix(Section::matrix("hs", &synapse, &bot_user).set("rooms", vec!["#sig:sigbot.test"]))
        .meetings(&["hs/#sig:sigbot.test"]);
    let dir = temp_dir("schedule-matrix");
    let mut bot = Bot::start(dir.path(), &config.build());
    alice
        .wait_for_event(&room, WAIT, |ev| {
            ev["type"] == "m.room.member"
                && ev["state_key"] == bot_id.as_str()
                && ev["content"]["membership"] == "join"
        })
        .await;
    let start = Utc::now() + TimeDelta::seconds(300);
    bot.rewrite_config(
        &config
            .raw(&schedule(
                "hs/#sig:sigbot.test",
                "sig sync",
                &local(start),
                "remind = [\"10m\"]\n",
            ))
            .build(),
    );
    bot.hangup();
    let said =
        |ev: &serde_json::Value| ev["type"] == "m.room.message" && ev["sender"] == bot_id.as_str();
    let reminder = alice.wait_for_event(&room, WAIT, said).await;
    let body = reminder["content"]["body"].as_str().unwrap_or_default();
    assert!(
        body.starts_with("Reminder: sig sync starts in 5 minutes, ")
            || body.starts_with("Reminder: sig sync starts in 4 minutes, "),
        "{reminder}"
    );
    assert_eq!(reminder["content"]["msgtype"], "m.notice", "{reminder}");
    alice.send_text(&room, "!nextmeeting").await;
    let answer = alice.wait_for_event(&room, WAIT, said).await;
    let body = answer["content"]["body"].as_str().unwrap_or_default();
    assert!(
        body.starts_with(&format!(
            "next meeting: sig sync in #sig:sigbot.test, {} (",
            start.format("%Y-%m-%d %H:%M UTC")
        )),
        "{answer}"
    );
    assert_eq!(bot.terminate(WAIT).await, Some(0));
}
