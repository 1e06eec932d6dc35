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
        "a redirect was refused (too many, to another host, or to http)"
    } else if e.is_body() || e.is_decode() {
        "the response could not be read"
    } else {
        "the request failed"
    };
    LookupError::Request { reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    type Answer = fn(&str, u16) -> String;

    /// A server on a free port that answers each request with `answer(request, own port)` and
    /// hands every request it read to `seen`.
    async fn server(answer: Answer, seen: tokio::sync::mpsc::UnboundedSender<String>) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                let reply = answer(&request, port);
                let _ = seen.send(request);
                let _ = conn.write_all(reply.as_bytes()).await;
            }
        });
        port
    }

    fn ok(_: &str, _: u16) -> String {
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".to_owned()
    }

    fn moved(to: &str) -> String {
        format!(
            "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
    }

    /// The port of the other host, for [`to_other_host`].
    static OTHER: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);

    fn to_other_host(_: &str, _: u16) -> String {
        let other = OTHER.load(std::sync::atomic::Ordering::SeqCst);
        moved(&format!("http://127.0.0.1:{other}/x"))
    }

    fn to_itself(request: &str, port: u16) -> String {
        if request.starts_with("GET /moved ") {
            ok(request, port)
        } else {
            moved(&format!("http://127.0.0.1:{port}/moved"))
        }
    }

    async fn get(client: &reqwest::Client, url: String) -> Result<HttpResponse, LookupError> {
        let headers = vec![("PRIVATE-TOKEN".to_owned(), "s3cret".to_owned())];
        call(
            client,
            HttpCall {
                method: "GET",
                url: &url,
                headers: &headers,
                query: &[],
                body: &RequestBody::None,
            },
        )
        .await
    }

    #[tokio::test]
    async fn a_redirect_to_another_host_is_refused_and_carries_no_token() {
        let client = crate::command_http_client().unwrap();
        let (other_tx, mut other_rx) = tokio::sync::mpsc::unbounded_channel();
        let other = server(ok, other_tx).await;
        OTHER.store(other, std::sync::atomic::Ordering::SeqCst);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let first = server(to_other_host, tx).await;
        let err = get(&client, format!("http://127.0.0.1:{first}/"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("redirect was refused"), "{err}");
        assert!(
            rx.recv().await.unwrap().contains("s3cret"),
            "the named host gets it"
        );
        assert!(
            other_rx.try_recv().is_err(),
            "the other host was never asked"
        );

        // On the same host and port, a redirect is followed.
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let same = server(to_itself, tx).await;
        let got = get(&client, format!("http://127.0.0.1:{same}/"))
            .await
            .unwrap();
        assert_eq!((got.status, got.text.as_str()), (200, "ok"));
    }
}
