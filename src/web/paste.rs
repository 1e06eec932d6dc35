//! `/paste/<id>`: the whole text of a relayed message too long for IRC, as plain text; 410
//! once past `[web] paste_ttl`, 404 once pruned.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use chrono::Utc;

use crate::store::{Link, Store};

pub fn routes(store: Store) -> Router {
    Router::new()
        .route("/paste/{id}", get(paste))
        .with_state(store)
}

async fn paste(State(store): State<Store>, Path(id): Path<String>) -> Response {
    // IDs are made of lower-case letters and digits; anything else is not one.
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return (StatusCode::NOT_FOUND, "no such paste\n").into_response();
    }
    let found = tokio::task::spawn_blocking(move || store.paste_link(&id, Utc::now())).await;
    match found {
        Ok(Ok(Link::Found(text))) => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                // Never let a browser read a paste as HTML.
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CONTENT_SECURITY_POLICY, crate::web::NOTHING_ACTIVE),
            ],
            text,
        )
            .into_response(),
        Ok(Ok(Link::Expired)) => (StatusCode::GONE, "this paste has expired\n").into_response(),
        Ok(Ok(Link::Unknown)) => (StatusCode::NOT_FOUND, "no such paste\n").into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "paste not readable");
            (StatusCode::INTERNAL_SERVER_ERROR, "paste not readable\n").into_response()
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "paste not readable\n").into_response(),
    }
}
