//! CHATHISTORY catch-up after the bot's own downtime, and the stored time of the last line
//! seen in each channel that it starts from.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use irc::proto::Message;

use super::Driver;
use super::session::{Session, lower, tag_of};
use crate::store::{Store, StoreError};

/// CHATHISTORY lines asked for when the server does not say its maximum.
pub(super) const DEFAULT_HISTORY_LIMIT: usize = 100;

/// Message IDs remembered to tell a replayed line from one already seen live.
const RECENT_IDS: usize = 512;

/// Server time of the last line seen in each channel. Outlives connections; the driver
/// stores it once a second and after each connection.
#[derive(Debug, Default)]
pub(super) struct LastSeen {
    /// By lower-cased channel.
    pub(super) times: HashMap<String, DateTime<Utc>>,
    /// Channels whose time changed since it was last stored.
    dirty: HashSet<String>,
}

impl LastSeen {
    pub(super) fn saw(&mut self, chan: &str, at: DateTime<Utc>) {
        let chan = lower(chan);
        let newer = self.times.get(&chan).is_none_or(|t| *t < at);
        if newer {
            self.times.insert(chan.clone(), at);
            self.dirty.insert(chan);
        }
    }

    /// The rows to store for the times that changed: (meta key, RFC 3339 time).
    pub(super) fn take_dirty(&mut self, network: &str) -> Vec<(String, String)> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|chan| {
                let t = self.times.get(&chan)?;
                Some((
                    key(network, &chan),
                    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                ))
            })
            .collect()
    }
}

fn key(network: &str, chan: &str) -> String {
    format!("irc.last_seen/{network}/{}", lower(chan))
}

/// Reads the stored times of `channels` (blocking).
pub(super) fn read_stored(
    store: &Store,
    network: &str,
    channels: &[String],
) -> Vec<(String, DateTime<Utc>)> {
    channels
        .iter()
        .filter_map(|chan| match store.meta(&key(network, chan)) {
            Ok(v) => v
                .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
                .map(|t| (lower(chan), t.with_timezone(&Utc))),
            Err(e) => {
                tracing::warn!(error = %e, "last seen time unreadable");
                None
            }
        })
        .collect()
}

/// Writes rows from [`LastSeen::take_dirty`] (blocking).
pub(super) fn write_stored(store: &Store, rows: Vec<(String, String)>) -> Result<(), StoreError> {
    for (k, v) in rows {
        store.set_meta(&k, &v)?;
    }
    Ok(())
}

impl Driver {
    /// Reads the last seen times of the configured channels.
    pub(super) async fn load_last_seen(&mut self) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let network = self.cfg.name.clone();
        let channels: Vec<String> = self.cfg.channels.iter().map(|c| c.name.clone()).collect();
        let loaded = tokio::task::spawn_blocking(move || read_stored(&store, &network, &channels))
            .await
            .unwrap_or_default();
        self.seen.times.extend(loaded);
    }

    /// Stores the last seen times that changed. A crash loses at most the last second's
    /// worth, which the catch-up then relays a second time.
    pub(super) async fn flush_last_seen(&mut self) {
        let rows = self.seen.take_dirty(&self.cfg.name);
        let Some(store) = self.store.clone() else {
            return;
        };
        if rows.is_empty() {
            return;
        }
        let stored = tokio::task::spawn_blocking(move || write_stored(&store, rows)).await;
        if let Ok(Err(e)) = stored {
            tracing::warn!(error = %e, "last seen times not stored");
        }
    }
}

impl Session {
    /// Asks for what was said in `chan` while the bot was away, when the server keeps
    /// history and the bot has been there before; never further back than `staleness`.
    pub(super) fn request_history(&mut self, chan: &str, seen: &LastSeen) {
        if !self.caps.contains("draft/chathistory") {
            return;
        }
        let Some(last) = seen.times.get(&lower(chan)).copied() else {
            return;
        };
        let window = chrono::TimeDelta::from_std(self.cfg.staleness).unwrap_or_default();
        let since = last.max(Utc::now() - window);
        self.catching_up.insert(lower(chan), since);
        self.queue(format!(
            "CHATHISTORY AFTER {chan} timestamp={} {}",
            since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            self.history_limit
        ));
    }

    /// A BATCH opens (`+ref type params`) or closes (`-ref`); a closing CHATHISTORY batch
    /// ends its channel's catch-up.
    pub(super) fn on_batch(
        &mut self,
        reference: &str,
        kind: Option<String>,
        params: Option<&[String]>,
    ) {
        if let Some(r) = reference.strip_prefix('+') {
            let params = params.map(<[String]>::to_vec).unwrap_or_default();
            self.batches
                .insert(r.to_owned(), (kind.unwrap_or_default(), params));
        } else if let Some(r) = reference.strip_prefix('-')
            && let Some((kind, params)) = self.batches.remove(r)
            && kind == "CHATHISTORY"
            && let Some(chan) = params.first()
        {
            self.catching_up.remove(&lower(chan));
            tracing::info!(channel = %chan, "caught up through CHATHISTORY");
        }
    }

    pub(super) fn on_history_refused(&mut self, args: &[String]) {
        tracing::warn!(reply = ?args, "CHATHISTORY refused; no catch-up");
        self.catching_up.clear();
    }

    /// Whether a chat line is news: live, or replayed by a catch-up under way, after its
    /// start and not already seen live. Remembers the line's ID.
    pub(super) fn is_news(
        &mut self,
        msg: &Message,
        target: &str,
        sent_at: Option<DateTime<Utc>>,
        id: Option<&String>,
    ) -> bool {
        if self.in_batch(msg, "CHATHISTORY") {
            let Some(since) = self.catching_up.get(&lower(target)).copied() else {
                return false;
            };
            let seen = id.is_some_and(|i| self.recent_ids.contains(i));
            if seen || sent_at.is_none_or(|t| t <= since) {
                return false;
            }
        }
        if let Some(i) = id {
            if self.recent_ids.len() >= RECENT_IDS {
                self.recent_ids.pop_front();
            }
            self.recent_ids.push_back(i.clone());
        }
        true
    }

    /// The type and parameters of the BATCH a line belongs to.
    pub(super) fn batch_of(&self, msg: &Message) -> Option<(&str, &[String])> {
        let r = tag_of(msg, "batch")?;
        self.batches
            .get(&r)
            .map(|(kind, params)| (kind.as_str(), params.as_slice()))
    }

    pub(super) fn in_batch(&self, msg: &Message, kind: &str) -> bool {
        self.batch_of(msg).is_some_and(|(k, _)| k == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_rig::rig;
    use crate::core::Event;
    use crate::store::Store;
    use chrono::Utc;

    #[test]
    fn chathistory_catches_up_from_the_stored_last_seen_time_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t0 = Utc::now() - chrono::TimeDelta::minutes(2);
        let at = |secs: i64| {
            (t0 + chrono::TimeDelta::seconds(secs))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        let caps = ["draft/chathistory", "batch", "server-time", "message-tags"];

        // A first run sees a line, stores its time, and stops.
        let mut r = rig("");
        r.driver.store = Some(store.clone());
        r.registered(&caps);
        r.feed(&format!(
            "@time={};msgid=m0 :alice!a@h PRIVMSG #sig :before the downtime",
            at(0)
        ));
        assert_eq!(r.next_text(), "before the downtime");
        r.store_last_seen();

        // The next run asks for what came after it when it joins.
        let mut r = rig("");
        r.driver.store = Some(store);
        r.load_last_seen();
        r.registered(&caps);
        r.feed(":srv 005 sigbot CHATHISTORY=50 :are supported");
        r.feed(":sigbot!s@h JOIN #sig");
        assert_eq!(
            r.queued(),
            [format!("CHATHISTORY AFTER #sig timestamp={} 50", at(0))]
        );
        // A line arrives live before the server answers.
        r.feed(&format!(
            "@time={};msgid=m3 :bob!b@h PRIVMSG #sig :live",
            at(3)
        ));
        r.feed(":srv BATCH +h1 chathistory #sig");
        for (t, id, text) in [
            (0, "m0", "before the downtime"),
            (1, "m1", "missed one"),
            (2, "m2", "missed two"),
            (3, "m3", "live"),
        ] {
            r.feed(&format!(
                "@batch=h1;time={};msgid={id} :alice!a@h PRIVMSG #sig :{text}",
                at(t)
            ));
        }
        r.feed(&format!("@batch=h1;time={} :alice!a@h JOIN #sig", at(1)));
        r.feed(":srv BATCH -h1");
        let mut got = Vec::new();
        while let Ok(ev) = r.events.try_recv() {
            match ev {
                Event::Message(m) => got.push(m.text),
                Event::NetworkState { .. } => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, ["live", "missed one", "missed two"]);
        assert!(r.session.catching_up.is_empty());
        // A replay nobody asked for is not relayed.
        r.feed(":srv BATCH +h2 chathistory #sig");
        r.feed(&format!(
            "@batch=h2;time={};msgid=m9 :alice!a@h PRIVMSG #sig :again",
            at(9)
        ));
        assert!(r.events.try_recv().is_err());
    }

    #[test]
    fn without_a_stored_time_or_the_capability_no_history_is_asked_for() {
        let mut r = rig("");
        r.registered(&["batch", "server-time"]);
        r.driver
            .seen
            .times
            .insert("#sig".into(), Utc::now() - chrono::TimeDelta::minutes(1));
        r.feed(":sigbot!s@h JOIN #sig");
        assert!(r.queued().iter().all(|l| !l.starts_with("CHATHISTORY")));
        let mut r = rig("");
        r.registered(&["draft/chathistory"]);
        r.feed(":sigbot!s@h JOIN #sig");
        assert!(r.queued().iter().all(|l| !l.starts_with("CHATHISTORY")));
    }
}
