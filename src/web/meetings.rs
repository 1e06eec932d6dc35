//! The meetings site (DESIGN §7): rooms and their latest meetings at `/`, one room's
//! meetings by date at `/meetings/<room-slug>/`, its latest minutes as an Atom feed at
//! `/meetings/<room-slug>/feed.atom`, its series at `/meetings/<room-slug>/series/<name>/`
//! (`series.rs`), the files themselves, and full-text search at `/search?q=`.
//! Server-rendered, readable on a phone, no JavaScript.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::DateTime;

use crate::core::format::escape_html;
use crate::minutes::EXTENSIONS;
use crate::store::{HIT_END, HIT_START, MeetingSummary, SearchError, Store};

const HEAD: &str = concat!(
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
    "<style>body{font-family:sans-serif;max-width:50em;margin:0 auto;padding:0.5em;overflow-wrap:anywhere}",
    "li{margin:0.4em 0}.meta{color:#555;font-size:0.9em}mark{background:#ff6}",
    "input[type=search]{width:70%;font-size:1em}figure{margin:1em 0}svg.chart{max-width:100%;height:auto}",
    "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:0.2em 0.5em;text-align:right}",
    "ul.legend{list-style:none;padding:0;margin:0.2em 0}ul.legend li{display:inline-block;margin:0 1em 0 0}",
    ".swatch{display:inline-block;width:1em;height:0.6em}</style>\n"
);

pub(super) fn page(title: &str, body: &str) -> Html<String> {
    let t = escape_html(title);
    Html(format!(
        "{HEAD}<title>{t}</title>\n</head>\n<body>\n<p><a href=\"/\">meetings</a></p>\n<h1>{t}</h1>\n\
         <form action=\"/search\" method=\"get\"><input type=\"search\" name=\"q\" aria-label=\"search\"> \
         <button type=\"submit\">Search</button></form>\n{body}</body>\n</html>\n"
    ))
}

/// How many meetings a room's feed lists (the latest).
pub const FEED_ENTRIES: usize = 20;

/// `public_url` makes the feed's links absolute (`[web] public_url`).
pub fn routes(store: Store, public_url: String) -> Router {
    let feed_store = store.clone();
    Router::new()
        .route("/", get(index))
        .route("/meetings/{room}/", get(room_page))
        .route(
            "/meetings/{room}/feed.atom",
            get(move |room: Path<String>| feed(feed_store.clone(), public_url.clone(), room)),
        )
        .route(
            "/meetings/{room}/series/{name}/",
            get(super::series::series_page),
        )
        .route("/meetings/{room}/{date}/{file}", get(file))
        .route("/search", get(search))
        .with_state(store)
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "meetings site: store error");
            Err((StatusCode::INTERNAL_SERVER_ERROR, "store error").into_response())
        }
        Err(_) => Err((StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()),
    }
}

fn name_of(m: &MeetingSummary) -> String {
    let file = m.base.rsplit('/').next().unwrap_or(&m.base);
    m.title.clone().unwrap_or_else(|| file.to_owned())
}

pub(super) fn duration(m: &MeetingSummary) -> String {
    match (
        DateTime::parse_from_rfc3339(&m.started),
        DateTime::parse_from_rfc3339(&m.ended),
    ) {
        (Ok(s), Ok(e)) => {
            let mins = (e - s).num_minutes().max(0);
            if mins >= 60 {
                format!("{}h {:02}min", mins / 60, mins % 60)
            } else {
                format!("{mins} min")
            }
        }
        _ => String::new(),
    }
}

fn meeting_li(out: &mut String, m: &MeetingSummary, with_room: bool) {
    let href = format!("/meetings/{}/{}", m.room_slug, m.base);
    let when = m.started.get(..16).unwrap_or(&m.started).replace('T', " ");
    let _ = write!(
        out,
        "<li><a href=\"{0}.html\">{1}</a> <span class=\"meta\">{2} UTC, {3}",
        escape_html(&href),
        escape_html(&name_of(m)),
        escape_html(&when),
        duration(m)
    );
    if with_room {
        let _ = write!(
            out,
            " in <a href=\"/meetings/{0}/\">{0}</a>",
            escape_html(&m.room_slug)
        );
    }
    let _ = writeln!(
        out,
        "; <a href=\"{0}.log.html\">log</a>, <a href=\"{0}.txt\">text</a>, <a href=\"{0}.md\">markdown</a>, \
         <a href=\"{0}.json\">json</a><br>attendees: {1}</span></li>",
        escape_html(&href),
        escape_html(&m.attendees)
    );
}

async fn index(State(store): State<Store>) -> Response {
    let all = match blocking(move || store.finished_meetings(None)).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut rooms: Vec<(String, Vec<MeetingSummary>)> = Vec::new();
    for m in all {
        match rooms.iter_mut().find(|(r, _)| *r == m.room_slug) {
            Some((_, list)) => list.push(m),
            None => rooms.push((m.room_slug.clone(), vec![m])),
        }
    }
    rooms.sort_by(|a, b| a.0.cmp(&b.0));
    let mut body = String::new();
    if rooms.is_empty() {
        body.push_str("<p>No meetings yet.</p>\n");
    }
    for (slug, list) in &rooms {
        let _ = writeln!(
            body,
            "<h2><a href=\"/meetings/{0}/\">{0}</a></h2>\n<ul>",
            escape_html(slug)
        );
        for m in list.iter().take(5) {
            meeting_li(&mut body, m, false);
        }
        body.push_str("</ul>\n");
    }
    page("Meetings", &body).into_response()
}

async fn room_page(State(store): State<Store>, Path(room): Path<String>) -> Response {
    let slug = room.clone();
    let found = blocking(move || {
        let list = store.finished_meetings(Some(&slug))?;
        let series = store.room_series(&slug)?;
        Ok((list, series))
    })
    .await;
    let (list, series) = match found {
        Ok(v) => v,
        Err(r) => return r,
    };
    if list.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            page("Not found", "<p>No meetings in this room.</p>"),
        )
            .into_response();
    }
    let mut body = String::new();
    if !series.is_empty() {
        body.push_str("<h2>Series</h2>\n<ul>\n");
        for s in &series {
            let latest = s.latest.get(..10).unwrap_or(&s.latest);
            let _ = writeln!(
                body,
                "<li><a class=\"series\" href=\"/meetings/{0}/series/{1}/\">{1}</a> \
                 <span class=\"meta\">{2} meeting{3}, the latest {4}</span></li>",
                escape_html(&room),
                escape_html(&s.name),
                s.meetings,
                if s.meetings == 1 { "" } else { "s" },
                escape_html(latest),
            );
        }
        body.push_str("</ul>\n");
    }
    let mut date = "";
    for m in &list {
        let d = m.base.split('/').next().unwrap_or("");
        if d != date {
            if !date.is_empty() {
                body.push_str("</ul>\n");
            }
            let _ = writeln!(body, "<h2>{}</h2>\n<ul>", escape_html(d));
            date = d;
        }
        meeting_li(&mut body, m, false);
    }
    body.push_str("</ul>\n");
    page(&format!("Meetings in {room}"), &body).into_response()
}

/// Whether `slug` could be a room slug at all (DESIGN §7: only `[a-z0-9._-]`); anything
/// else is 404 before the store is asked.
pub(super) fn plausible_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= 200
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// The room's latest [`FEED_ENTRIES`] public meetings as Atom: one entry per meeting, its
/// link the HTML minutes, updated when it ended. The crate writes the XML and escapes it.
async fn feed(store: Store, public_url: String, Path(room): Path<String>) -> Response {
    if !plausible_slug(&room) {
        return (StatusCode::NOT_FOUND, "no such room").into_response();
    }
    let slug = room.clone();
    let list = match blocking(move || store.finished_meetings(Some(&slug))).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if list.is_empty() {
        return (StatusCode::NOT_FOUND, "no such room").into_response();
    }
    let site = public_url.trim_end_matches('/');
    let room_url = format!("{site}/meetings/{room}/");
    let time = |s: &str| DateTime::parse_from_rfc3339(s).ok();
    let mut author = atom_syndication::Person::default();
    author.set_name("sigbot");
    let entries: Vec<atom_syndication::Entry> = list
        .iter()
        .take(FEED_ENTRIES)
        .map(|m| {
            let href = format!("{site}/meetings/{}/{}.html", m.room_slug, m.base);
            let mut link = atom_syndication::Link::default();
            link.set_href(href.clone());
            link.set_rel("alternate");
            link.set_mime_type(Some("text/html".to_owned()));
            let mut e = atom_syndication::Entry::default();
            e.set_title(name_of(m));
            e.set_id(href);
            e.set_links(vec![link]);
            if let Some(t) = time(&m.ended).or_else(|| time(&m.started)) {
                e.set_updated(t);
            }
            e.set_published(time(&m.started));
            let when = m.started.get(..16).unwrap_or(&m.started).replace('T', " ");
            e.set_summary(Some(atom_syndication::Text::plain(format!(
                "{when} UTC, {}; attendees: {}",
                duration(m),
                m.attendees
            ))));
            e
        })
        .collect();
    let mut this = atom_syndication::Link::default();
    this.set_href(format!("{room_url}feed.atom"));
    this.set_rel("self");
    let mut html = atom_syndication::Link::default();
    html.set_href(room_url.clone());
    html.set_rel("alternate");
    html.set_mime_type(Some("text/html".to_owned()));
    let mut f = atom_syndication::Feed::default();
    f.set_title(format!("Meetings in {room}"));
    f.set_id(room_url);
    f.set_links(vec![this, html]);
    f.set_authors(vec![author]);
    if let Some(t) = list.iter().filter_map(|m| time(&m.ended)).max() {
        f.set_updated(t);
    }
    f.set_entries(entries);
    (
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        f.to_string(),
    )
        .into_response()
}

fn content_type(ext: &str) -> &'static str {
    match ext {
        "html" | "log.html" => "text/html; charset=utf-8",
        "json" => "application/json",
        "md" => "text/markdown; charset=utf-8",
        _ => "text/plain; charset=utf-8",
    }
}

/// Serves a file only when it is one of a known meeting's six: nothing from the request
/// becomes part of a path.
async fn file(
    State(store): State<Store>,
    Path((room, date, file)): Path<(String, String, String)>,
) -> Response {
    let slug = room.clone();
    let list = match blocking(move || store.finished_meetings(Some(&slug))).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let wanted = format!("{date}/{file}");
    let found = list.iter().find_map(|m| {
        EXTENSIONS
            .iter()
            .find(|ext| wanted == format!("{}.{ext}", m.base))
            .map(|ext| (m, *ext))
    });
    let Some((m, ext)) = found else {
        return (StatusCode::NOT_FOUND, "no such meeting file").into_response();
    };
    let name = m.base.rsplit('/').next().unwrap_or(&m.base);
    let dir = std::path::PathBuf::from(&m.files_dir);
    let path = dir.join(format!("{name}.{ext}"));
    if !stays_in(&dir, &path).await {
        tracing::warn!(path = %path.display(), "meeting file leads out of its directory; not served");
        return (StatusCode::NOT_FOUND, "file missing").into_response();
    }
    match tokio::fs::read(&path).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type(ext))], bytes).into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "file missing").into_response(),
    }
}

/// Whether `path`, once every link is followed, is a file directly inside `dir`: a link an
/// imported archive holds (`minutes.html -> /etc/passwd`) never serves what it points to.
async fn stays_in(dir: &std::path::Path, path: &std::path::Path) -> bool {
    let (Ok(dir), Ok(file)) = (
        tokio::fs::canonicalize(dir).await,
        tokio::fs::canonicalize(path).await,
    ) else {
        return false;
    };
    file.parent() == Some(dir.as_path())
}

#[derive(serde::Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

fn snippet_html(s: &str) -> String {
    escape_html(s)
        .replace(HIT_START, "<mark>")
        .replace(HIT_END, "</mark>")
}

async fn search(State(store): State<Store>, Query(q): Query<SearchQuery>) -> Response {
    let query = q.q.clone();
    let found = tokio::task::spawn_blocking(move || store.search_meetings(&query, 100)).await;
    let hits = match found {
        Ok(Ok(v)) => v,
        Ok(Err(SearchError::Store(e))) => {
            tracing::error!(error = %e, "search failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "search failed\n").into_response();
        }
        Ok(Err(refused)) => {
            let status = match refused {
                SearchError::Busy | SearchError::TooSlow => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            let body = format!("<p>{}.</p>\n", escape_html(&refused.to_string()));
            return (status, page("Search", &body)).into_response();
        }
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "search failed\n").into_response(),
    };
    let mut body = String::new();
    if !q.q.trim().is_empty() {
        let _ = writeln!(
            body,
            "<p>{} result(s) for <b>{}</b></p>\n<ol>",
            hits.len(),
            escape_html(&q.q)
        );
        for h in &hits {
            let href = format!(
                "/meetings/{}/{}.log.html#l-{}",
                h.meeting.room_slug, h.meeting.base, h.line
            );
            let what = if h.kind == "log" {
                String::new()
            } else {
                format!("{} ", h.kind)
            };
            let _ = writeln!(
                body,
                "<li><a class=\"hit\" href=\"{}\">{}{} &lt;{}&gt;</a> {}<br><span class=\"meta\">{} in {}</span></li>",
                escape_html(&href),
                escape_html(&what),
                escape_html(&format!("line {}", h.line)),
                escape_html(&h.nick),
                snippet_html(&h.snippet),
                escape_html(&name_of(&h.meeting)),
                escape_html(&h.meeting.room_slug),
            );
        }
        body.push_str("</ol>\n");
    }
    page("Search", &body).into_response()
}
