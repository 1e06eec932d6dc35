//! The watch task: looks up both sides of every `[[watch]]` (repodata or Koji) when the
//! [`Schedule`] says so or a matching MQTT event arrives, lets [`decide`] pick the alerts,
//! and queues them through the outbox together with the record that they were sent.
//!
//! One task checks the watches one after the other; a lookup that fails is logged and the
//! package is tried again at the next check.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::supervise::blocking;
use crate::core::PackageVersion;
use crate::core::watch::{Alert, Schedule, decide};
use crate::core::watch::{PackageSource, WatchSpec};
use crate::lookup::{koji, repodata};
use crate::outbox::Outbox;
use crate::store::Store;

/// How long one lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Watcher {
    watches: Vec<WatchSpec>,
    client: reqwest::Client,
    repos: Arc<repodata::Cache>,
    store: Store,
    outbox: Outbox,
}

impl Watcher {
    pub fn new(
        watches: Vec<WatchSpec>,
        store: Store,
        outbox: Outbox,
    ) -> Result<Watcher, reqwest::Error> {
        let client = crate::http_client(Some(LOOKUP_TIMEOUT))?;
        Ok(Watcher {
            watches,
            client,
            repos: Arc::default(),
            store,
            outbox,
        })
    }

    /// Checks every watch at start and then on its interval, and the watches whose indexes
    /// arrive on `triggered` (from matching MQTT events), until shutdown.
    pub async fn run(self, triggered: mpsc::Receiver<usize>, shutdown: CancellationToken) {
        let mut triggered = Some(triggered);
        let mut schedule = Schedule::new(&self.watches, Utc::now());
        loop {
            for i in schedule.due(Utc::now()) {
                self.check_guarded(i, "poll", &shutdown).await;
            }
            let wait = schedule
                .next_due()
                .and_then(|t| (t - Utc::now()).to_std().ok())
                .unwrap_or(Duration::ZERO);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
                got = next_trigger(&mut triggered) => match got {
                    Some(i) => {
                        schedule.checked(i, Utc::now());
                        self.check_guarded(i, "mqtt", &shutdown).await;
                    }
                    // Nobody sends triggers any more: keep polling.
                    None => triggered = None,
                },
            }
        }
    }

    async fn check_guarded(&self, i: usize, reason: &'static str, shutdown: &CancellationToken) {
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = self.check(i, reason) => {}
        }
    }

    /// Looks up every package of watch `i` and queues the alerts it calls for.
    async fn check(&self, i: usize, reason: &'static str) {
        let Some(w) = self.watches.get(i) else { return };
        let (store, name) = (self.store.clone(), w.name.clone());
        let alerted = match blocking(move || store.watch_alerts(&name)).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(watch = %w.name, error = %e, "cannot read the alerts already sent; check skipped");
                return;
            }
        };
        let mut alerts: Vec<Alert> = Vec::new();
        let mut failed = 0usize;
        for package in &w.packages {
            let ours = self.lookup(&w.ours, package).await;
            let upstream = self.lookup(&w.upstream, package).await;
            let (ours, upstream) = match (ours, upstream) {
                (Ok(o), Ok(u)) => (o, u),
                (o, u) => {
                    failed += 1;
                    let error = o.err().or(u.err()).unwrap_or_default();
                    tracing::warn!(watch = %w.name, package, %error, "package lookup failed; tried again at the next check");
                    continue;
                }
            };
            tracing::debug!(watch = %w.name, package, ours = ours.as_ref().map(|p| p.evr.as_str()), upstream = upstream.as_ref().map(|p| p.evr.as_str()), "versions");
            if let Some(a) = decide(w, package, ours.as_ref(), upstream.as_ref(), &alerted) {
                alerts.push(a);
            }
        }
        let sent = alerts.len();
        let outbox = self.outbox.clone();
        let (alerts, stored) = blocking(move || {
            let stored = outbox.put_alerts(&alerts, Utc::now());
            (alerts, stored)
        })
        .await;
        if let Err(e) = stored {
            tracing::error!(watch = %w.name, error = %e, "alerts not stored; tried again at the next check");
            return;
        }
        for a in &alerts {
            tracing::info!(watch = %w.name, package = %a.key.package, upstream = %a.key.upstream, "package update alert queued");
        }
        tracing::info!(watch = %w.name, reason, packages = w.packages.len(), failed, alerts = sent, "watch checked");
    }

    async fn lookup(
        &self,
        source: &PackageSource,
        package: &str,
    ) -> Result<Option<PackageVersion>, String> {
        match source {
            PackageSource::Repodata { url } => {
                repodata::newest(&self.client, &self.repos, url, package)
                    .await
                    .map_err(|e| format!("{source}: {e}"))
            }
            PackageSource::Koji { hub, tag } => {
                let kwargs = serde_json::json!({ "package": package, "__starstar": true });
                let params = [serde_json::Value::String(tag.clone()), kwargs];
                let builds = koji::call(&self.client, hub, "getLatestBuilds", &params)
                    .await
                    .map_err(|e| format!("{source}: {e}"))?;
                latest_build(&builds)
            }
        }
    }
}

/// The next triggered watch; never, once the senders are gone.
async fn next_trigger(rx: &mut Option<mpsc::Receiver<usize>>) -> Option<usize> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The version of the first build in a `getLatestBuilds` answer (Koji lists one build per
/// package, the newest); `None` for an empty list.
pub fn latest_build(v: &serde_json::Value) -> Result<Option<PackageVersion>, String> {
    let Some(builds) = v.as_array() else {
        return Err("getLatestBuilds did not answer with a list".into());
    };
    let Some(b) = builds.first() else {
        return Ok(None);
    };
    let text = |k: &str| match &b[k] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let (Some(name), Some(version), Some(release)) =
        (text("name"), text("version"), text("release"))
    else {
        return Err("a build without name, version or release".into());
    };
    // Koji sends `<nil/>` for a build without an epoch.
    let epoch = text("epoch").unwrap_or_else(|| "0".into());
    Ok(Some(PackageVersion {
        evr: format!("{epoch}:{version}-{release}"),
        name,
        epoch,
        version,
        release,
        arch: "src".into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_koji_build_gives_its_version_and_a_nil_epoch_is_zero() {
        let v = serde_json::json!([{
            "name": "systemd", "version": "256", "release": "1.el9", "epoch": null,
            "nvr": "systemd-256-1.el9"
        }]);
        let p = latest_build(&v).unwrap().unwrap();
        assert_eq!(p.evr, "0:256-1.el9");
        assert_eq!(p.version, "256");
        let v = serde_json::json!([{ "name": "x", "version": "1", "release": "2", "epoch": 3 }]);
        assert_eq!(latest_build(&v).unwrap().unwrap().evr, "3:1-2");
        assert_eq!(latest_build(&serde_json::json!([])).unwrap(), None);
        assert!(latest_build(&serde_json::json!({"a": 1})).is_err());
        assert!(latest_build(&serde_json::json!([{"name": "x"}])).is_err());
    }
}
