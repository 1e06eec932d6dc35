//! The `http` action of declarative commands: one request, a size-capped body.

use crate::core::{FetchOutcome, RequestBody};

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

pub async fn call(client: &reqwest::Client, c: HttpCall<'_>) -> FetchOutcome {
    let method = match reqwest::Method::from_bytes(c.method.as_bytes()) {
        Ok(m) => m,
        Err(_) => return FetchOutcome::Failed("bad HTTP method".into()),
    };
    let url = match reqwest::Url::parse(c.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u,
        // Never echo the URL: it may hold a secret.
        _ => return FetchOutcome::Failed("the command's URL is not a valid http(s) URL".into()),
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
    let resp = match rb.send().await {
        Ok(r) => r,
        Err(e) => return FetchOutcome::Failed(describe(&e)),
    };
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
    match read_capped(resp, MAX_BODY).await {
        Ok(body) => FetchOutcome::Http {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("").to_owned(),
            headers,
            text: String::from_utf8_lossy(&body).into_owned(),
        },
        Err(e) => FetchOutcome::Failed(e),
    }
}

/// Reads a body, refusing it as soon as it grows past `cap` bytes.
pub async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, String> {
    let too_large = || format!("the response is larger than {} KiB", cap / 1024);
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(too_large());
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
        if buf.len() + chunk.len() > cap {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// A short reason for a failed request. reqwest's own message names the URL, which may hold
/// a secret, so it is never used.
pub fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else if e.is_redirect() {
        "too many redirects".into()
    } else if e.is_body() || e.is_decode() {
        "the response could not be read".into()
    } else {
        "the request failed".into()
    }
}
