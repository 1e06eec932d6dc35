use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use super::*;
use crate::adapters::Outgoing;
use crate::core::relay::RelayMessage;
use crate::core::watch::AlertKey;

/// A cap on every wait, so that a broken deliverer fails the test instead of hanging it.
const CAP: Duration = Duration::from_secs(10);

/// One fake network: its handle for the outbox, and the receiving end a test plays the
/// adapter with.
fn network(name: &str) -> (NetworkHandle, mpsc::Receiver<Outgoing>) {
    let (tx, rx) = mpsc::channel(16);
    (NetworkHandle::new(name, tx), rx)
}

async fn next(rx: &mut mpsc::Receiver<Outgoing>) -> Outgoing {
    tokio::time::timeout(CAP, rx.recv())
        .await
        .expect("a message in time")
        .expect("the deliverer is running")
}

struct Rig {
    _dir: tempfile::TempDir,
    store: Store,
    outbox: Outbox,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    rx: BTreeMap<String, mpsc::Receiver<Outgoing>>,
}

impl Rig {
    /// An outbox over `networks`, with `before` run on the store before it starts.
    fn start(networks: &[&str], before: impl FnOnce(&Store)) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        before(&store);
        let mut handles = BTreeMap::new();
        let mut rx = BTreeMap::new();
        for n in networks {
            let (mut h, r) = network(n);
            if *n == "matrix" {
                h = h.with_window(3);
            }
            handles.insert((*n).to_owned(), h);
            rx.insert((*n).to_owned(), r);
        }
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let outbox = Outbox::start(
            store.clone(),
            &handles,
            &shutdown,
            &Metrics::new(None, 0.0),
            |_, d| {
                tracker.spawn(d);
            },
        );
        Rig {
            _dir: dir,
            store,
            outbox,
            tracker,
            shutdown,
            rx,
        }
    }

    fn rx(&mut self, network: &str) -> &mut mpsc::Receiver<Outgoing> {
        self.rx.get_mut(network).unwrap()
    }

    async fn stop(self) -> Store {
        self.shutdown.cancel();
        self.tracker.close();
        tokio::time::timeout(CAP, self.tracker.wait())
            .await
            .expect("the deliverers stop");
        self.store
    }
}

fn relay_batch(messages: &[(&str, &str)]) -> RelayBatch {
    RelayBatch {
        messages: messages
            .iter()
            .map(|(room, text)| {
                let (network, room) = room.split_once('/').unwrap();
                RelayMessage {
                    route: "numbers".into(),
                    room: RoomRef::new(network, room),
                    text: (*text).to_owned(),
                    html: None,
                }
            })
            .collect(),
        seen: Vec::new(),
        ack: None,
    }
}

#[tokio::test]
async fn a_network_that_takes_nothing_holds_back_no_other_and_gets_its_messages_in_order() {
    let mut rig = Rig::start(&["irc", "console"], |_| {});
    let batch = relay_batch(&[
        ("irc/#sig", "one"),
        ("console/#local", "one"),
        ("irc/#sig", "two"),
        ("console/#local", "two"),
        ("irc/#sig", "three"),
        ("console/#local", "three"),
    ]);
    rig.outbox.put_relayed(&batch, Utc::now()).unwrap();

    // IRC is down: its adapter holds the first message and gives no verdict.
    let held = next(rig.rx("irc")).await;
    assert_eq!(held.text, "one");
    // The console gets all of its messages meanwhile.
    for want in ["one", "two", "three"] {
        let m = next(rig.rx("console")).await;
        assert_eq!((m.room.as_str(), m.text.as_str()), ("#local", want));
        assert_eq!(m.kind, SendKind::Relay);
        m.receipt.sent();
    }
    assert!(
        rig.rx("irc").try_recv().is_err(),
        "IRC is handed one message at a time"
    );
    assert_eq!(rig.store.outbox_len("irc").unwrap(), 3);

    // IRC is back: the held message is written, then the others follow in order.
    held.receipt.sent();
    for want in ["two", "three"] {
        let m = next(rig.rx("irc")).await;
        assert_eq!((m.room.as_str(), m.text.as_str()), ("#sig", want));
        m.receipt.sent();
    }
    let store = rig.stop().await;
    assert_eq!(store.outbox_len("irc").unwrap(), 0);
    assert_eq!(store.outbox_len("console").unwrap(), 0);
}

fn old(text: &str, origin: &str, minutes_ago: i64, staleness: Option<Duration>) -> Queued {
    Queued {
        room: RoomRef::new("irc", "#sig"),
        text: text.to_owned(),
        html: None,
        mentions: Vec::new(),
        kind: SendKind::Relay,
        origin: origin.to_owned(),
        queued_at: Utc::now() - chrono::Duration::minutes(minutes_ago),
        staleness,
    }
}

#[tokio::test]
async fn only_messages_with_a_staleness_go_stale_and_their_room_is_told_once() {
    let ten_min = Some(Duration::from_secs(600));
    let mut rig = Rig::start(&["irc"], |store| {
        // Left by a previous run that could not reach IRC for half an hour.
        store
            .outbox_put_bridged(None, &old("<a> stale 1", "bridge:sig", 30, ten_min))
            .unwrap();
        store
            .outbox_put_relayed(&[old("event from long ago", "relay:git", 30, None)], &[])
            .unwrap();
        store
            .outbox_put_bridged(None, &old("<a> stale 2", "bridge:sig", 20, ten_min))
            .unwrap();
        store
            .outbox_put_bridged(None, &old("<a> fresh", "bridge:sig", 1, ten_min))
            .unwrap();
    });
    let notice = next(rig.rx("irc")).await;
    assert_eq!(
        notice.text,
        crate::core::bridge::stale_notice(1, Duration::from_secs(600))
    );
    assert_eq!(notice.kind, SendKind::Reply);
    let m = next(rig.rx("irc")).await;
    assert_eq!(m.text, "event from long ago");
    m.receipt.sent();
    let notice = next(rig.rx("irc")).await;
    assert!(
        notice
            .text
            .starts_with("1 relayed message older than 10 min"),
        "{}",
        notice.text
    );
    let m = next(rig.rx("irc")).await;
    assert_eq!(m.text, "<a> fresh");
    m.receipt.sent();
    let store = rig.stop().await;
    assert_eq!(store.outbox_len("irc").unwrap(), 0);
}

#[tokio::test]
async fn a_message_the_network_gives_up_on_leaves_and_the_next_goes_out() {
    let mut rig = Rig::start(&["irc"], |_| {});
    let batch = relay_batch(&[("irc/#sig", "one"), ("irc/#sig", "two")]);
    rig.outbox.put_relayed(&batch, Utc::now()).unwrap();
    let m = next(rig.rx("irc")).await;
    m.receipt.dropped();
    let m = next(rig.rx("irc")).await;
    // No staleness on relayed events: no notice about the one given up.
    assert_eq!(m.text, "two");
    m.receipt.sent();
    let store = rig.stop().await;
    assert_eq!(store.outbox_len("irc").unwrap(), 0);
}

#[tokio::test]
async fn a_message_not_written_by_shutdown_stays_for_the_next_start() {
    let mut rig = Rig::start(&["irc"], |_| {});
    let batch = relay_batch(&[("irc/#sig", "one"), ("irc/#sig", "two")]);
    rig.outbox.put_relayed(&batch, Utc::now()).unwrap();
    let m = next(rig.rx("irc")).await;
    rig.shutdown.cancel();
    // The adapter stops without writing it.
    drop(m);
    let store = rig.stop().await;
    assert_eq!(store.outbox_len("irc").unwrap(), 2);
    let row = store.outbox_next("irc").unwrap().unwrap();
    assert_eq!(row.message.text, "one");
    assert_eq!(row.message.origin, "relay:numbers");
}

#[tokio::test]
async fn alerts_and_bridged_messages_share_their_network_s_order() {
    let mut rig = Rig::start(&["irc"], |_| {});
    let alert = Alert {
        key: AlertKey {
            watch: "httpd".into(),
            package: "httpd".into(),
            upstream: "0:2.4.62-1".into(),
        },
        text: "httpd: upstream 2.4.62-1 is newer".into(),
        to: vec![RoomRef::new("irc", "#sig"), RoomRef::new("gone", "#x")],
    };
    rig.outbox
        .put_alerts(std::slice::from_ref(&alert), Utc::now())
        .unwrap();
    let bridged = Bridged {
        bridge: "sig".into(),
        room: RoomRef::new("irc", "#sig"),
        text: "<bob> hello".into(),
        html: None,
        mentions: vec!["@alice:example.org".into()],
        kind: SendKind::Relay,
        at: Utc::now(),
        sent_at: None,
        staleness: Duration::from_secs(600),
        source: None,
    };
    rig.outbox.put_bridged(&bridged).unwrap();
    rig.outbox
        .put_relayed(&relay_batch(&[("irc/#sig", "pushed")]), Utc::now())
        .unwrap();
    for want in [alert.text.as_str(), "<bob> hello", "pushed"] {
        let m = next(rig.rx("irc")).await;
        assert_eq!(m.text, want);
        m.receipt.sent();
    }
    let store = rig.stop().await;
    assert!(store.watch_alerts("httpd").unwrap().contains(&alert.key));
    // The room on a network that is not running is not queued.
    assert_eq!(store.outbox_networks().unwrap(), []);
}

#[tokio::test]
async fn a_network_with_a_window_gets_that_many_at_once_and_verdicts_in_any_order() {
    let mut rig = Rig::start(&["matrix"], |_| {});
    let texts = ["1", "2", "3", "4", "5"];
    let pairs: Vec<(&str, &str)> = texts.iter().map(|t| ("matrix/!r:e", *t)).collect();
    rig.outbox
        .put_relayed(&relay_batch(&pairs), Utc::now())
        .unwrap();
    // Three handed before any verdict, in order; the fourth waits for a free place.
    let mut handed = Vec::new();
    for want in ["1", "2", "3"] {
        let m = next(rig.rx("matrix")).await;
        assert_eq!(m.text, want);
        handed.push(m);
    }
    assert!(
        rig.rx("matrix").try_recv().is_err(),
        "no more than the window before a verdict"
    );
    // The second is written first (another room, say): its row leaves, the fourth goes out.
    handed.remove(1).receipt.sent();
    let m4 = next(rig.rx("matrix")).await;
    assert_eq!(m4.text, "4");
    let left: Vec<String> = rig
        .store
        .outbox_after("matrix", 0, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.message.text)
        .collect();
    assert_eq!(left, ["1", "3", "4", "5"]);
    for m in handed.drain(..) {
        m.receipt.sent();
    }
    m4.receipt.sent();
    let m5 = next(rig.rx("matrix")).await;
    assert_eq!(m5.text, "5");
    m5.receipt.sent();
    let store = rig.stop().await;
    assert_eq!(store.outbox_len("matrix").unwrap(), 0);
}

#[tokio::test]
async fn batches_stored_together_keep_their_order_and_keys() {
    let mut rig = Rig::start(&["console"], |_| {});
    let mut first = relay_batch(&[("console/#local", "a"), ("console/#local", "b")]);
    first.seen.push(SeenKey {
        key: "k1".into(),
        until: Utc::now() + chrono::Duration::hours(1),
    });
    let empty = relay_batch(&[]);
    let mut last = relay_batch(&[("console/#local", "c")]);
    last.seen.push(SeenKey {
        key: "k2".into(),
        until: Utc::now() + chrono::Duration::hours(1),
    });
    rig.outbox
        .put_relayed_group(&[first, empty, last], Utc::now())
        .unwrap();
    for want in ["a", "b", "c"] {
        let m = next(rig.rx("console")).await;
        assert_eq!(m.text, want);
        m.receipt.sent();
    }
    let mut keys: Vec<String> = rig
        .outbox
        .seen_keys(Utc::now())
        .unwrap()
        .into_iter()
        .map(|k| k.key)
        .collect();
    keys.sort();
    assert_eq!(keys, ["k1", "k2"]);
    rig.stop().await;
}
