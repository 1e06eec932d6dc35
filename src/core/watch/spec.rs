//! A watch's spec, built by the config checker and read by the schedule and the watcher.

use std::fmt;
use std::time::Duration;

use crate::core::event::RoomRef;

/// A `[[watch]]`: packages whose upstream version is compared with ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSpec {
    pub name: String,
    pub packages: Vec<String>,
    pub ours: PackageSource,
    pub upstream: PackageSource,
    pub to: Vec<RoomRef>,
    /// How often both sides are looked up (default 1 hour).
    pub poll: Duration,
    /// MQTT topic filters whose events trigger a check at once.
    pub on: Vec<String>,
    /// The `[[mqtt]]` connection those events come from; `None`: any.
    pub from: Option<String>,
}

/// Where a package's version is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageSource {
    /// An RPM repository's base URL (the directory holding `repodata/`).
    Repodata { url: String },
    /// The latest build of the package in a Koji tag.
    Koji { hub: String, tag: String },
}

impl fmt::Display for PackageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackageSource::Repodata { url } => write!(f, "repodata {url}"),
            PackageSource::Koji { hub, tag } => write!(f, "koji {hub} tag {tag}"),
        }
    }
}
