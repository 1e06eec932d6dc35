//! `/media/<id>`: a file shared on Matrix, fetched with the bot's own login (authenticated
//! media) and served to IRC users, who have no Matrix login of their own.
//!
//! IDs are unguessable (the bridge makes them) and map to one `mxc://` URI of one network
//! in the store. Files are capped in size, fetched once into the on-disk cache
//! ([`super::media_cache`]) and streamed from there. Types a browser would run as a page
//! (HTML, SVG, XML, scripts) are served as downloads, never inline, and nothing is sniffed.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::io::ReaderStream;

use super::media_cache::{FetchError, MediaCache};
use crate::adapters::media::FileSource;
use crate::store::Store;

/// The largest file relayed, in bytes.
pub const MAX_MEDIA_BYTES: u64 = 25 * 1024 * 1024;

/// The size of the chunks a cached file is read and sent in. Small on purpose: the server
/// queues up to 16 chunks for a client that does not read, so this bounds what each stalled
/// reader holds (about 130 KiB, where 64 KiB chunks cost about 400 KiB).
const READ_CHUNK: usize = 8 * 1024;

/// The networks' file sources by network name, shared with whoever starts and stops networks
/// (a config reload adds and removes them while the site runs).
pub type MediaSources<S> = Arc<RwLock<BTreeMap<String, S>>>;

struct MediaState<S> {
    store: Store,
    sources: MediaSources<S>,
    cache: MediaCache,
}

impl<S> Clone for MediaState<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            sources: self.sources.clone(),
            cache: self.cache.clone(),
        }
    }
}

/// The route, with the networks' file sources by network name and the cache of their files.
pub fn routes<S: FileSource>(store: Store, sources: MediaSources<S>, cache: MediaCache) -> Router {
    Router::new()
        .route("/media/{id}", get(media::<S>))
        .with_state(MediaState {
            store,
            sources,
            cache,
        })
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such file\n").into_response()
}

async fn media<S: FileSource>(State(st): State<MediaState<S>>, Path(id): Path<String>) -> Response {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return not_found();
    }
    let store = st.store.clone();
    let link = match tokio::task::spawn_blocking(move || store.media(&id)).await {
        Ok(Ok(Some(link))) => link,
        Ok(Ok(None)) => return not_found(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "media link not readable");
            return (StatusCode::INTERNAL_SERVER_ERROR, "not readable\n").into_response();
        }
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "not readable\n").into_response(),
    };
    let source = st
        .sources
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(&link.network)
        .cloned();
    let Some(source) = source else {
        return not_found();
    };
    let cached = match st.cache.get(&source, &link.network, &link.uri).await {
        Ok(c) => c,
        Err(FetchError::TooLarge { .. }) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, "file too large to relay\n").into_response();
        }
        Err(FetchError::NotFound) => return not_found(),
        Err(FetchError::Busy) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "10")],
                "busy, try again\n",
            )
                .into_response();
        }
        // Logged once, by the download.
        Err(FetchError::Failed(_)) => {
            return (StatusCode::BAD_GATEWAY, "file not available now\n").into_response();
        }
    };
    let content_type = cached
        .content_type
        .or(link.mimetype)
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let (content_type, inline) = served_type(&content_type);
    let disposition = format!(
        "{}; filename=\"{}\"",
        if inline { "inline" } else { "attachment" },
        header_safe_name(&link.name)
    );
    let mut response =
        Body::from_stream(ReaderStream::with_capacity(cached.file, READ_CHUNK)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(cached.len));
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_DISPOSITION, disposition),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        (
            header::CONTENT_SECURITY_POLICY,
            format!("{}; sandbox", crate::web::NOTHING_ACTIVE),
        ),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    response
}

/// The content type to serve, and whether a browser may show it inline: media and plain
/// text only; everything else is a download.
pub fn served_type(content_type: &str) -> (String, bool) {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let valid = !essence.is_empty()
        && essence.split_once('/').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && (a.bytes().chain(b.bytes()))
                    .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
        });
    if !valid {
        return ("application/octet-stream".to_owned(), false);
    }
    let inline = (essence.starts_with("image/") && !essence.contains("svg"))
        || essence.starts_with("video/")
        || essence.starts_with("audio/")
        || essence == "text/plain"
        || essence == "application/pdf";
    if essence == "text/plain" {
        return ("text/plain; charset=utf-8".to_owned(), true);
    }
    (essence, inline)
}

/// A file name fit for a quoted header parameter.
fn header_safe_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .filter(|c| !matches!(c, '"' | '\\' | '/' | ';'))
        .take(100)
        .collect();
    if cleaned.trim().is_empty() {
        "file".to_owned()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_scripts_are_downloads_media_is_inline() {
        assert_eq!(served_type("image/png"), ("image/png".into(), true));
        assert_eq!(served_type("IMAGE/JPEG"), ("image/jpeg".into(), true));
        assert_eq!(
            served_type("text/plain"),
            ("text/plain; charset=utf-8".into(), true)
        );
        for risky in ["text/html", "image/svg+xml", "application/javascript"] {
            assert!(!served_type(risky).1, "{risky}");
        }
        assert_eq!(
            served_type("bogus\r\nx"),
            ("application/octet-stream".into(), false)
        );
        assert_eq!(header_safe_name("a\"b/\r\nc.png"), "abc.png");
        assert_eq!(header_safe_name("\u{202e}"), "file");
    }
}
