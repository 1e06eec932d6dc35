//! CHATHISTORY catch-up and the stored time of the last line seen per channel.

use super::*;

impl Driver {
    pub(super) fn last_seen_key(&self, chan: &str) -> String {
        format!("irc.last_seen/{}/{}", self.cfg.name, lower(chan))
    }

    /// Reads the last seen times of the configured channels.
    pub(super) async fn load_last_seen(&mut self) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let keys: Vec<(String, String)> = self
            .cfg
            .channels
            .iter()
            .map(|c| (lower(&c.name), self.last_seen_key(&c.name)))
            .collect();
        let loaded = tokio::task::spawn_blocking(move || {
            keys.into_iter()
                .filter_map(|(chan, key)| match store.meta(&key) {
                    Ok(v) => v
                        .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
                        .map(|t| (chan, t.with_timezone(&Utc))),
                    Err(e) => {
                        tracing::warn!(error = %e, "last seen time unreadable");
                        None
                    }
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        self.last_seen.extend(loaded);
    }

    /// Stores the last seen times that changed. A crash loses at most the last second's
    /// worth, which the catch-up then relays a second time.
    pub(super) async fn flush_last_seen(&mut self) {
        let Some(store) = self.store.clone() else {
            self.last_seen_dirty.clear();
            return;
        };
        if self.last_seen_dirty.is_empty() {
            return;
        }
        let rows: Vec<(String, String)> = std::mem::take(&mut self.last_seen_dirty)
            .into_iter()
            .filter_map(|chan| {
                let t = self.last_seen.get(&chan)?;
                Some((
                    self.last_seen_key(&chan),
                    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                ))
            })
            .collect();
        let stored = tokio::task::spawn_blocking(move || {
            for (k, v) in rows {
                store.set_meta(&k, &v)?;
            }
            Ok::<_, crate::store::StoreError>(())
        })
        .await;
        if let Ok(Err(e)) = stored {
            tracing::warn!(error = %e, "last seen times not stored");
        }
    }

    pub(super) fn saw(&mut self, chan: &str, at: DateTime<Utc>) {
        let chan = lower(chan);
        let newer = self.last_seen.get(&chan).is_none_or(|t| *t < at);
        if newer {
            self.last_seen.insert(chan.clone(), at);
            self.last_seen_dirty.insert(chan);
        }
    }

    /// Asks for what was said in `chan` while the bot was away, when the server keeps
    /// history and the bot has been there before; never further back than `staleness`.
    pub(super) fn request_history(&mut self, chan: &str, s: &mut Session) {
        if !s.caps.contains("draft/chathistory") {
            return;
        }
        let Some(last) = self.last_seen.get(&lower(chan)).copied() else {
            return;
        };
        let window = chrono::TimeDelta::from_std(self.cfg.staleness).unwrap_or_default();
        let since = last.max(Utc::now() - window);
        s.catching_up.insert(lower(chan), since);
        self.push_protocol(format!(
            "CHATHISTORY AFTER {chan} timestamp={} {}",
            since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            s.history_limit
        ));
    }
}

/// The type and parameters of the BATCH a line belongs to.
pub(super) fn batch_of<'a>(msg: &Message, s: &'a Session) -> Option<(&'a str, &'a [String])> {
    let r = tag_of(msg, "batch")?;
    s.batches
        .get(&r)
        .map(|(kind, params)| (kind.as_str(), params.as_slice()))
}

pub(super) fn in_batch(msg: &Message, s: &Session, kind: &str) -> bool {
    batch_of(msg, s).is_some_and(|(k, _)| k == kind)
}

/// CHATHISTORY lines asked for when the server does not say its maximum.
pub(super) const DEFAULT_HISTORY_LIMIT: usize = 100;

/// Message IDs remembered to tell a replayed line from one already seen live.
pub(super) const RECENT_IDS: usize = 512;
