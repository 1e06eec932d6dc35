use super::*;

fn drain(store: &Store, network: &str) -> Vec<Queued> {
    let mut out = Vec::new();
    while let Some(row) = store.outbox_next(network).unwrap() {
        out.push(row.message);
        store.outbox_remove(row.id).unwrap();
    }
    out
}

fn queued(room: RoomRef, text: &str, origin: &str, staleness: Option<Duration>) -> Queued {
    Queued {
        room,
        text: text.to_owned(),
        html: None,
        mentions: Vec::new(),
        kind: SendKind::Relay,
        origin: origin.to_owned(),
        queued_at: DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap(),
        staleness,
    }
}

#[test]
fn every_line_of_a_source_message_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let line = |n: usize| {
        queued(
            RoomRef::new("libera", "#sig"),
            &format!("<alice> line {n}"),
            "bridge:sig",
            Some(Duration::from_secs(600)),
        )
    };
    let source = |n: usize| format!("hs/!r:example.org/$ev#{n}");
    for n in 1..=3 {
        let id = store.outbox_put_bridged(Some(&source(n)), &line(n));
        assert!(id.unwrap().is_some(), "line {n}");
    }
    // The same message handled again after a crash: nothing new is stored.
    for n in 1..=3 {
        let id = store.outbox_put_bridged(Some(&source(n)), &line(n));
        assert_eq!(id.unwrap(), None, "line {n} again");
    }
    assert_eq!(store.outbox_len("libera").unwrap(), 3);
    let texts: Vec<String> = drain(&store, "libera")
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(
        texts,
        ["<alice> line 1", "<alice> line 2", "<alice> line 3"]
    );
}

#[test]
fn every_field_comes_back_as_stored_and_staleness_only_where_set() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let room = RoomRef::new("hs", "!r:example.org");
    let mut bridged = queued(
        room.clone(),
        "<bob> hi",
        "bridge:sig",
        Some(Duration::from_secs(90)),
    );
    bridged.html = Some("<b>bob</b> hi".into());
    bridged.mentions = vec!["@alice:example.org".into(), "@carol:example.org".into()];
    bridged.kind = SendKind::Reply;
    let relayed = queued(room.clone(), "pushed", "relay:git", None);
    store.outbox_put_bridged(None, &bridged).unwrap();
    let seen = SeenKey {
        key: "k1".into(),
        until: Utc::now() + chrono::Duration::hours(1),
    };
    store
        .outbox_put_relayed(std::slice::from_ref(&relayed), std::slice::from_ref(&seen))
        .unwrap();
    assert_eq!(
        store.outbox_networks().unwrap(),
        [("hs".to_owned(), 2usize)]
    );
    assert_eq!(drain(&store, "hs"), [bridged, relayed]);
    let keys: Vec<String> = store
        .relay_seen_keys(Utc::now())
        .unwrap()
        .into_iter()
        .map(|k| k.key)
        .collect();
    assert_eq!(keys, ["k1"]);
}

#[test]
fn alerts_are_queued_together_with_their_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let key = AlertKey {
        watch: "httpd".into(),
        package: "httpd".into(),
        upstream: "0:2.4.62-1".into(),
    };
    let alert = queued(
        RoomRef::new("libera", "#sig"),
        "httpd: newer",
        "watch:httpd",
        None,
    );
    store
        .outbox_put_alerts(
            std::slice::from_ref(&alert),
            std::slice::from_ref(&key),
            Utc::now(),
        )
        .unwrap();
    assert!(store.watch_alerts("httpd").unwrap().contains(&key));
    assert_eq!(drain(&store, "libera"), [alert]);
}

/// What the migration test compares: text, origin, kind, queued time and staleness.
type Summary = (String, String, SendKind, DateTime<Utc>, Option<Duration>);

/// The last schema with two outboxes: rows written the way that sigbot wrote them.
const TWO_OUTBOXES: usize = 8;

#[test]
fn a_store_written_by_the_previous_schema_migrates_with_its_queued_rows_intact() {
    let dir = tempfile::tempdir().unwrap();
    let old = Store::open_at_version(dir.path(), TWO_OUTBOXES).unwrap();
    assert_eq!(old.schema_version().unwrap(), TWO_OUTBOXES);
    let t0: i64 = 1_790_000_000; // seconds
    old.with(|c| {
        let mut bridge = c.prepare(
            "INSERT INTO bridge_outbox
                (network, room, text, html, reply, at_ms, staleness_ms, bridge, mentions)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        // On libera: b1 at t0+1 s, b2 at t0+5 s, then b3 whose time went backwards
        // (t0+2 s): it still comes after b2.
        bridge.execute(params!["libera", "#sig", "b1", None::<String>, false, (t0 + 1) * 1000, 600_000, "sig", ""])?;
        bridge.execute(params!["hs", "!r:x", "m1", "<i>m1</i>", true, (t0 + 3) * 1000, 60_000, "sig", "@a:x\n@b:x"])?;
        bridge.execute(params!["libera", "#sig", "b2", None::<String>, false, (t0 + 5) * 1000, 600_000, "sig", ""])?;
        bridge.execute(params!["libera", "#sig", "b3", None::<String>, true, (t0 + 2) * 1000, 600_000, "sig", ""])?;
        let mut relay = c.prepare(
            "INSERT INTO relay_outbox (network, room, text, html, queued_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        relay.execute(params!["libera", "#sig", "r1", None::<String>, t0])?;
        relay.execute(params!["console", "#local", "c1", "<b>c1</b>", t0 + 2])?;
        relay.execute(params!["libera", "#sig", "r2", None::<String>, t0 + 3])?;
        relay.execute(params!["libera", "#sig", "r3", None::<String>, t0 + 9])?;
        c.execute(
            "INSERT INTO bridge_seen (source, network, room, at_ms) VALUES ('src', 'libera', '#sig', ?1)",
            [(t0 + 1) * 1000],
        )?;
        c.execute(
            "INSERT INTO relay_seen (key, until) VALUES ('dedup', ?1)",
            [t0 + 3600],
        )?;
        Ok(())
    })
    .unwrap();
    drop(old);

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.schema_version().unwrap(),
        crate::store::schema_version_known()
    );
    let old_tables: i64 = store
        .with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM sqlite_master
                 WHERE name IN ('bridge_outbox', 'relay_outbox')",
                [],
                |r| r.get(0),
            )
        })
        .unwrap();
    assert_eq!(old_tables, 0, "the old outboxes are gone");

    let at = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
    let libera: Vec<Summary> = drain(&store, "libera")
        .into_iter()
        .map(|m| (m.text, m.origin, m.kind, m.queued_at, m.staleness))
        .collect();
    let ten_min = Some(Duration::from_secs(600));
    assert_eq!(
        libera,
        [
            ("r1".into(), "relay".into(), SendKind::Relay, at(t0), None),
            (
                "b1".into(),
                "bridge:sig".into(),
                SendKind::Relay,
                at(t0 + 1),
                ten_min
            ),
            (
                "r2".into(),
                "relay".into(),
                SendKind::Relay,
                at(t0 + 3),
                None
            ),
            (
                "b2".into(),
                "bridge:sig".into(),
                SendKind::Relay,
                at(t0 + 5),
                ten_min
            ),
            (
                "b3".into(),
                "bridge:sig".into(),
                SendKind::Reply,
                at(t0 + 2),
                ten_min
            ),
            (
                "r3".into(),
                "relay".into(),
                SendKind::Relay,
                at(t0 + 9),
                None
            ),
        ]
    );
    let hs = drain(&store, "hs");
    assert_eq!(
        hs,
        [Queued {
            room: RoomRef::new("hs", "!r:x"),
            text: "m1".into(),
            html: Some("<i>m1</i>".into()),
            mentions: vec!["@a:x".into(), "@b:x".into()],
            kind: SendKind::Reply,
            origin: "bridge:sig".into(),
            queued_at: at(t0 + 3),
            staleness: Some(Duration::from_secs(60)),
        }]
    );
    let console = drain(&store, "console");
    assert_eq!(console.len(), 1);
    assert_eq!(
        (console[0].text.as_str(), console[0].html.as_deref()),
        ("c1", Some("<b>c1</b>"))
    );
    assert_eq!(console[0].staleness, None);

    // The dedup tables stay as they were.
    let keys = store.relay_seen_keys(at(t0)).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].key, "dedup");
    let source = queued(RoomRef::new("libera", "#sig"), "again", "bridge:sig", None);
    store
        .with(|c| {
            c.execute(
                "UPDATE bridge_seen SET at_ms = ?1",
                [Utc::now().timestamp_millis()],
            )
        })
        .unwrap();
    assert_eq!(
        store.outbox_put_bridged(Some("src"), &source).unwrap(),
        None
    );

    // New rows come after the migrated ones.
    let id = store.outbox_put_bridged(None, &source).unwrap().unwrap();
    assert!(id > 7, "id {id}");
}
