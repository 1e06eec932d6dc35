//! What the links in relayed chat lines point at: pastes (`/paste/<id>`) and files kept on a
//! network (`/media/<id>`).

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension as _, params};

use super::retention::before;
use super::{Link, Store, StoreError, audit_time};

/// A file a bridged message links to (`/media/<id>`): where the network keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLink {
    pub network: String,
    /// The `mxc://` URI.
    pub uri: String,
    /// The file name the sender gave.
    pub name: String,
    pub mimetype: Option<String>,
}

impl Store {
    /// Keeps a paste (`/paste/<id>`).
    pub fn put_paste(&self, id: &str, text: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO pastes (id, created, text) VALUES (?1, ?2, ?3)",
                params![id, audit_time(now), text],
            )
            .map(drop)
        })
    }

    /// A paste, unless it is past the link ttl at `now`.
    pub fn paste_link(&self, id: &str, now: DateTime<Utc>) -> Result<Link<String>, StoreError> {
        let found: Option<(String, String)> = self.with(|c| {
            c.query_row(
                "SELECT created, text FROM pastes WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })?;
        Ok(match found {
            None => Link::Unknown,
            Some((created, _)) if created < self.link_cutoff(now) => Link::Expired,
            Some((_, text)) => Link::Found(text),
        })
    }

    /// The oldest `created` of a link still served at `now`.
    fn link_cutoff(&self, now: DateTime<Utc>) -> String {
        audit_time(before(now, self.retention.links))
    }

    /// Keeps where a linked file is (`/media/<id>`).
    pub fn put_media(
        &self,
        id: &str,
        link: &MediaLink,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO media (id, created, network, uri, name, mimetype)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id,
                    audit_time(now),
                    link.network,
                    link.uri,
                    link.name,
                    link.mimetype
                ],
            )
            .map(drop)
        })
    }

    /// A media link, unless it is past the link ttl.
    pub fn media(&self, id: &str) -> Result<Option<MediaLink>, StoreError> {
        let cutoff = self.link_cutoff(Utc::now());
        self.with(|c| {
            c.query_row(
                "SELECT network, uri, name, mimetype FROM media WHERE id = ?1 AND created >= ?2",
                params![id, cutoff],
                |r| {
                    Ok(MediaLink {
                        network: r.get(0)?,
                        uri: r.get(1)?,
                        name: r.get(2)?,
                        mimetype: r.get(3)?,
                    })
                },
            )
            .optional()
        })
    }
}
