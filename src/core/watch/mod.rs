//! Package-update alerts (`[[watch]]`): when a package's version upstream is
//! newer than ours by rpm's ordering, the watch's rooms hear about it, once per upstream
//! version.
//!
//! Pure like the rest of the core. The watch task (`src/app/watch.rs`) asks [`Schedule`] which
//! watches are due (on their poll interval, or because a matching MQTT event arrived), looks
//! both versions up, and hands them with the set of alerts already sent (kept in the store,
//! so that a restart does not repeat them) to [`decide`].

use crate::core::commands::excerpt;
use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};

use super::event::RoomRef;
use super::package::{PackageVersion, display_evr, is_newer};
use super::relay::TopicFilter;

pub mod spec;
pub use spec::{PackageSource, WatchSpec};

/// What identifies one alert: a watch, a package and the upstream version it announced.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertKey {
    pub watch: String,
    pub package: String,
    /// Upstream's `epoch:version-release`.
    pub upstream: String,
}

/// An alert to post to `to`, and to remember as `key` in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub key: AlertKey,
    pub text: String,
    pub to: Vec<RoomRef>,
}

/// The key under which an upstream version is remembered. The EVR is rebuilt from its parts,
/// so that a missing epoch and `0` name the same version.
pub fn alert_key(watch: &str, package: &str, upstream: &PackageVersion) -> AlertKey {
    let epoch = if upstream.epoch.is_empty() {
        "0"
    } else {
        upstream.epoch.as_str()
    };
    AlertKey {
        watch: watch.to_owned(),
        package: package.to_owned(),
        upstream: format!("{epoch}:{}-{}", upstream.version, upstream.release),
    }
}

/// The alert for one package of `watch`, if upstream is newer than ours and this upstream
/// version was not announced before. A package missing on either side gives no alert: there
/// is nothing to compare.
pub fn decide(
    watch: &WatchSpec,
    package: &str,
    ours: Option<&PackageVersion>,
    upstream: Option<&PackageVersion>,
    alerted: &HashSet<AlertKey>,
) -> Option<Alert> {
    let (ours, upstream) = (ours?, upstream?);
    if !is_newer(upstream, ours) {
        return None;
    }
    let key = alert_key(&watch.name, package, upstream);
    if alerted.contains(&key) {
        return None;
    }
    Some(Alert {
        // Versions come from remote repositories: an excerpt keeps the alert one short
        // line, whatever a hostile repository answers.
        text: format!(
            "{package}: upstream {} is newer than ours {} ({})",
            excerpt(&display_evr(upstream)),
            excerpt(&display_evr(ours)),
            watch.name
        ),
        key,
        to: watch.to.clone(),
    })
}

/// When each watch is checked next: at start, then every `poll`; a check that an MQTT event
/// triggered restarts the interval.
#[derive(Debug)]
pub struct Schedule {
    entries: Vec<(TimeDelta, DateTime<Utc>)>,
}

impl Schedule {
    /// Every watch is due at `now`: a start checks at once.
    pub fn new(watches: &[WatchSpec], now: DateTime<Utc>) -> Schedule {
        let entries = watches
            .iter()
            .map(|w| {
                (
                    TimeDelta::from_std(w.poll).unwrap_or(TimeDelta::hours(1)),
                    now,
                )
            })
            .collect();
        Schedule { entries }
    }

    /// The indexes of the watches due at `now`; each is next due one interval later.
    pub fn due(&mut self, now: DateTime<Utc>) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, (every, next)) in self.entries.iter_mut().enumerate() {
            if *next <= now {
                *next = now + *every;
                out.push(i);
            }
        }
        out
    }

    /// Watch `i` was checked at `now` for another reason: its next poll is one interval on.
    pub fn checked(&mut self, i: usize, now: DateTime<Utc>) {
        if let Some((every, next)) = self.entries.get_mut(i) {
            *next = now + *every;
        }
    }

    /// The earliest time a watch is due, if there is any watch.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.entries.iter().map(|(_, next)| *next).min()
    }
}

/// Which MQTT events trigger which watches (their `on` filters, on their `from` connection
/// or any).
#[derive(Debug, Default)]
pub struct Triggers {
    watches: Vec<(Option<String>, Vec<TopicFilter>)>,
}

impl Triggers {
    pub fn new(watches: &[WatchSpec]) -> Triggers {
        let watches = watches
            .iter()
            .map(|w| {
                let filters =
                    w.on.iter()
                        // Checked when the config was read.
                        .filter_map(|f| TopicFilter::parse(f).ok())
                        .collect();
                (w.from.clone(), filters)
            })
            .collect();
        Triggers { watches }
    }

    /// Whether no watch listens to MQTT at all.
    pub fn is_empty(&self) -> bool {
        self.watches.iter().all(|(_, f)| f.is_empty())
    }

    /// The indexes of the watches that a message on `topic` from connection `network` triggers.
    pub fn matching(&self, network: &str, topic: &str) -> Vec<usize> {
        self.watches
            .iter()
            .enumerate()
            .filter(|(_, (from, filters))| {
                from.as_deref().is_none_or(|f| f == network)
                    && filters.iter().any(|f| f.matches(topic))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The topic filters to subscribe to on MQTT connection `network`, without repeats.
    pub fn filters_for(&self, network: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (from, filters) in &self.watches {
            if from.as_deref().is_some_and(|f| f != network) {
                continue;
            }
            for f in filters {
                if !out.iter().any(|o| o == f.as_str()) {
                    out.push(f.as_str().to_owned());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeZone as _;

    use super::*;

    use crate::core::package::pv;

    fn watch(on: &[&str], from: Option<&str>) -> WatchSpec {
        WatchSpec {
            name: "c9s-hyperscale".into(),
            packages: vec!["systemd".into()],
            ours: PackageSource::Repodata {
                url: "http://ours.example/".into(),
            },
            upstream: PackageSource::Koji {
                hub: "http://koji.example/kojihub".into(),
                tag: "c9s-candidate".into(),
            },
            to: vec![RoomRef::new("libera", "#hs")],
            poll: Duration::from_secs(3600),
            on: on.iter().map(|s| (*s).to_owned()).collect(),
            from: from.map(str::to_owned),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_newer_upstream_gives_one_alert_with_both_versions() {
        let w = watch(&[], None);
        let alert = decide(
            &w,
            "systemd",
            Some(&pv("0", "255", "3.el9")),
            Some(&pv("0", "256", "1.el9")),
            &HashSet::new(),
        )
        .unwrap();
        assert_eq!(
            alert.text,
            "systemd: upstream 256-1.el9 is newer than ours 255-3.el9 (c9s-hyperscale)"
        );
        assert_eq!(alert.to, vec![RoomRef::new("libera", "#hs")]);

        // A hostile repository's release: many words over many lines.
        let hostile = format!(
            "1.el9 {}\nalice bob carol dave erin frank",
            "x ".repeat(5_000)
        );
        let long = decide(
            &w,
            "systemd",
            Some(&pv("0", "255", "3.el9")),
            Some(&pv("0", "256", &hostile)),
            &HashSet::new(),
        )
        .unwrap();
        assert!(!long.text.contains('\n'), "{}", long.text);
        assert!(long.text.chars().count() < 150, "{}", long.text);
        assert!(!long.text.contains("alice"), "{}", long.text);
        assert_eq!(
            alert.key,
            AlertKey {
                watch: "c9s-hyperscale".into(),
                package: "systemd".into(),
                upstream: "0:256-1.el9".into(),
            }
        );
    }

    #[test]
    fn an_announced_version_is_not_announced_again_but_a_newer_one_is() {
        let w = watch(&[], None);
        let ours = pv("0", "255", "3.el9");
        let first = pv("0", "256", "1.el9");
        let alerted: HashSet<AlertKey> = [alert_key("c9s-hyperscale", "systemd", &first)].into();
        assert_eq!(
            decide(&w, "systemd", Some(&ours), Some(&first), &alerted),
            None
        );
        // The same version with the epoch left out is the same version.
        assert_eq!(
            decide(
                &w,
                "systemd",
                Some(&ours),
                Some(&pv("", "256", "1.el9")),
                &alerted
            ),
            None
        );
        let second = decide(
            &w,
            "systemd",
            Some(&ours),
            Some(&pv("0", "256", "2.el9")),
            &alerted,
        )
        .unwrap();
        assert_eq!(second.key.upstream, "0:256-2.el9");
        assert!(second.text.contains("upstream 256-2.el9"));
    }

    #[test]
    fn older_equal_or_missing_versions_give_no_alert() {
        let w = watch(&[], None);
        let none = HashSet::new();
        let ours = pv("0", "256", "1.el9");
        assert_eq!(decide(&w, "systemd", Some(&ours), Some(&ours), &none), None);
        let older = pv("0", "255", "9.el9");
        assert_eq!(
            decide(&w, "systemd", Some(&ours), Some(&older), &none),
            None
        );
        assert_eq!(decide(&w, "systemd", None, Some(&ours), &none), None);
        assert_eq!(decide(&w, "systemd", Some(&ours), None, &none), None);
    }

    #[test]
    fn watches_are_due_at_start_then_every_interval() {
        let mut s = Schedule::new(&[watch(&[], None)], now());
        assert_eq!(s.due(now()), vec![0]);
        assert!(s.due(now() + TimeDelta::minutes(59)).is_empty());
        assert_eq!(s.next_due(), Some(now() + TimeDelta::hours(1)));
        assert_eq!(s.due(now() + TimeDelta::hours(1)), vec![0]);
    }

    #[test]
    fn matching_mqtt_events_trigger_a_check() {
        let watches = [
            watch(&["cbs-signing/#"], None),
            watch(&["koji/tag/+", "cbs-signing/#"], Some("cbs")),
            watch(&[], None),
        ];
        let t = Triggers::new(&watches);
        assert!(!t.is_empty());
        assert_eq!(t.matching("centos", "cbs-signing/1"), vec![0]);
        assert_eq!(t.matching("cbs", "cbs-signing/1"), vec![0, 1]);
        assert!(t.matching("centos", "koji/tag/c9s").is_empty());
        assert_eq!(t.matching("cbs", "koji/tag/c9s"), vec![1]);
        assert!(t.matching("cbs", "git.centos.org/git.receive").is_empty());
        assert_eq!(t.filters_for("centos"), vec!["cbs-signing/#"]);
        assert_eq!(t.filters_for("cbs"), vec!["cbs-signing/#", "koji/tag/+"]);
        assert!(Triggers::new(&[watch(&[], None)]).is_empty());
    }

    #[test]
    fn a_triggered_check_restarts_the_interval() {
        let mut s = Schedule::new(&[watch(&["x/#"], None)], now());
        s.due(now());
        let later = now() + TimeDelta::minutes(5);
        s.checked(0, later);
        assert!(s.due(now() + TimeDelta::hours(1)).is_empty());
        assert_eq!(s.next_due(), Some(later + TimeDelta::hours(1)));
    }
}
