//! `[[relay]]`: MQTT events relayed to chat rooms.

use std::time::Duration;

use toml::Spanned;

use super::Checker;
use crate::config::raw::RawRelay;
use crate::config::{ConfigError, NetworkKind};
use crate::core::relay::{Relay, RelaySpec, TopicFilter};

impl Checker<'_> {
    pub(super) fn relays(&self, raw: &[RawRelay]) -> Result<Vec<RelaySpec>, ConfigError> {
        raw.iter()
            .enumerate()
            .map(|(i, r)| self.relay(i, r))
            .collect()
    }

    /// The `i`-th relay, which is named `relay<i+1>` unless it has a name.
    fn relay(&self, i: usize, r: &RawRelay) -> Result<RelaySpec, ConfigError> {
        let loc = &self.loc;
        match self.networks.get(r.from.get_ref()) {
            Some(NetworkKind::Mqtt) => {}
            Some(_) => {
                return Err(loc.span(
                    &r.from,
                    format!("relay from {:?}: not an MQTT connection", r.from.get_ref()),
                ));
            }
            None => {
                return Err(loc.span(
                    &r.from,
                    format!(
                        "relay from {:?}: no [[mqtt]] connection has that name",
                        r.from.get_ref()
                    ),
                ));
            }
        }
        TopicFilter::parse(r.topic.get_ref()).map_err(|e| loc.span(&r.topic, e))?;
        if let Some(m) = &r.max_per_minute
            && *m.get_ref() == 0
        {
            return Err(loc.span(m, "max_per_minute must be at least 1"));
        }
        let text = |s: &Option<Spanned<String>>| s.as_ref().map(|s| s.get_ref().clone());
        let relay = RelaySpec {
            name: r.name.clone().unwrap_or_else(|| format!("relay{}", i + 1)),
            from: r.from.get_ref().clone(),
            topic: r.topic.get_ref().clone(),
            when: text(&r.when),
            template: r.template.get_ref().clone(),
            html_template: text(&r.html_template),
            to: self.chat_rooms(&r.to)?,
            max_per_minute: r.max_per_minute.as_ref().map(|m| *m.get_ref()),
            dedup_key: text(&r.dedup_key),
            dedup_window: self.duration(
                &r.dedup_window,
                "dedup_window",
                Duration::from_secs(3600),
            )?,
            digest_label: text(&r.digest_label),
        };
        self.compile_templates(r, &relay)?;
        Ok(relay)
    }

    /// Templates that do not compile are config errors, at the template's location.
    fn compile_templates(&self, r: &RawRelay, relay: &RelaySpec) -> Result<(), ConfigError> {
        let Err(e) = Relay::new(std::slice::from_ref(relay)) else {
            return Ok(());
        };
        let span = match e.part {
            "when" => r.when.as_ref(),
            "html_template" => r.html_template.as_ref(),
            "dedup_key" => r.dedup_key.as_ref(),
            "digest_label" => r.digest_label.as_ref(),
            _ => None,
        }
        .map_or(r.template.span(), |s| s.span());
        Err(self.loc.at(span.start, e.to_string()))
    }
}
