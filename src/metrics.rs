//! The bot's Prometheus metrics (DESIGN §12 "Metrics"): one registry, written to by the
//! layers where things pass (adapters, outbox, app), and read by `/metrics` as OpenMetrics
//! text. What only a scrape needs (resident memory, open descriptors, the database's size)
//! is read then, from `/proc/self` and the data directory.
//!
//! The names follow Prometheus's conventions: `sigbot_` first, the unit in the name
//! (`_seconds`, `_bytes`), counters ending in `_total` (added by the encoder), and the
//! standard `process_*` names for the process.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of [`Metrics::encode_classic`]'s text.
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NetworkLabels {
    pub network: String,
}

/// Why a line or message was given up before it was written.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum DropReason {
    /// It waited longer than its staleness.
    stale,
    /// The outgoing queue was full.
    queue_full,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    pub network: String,
    pub reason: DropReason,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BridgeLabels {
    pub bridge: String,
    /// The network the message was written to.
    pub to: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BridgeOnlyLabels {
    pub bridge: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOutcomeLabels {
    pub route: String,
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    pub command: String,
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupLabels {
    /// `http`, `koji` or `repodata`.
    pub kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    pub version: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Delays from a tenth of a second to about 7 minutes.
fn delay_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 2.0, 13))
}

/// Lookups from 10 ms to about 40 s.
fn lookup_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 13))
}

/// Every metric of the bot. Cheap to clone; every clone writes to the same registry.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

struct Inner {
    registry: Registry,
    pub network_connected: Family<NetworkLabels, Gauge>,
    pub network_reconnects: Family<NetworkLabels, Counter>,
    pub messages_received: Family<NetworkLabels, Counter>,
    pub messages_sent: Family<NetworkLabels, Counter>,
    pub queue_length: Family<NetworkLabels, Gauge>,
    pub dropped: Family<DropLabels, Counter>,
    pub irc_flood_waits: Family<NetworkLabels, Counter>,
    pub bridge_relayed: Family<BridgeLabels, Counter>,
    pub bridge_delay: HistogramFamily<BridgeOnlyLabels>,
    pub outbox_rows: Family<NetworkLabels, Gauge>,
    pub relay_events: Family<RouteOutcomeLabels, Counter>,
    pub relay_digests: Family<RouteLabels, Counter>,
    pub relay_commits: Counter,
    pub relay_committed_events: Counter,
    pub commands: Family<CommandLabels, Counter>,
    pub lookup_duration: HistogramFamily<LookupLabels>,
    pub meetings_active: Gauge,
    pub meeting_lines: Counter,
}

impl Metrics {
    /// A registry with every metric; `db` is the database file whose size a scrape reports,
    /// `started` the bot's start in seconds since the epoch.
    pub fn new(db: Option<PathBuf>, started: f64) -> Metrics {
        let mut r = Registry::default();
        let network_connected = Family::<NetworkLabels, Gauge>::default();
        r.register(
            "sigbot_network_connected",
            "Whether the network's connection is up (1) or not (0)",
            network_connected.clone(),
        );
        let network_reconnects = Family::<NetworkLabels, Counter>::default();
        r.register(
            "sigbot_network_reconnects",
            "Times the network's connection was lost (or could not be made) and the bot began to reconnect",
            network_reconnects.clone(),
        );
        let messages_received = Family::<NetworkLabels, Counter>::default();
        r.register(
            "sigbot_network_messages_received",
            "Chat messages received from the network (the bot's own excepted)",
            messages_received.clone(),
        );
        let messages_sent = Family::<NetworkLabels, Counter>::default();
        r.register(
            "sigbot_network_messages_sent",
            "Chat messages the bot wrote to the network (on IRC: PRIVMSG, NOTICE and RELAYMSG lines)",
            messages_sent.clone(),
        );
        let queue_length = Family::<NetworkLabels, Gauge>::default();
        r.register(
            "sigbot_network_queue_length",
            "Outgoing messages waiting in the network's queue",
            queue_length.clone(),
        );
        let dropped = Family::<DropLabels, Counter>::default();
        r.register(
            "sigbot_network_dropped_lines",
            "Outgoing lines given up before they were written, by reason (stale, queue_full)",
            dropped.clone(),
        );
        let irc_flood_waits = Family::<NetworkLabels, Counter>::default();
        r.register(
            "sigbot_irc_flood_waits",
            "Times an IRC line had to wait for the flood control (the rate's token bucket)",
            irc_flood_waits.clone(),
        );
        let bridge_relayed = Family::<BridgeLabels, Counter>::default();
        r.register(
            "sigbot_bridge_messages_relayed",
            "Bridged messages written, by bridge and the network they were written to",
            bridge_relayed.clone(),
        );
        let bridge_delay: HistogramFamily<BridgeOnlyLabels> =
            Family::new_with_constructor(delay_histogram);
        r.register_with_unit(
            "sigbot_bridge_relay_delay",
            "Time from a bridged message being sent (the source server's time, else its arrival) to it being written on the other side",
            Unit::Seconds,
            bridge_delay.clone(),
        );
        let outbox_rows = Family::<NetworkLabels, Gauge>::default();
        r.register(
            "sigbot_outbox_rows",
            "Messages (bridged, relayed, alerts) waiting in the store's outbox for the network",
            outbox_rows.clone(),
        );
        let relay_events = Family::<RouteOutcomeLabels, Counter>::default();
        r.register(
            "sigbot_relay_events",
            "MQTT events seen by a relay route, by outcome (relayed, deduplicated, filtered, digested, bad_payload)",
            relay_events.clone(),
        );
        let relay_digests = Family::<RouteLabels, Counter>::default();
        r.register(
            "sigbot_relay_digests",
            "Digests a relay route sent for events past its max_per_minute",
            relay_digests.clone(),
        );
        let relay_commits = Counter::default();
        r.register(
            "sigbot_relay_commits",
            "Transactions that stored relayed MQTT events (the events that arrived together are committed together)",
            relay_commits.clone(),
        );
        let relay_committed_events = Counter::default();
        r.register(
            "sigbot_relay_committed_events",
            "MQTT events whose relayed messages or dedup keys were stored (and which were then acknowledged)",
            relay_committed_events.clone(),
        );
        let commands = Family::<CommandLabels, Counter>::default();
        r.register(
            "sigbot_command_invocations",
            "Commands run, by command and outcome (ok, not_found, error, refused, cooldown)",
            commands.clone(),
        );
        let lookup_duration: HistogramFamily<LookupLabels> =
            Family::new_with_constructor(lookup_histogram);
        r.register_with_unit(
            "sigbot_lookup_duration",
            "Time a command's lookup took, by kind (http, koji, repodata)",
            Unit::Seconds,
            lookup_duration.clone(),
        );
        let meetings_active = Gauge::default();
        r.register(
            "sigbot_meetings_active",
            "Meetings running now",
            meetings_active.clone(),
        );
        let meeting_lines = Counter::default();
        r.register(
            "sigbot_meeting_lines_journaled",
            "Meeting lines written to the journal",
            meeting_lines.clone(),
        );
        let build = Family::<VersionLabels, Gauge>::default();
        build
            .get_or_create(&VersionLabels {
                version: crate::VERSION.to_owned(),
            })
            .set(1);
        r.register(
            "sigbot_build_info",
            "The running sigbot's version (always 1)",
            build,
        );
        r.register_collector(Box::new(Scraped {
            db,
            started: AtomicU64::new(started.to_bits()),
        }));
        Metrics(Arc::new(Inner {
            registry: r,
            network_connected,
            network_reconnects,
            messages_received,
            messages_sent,
            queue_length,
            dropped,
            irc_flood_waits,
            bridge_relayed,
            bridge_delay,
            outbox_rows,
            relay_events,
            relay_digests,
            relay_commits,
            relay_committed_events,
            commands,
            lookup_duration,
            meetings_active,
            meeting_lines,
        }))
    }

    /// The metrics as OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.0.registry);
        out
    }

    /// The metrics in Prometheus's classic text format (0.0.4), for the clients that do not
    /// ask for OpenMetrics (`promtool check metrics`, `curl`): the same samples, with each
    /// counter's family named as its samples are (`_total`), and without the OpenMetrics
    /// `# UNIT` and `# EOF` lines.
    pub fn encode_classic(&self) -> String {
        let open = self.encode();
        let counters: std::collections::HashSet<&str> = open
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
            .collect();
        let mut out = String::with_capacity(open.len());
        for line in open.lines() {
            if line.starts_with("# UNIT ") || line == "# EOF" {
                continue;
            }
            let described = ["# HELP ", "# TYPE "].into_iter().find_map(|p| {
                let (name, rest) = line.strip_prefix(p)?.split_once(' ')?;
                counters
                    .contains(name)
                    .then(|| format!("{p}{name}_total {rest}"))
            });
            match described {
                Some(l) => out.push_str(&l),
                None => out.push_str(line),
            }
            out.push('\n');
        }
        out
    }

    /// The metrics of one network, for its adapter.
    pub fn network(&self, name: &str) -> NetworkMetrics {
        let labels = NetworkLabels {
            network: name.to_owned(),
        };
        let dropped = |reason| DropLabels {
            network: name.to_owned(),
            reason,
        };
        let m = &self.0;
        NetworkMetrics {
            sent: m.messages_sent.get_or_create_owned(&labels),
            stale: m.dropped.get_or_create_owned(&dropped(DropReason::stale)),
            queue_full: m
                .dropped
                .get_or_create_owned(&dropped(DropReason::queue_full)),
            // Only IRC has a flood control ([`Metrics::declare_network`]).
            flood_waits: m
                .irc_flood_waits
                .get(&labels)
                .map(|c| c.clone())
                .unwrap_or_default(),
        }
    }

    /// Makes every series of `network` appear, at zero, before anything happens on it, so
    /// that a query sees 0 rather than nothing.
    pub fn declare_network(&self, name: &str, irc: bool) {
        let labels = NetworkLabels {
            network: name.to_owned(),
        };
        let m = &self.0;
        m.network_connected.get_or_create_owned(&labels);
        m.network_reconnects.get_or_create_owned(&labels);
        m.messages_received.get_or_create_owned(&labels);
        m.queue_length.get_or_create_owned(&labels);
        if irc {
            m.irc_flood_waits.get_or_create_owned(&labels);
        }
        // The adapter's own series (sent, dropped).
        self.network(name);
    }

    pub fn set_connected(&self, network: &str, up: bool) {
        self.0
            .network_connected
            .get_or_create(&net(network))
            .set(i64::from(up));
    }

    pub fn reconnecting(&self, network: &str) {
        self.0.network_reconnects.get_or_create(&net(network)).inc();
    }

    pub fn received(&self, network: &str) {
        self.0.messages_received.get_or_create(&net(network)).inc();
    }

    pub fn set_queue_length(&self, network: &str, len: usize) {
        self.0
            .queue_length
            .get_or_create(&net(network))
            .set(i64::try_from(len).unwrap_or(i64::MAX));
    }

    pub fn set_outbox_rows(&self, network: &str, rows: u64) {
        self.0
            .outbox_rows
            .get_or_create(&net(network))
            .set(i64::try_from(rows).unwrap_or(i64::MAX));
    }

    /// A bridged message of `bridge` was written on `to`, `delay` after it was sent.
    pub fn bridged(&self, bridge: &str, to: &str, delay: std::time::Duration) {
        self.0
            .bridge_relayed
            .get_or_create(&BridgeLabels {
                bridge: bridge.to_owned(),
                to: to.to_owned(),
            })
            .inc();
        self.0
            .bridge_delay
            .get_or_create(&BridgeOnlyLabels {
                bridge: bridge.to_owned(),
            })
            .observe(delay.as_secs_f64());
    }

    /// Sets a relay route's count of events with `outcome` to `total` (the core keeps the
    /// counts; the app copies them).
    pub fn set_relay_events(&self, route: &str, outcome: &str, total: u64) {
        let c = self.0.relay_events.get_or_create(&RouteOutcomeLabels {
            route: route.to_owned(),
            outcome: outcome.to_owned(),
        });
        c.inner().store(total, Ordering::Relaxed);
    }

    pub fn set_relay_digests(&self, route: &str, total: u64) {
        let c = self.0.relay_digests.get_or_create(&RouteLabels {
            route: route.to_owned(),
        });
        c.inner().store(total, Ordering::Relaxed);
    }

    pub fn set_command_invocations(&self, command: &str, outcome: &str, total: u64) {
        let c = self.0.commands.get_or_create(&CommandLabels {
            command: command.to_owned(),
            outcome: outcome.to_owned(),
        });
        c.inner().store(total, Ordering::Relaxed);
    }

    pub fn lookup_took(&self, kind: &str, took: std::time::Duration) {
        self.0
            .lookup_duration
            .get_or_create(&LookupLabels {
                kind: kind.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn set_meetings_active(&self, n: usize) {
        self.0
            .meetings_active
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn meeting_line_journaled(&self) {
        self.0.meeting_lines.inc();
    }

    /// One transaction stored the relayed messages and dedup keys of `events` MQTT events.
    pub fn relay_committed(&self, events: usize) {
        self.0.relay_commits.inc();
        self.0
            .relay_committed_events
            .inc_by(u64::try_from(events).unwrap_or(u64::MAX));
    }
}

fn net(network: &str) -> NetworkLabels {
    NetworkLabels {
        network: network.to_owned(),
    }
}

/// One network's counters, held by its adapter.
#[derive(Debug, Clone, Default)]
pub struct NetworkMetrics {
    sent: Counter,
    stale: Counter,
    queue_full: Counter,
    flood_waits: Counter,
}

impl NetworkMetrics {
    pub fn sent(&self) {
        self.sent.inc();
    }

    pub fn dropped(&self, reason: DropReason, n: u64) {
        match reason {
            DropReason::stale => self.stale.inc_by(n),
            DropReason::queue_full => self.queue_full.inc_by(n),
        };
    }

    pub fn flood_wait(&self) {
        self.flood_waits.inc();
    }
}

/// What is read at each scrape: the process's memory, descriptors and start, and the
/// database's size.
#[derive(Debug)]
struct Scraped {
    db: Option<PathBuf>,
    started: AtomicU64,
}

impl Collector for Scraped {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut gauge = |name: &str, help: &str, unit: Option<Unit>, value: f64| {
            let g = ConstGauge::new(value);
            let m = encoder.encode_descriptor(name, help, unit.as_ref(), g.metric_type())?;
            g.encode(m)
        };
        if let Some(rss) = resident_bytes() {
            gauge(
                "process_resident_memory",
                "Resident memory size",
                Some(Unit::Bytes),
                rss as f64,
            )?;
        }
        if let Some(fds) = open_fds() {
            gauge(
                "process_open_fds",
                "Open file descriptors",
                None,
                fds as f64,
            )?;
        }
        gauge(
            "process_start_time",
            "When the bot started, in seconds since the Unix epoch",
            Some(Unit::Seconds),
            f64::from_bits(self.started.load(Ordering::Relaxed)),
        )?;
        if let Some(db) = &self.db {
            gauge(
                "sigbot_store_database_size",
                "Size of the SQLite database with its write-ahead log",
                Some(Unit::Bytes),
                database_size(db) as f64,
            )?;
        }
        Ok(())
    }
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

/// The database file and its write-ahead log, in bytes.
fn database_size(db: &std::path::Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    [db.to_owned(), PathBuf::from(wal)]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_the_readme_lists_is_exposed_under_that_name() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let listed: Vec<&str> = readme
            .lines()
            .filter(|l| l.starts_with("| `"))
            .filter_map(|l| l.split('|').nth(1))
            .flat_map(|cell| cell.split('`').skip(1).step_by(2))
            .filter(|n| n.starts_with("sigbot_") || n.starts_with("process_"))
            .collect();
        assert!(listed.len() >= 20, "the README's metric table: {listed:?}");
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sigbot.db");
        std::fs::write(&db, b"").unwrap();
        let m = Metrics::new(Some(db), 1_700_000_000.0);
        m.declare_network("libera", true);
        m.network("libera").flood_wait();
        m.reconnecting("libera");
        m.set_queue_length("libera", 1);
        m.set_outbox_rows("libera", 1);
        m.bridged("hs", "libera", std::time::Duration::from_millis(5));
        m.set_relay_events("pushes", "relayed", 1);
        m.set_relay_digests("pushes", 1);
        m.set_command_invocations("ping", "ok", 1);
        m.lookup_took("http", std::time::Duration::from_millis(5));
        m.set_meetings_active(1);
        m.meeting_line_journaled();
        m.relay_committed(3);
        let text = m.encode_classic();
        for name in listed {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "the README lists {name}, which is not exposed:\n{text}"
            );
        }
    }

    #[test]
    fn the_exposition_names_units_and_totals() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sigbot.db");
        std::fs::write(&db, vec![0u8; 4096]).unwrap();
        let m = Metrics::new(Some(db), 1_700_000_000.0);
        m.declare_network("libera", true);
        m.network("libera").sent();
        m.network("libera").dropped(DropReason::stale, 2);
        m.set_connected("libera", true);
        m.received("libera");
        m.bridged("hs", "fedora", std::time::Duration::from_millis(250));
        m.set_relay_events("pushes", "relayed", 3);
        m.set_command_invocations("ping", "ok", 5);
        m.lookup_took("http", std::time::Duration::from_millis(20));
        let text = m.encode();
        for line in [
            "sigbot_network_connected{network=\"libera\"} 1",
            "sigbot_network_messages_sent_total{network=\"libera\"} 1",
            "sigbot_network_messages_received_total{network=\"libera\"} 1",
            "sigbot_network_dropped_lines_total{network=\"libera\",reason=\"stale\"} 2",
            "sigbot_network_dropped_lines_total{network=\"libera\",reason=\"queue_full\"} 0",
            "sigbot_irc_flood_waits_total{network=\"libera\"} 0",
            "sigbot_bridge_messages_relayed_total{bridge=\"hs\",to=\"fedora\"} 1",
            "sigbot_bridge_relay_delay_seconds_count{bridge=\"hs\"} 1",
            "sigbot_relay_events_total{route=\"pushes\",outcome=\"relayed\"} 3",
            "sigbot_command_invocations_total{command=\"ping\",outcome=\"ok\"} 5",
            "sigbot_lookup_duration_seconds_count{kind=\"http\"} 1",
            "sigbot_store_database_size_bytes 4096",
            "process_start_time_seconds 1700000000",
            "# EOF",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(
            text.contains(&format!(
                "sigbot_build_info{{version=\"{}\"}} 1",
                crate::VERSION
            )),
            "{text}"
        );
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(text.contains("process_open_fds "), "{text}");

        let classic = m.encode_classic();
        for line in [
            "# TYPE sigbot_network_messages_sent_total counter",
            "# HELP sigbot_network_messages_sent_total Chat messages",
            "sigbot_network_messages_sent_total{network=\"libera\"} 1",
            "# TYPE sigbot_network_connected gauge",
            "# TYPE sigbot_bridge_relay_delay_seconds histogram",
        ] {
            assert!(classic.contains(line), "{line} missing from:\n{classic}");
        }
        assert!(!classic.contains("# EOF"), "{classic}");
        assert!(!classic.contains("# UNIT"), "{classic}");
    }

    #[test]
    fn a_network_other_than_irc_has_no_flood_control_series() {
        let m = Metrics::new(None, 0.0);
        m.declare_network("fedora", false);
        let text = m.encode();
        assert!(
            text.contains("sigbot_network_connected{network=\"fedora\"} 0"),
            "{text}"
        );
        assert!(
            !text.contains("sigbot_irc_flood_waits_total{network=\"fedora\"}"),
            "{text}"
        );
    }
}
