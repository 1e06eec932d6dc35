//! `[[watch]]`: packages whose versions are compared between us and upstream.

use std::collections::BTreeSet;
use std::time::Duration;

use toml::Spanned;

use super::Checker;
use crate::config::locate::SECTION_NAME;
use crate::config::raw::{RawPackageSource, RawWatch};
use crate::config::{ConfigError, NetworkKind};
use crate::core::relay::TopicFilter;
use crate::core::watch::{PackageSource, WatchSpec};

impl Checker<'_> {
    pub(super) fn watches(&self, raw: &[RawWatch]) -> Result<Vec<WatchSpec>, ConfigError> {
        let mut names = BTreeSet::new();
        raw.iter().map(|w| self.watch(w, &mut names)).collect()
    }

    fn watch(&self, w: &RawWatch, names: &mut BTreeSet<String>) -> Result<WatchSpec, ConfigError> {
        let loc = &self.loc;
        let name = loc.name(&w.name, &SECTION_NAME, "watch name ")?;
        if !names.insert(name.clone()) {
            return Err(loc.span(&w.name, format!("watch {name:?} is defined twice")));
        }
        let packages = self.packages(&w.packages)?;
        if w.to.is_empty() {
            return Err(loc.span_key(&w.name, "to", "name at least one room to alert"));
        }
        let poll = self.duration(&w.poll, "poll", Duration::from_secs(3600))?;
        if let Some(p) = &w.poll
            && poll < Duration::from_secs(1)
        {
            return Err(loc.span_key(p, "poll", "must be at least 1s"));
        }
        let on = self.on_filters(w)?;
        Ok(WatchSpec {
            name,
            packages,
            ours: self.package_source(&w.ours, "ours")?,
            upstream: self.package_source(&w.upstream, "upstream")?,
            to: self.chat_rooms(&w.to)?,
            poll,
            on,
            from: w.from.as_ref().map(|f| f.get_ref().clone()),
        })
    }

    /// At least one package, each an RPM package name.
    fn packages(&self, raw: &Spanned<Vec<Spanned<String>>>) -> Result<Vec<String>, ConfigError> {
        if raw.get_ref().is_empty() {
            return Err(self
                .loc
                .span_key(raw, "packages", "name at least one package"));
        }
        let mut packages = Vec::new();
        for p in raw.get_ref() {
            let ok = !p.get_ref().is_empty()
                && p.get_ref()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
            if !ok {
                return Err(self.loc.span_key(
                    p,
                    "packages",
                    format!("{:?} is not an RPM package name", p.get_ref()),
                ));
            }
            packages.push(p.get_ref().clone());
        }
        Ok(packages)
    }

    /// The MQTT topic filters that trigger a check between polls, and the connection they
    /// are heard on (`from`, or any).
    fn on_filters(&self, w: &RawWatch) -> Result<Vec<String>, ConfigError> {
        let loc = &self.loc;
        let mut on = Vec::new();
        if let Some(filters) = &w.on {
            for f in &filters.get_ref().0 {
                // A lone string carries no span of its own: point at the value.
                let at = if f.span().is_empty() {
                    filters.span().start
                } else {
                    f.span().start
                };
                TopicFilter::parse(f.get_ref()).map_err(|e| loc.at(at, format!("on: {e}")))?;
                on.push(f.get_ref().clone());
            }
        }
        if let Some(from) = &w.from
            && self.networks.get(from.get_ref()) != Some(&NetworkKind::Mqtt)
        {
            return Err(loc.span_key(
                from,
                "from",
                format!("no [[mqtt]] connection is named {:?}", from.get_ref()),
            ));
        }
        if !on.is_empty() && !self.networks.values().any(|k| *k == NetworkKind::Mqtt) {
            let at = w.on.as_ref().map_or(0, |o| o.span().start);
            return Err(loc.at(at, "on: there is no [[mqtt]] connection to listen on"));
        }
        Ok(on)
    }

    /// `{ repodata = URL }` or `{ koji = { hub, tag } }` under `key`.
    fn package_source(
        &self,
        raw: &Spanned<RawPackageSource>,
        key: &str,
    ) -> Result<PackageSource, ConfigError> {
        match raw.get_ref() {
            RawPackageSource {
                repodata: Some(url),
                koji: None,
            } => Ok(PackageSource::Repodata {
                url: self.http_url(url, &format!("{key}.repodata"))?,
            }),
            RawPackageSource {
                repodata: None,
                koji: Some(k),
            } => {
                if k.tag.get_ref().trim().is_empty() {
                    return Err(self
                        .loc
                        .span_key(&k.tag, &format!("{key}.koji.tag"), "empty tag"));
                }
                Ok(PackageSource::Koji {
                    hub: self.http_url(&k.hub, &format!("{key}.koji.hub"))?,
                    tag: k.tag.get_ref().clone(),
                })
            }
            _ => Err(self.loc.span_key(
                raw,
                key,
                "give exactly one of { repodata = \"<URL>\" } or { koji = { hub = \"<URL>\", tag = \"<tag>\" } }",
            )),
        }
    }

    fn http_url(&self, s: &Spanned<String>, key: &str) -> Result<String, ConfigError> {
        match reqwest::Url::parse(s.get_ref()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(s.get_ref().clone()),
            _ => Err(self.loc.span_key(
                s,
                key,
                format!("{:?} is not an http:// or https:// URL", s.get_ref()),
            )),
        }
    }
}
