//! A series page (DESIGN §7 "Series"): `/meetings/<room-slug>/series/<name>/` lists the
//! series' latest public meetings with attendance, duration and action items, above charts
//! of the latest ones drawn on the server (`charts.rs`), each with its numbers in a table.

use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::DateTime;

use super::charts::{self, Chart, Line};
use super::meetings::{blocking, duration, page, plausible_slug};
use crate::core::format::escape_html;
use crate::store::{SeriesMeeting, Store};

/// How many meetings a series page lists (the latest).
pub const LISTED: usize = 50;
/// How many of them the charts show (the latest).
pub const CHARTED: usize = 20;
/// How many people the lines-said chart follows (those who said the most).
pub const CHART_PEOPLE: usize = 5;
/// How many people, and lines of action items, a meeting's entry names; the minutes have
/// the rest.
pub const NAMED: usize = 20;

pub(super) async fn series_page(
    State(store): State<Store>,
    Path((room, name)): Path<(String, String)>,
) -> Response {
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            page("Not found", "<p>No such series.</p>"),
        )
            .into_response()
    };
    if !plausible_slug(&room) || !plausible_slug(&name) {
        return not_found();
    }
    let (slug, series) = (room.clone(), name.clone());
    let list = match blocking(move || store.series_meetings(&slug, &series, LISTED)).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if list.is_empty() {
        return not_found();
    }
    page(&format!("Series {name} in {room}"), &render(&room, &list)).into_response()
}

/// The page's body: the room, the charts, then the meetings newest first.
pub fn render(room: &str, list: &[SeriesMeeting]) -> String {
    let mut body = String::new();
    let shown = if list.len() >= LISTED {
        format!(" (the latest {LISTED})")
    } else {
        String::new()
    };
    let _ = writeln!(
        body,
        "<p class=\"meta\">A series of meetings in <a href=\"/meetings/{0}/\">{0}</a>: {1} meeting{2}{shown}.</p>",
        escape_html(room),
        list.len(),
        if list.len() == 1 { "" } else { "s" },
    );
    let charted: Vec<&SeriesMeeting> = list.iter().take(CHARTED).rev().collect();
    let _ = writeln!(
        body,
        "<h2>The latest {} meeting{}</h2>",
        charted.len(),
        if charted.len() == 1 { "" } else { "s" }
    );
    for chart in series_charts(&charted) {
        figure(&mut body, &chart);
    }
    body.push_str("<h2>Meetings</h2>\n<ul>\n");
    for s in list {
        meeting_li(&mut body, s);
    }
    body.push_str("</ul>\n");
    body
}

fn minutes(s: &SeriesMeeting) -> Option<i64> {
    let m = &s.meeting;
    match (
        DateTime::parse_from_rfc3339(&m.started),
        DateTime::parse_from_rfc3339(&m.ended),
    ) {
        (Ok(a), Ok(b)) => Some((b - a).num_minutes().max(0)),
        _ => None,
    }
}

fn when(s: &SeriesMeeting) -> String {
    let t = &s.meeting.started;
    t.get(..16).unwrap_or(t).replace('T', " ")
}

/// The four charts of the meetings `charted` (oldest first).
pub fn series_charts(charted: &[&SeriesMeeting]) -> Vec<Chart> {
    // The day (`12-08`), and the time too when two meetings share a day.
    let day = |s: &SeriesMeeting| s.meeting.started.get(5..10).unwrap_or_default().to_owned();
    let mut days: Vec<String> = charted.iter().map(|s| day(s)).collect();
    days.sort();
    days.dedup();
    let x_labels: Vec<String> = charted
        .iter()
        .map(|s| {
            if days.len() == charted.len() {
                day(s)
            } else {
                s.meeting
                    .started
                    .get(5..16)
                    .unwrap_or_default()
                    .replace('T', " ")
            }
        })
        .collect();
    let one = |id, title: &str, y_label, values: Vec<f64>| Chart {
        id,
        title: title.to_owned(),
        y_label,
        x_labels: x_labels.clone(),
        lines: vec![Line {
            label: y_label.to_owned(),
            values,
        }],
    };
    #[allow(clippy::cast_precision_loss, reason = "small counts")]
    let count = |n: usize| n as f64;
    #[allow(clippy::cast_precision_loss, reason = "minutes of a meeting")]
    let mins = |s: &SeriesMeeting| minutes(s).unwrap_or(0) as f64;
    let mut out = vec![
        one(
            "chart-attendance",
            "Attendance per meeting",
            "people",
            charted
                .iter()
                .map(|s| count(s.recap.people.len()))
                .collect(),
        ),
        one(
            "chart-actions",
            "Action items per meeting",
            "action items",
            charted
                .iter()
                .map(|s| count(s.recap.action_count()))
                .collect(),
        ),
        one(
            "chart-duration",
            "Duration of each meeting",
            "minutes",
            charted.iter().map(|s| mins(s)).collect(),
        ),
    ];
    // The people who said the most over these meetings, each with their lines per meeting.
    let mut totals: Vec<(String, usize)> = Vec::new();
    for s in charted {
        for p in &s.recap.people {
            match totals.iter_mut().find(|(n, _)| *n == p.nick) {
                Some((_, t)) => *t += p.lines,
                None => totals.push((p.nick.clone(), p.lines)),
            }
        }
    }
    totals.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    totals.truncate(CHART_PEOPLE);
    out.push(Chart {
        id: "chart-lines",
        title: format!(
            "Lines said per person (the {} who said the most)",
            totals.len()
        ),
        y_label: "lines said",
        x_labels: x_labels.clone(),
        lines: totals
            .into_iter()
            .map(|(nick, _)| Line {
                values: charted
                    .iter()
                    .map(|s| {
                        count(
                            s.recap
                                .people
                                .iter()
                                .find(|p| p.nick == nick)
                                .map_or(0, |p| p.lines),
                        )
                    })
                    .collect(),
                label: nick,
            })
            .collect(),
    });
    out
}

/// A chart in a `<figure>`: its caption, the SVG, and its numbers as a table (the text
/// alternative, also for screen readers).
fn figure(body: &mut String, chart: &Chart) {
    let _ = writeln!(
        body,
        "<figure id=\"{}\">\n<figcaption>{}</figcaption>",
        chart.id,
        escape_html(&chart.title)
    );
    if let Some(svg) = charts::svg(chart) {
        body.push_str(&svg);
    }
    // Several lines: the legend is text under the chart (it never hides a point).
    if chart.lines.len() > 1 {
        body.push_str("<ul class=\"legend\">");
        for (i, l) in chart.lines.iter().enumerate() {
            let _ = write!(
                body,
                "<li><span class=\"swatch\" style=\"background:{}\"></span> {}</li>",
                charts::colour(i),
                escape_html(&l.label)
            );
        }
        body.push_str("</ul>\n");
    }
    body.push_str(
        "<details><summary>The numbers</summary>\n<table>\n<tr><th scope=\"col\">meeting</th>",
    );
    for l in &chart.lines {
        let _ = write!(body, "<th scope=\"col\">{}</th>", escape_html(&l.label));
    }
    body.push_str("</tr>\n");
    for (i, x) in chart.x_labels.iter().enumerate() {
        let _ = write!(body, "<tr><th scope=\"row\">{}</th>", escape_html(x));
        for l in &chart.lines {
            let v = l.values.get(i).copied().unwrap_or_default();
            let _ = write!(body, "<td>{v}</td>");
        }
        body.push_str("</tr>\n");
    }
    body.push_str("</table></details>\n</figure>\n");
}

fn meeting_li(body: &mut String, s: &SeriesMeeting) {
    let m = &s.meeting;
    let href = format!("/meetings/{}/{}", m.room_slug, m.base);
    let people: Vec<&str> = s.recap.people.iter().map(|p| p.nick.as_str()).collect();
    let mut named = people
        .iter()
        .take(NAMED)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if people.len() > NAMED {
        let _ = write!(named, " and {} more", people.len() - NAMED);
    }
    let _ = write!(
        body,
        "<li><a href=\"{}.html\">{} UTC</a> <span class=\"meta\">{}; {} {}: {}</span>",
        escape_html(&href),
        escape_html(&when(s)),
        duration(m),
        people.len(),
        if people.len() == 1 {
            "person"
        } else {
            "people"
        },
        escape_html(&named),
    );
    let n = s.recap.action_count();
    if n == 0 {
        body.push_str("<br>no action items</li>\n");
        return;
    }
    let _ = write!(
        body,
        "<br>{n} action item{}:<ul>",
        if n == 1 { "" } else { "s" }
    );
    let mut lines: Vec<(&str, String)> = s
        .recap
        .actions
        .iter()
        .map(|p| (p.nick.as_str(), p.items.join("; ")))
        .collect();
    if !s.recap.unassigned.is_empty() {
        lines.push(("UNASSIGNED", s.recap.unassigned.join("; ")));
    }
    for (who, items) in lines.iter().take(NAMED) {
        let _ = write!(
            body,
            "<li>{}: {}</li>",
            escape_html(who),
            escape_html(items)
        );
    }
    if lines.len() > NAMED {
        let _ = write!(
            body,
            "<li><a href=\"{}.html\">{} more in the minutes</a></li>",
            escape_html(&href),
            lines.len() - NAMED
        );
    }
    body.push_str("</ul></li>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::meeting::{Attendee, PersonActions, Recap};
    use crate::store::MeetingSummary;

    fn meeting(started: &str, people: &[(&str, usize)], actions: usize) -> SeriesMeeting {
        SeriesMeeting {
            meeting: MeetingSummary {
                id: 1,
                room: "libera/#sig".into(),
                room_slug: "sig".into(),
                started: started.into(),
                ended: started.replace("00:00+", "45:00+"),
                base: "2026-12-01/weekly.2026-12-01-10.00".into(),
                files_dir: String::new(),
                title: None,
                attendees: String::new(),
                restricted: false,
            },
            recap: Recap {
                people: people
                    .iter()
                    .map(|(n, l)| Attendee {
                        nick: (*n).into(),
                        lines: *l,
                    })
                    .collect(),
                agreed: vec![],
                actions: vec![PersonActions {
                    nick: "a".into(),
                    items: vec!["<do it>".into(); actions],
                }],
                unassigned: vec![],
            },
        }
    }

    #[test]
    fn charts_follow_the_people_who_said_most_and_label_meetings_by_day_or_time() {
        let crowd: Vec<(String, usize)> = (0..8).map(|i| (format!("p{i}"), i + 1)).collect();
        let crowd: Vec<(&str, usize)> = crowd.iter().map(|(n, l)| (n.as_str(), *l)).collect();
        let a = meeting("2026-12-01T10:00:00+00:00", &crowd, 2);
        let b = meeting("2026-12-08T10:00:00+00:00", &crowd[..3], 0);
        let charts = series_charts(&[&a, &b]);
        let ids: Vec<&str> = charts.iter().map(|c| c.id).collect();
        assert_eq!(
            ids,
            [
                "chart-attendance",
                "chart-actions",
                "chart-duration",
                "chart-lines"
            ]
        );
        assert_eq!(charts[0].x_labels, ["12-01", "12-08"]);
        assert_eq!(charts[0].lines[0].values, [8.0, 3.0]);
        assert_eq!(charts[1].lines[0].values, [2.0, 0.0]);
        assert_eq!(charts[2].lines[0].values, [45.0, 45.0]);
        let lines = &charts[3].lines;
        let names: Vec<&str> = lines.iter().map(|l| l.label.as_str()).collect();
        // Totals over both meetings (p2: 3 + 3), ties by name.
        assert_eq!(names, ["p7", "p6", "p2", "p5", "p4"]);
        assert_eq!(lines[0].values, [8.0, 0.0]);
        assert_eq!(charts[3].points(), CHART_PEOPLE * 2);
        // Two meetings on one day: the time tells them apart.
        let c = meeting("2026-12-01T18:00:00+00:00", &crowd[..1], 0);
        let charts = series_charts(&[&a, &c]);
        assert_eq!(charts[0].x_labels, ["12-01 10:00", "12-01 18:00"]);
    }

    #[test]
    fn the_page_escapes_what_people_said_and_lists_each_meeting() {
        let a = meeting("2026-12-01T10:00:00+00:00", &[("<b>", 2)], 1);
        let html = render("sig", &[a]);
        assert!(
            html.contains("&lt;do it&gt;") && !html.contains("<do it>"),
            "{html}"
        );
        assert!(
            html.contains("&lt;b&gt;") && !html.contains("<b>"),
            "{html}"
        );
        assert_eq!(html.matches("<figure").count(), 4, "{html}");
        assert!(html.contains("href=\"/meetings/sig/2026-12-01/weekly.2026-12-01-10.00.html\""));
        assert!(html.contains("45 min; 1 person"), "{html}");
        // A crowd is named up to a point.
        let crowd: Vec<String> = (0..30).map(|i| format!("p{i}")).collect();
        let crowd: Vec<(&str, usize)> = crowd.iter().map(|n| (n.as_str(), 1)).collect();
        let html = render("sig", &[meeting("2026-12-01T10:00:00+00:00", &crowd, 0)]);
        assert!(html.contains("30 people: p0, p1,"), "{html}");
        assert!(html.contains("p19 and 10 more"), "{html}");
    }
}
