//! systemd's notification protocol (`Type=notify`, through sd-notify): `READY=1` once every
//! network is started and the web site listens, `STATUS=` with a one-line summary whenever it
//! changes, `WATCHDOG=1` from the core task's heartbeat when `WatchdogSec=` is set, and
//! `STOPPING=1` when the bot stops. Without `$NOTIFY_SOCKET` (not run by systemd) nothing is
//! sent.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use crate::core::LinkState;
use crate::web::Health;

/// Sends `states` to the service manager, if there is one.
fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

/// The bot is stopping: its queued work is being finished.
pub(super) fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// What the core task tells the service manager: the status line, and the heartbeat.
pub(super) struct Notifier {
    web: Option<SocketAddr>,
    status: String,
    /// Half of `WatchdogSec=`, as systemd advises; `None` without a watchdog.
    beat_every: Option<Duration>,
    last_beat: Option<Instant>,
}

impl Notifier {
    pub(super) fn new(web: Option<SocketAddr>) -> Self {
        Notifier {
            web,
            status: String::new(),
            beat_every: sd_notify::watchdog_enabled().map(|d| d / 2),
            last_beat: None,
        }
    }

    /// Every network is started and the web site listens: `READY=1` with the first status.
    pub(super) fn ready(&mut self, health: &Health) {
        self.status = status_line(health, self.web);
        send(&[NotifyState::Ready, NotifyState::Status(&self.status)]);
    }

    /// Sends the status line again if it changed (a network connected or went down).
    pub(super) fn refresh(&mut self, health: &Health) {
        let status = status_line(health, self.web);
        if status != self.status {
            send(&[NotifyState::Status(&status)]);
            self.status = status;
        }
    }

    /// The core task handled a tick: `WATCHDOG=1`, at most every half watchdog period.
    pub(super) fn heartbeat(&mut self) {
        let Some(every) = self.beat_every else { return };
        if self.last_beat.is_none_or(|t| t.elapsed() >= every) {
            send(&[NotifyState::Watchdog]);
            self.last_beat = Some(Instant::now());
        }
    }
}

/// One line: how many networks are connected, which are not and how they are, and the web
/// site, e.g. `2/3 networks connected (libera reconnecting); web site on 127.0.0.1:8080`.
fn status_line(health: &Health, web: Option<SocketAddr>) -> String {
    let networks = health.snapshot();
    let connected = networks
        .values()
        .filter(|n| n.state == LinkState::Connected)
        .count();
    let others: Vec<String> = networks
        .iter()
        .filter(|(_, n)| n.state != LinkState::Connected)
        .map(|(name, n)| format!("{name} {}", n.state))
        .collect();
    let mut line = format!("{connected}/{} networks connected", networks.len());
    if !others.is_empty() {
        line.push_str(&format!(" ({})", others.join(", ")));
    }
    match web {
        Some(addr) => line.push_str(&format!("; web site on {addr}")),
        None => line.push_str("; no web site"),
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_counts_networks_and_names_those_not_connected() {
        let health = Health::default();
        health.set("console", "console", LinkState::Connected, 0);
        health.set("libera", "irc", LinkState::Reconnecting, 3);
        health.set("local", "mqtt", LinkState::Starting, 0);
        assert_eq!(
            status_line(&health, Some(SocketAddr::from(([127, 0, 0, 1], 8080)))),
            "1/3 networks connected (libera reconnecting, local starting); web site on 127.0.0.1:8080"
        );
        health.update("libera", LinkState::Connected, 0);
        health.update("local", LinkState::Connected, 0);
        assert_eq!(
            status_line(&health, None),
            "3/3 networks connected; no web site"
        );
    }
}
