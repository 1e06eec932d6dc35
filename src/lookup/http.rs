//! The `http` action of declarative commands: one request, a size-capped body.

use super::LookupError;
use crate::core::RequestBody;

/// The most a command's response body may hold; past it the command gets its error reply.
pub const MAX_BODY: usize = 1024 * 1024;

/// A request, with secrets already filled in.
pub struct HttpCall<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a [(String, String)],
    pub query: &'a [(String, String)],
    pub body: &'a RequestBody,
}

/// A response: its status, headers (lower-case names) and body, read up to [`MAX_BODY`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// The status's reason phrase (`Not Found`).
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub text: String,
}

pub async fn call(client: &reqwest::Client, c: HttpCall<'_>) -> Result<HttpResponse, LookupError> {
    let method =
        reqwest::Method::from_bytes(c.method.as_bytes()).map_err(|_| LookupError::BadMethod)?;
    let url = match reqwest::Url::parse(c.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u,
        // Never echo the URL: it may hold a secret.
        _ => {
            return Err(LookupError::BadUrl {
                what: "the command's URL",
            });
        }
    };
    let mut rb = client.request(method, url);
    for (k, v) in c.headers {
        rb = rb.header(k, v);
    }
    if !c.query.is_empty() {
        rb = rb.query(c.query);
    }
    rb = match c.body {
        RequestBody::None => rb,
        RequestBody::Json(v) => rb.json(v),
        RequestBody::Form(f) => rb.form(f),
        RequestBody::Text(t) => rb.body(t.clone()),
    };
    let resp = rb.send().await.map_err(failed)?;
    let status = resp.status();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = read_capped(resp, MAX_BODY).await?;
    Ok(HttpResponse {
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("").to_owned(),
        headers,
        text: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Reads a body, refusing it as soon as it grows past `cap` bytes.
pub async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, LookupError> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(LookupError::TooLarge { cap });
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(failed)? {
        if buf.len() + chunk.len() > cap {
            return Err(LookupError::TooLarge { cap });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// A failed request with a short reason. reqwest's own message names the URL, which may hold
/// a secret, so it is never used.
pub fn failed(e: reqwest::Error) -> LookupError {
    let reason = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "too many redirects"
    } else if e.is_body() || e.is_decode() {
        "the response could not be read"
    } else {
        "the request failed"
    };
    LookupError::Request { reason }
}
