//! A room's meeting schedule as iCalendar (DESIGN §7 "Schedules"):
//! `/meetings/<room-slug>/calendar.ics`, one event per coming occurrence of each of the
//! room's `[[meetings.schedule]]` entries, in UTC, so that people can subscribe to it.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, TimeDelta, Utc};
use icalendar::{Calendar, Component as _, Event, EventLike as _};

use crate::core::meeting::room_slug;
use crate::core::schedule::{CALENDAR_OCCURRENCES, Schedule};
use crate::store::Store;

/// The schedules in force, shared with the config reloads (DESIGN §5 Reload).
pub type Shared = Arc<std::sync::RwLock<Arc<Vec<Schedule>>>>;

/// `public_url` names the site in the events' UIDs.
pub fn routes(store: Store, schedules: Shared, public_url: String) -> Router {
    Router::new().route(
        "/meetings/{room}/calendar.ics",
        get(move |Path(room): Path<String>| {
            let now = schedules.read().unwrap_or_else(|p| p.into_inner()).clone();
            calendar(store.clone(), now, public_url.clone(), room)
        }),
    )
}

/// Only `[a-z0-9._-]` can be a room slug (DESIGN §7 Files).
fn plausible_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= 200
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

async fn calendar(
    store: Store,
    schedules: Arc<Vec<Schedule>>,
    public_url: String,
    slug: String,
) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "no schedule for this room\n").into_response();
    if !plausible_slug(&slug) || schedules.is_empty() {
        return not_found();
    }
    // On the blocking pool: the store, and reading the rules, which is work too.
    let found = tokio::task::spawn_blocking(move || {
        // A room's slug is the directory its meetings have, else the one its first would get.
        let mut rooms: Vec<(crate::core::RoomRef, String)> = Vec::new();
        for s in schedules.iter() {
            if rooms.iter().all(|(r, _)| *r != s.room) {
                let slug = store
                    .room_slug_of(&s.room)?
                    .unwrap_or_else(|| room_slug(&s.room));
                rooms.push((s.room.clone(), slug));
            }
        }
        let here: Vec<&Schedule> = schedules
            .iter()
            .filter(|s| rooms.iter().any(|(r, w)| *r == s.room && *w == slug))
            .collect();
        Ok::<_, crate::store::StoreError>(
            (!here.is_empty()).then(|| render(&slug, &here, &public_url, Utc::now())),
        )
    })
    .await;
    match found {
        Ok(Ok(Some(body))) => (
            [(header::CONTENT_TYPE, "text/calendar; charset=utf-8")],
            body,
        )
            .into_response(),
        Ok(Ok(None)) => not_found(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "calendar: store error");
            (StatusCode::INTERNAL_SERVER_ERROR, "store error\n").into_response()
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response(),
    }
}

/// The calendar of `schedules` at `now`: each one's coming occurrences (the one under way
/// included), at most [`CALENDAR_OCCURRENCES`] each, within a year.
pub fn render(slug: &str, schedules: &[&Schedule], public_url: &str, now: DateTime<Utc>) -> String {
    let host = public_url
        .split("://")
        .nth(1)
        .unwrap_or(public_url)
        .split(['/', ':'])
        .next()
        .unwrap_or("sigbot");
    let mut cal = Calendar::new();
    cal.name(&format!("Meetings in {slug}"));
    for s in schedules {
        let length = TimeDelta::from_std(s.duration).unwrap_or(TimeDelta::hours(1));
        for t in s.occurrences_after(now - length, CALENDAR_OCCURRENCES) {
            let uid = format!(
                "{}-{}-{}@{host}",
                t.format("%Y%m%dT%H%M%SZ"),
                slug,
                uid_part(&s.name)
            );
            let mut description = format!("In {} ({} time: {}).", s.room, s.timezone.name(), {
                t.with_timezone(&s.timezone).format("%Y-%m-%d %H:%M")
            });
            if let Some(a) = &s.agenda {
                description.push_str(&format!(" Agenda: {a}"));
            }
            let mut e = Event::new();
            e.uid(&uid)
                .timestamp(t.min(now))
                .summary(&s.name)
                .description(&description)
                .location(&s.room.to_string())
                .starts(t)
                .ends(t + length);
            if let Some(a) = &s.agenda {
                e.url(a);
            }
            cal.push(e.done());
        }
    }
    cal.done().to_string()
}

/// A schedule's name as it goes into a UID: `[a-z0-9-]` only.
fn uid_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::core::RoomRef;

    #[test]
    fn lists_the_coming_occurrences_with_stable_uids() {
        let s = Schedule::new(
            RoomRef::new("libera", "#sig"),
            "SIG sync".into(),
            chrono::NaiveDate::from_ymd_opt(2026, 12, 2)
                .unwrap()
                .and_hms_opt(16, 0, 0)
                .unwrap(),
            chrono_tz::Europe::Prague,
            Some("FREQ=WEEKLY;INTERVAL=2"),
            Duration::from_secs(3600),
            Some("https://example.org/agenda?a=1;b=2".into()),
            Vec::new(),
        )
        .unwrap();
        let now = DateTime::parse_from_rfc3339("2026-12-09T12:00:00Z")
            .unwrap()
            .to_utc();
        let ics = render("sig", &[&s], "https://meetbot.example.org/", now);
        assert!(ics.starts_with("BEGIN:VCALENDAR\r\n"), "{ics}");
        assert_eq!(ics.matches("BEGIN:VEVENT").count(), CALENDAR_OCCURRENCES);
        assert!(
            ics.contains("UID:20261216T150000Z-sig-sig-sync@meetbot.example.org\r\n"),
            "{ics}"
        );
        assert!(ics.contains("DTSTART:20261216T150000Z\r\n"), "{ics}");
        assert!(ics.contains("DTEND:20261216T160000Z\r\n"), "{ics}");
        assert!(
            !ics.contains("20261202T"),
            "the past one is left out: {ics}"
        );
        assert_eq!(
            render("sig", &[&s], "x", now),
            render("sig", &[&s], "x", now)
        );
    }
}
