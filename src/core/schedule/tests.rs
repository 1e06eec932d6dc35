use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeZone as _, Utc};

use super::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn local(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").unwrap()
}

fn room() -> RoomRef {
    RoomRef::new("libera", "#meeting")
}

fn schedule(start: &str, rrule: Option<&str>, remind: &[u64]) -> Schedule {
    Schedule::new(
        room(),
        "sig-sync".into(),
        local(start),
        chrono_tz::Europe::Prague,
        rrule,
        Duration::from_secs(3600),
        Some("https://example.org/agenda".into()),
        remind.iter().map(|s| Duration::from_secs(*s)).collect(),
    )
    .unwrap()
}

/// The texts of the `Send`s and the keys recorded, in order.
fn said(actions: &[Action]) -> (Vec<String>, Vec<ReminderKey>) {
    let mut texts = Vec::new();
    let mut keys = Vec::new();
    for a in actions {
        match a {
            Action::Send { text, room: r, .. } => {
                assert_eq!(r, &room());
                texts.push(text.clone());
            }
            Action::ReminderPosted(k) => keys.push(k.clone()),
            other => panic!("unexpected {other:?}"),
        }
    }
    (texts, keys)
}

#[test]
fn weekly_occurrences_follow_the_zone_across_daylight_saving() {
    // 16:00 in Prague: 15:00 UTC in winter, 14:00 UTC in summer.
    let s = schedule("2026-03-18T16:00", Some("FREQ=WEEKLY;INTERVAL=2"), &[]);
    let got = s.occurrences_after(utc("2026-03-01T00:00:00Z"), 3);
    assert_eq!(
        got,
        vec![
            utc("2026-03-18T15:00:00Z"),
            utc("2026-04-01T14:00:00Z"),
            utc("2026-04-15T14:00:00Z"),
        ]
    );
    // After a time: that time's occurrence is excluded.
    assert_eq!(
        s.occurrences_after(utc("2026-04-01T14:00:00Z"), 1),
        vec![utc("2026-04-15T14:00:00Z")]
    );
    assert_eq!(
        s.when(utc("2026-04-01T14:00:00Z")),
        "2026-04-01 14:00 UTC (16:00 Europe/Prague)"
    );
}

#[test]
fn expansion_is_bounded_by_count_and_a_year() {
    let s = schedule("2026-01-01T10:00", Some("RRULE:FREQ=DAILY"), &[]);
    assert_eq!(s.occurrences_after(utc("2026-01-01T00:00:00Z"), 5).len(), 5);
    let all = s.occurrences_after(utc("2026-01-01T00:00:00Z"), 10_000);
    assert_eq!(all.len(), 366, "a year ahead at most");
    let once = schedule("2026-01-01T10:00", None, &[]);
    assert_eq!(
        once.occurrences_after(utc("2025-12-01T00:00:00Z"), 5),
        vec![utc("2026-01-01T09:00:00Z")]
    );
    assert!(
        once.occurrences_after(utc("2026-01-01T09:00:00Z"), 5)
            .is_empty()
    );
    let counted = schedule("2026-01-01T10:00", Some("FREQ=WEEKLY;COUNT=2"), &[]);
    assert_eq!(
        counted
            .occurrences_after(utc("2025-12-31T00:00:00Z"), 10)
            .len(),
        2
    );
}

#[test]
fn bad_schedules_are_refused_with_a_reason() {
    let make = |start: &str, rrule: Option<&str>| {
        Schedule::new(
            room(),
            "x".into(),
            local(start),
            chrono_tz::Europe::Prague,
            rrule,
            Duration::from_secs(60),
            None,
            Vec::new(),
        )
    };
    // 02:30 on the last Sunday of March does not exist in Prague.
    let gap = make("2026-03-29T02:30", None).unwrap_err();
    assert!(
        gap.to_string().contains("does not exist in Europe/Prague"),
        "{gap}"
    );
    // 02:30 on the last Sunday of October happens twice: the first one.
    let twice = make("2026-10-25T02:30", None).unwrap();
    assert_eq!(twice.first, utc("2026-10-25T00:30:00Z"));
    for (rule, want) in [
        ("FREQ=FORTNIGHTLY", "bad rrule"),
        ("FREQ=WEEKLY;INTERVAL=x", "bad rrule"),
        ("FREQ=HOURLY;BYMINUTE=0", "too frequent"),
        ("FREQ=MINUTELY;BYSECOND=0", "too frequent"),
        (
            "DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY",
            "give only the rule",
        ),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "no occurrence"),
    ] {
        let e = make("2026-01-05T10:00", Some(rule))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{rule}: {e}");
    }
}

#[test]
fn a_recurrence_that_falls_in_the_gap_moves_past_it() {
    // Sundays at 02:30: on the day the clocks go forward it is 03:30 summer time.
    let s = schedule("2026-03-22T02:30", Some("FREQ=WEEKLY"), &[]);
    let got = s.occurrences_after(utc("2026-03-28T00:00:00Z"), 1);
    assert_eq!(got, vec![utc("2026-03-29T01:30:00Z")]);
}

#[test]
fn a_reminder_is_posted_once_at_its_time() {
    // Once, 2026-12-09 16:00 Prague = 15:00 UTC; reminders a day and 15 minutes before.
    let s = schedule("2026-12-09T16:00", None, &[900, 86_400]);
    let mut all = Schedules::new(vec![s], []);
    assert!(all.tick(utc("2026-12-08T14:59:59Z")).is_empty());
    let (texts, keys) = said(&all.tick(utc("2026-12-08T15:00:00Z")));
    assert_eq!(
        texts,
        vec![
            "Reminder: sig-sync starts in 1 day, 2026-12-09 15:00 UTC (16:00 Europe/Prague); \
             agenda: https://example.org/agenda"
        ]
    );
    assert_eq!(
        keys,
        vec![ReminderKey {
            schedule: "libera/#meeting sig-sync".into(),
            occurrence: utc("2026-12-09T15:00:00Z"),
            offset_secs: 86_400,
        }]
    );
    assert!(all.tick(utc("2026-12-08T15:00:01Z")).is_empty());
    assert!(all.tick(utc("2026-12-09T14:44:59Z")).is_empty());
    let (texts, keys) = said(&all.tick(utc("2026-12-09T14:45:00Z")));
    assert_eq!(keys.len(), 1);
    assert!(texts[0].contains("starts in 15 minutes"), "{texts:?}");
    for s in 1..200 {
        assert!(
            all.tick(utc("2026-12-09T14:45:00Z") + TimeDelta::seconds(s))
                .is_empty()
        );
    }
}

#[test]
fn reminders_posted_by_an_earlier_run_are_not_posted_again() {
    let s = schedule("2026-12-09T16:00", None, &[900]);
    let key = ReminderKey {
        schedule: s.id(),
        occurrence: utc("2026-12-09T15:00:00Z"),
        offset_secs: 900,
    };
    let mut all = Schedules::new(vec![s], [key]);
    for s in 0..120 {
        assert!(
            all.tick(utc("2026-12-09T14:45:00Z") + TimeDelta::seconds(s))
                .is_empty()
        );
    }
}

#[test]
fn reminders_missed_while_down_become_one_late_reminder_before_the_start() {
    let s = schedule("2026-12-09T16:00", None, &[86_400, 900]);
    let mut all = Schedules::new(vec![s.clone()], []);
    // Back up ten minutes before the start: one reminder, both offsets recorded.
    let (texts, keys) = said(&all.tick(utc("2026-12-09T14:50:00Z")));
    assert_eq!(texts.len(), 1);
    assert!(texts[0].contains("starts in 10 minutes"), "{texts:?}");
    assert_eq!(
        keys.iter().map(|k| k.offset_secs).collect::<Vec<_>>(),
        vec![86_400, 900]
    );
    // Back up after the start: nothing, the meeting is on.
    let mut all = Schedules::new(vec![s], []);
    assert!(all.tick(utc("2026-12-09T15:00:00Z")).is_empty());
    assert!(all.tick(utc("2026-12-09T16:00:00Z")).is_empty());
}

#[test]
fn a_reminder_at_the_start_is_posted_up_to_a_minute_late() {
    let s = schedule("2026-12-09T16:00", None, &[0]);
    let mut all = Schedules::new(vec![s.clone()], []);
    let (texts, _) = said(&all.tick(utc("2026-12-09T15:00:59Z")));
    assert!(texts[0].contains("sig-sync starts now"), "{texts:?}");
    let mut all = Schedules::new(vec![s], []);
    assert!(all.tick(utc("2026-12-09T15:01:00Z")).is_empty());
}

#[test]
fn each_occurrence_of_a_recurring_meeting_gets_its_reminder() {
    let s = schedule("2026-12-01T16:00", Some("FREQ=DAILY"), &[600]);
    let mut all = Schedules::new(vec![s], []);
    let mut posted = Vec::new();
    // Five days, a tick a minute (the refresh is hourly).
    let mut t = utc("2026-12-01T00:00:00Z");
    while t < utc("2026-12-06T00:00:00Z") {
        let (texts, keys) = said(&all.tick(t));
        assert_eq!(texts.len(), keys.len());
        posted.extend(keys.into_iter().map(|k| k.occurrence));
        t += TimeDelta::minutes(1);
    }
    let want: Vec<_> = (1..=5)
        .map(|d| Utc.with_ymd_and_hms(2026, 12, d, 15, 0, 0).unwrap())
        .collect();
    assert_eq!(posted, want);
}

#[test]
fn next_meeting_answers_for_the_room_then_for_all() {
    let a = schedule("2026-12-09T16:00", Some("FREQ=WEEKLY"), &[]);
    let mut b = Schedule::new(
        RoomRef::new("libera", "#other"),
        "board".into(),
        local("2026-12-08T09:00"),
        chrono_tz::America::New_York,
        None,
        Duration::from_secs(1800),
        None,
        Vec::new(),
    )
    .unwrap();
    b.agenda = None;
    let all = Schedules::new(vec![a, b], []);
    let now = utc("2026-12-09T14:45:00Z");
    assert_eq!(
        all.next_answer(&[room()], "", now),
        "next meeting: sig-sync in #meeting, 2026-12-09 15:00 UTC (16:00 Europe/Prague), \
         in 15 minutes; agenda: https://example.org/agenda"
    );
    // From a room without schedules: every room's; the board meeting is past.
    let elsewhere = [RoomRef::new("libera", "#random")];
    assert!(
        all.next_answer(&elsewhere, "", now)
            .starts_with("next meeting: sig-sync")
    );
    assert_eq!(
        all.next_answer(&elsewhere, "BOARD", now),
        "board: no further meeting is scheduled"
    );
    let early = utc("2026-12-01T00:00:00Z");
    assert_eq!(
        all.next_answer(&elsewhere, "board", early),
        "next meeting: board in #other, 2026-12-08 14:00 UTC (09:00 America/New_York), \
         in 7 days 14 hours"
    );
    assert_eq!(
        all.next_answer(&[room()], "nope\u{7}", now),
        "no scheduled meeting named \"nope\""
    );
    assert_eq!(
        Schedules::default().next_answer(&[room()], "", now),
        "no meetings are scheduled"
    );
}

#[test]
fn relative_times_read_naturally() {
    let now = utc("2026-12-09T12:00:00Z");
    let at = |s: i64| relative(now, now + TimeDelta::seconds(s));
    assert_eq!(at(0), "now");
    assert_eq!(at(-59), "now");
    assert_eq!(at(1), "in 1 second");
    assert_eq!(at(45), "in 45 seconds");
    assert_eq!(at(899), "in 15 minutes");
    assert_eq!(at(3600), "in 1 hour");
    assert_eq!(at(3600 + 120), "in 1 hour 2 minutes");
    assert_eq!(at(86_400), "in 1 day");
    assert_eq!(at(2 * 86_400 + 3 * 3600 + 60), "in 2 days 3 hours");
    assert_eq!(at(-7200), "2 hours ago");
}

#[test]
fn a_reload_keeps_the_reminders_posted() {
    let s = schedule("2026-12-09T16:00", None, &[900]);
    let mut all = Schedules::new(vec![s.clone()], []);
    assert_eq!(said(&all.tick(utc("2026-12-09T14:45:00Z"))).0.len(), 1);
    let mut renamed = s.clone();
    renamed.name = "renamed".into();
    all.replace(vec![s, renamed]);
    // The same schedule posts nothing again; the renamed one is new and its reminder due.
    let (texts, keys) = said(&all.tick(utc("2026-12-09T14:46:00Z")));
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert_eq!(keys[0].schedule, "libera/#meeting renamed");
}

#[test]
fn a_late_reminder_waits_for_the_next_one_within_a_minute() {
    // New (or back up) five seconds before the `0s` reminder: one line, at the start.
    let s = schedule("2026-12-09T16:00", None, &[86_400, 0]);
    let mut all = Schedules::new(vec![s], []);
    assert!(all.tick(utc("2026-12-09T14:59:55Z")).is_empty());
    let (texts, keys) = said(&all.tick(utc("2026-12-09T15:00:00Z")));
    assert_eq!(texts.len(), 1);
    assert!(texts[0].contains("starts now"), "{texts:?}");
    // (The day-before one is no longer due at the start: nothing more to record.)
    assert_eq!(keys.iter().map(|k| k.offset_secs).collect::<Vec<_>>(), [0]);
    // A reminder on time is never held back, even with another one a minute later.
    let s = schedule("2026-12-09T16:00", None, &[120, 60]);
    let mut all = Schedules::new(vec![s], []);
    let (texts, _) = said(&all.tick(utc("2026-12-09T14:58:00Z")));
    assert!(texts[0].contains("starts in 2 minutes"), "{texts:?}");
    let (texts, _) = said(&all.tick(utc("2026-12-09T14:59:00Z")));
    assert!(texts[0].contains("starts in 1 minute,"), "{texts:?}");
}

#[test]
fn odd_rules_are_refused_or_bounded_never_a_panic() {
    for rule in [
        "FREQ=DAILY;INTERVAL=0",
        "FREQ=DAILY;COUNT=0",
        "FREQ=DAILY;UNTIL=99991231T000000Z",
        "FREQ=DAILY;UNTIL=20000101T000000Z",
        "FREQ=DAILY;BYHOUR=25",
        "FREQ=YEARLY;BYWEEKNO=53;BYDAY=MO",
        "FREQ=MONTHLY;BYSETPOS=-366;BYDAY=MO",
        "FREQ=YEARLY;INTERVAL=65535",
        "FREQ=WEEKLY;BYDAY=XX",
        "FREQ=WEEKLY;;;",
        "",
        "RRULE:",
        "FREQ=DAILY;WKST=SU;BYDAY=1MO,-1FR;BYMONTHDAY=-31,31",
    ] {
        let made = Schedule::new(
            room(),
            "x".into(),
            local("2026-01-05T10:00"),
            chrono_tz::Europe::Prague,
            Some(rule),
            Duration::from_secs(60),
            None,
            vec![Duration::from_secs(60)],
        );
        if let Ok(s) = made {
            let got = s.occurrences_after(utc("2026-01-01T00:00:00Z"), 20);
            assert!(got.len() <= 20, "{rule}");
            let mut all = Schedules::new(vec![s], []);
            let _ = all.tick(utc("2026-06-01T00:00:00Z"));
        }
    }
}
