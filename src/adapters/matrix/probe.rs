//! `sigbot check-config --online` for one Matrix account, without touching the bot's session
//! or stores:
//! - an access token is checked with `whoami` (it must be the configured user's, with a
//!   device);
//! - a password is checked with a real login, since Matrix has no way to test a password
//!   without one: the homeserver must offer password logins (`GET /login`), then the login
//!   makes a device named "sigbot check-config", which is logged out (deleted) at once. The
//!   account's device list is the same before and after.

use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::config::{MatrixAuth, MatrixConfig};

/// The display name of the short-lived device a password check makes.
pub const CHECK_DEVICE_NAME: &str = "sigbot check-config";

/// Checks the account's credentials: what went well, or why it failed.
pub async fn probe(cfg: &MatrixConfig) -> Result<String, String> {
    let http = crate::http_client(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    match &cfg.auth {
        MatrixAuth::AccessToken(token) => {
            let me = call(
                http.get(url(cfg, "account/whoami"))
                    .bearer_auth(token.expose()),
            )
            .await
            .map_err(|e| format!("access token refused: {e}"))?;
            let user = me["user_id"].as_str().unwrap_or_default();
            if user != cfg.user {
                return Err(format!(
                    "the access token is {user}'s, but the config says {}",
                    cfg.user
                ));
            }
            match me["device_id"].as_str() {
                Some(device) => Ok(format!("access token accepted, device {device}")),
                None => Err("the access token has no device; use a password instead".into()),
            }
        }
        MatrixAuth::Password(password) => {
            let flows = call(http.get(url(cfg, "login")))
                .await
                .map_err(|e| format!("cannot ask for the login flows: {e}"))?;
            let offered = flows["flows"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f["type"] == "m.login.password"));
            if !offered {
                return Err("the homeserver offers no password login".into());
            }
            let login = call(http.post(url(cfg, "login")).json(&json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": cfg.user },
                "password": password.expose(),
                "initial_device_display_name": CHECK_DEVICE_NAME,
            })))
            .await
            .map_err(|e| format!("password refused: {e}"))?;
            let token = login["access_token"].as_str().unwrap_or_default();
            let device = login["device_id"].as_str().unwrap_or_default().to_owned();
            // Whatever else is wrong, the check's device goes.
            let logged_out = call(
                http.post(url(cfg, "logout"))
                    .bearer_auth(token)
                    .json(&json!({})),
            )
            .await;
            let user = login["user_id"].as_str().unwrap_or_default();
            if user != cfg.user {
                return Err(format!(
                    "the homeserver says this login is {user}, but the config says {}",
                    cfg.user
                ));
            }
            match logged_out {
                Ok(_) => Ok("password accepted; the check's device was logged out".into()),
                Err(e) => Err(format!(
                    "password accepted, but the check's device {device} could not be logged \
                     out ({e}); remove it by hand"
                )),
            }
        }
    }
}

fn url(cfg: &MatrixConfig, endpoint: &str) -> String {
    format!("{}/_matrix/client/v3/{endpoint}", cfg.homeserver)
}

/// Sends a request; its JSON answer, or the failure as "HTTP 403: M_FORBIDDEN: ...".
async fn call(request: reqwest::RequestBuilder) -> Result<Value, String> {
    let reply = request.send().await.map_err(|e| chain(&e.without_url()))?;
    let status = reply.status();
    let body = read_json(reply).await;
    if status.is_success() {
        return body.ok_or_else(|| format!("HTTP {}: not JSON", status.as_u16()));
    }
    Err(match body {
        Some(b) if b["errcode"].is_string() => format!(
            "HTTP {}: {}: {}",
            status.as_u16(),
            b["errcode"].as_str().unwrap_or_default(),
            b["error"].as_str().unwrap_or_default()
        ),
        _ => format!("HTTP {}", described(status)),
    })
}

async fn read_json(reply: Response) -> Option<Value> {
    reply.json().await.ok()
}

fn described(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// An error with its causes, which is where reqwest says what went wrong.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}
