//! Files on the homeserver (`mxc://` URIs), fetched for the web site's `/media` route with the
//! bot's own login.

use std::time::Duration;

use futures_util::TryStreamExt;
use matrix_sdk::Client;
use tokio::sync::watch;

use crate::adapters::media::{Download, FileSource, MediaError};

/// Fetches files (`mxc://` URIs) with the bot's own login, through the authenticated media
/// API. Cloneable; waits for nothing: before the first login it fails.
#[derive(Clone)]
pub struct MediaSource {
    client: watch::Receiver<Option<Client>>,
    http: reqwest::Client,
}

impl MediaSource {
    /// A source that uses whichever client the driver has logged in last.
    pub(super) fn new(client: watch::Receiver<Option<Client>>) -> Self {
        Self {
            client,
            // As `reqwest::Client::new` does: without a TLS backend nothing works anyway.
            http: crate::http_client(None).expect("the HTTP client's TLS backend starts"),
        }
    }
}

impl FileSource for MediaSource {
    async fn download(&self, uri: &str, max: u64) -> Result<Download, MediaError> {
        let (server, media_id) = parse_mxc(uri).ok_or_else(|| MediaError::BadUri(uri.into()))?;
        let client = self
            .client
            .borrow()
            .clone()
            .ok_or(MediaError::NotLoggedIn)?;
        let token = client.access_token().ok_or(MediaError::NotLoggedIn)?;
        let url = format!(
            "{}/_matrix/client/v1/media/download/{server}/{media_id}",
            client.homeserver().as_str().trim_end_matches('/')
        );
        // The time limit covers the body too: a homeserver that trickles cannot hold one of
        // the few download slots for ever.
        let response = self
            .http
            .get(url)
            .bearer_auth(token)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(reqwest::Error::without_url)?;
        if !response.status().is_success() {
            return Err(MediaError::Status(response.status()));
        }
        if response.content_length().is_some_and(|n| n > max) {
            return Err(MediaError::TooLarge { max });
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .bytes_stream()
            .map_err(|e| MediaError::Http(e.without_url()));
        Ok(Download {
            body: Box::pin(body),
            content_type,
        })
    }
}

/// `mxc://server/id` as (server, id), both checked to be safe in a URL path.
pub fn parse_mxc(uri: &str) -> Option<(&str, &str)> {
    let (server, id) = uri.strip_prefix("mxc://")?.split_once('/')?;
    let server_ok = !server.is_empty()
        && server
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    let id_ok = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
    (server_ok && id_ok).then_some((server, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_mxc_uris_are_fetched() {
        assert_eq!(
            parse_mxc("mxc://example.org:8448/AbC-d_9"),
            Some(("example.org:8448", "AbC-d_9"))
        );
        for bad in [
            "https://e/x",
            "mxc://e/../x",
            "mxc://e/x?y",
            "mxc:///x",
            "mxc://e/",
            "mxc://e/a/b",
        ] {
            assert_eq!(parse_mxc(bad), None, "{bad}");
        }
    }
}
