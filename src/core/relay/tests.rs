use std::time::Duration;

use chrono::TimeZone;

use super::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
}

fn room() -> RoomRef {
    RoomRef::new("libera", "#centos-hyperscale")
}

fn route(name: &str, topic: &str, template: &str) -> RelaySpec {
    RelaySpec {
        name: name.to_owned(),
        from: "centos".to_owned(),
        topic: topic.to_owned(),
        when: None,
        template: template.to_owned(),
        html_template: None,
        to: vec![room()],
        max_per_minute: None,
        dedup_key: None,
        dedup_window: Duration::from_secs(3600),
        digest_label: None,
    }
}

/// The routes the embedded default ships (config/sigbot.toml).
fn shipped_routes() -> Vec<RelaySpec> {
    vec![
        RelaySpec {
            html_template: Some(r#"{% include "pagure.html.j2" %}"#.to_owned()),
            ..route("pagure", "+/#", r#"{% include "pagure.j2" %}"#)
        },
        // `cbs-signing/#` matches `cbs-signing` itself too.
        route("cbs", "cbs-signing/#", r#"{% include "cbs-signing.j2" %}"#),
    ]
}

fn msg(topic: &str, payload: impl Into<Vec<u8>>, pkid: u16) -> MqttMessage {
    MqttMessage {
        network: "centos".to_owned(),
        topic: topic.to_owned(),
        payload: MqttPayload::Bytes(payload.into()),
        delivery: Some(Delivery {
            connection: 1,
            pkid,
        }),
    }
}

fn texts(b: &RelayBatch) -> Vec<String> {
    b.messages.iter().map(|m| m.text.clone()).collect()
}

use crate::test_support::pagure_mqtt as fixtures;

#[test]
fn topic_filters_match_like_mqtt() {
    let cases = [
        ("git.centos.org/#", "git.centos.org/git.receive", true),
        ("git.centos.org/#", "git.centos.org", true),
        ("git.centos.org/#", "git.stg.centos.org/git.receive", false),
        ("+/git.receive", "pagure.io/git.receive", true),
        ("+/git.receive", "pagure.io/issue.new", false),
        ("+/+", "a/b", true),
        ("+/+", "a/b/c", false),
        ("+", "a", true),
        ("#", "a/b/c", true),
        ("#", "$SYS/broker/uptime", false),
        ("$SYS/#", "$SYS/broker/uptime", true),
        ("a/b", "a/b", true),
        ("a/b", "a/b/", false),
        ("a/+/c", "a//c", true),
    ];
    for (filter, topic, want) in cases {
        let f = TopicFilter::parse(filter).unwrap();
        assert_eq!(f.matches(topic), want, "{filter} vs {topic}");
    }
    for bad in ["", "a/#/b", "a#", "a/b+", "#/a"] {
        assert!(TopicFilter::parse(bad).is_err(), "{bad:?} must be refused");
    }
}

#[test]
fn every_fixture_renders_with_the_shipped_templates() {
    let mut relay = Relay::new(&shipped_routes()).unwrap();
    for (i, (stem, topic, payload)) in fixtures().into_iter().enumerate() {
        let b = relay.on_message(msg(&topic, payload, i as u16 + 1), t0());
        assert_eq!(
            b.messages.len(),
            1,
            "{stem} on {topic}: {:?}",
            relay.stats()
        );
        let m = &b.messages[0];
        let shown = match &m.html {
            Some(h) => format!("topic: {topic}\ntext: {}\nhtml: {h}\n", m.text),
            None => format!("topic: {topic}\ntext: {}\n", m.text),
        };
        insta::assert_snapshot!(format!("fixture_{stem}"), shown);
    }
    assert_eq!(relay.stats().skipped, BTreeMap::new());
}

#[test]
fn git_receive_tolerates_authors_as_objects_refs_heads_and_full_url() {
    let mut relay = Relay::new(&shipped_routes()).unwrap();
    let objects = r#"{"agent":"arrfab","branch":"refs/heads/c9s","total_commits":2,
        "repo":{"name":"systemd","namespace":"rpms","fullname":"rpms/systemd"},
        "authors":[{"name":"arrfab","fullname":"Fabian Arrotin"},{"fullname":"Jane Doe"}],
        "end_commit":"0123456789abcdef","full_url":"https://git.centos.org/rpms/systemd"}"#;
    let b = relay.on_message(msg("git.centos.org/git.receive", objects, 1), t0());
    assert_eq!(
        texts(&b),
        [
            "arrfab pushed 2 commits to rpms/systemd (c9s) 0123456789 by arrfab, Jane Doe https://git.centos.org/rpms/systemd"
        ]
    );
    assert_eq!(
        b.messages[0].html.as_deref(),
        Some(
            // minijinja's HTML escaping writes '/' as &#x2f;, which every client shows as '/'.
            "arrfab pushed 2 commits to rpms&#x2f;systemd (c9s) 0123456789 by arrfab, Jane Doe <a href=\"https:&#x2f;&#x2f;git.centos.org&#x2f;rpms&#x2f;systemd\">https:&#x2f;&#x2f;git.centos.org&#x2f;rpms&#x2f;systemd</a>"
        )
    );
    // No namespace, no fullname, no authors, no full_url: still a line.
    let bare = r#"{"agent":"x","branch":"main","repo":{"name":"tools"}}"#;
    let b = relay.on_message(msg("git.centos.org/git.receive", bare, 2), t0());
    assert_eq!(texts(&b), ["x pushed 1 commit to tools (main)"]);
}

#[test]
fn html_escapes_payload_text() {
    let mut relay = Relay::new(&shipped_routes()).unwrap();
    let evil = r#"{"agent":"<b>x</b>","issue":{"id":1,"title":"<script>alert(1)</script>"},
        "project":{"name":"p"}}"#;
    let b = relay.on_message(msg("git.centos.org/issue.new", evil, 1), t0());
    let html = b.messages[0].html.as_deref().unwrap();
    assert!(
        !html.contains("<script>") && !html.contains("<b>"),
        "{html}"
    );
    assert!(html.contains("&lt;script&gt;"), "{html}");
    assert_eq!(
        b.messages[0].text,
        "<b>x</b> opened issue #1 on p: <script>alert(1)</script>"
    );
}

#[test]
fn private_issues_do_not_leak_their_title() {
    let mut relay = Relay::new(&shipped_routes()).unwrap();
    let p = r#"{"agent":"a","issue":{"id":9,"title":"CVE embargo","private":true},"project":{"name":"p"}}"#;
    let b = relay.on_message(msg("git.centos.org/issue.new", p, 1), t0());
    assert_eq!(texts(&b), ["a opened a private issue on p"]);
}

#[test]
fn when_filters_on_topic_and_payload() {
    let cfg = RelaySpec {
        when: Some("topic == 'git.centos.org/git.receive' and msg.repo.namespace == 'rpms'".into()),
        ..route("rpms", "git.centos.org/#", "{{ msg.repo.fullname }}")
    };
    let mut relay = Relay::new(&[cfg]).unwrap();
    let rpms = r#"{"repo":{"namespace":"rpms","fullname":"rpms/kernel"}}"#;
    let other = r#"{"repo":{"namespace":"sig","fullname":"sig/x"}}"#;
    assert_eq!(
        texts(&relay.on_message(msg("git.centos.org/git.receive", rpms, 1), t0())),
        ["rpms/kernel"]
    );
    assert!(
        relay
            .on_message(msg("git.centos.org/git.receive", other, 2), t0())
            .messages
            .is_empty()
    );
    assert!(
        relay
            .on_message(msg("git.centos.org/issue.new", rpms, 3), t0())
            .messages
            .is_empty()
    );
    // A message from another connection is not this route's business.
    let mut foreign = msg("git.centos.org/git.receive", rpms, 4);
    foreign.network = "other".into();
    let b = relay.on_message(foreign, t0());
    assert!(b.messages.is_empty());
    assert_eq!(relay.stats().unrouted, 1);
    assert_eq!(relay.filters_for("centos"), ["git.centos.org/#"]);
}

#[test]
fn redelivered_message_is_posted_once_within_the_window() {
    let mut relay = Relay::new(&[route("r", "#", "{{ msg.n }}")]).unwrap();
    let first = relay.on_message(msg("a/b", r#"{"n":1}"#, 1), t0());
    assert_eq!(texts(&first), ["1"]);
    assert_eq!(first.seen.len(), 1);
    assert_eq!(first.seen[0].until, t0() + TimeDelta::hours(1));
    // The broker sends it again (a crash before the ack): acknowledged, not posted.
    let again = relay.on_message(msg("a/b", r#"{"n":1}"#, 7), t0() + TimeDelta::minutes(5));
    assert!(again.messages.is_empty());
    assert_eq!(again.ack.unwrap().delivery.pkid, 7);
    assert_eq!(relay.stats().duplicates, 1);
    // Same payload on another topic is another event.
    assert_eq!(
        texts(&relay.on_message(msg("a/c", r#"{"n":1}"#, 8), t0())),
        ["1"]
    );
    // After the window the same payload is news again.
    let later = relay.on_message(msg("a/b", r#"{"n":1}"#, 9), t0() + TimeDelta::minutes(61));
    assert_eq!(texts(&later), ["1"]);

    // A restarted relay remembers the keys it stored.
    let mut restarted = Relay::new(&[route("r", "#", "{{ msg.n }}")]).unwrap();
    restarted.remember(first.seen);
    assert!(
        restarted
            .on_message(msg("a/b", r#"{"n":1}"#, 1), t0())
            .messages
            .is_empty()
    );
}

#[test]
fn configured_dedup_key_beats_payload_differences() {
    let cfg = RelaySpec {
        dedup_key: Some("msg.id".into()),
        ..route("r", "#", "{{ msg.text }}")
    };
    let mut relay = Relay::new(&[cfg]).unwrap();
    assert_eq!(
        texts(&relay.on_message(msg("t", r#"{"id":5,"text":"a"}"#, 1), t0())),
        ["a"]
    );
    assert!(
        relay
            .on_message(msg("t", r#"{"id":5,"text":"b"}"#, 2), t0())
            .messages
            .is_empty()
    );
    assert_eq!(
        texts(&relay.on_message(msg("t", r#"{"id":6,"text":"c"}"#, 3), t0())),
        ["c"]
    );
}

#[test]
fn burst_past_max_per_minute_folds_into_one_digest() {
    let cfg = RelaySpec {
        max_per_minute: Some(2),
        to: vec![room(), RoomRef::new("console", "#local")],
        ..route("pushes", "git.centos.org/#", r#"{% include "pagure.j2" %}"#)
    };
    let mut relay = Relay::new(&[cfg]).unwrap();
    let push = |repo: &str, branch: &str, n: u16| {
        msg(
            "git.centos.org/git.receive",
            format!(
                r#"{{"agent":"a","branch":"{branch}","total_commits":{n},"repo":{{"name":"{repo}","namespace":"rpms"}}}}"#
            ),
            n,
        )
    };
    let mut sent = Vec::new();
    let mut folded_acks = 0;
    let pushes = [
        ("kernel", "c9s"),
        ("systemd", "c9s"),
        ("kernel", "c9s"),
        ("systemd", "c9s"),
        ("kernel", "refs/heads/c9s"),
        ("kernel", "c10s"),
    ];
    for (i, (repo, branch)) in pushes.into_iter().enumerate() {
        let b = relay.on_message(
            push(repo, branch, i as u16 + 1),
            t0() + TimeDelta::seconds(i as i64),
        );
        assert!(b.ack.is_some(), "folded events are acknowledged too");
        if b.messages.is_empty() {
            folded_acks += 1;
        }
        sent.extend(texts(&b));
    }
    // Two alone, each to both rooms; four folded.
    assert_eq!(sent.len(), 4);
    assert_eq!(folded_acks, 4);
    assert_eq!(relay.stats().folded, 4);
    assert!(
        relay
            .on_tick(t0() + TimeDelta::seconds(59))
            .messages
            .is_empty()
    );
    let digest = relay.on_tick(t0() + TimeDelta::seconds(60));
    assert_eq!(
        texts(&digest),
        [
            "4 more git.centos.org/git.receive events: rpms/kernel c9s ×2, rpms/kernel c10s ×1, rpms/systemd c9s ×1",
            "4 more git.centos.org/git.receive events: rpms/kernel c9s ×2, rpms/kernel c10s ×1, rpms/systemd c9s ×1",
        ]
    );
    assert_eq!(digest.messages[1].room, RoomRef::new("console", "#local"));
    assert_eq!(relay.stats().digests, 1);
    assert!(
        relay
            .on_tick(t0() + TimeDelta::seconds(200))
            .messages
            .is_empty()
    );
    // A new window: the next event goes out alone.
    let b = relay.on_message(push("kernel", "c9s", 40), t0() + TimeDelta::seconds(300));
    assert_eq!(b.messages.len(), 2);
}

#[test]
fn a_digest_names_ten_labels_and_counts_the_rest() {
    let cfg = RelaySpec {
        max_per_minute: Some(1),
        digest_label: Some("{{ msg.n }}".into()),
        ..route("r", "#", "{{ msg.n }}")
    };
    let mut relay = Relay::new(&[cfg]).unwrap();
    relay.on_message(msg("t/x", r#"{"n":"first"}"#, 1), t0());
    // 150 different labels, then one of them again: the window keeps 100 apart.
    for i in 0..150u16 {
        let payload = format!(r#"{{"n":"p{i:03}"}}"#);
        relay.on_message(msg("t/x", payload, i + 2), t0());
    }
    relay.on_message(msg("t/x", r#"{"n":"p000","again":true}"#, 200), t0());
    let digest = relay.on_shutdown();
    let text = &texts(&digest)[0];
    assert!(
        text.starts_with("151 more t/x events: p000 ×2, p001 ×1, p002 ×1"),
        "{text}"
    );
    assert_eq!(text.matches('×').count(), 10, "{text}");
    assert!(text.ends_with(", and 140 more"), "{text}");
}

#[test]
fn at_shutdown_an_open_window_gives_its_digest_at_once() {
    let cfg = RelaySpec {
        max_per_minute: Some(1),
        ..route("r", "#", "{{ msg.n }}")
    };
    let mut relay = Relay::new(&[cfg]).unwrap();
    assert!(
        relay.on_shutdown().messages.is_empty(),
        "nothing folded yet"
    );
    relay.on_message(msg("t/x", r#"{"n":1}"#, 1), t0());
    // Folded, acknowledged and remembered: only the digest can tell it.
    let b = relay.on_message(msg("t/x", r#"{"n":2}"#, 2), t0());
    assert!(b.messages.is_empty() && b.ack.is_some());
    let digest = relay.on_shutdown();
    assert_eq!(texts(&digest), ["1 more t/x event"]);
    assert!(relay.on_shutdown().messages.is_empty(), "told once");
}

#[test]
fn digest_of_a_closed_window_leaves_with_the_next_event_too() {
    let cfg = RelaySpec {
        max_per_minute: Some(1),
        ..route("r", "#", "{{ msg.n }}")
    };
    let mut relay = Relay::new(&[cfg]).unwrap();
    relay.on_message(msg("t/x", r#"{"n":1}"#, 1), t0());
    relay.on_message(msg("t/x", r#"{"n":2}"#, 2), t0());
    // No tick came (a busy core); the next event after the window carries the digest.
    let b = relay.on_message(msg("t/x", r#"{"n":3}"#, 3), t0() + TimeDelta::seconds(61));
    assert_eq!(texts(&b), ["1 more t/x event", "3"]);
}

#[test]
fn bad_payloads_are_skipped_counted_and_acknowledged() {
    let mut relay = Relay::new(&[route("r", "#", "{{ msg.agent }} did {{ msg.what }}")]).unwrap();
    let cases: Vec<(MqttMessage, SkipReason)> = vec![
        (msg("t", "this is not json", 1), SkipReason::NotJson),
        (
            msg("t", vec![0xff, 0xfe, 0x00, 0x80], 2),
            SkipReason::Binary,
        ),
        (msg("t", "{\"a\":\"\0\"}", 3), SkipReason::Binary),
        (msg("t", r#"{"agent":"a"}"#, 4), SkipReason::Template),
        (
            MqttMessage {
                payload: MqttPayload::TooLarge {
                    len: 2 << 20,
                    max: 1 << 20,
                },
                ..msg("t", "", 5)
            },
            SkipReason::TooLarge,
        ),
    ];
    for (m, reason) in cases {
        let pkid = m.delivery.unwrap().pkid;
        let before = relay.stats().skipped(reason);
        let b = relay.on_message(m, t0());
        assert!(b.messages.is_empty(), "{reason:?}");
        assert_eq!(
            b.ack.unwrap().delivery.pkid,
            pkid,
            "skipped messages are acknowledged"
        );
        assert_eq!(relay.stats().skipped(reason), before + 1, "{reason:?}");
    }
    assert_eq!(relay.stats().skipped.values().sum::<u64>(), 5);
    // The relay goes on.
    let b = relay.on_message(msg("t", r#"{"agent":"a","what":"b"}"#, 6), t0());
    assert_eq!(texts(&b), ["a did b"]);
}

#[test]
fn template_errors_name_the_route_and_line() {
    // A syntax error: refused when the relay is built (the config check does this).
    let bad = route("pushes", "#", "first line\n{{ msg.agent }\n");
    let err = Relay::new(&[bad]).unwrap_err();
    assert_eq!(err.route, "pushes");
    assert_eq!(err.part, "template");
    assert_eq!(err.line, Some(2));
    assert!(
        err.to_string()
            .starts_with("relay route pushes: template line 2: syntax error"),
        "{err}"
    );

    let bad_when = RelaySpec {
        when: Some("topic ==".into()),
        ..route("w", "#", "x")
    };
    let err = Relay::new(&[bad_when]).unwrap_err();
    assert!(err.to_string().starts_with("relay route w: when"), "{err}");

    // A render error: names the route and the line where it happened.
    let r = route(
        "pushes",
        "#",
        "{{ msg.agent }}\n{{ msg.repo.name.upper.deeper }}",
    );
    let mut relay = Relay::new(&[r]).unwrap();
    let e = relay
        .render(
            "pushes",
            "template",
            &minijinja::context! { msg => minijinja::context!{ agent => "a" } },
        )
        .unwrap_err();
    assert_eq!(e.line, Some(2), "{e}");
    assert!(
        e.to_string()
            .starts_with("relay route pushes: template line 2: "),
        "{e}"
    );
    let b = relay.on_message(msg("t", r#"{"agent":"a"}"#, 1), t0());
    assert!(b.messages.is_empty());
    assert_eq!(relay.stats().skipped(SkipReason::Template), 1);

    // In an included template, the error names it.
    let r = route("inc", "#", r#"{% include "pagure.j2" %}"#);
    let relay = Relay::new(&[r]).unwrap();
    let ctx =
        minijinja::context! { event => "git.receive", msg => minijinja::context! { agent => "a" } };
    let e = relay.render("inc", "template", &ctx).unwrap_err();
    assert_eq!(e.template.as_deref(), Some("pagure.j2"), "{e}");
    assert!(
        e.to_string()
            .starts_with("relay route inc: template (pagure.j2 line "),
        "{e}"
    );
}

#[test]
fn an_empty_rendering_sends_nothing() {
    let mut relay = Relay::new(&[route(
        "r",
        "#",
        "{% if msg.important %}{{ msg.text }}{% endif %}",
    )])
    .unwrap();
    let b = relay.on_message(msg("t", r#"{"text":"x"}"#, 1), t0());
    assert!(b.messages.is_empty());
    assert!(b.ack.is_some());
}

#[test]
fn qos0_messages_need_no_ack() {
    let mut relay = Relay::new(&[route("r", "#", "{{ msg.n }}")]).unwrap();
    let mut m = msg("t", r#"{"n":1}"#, 1);
    m.delivery = None;
    let b = relay.on_message(m, t0());
    assert_eq!(texts(&b), ["1"]);
    assert!(b.ack.is_none());
}

#[test]
fn events_are_counted_by_route_and_outcome() {
    let filtered = RelaySpec {
        when: Some("msg.n != 2".into()),
        max_per_minute: Some(2),
        ..route("r", "#", "{{ msg.n }}")
    };
    let mut relay = Relay::new(&[filtered, route("all", "a/#", "{{ msg.n }}")]).unwrap();
    for (payload, pkid) in [
        (r#"{"n":1}"#, 1),
        (r#"{"n":1}"#, 2),
        (r#"{"n":2}"#, 3),
        (r#"{"n":3}"#, 4),
        (r#"{"n":4}"#, 5),
        ("not json", 6),
    ] {
        relay.on_message(msg("a/b", payload, pkid), t0());
    }
    relay.on_tick(t0() + TimeDelta::seconds(60));
    let by_route = &relay.stats().by_route;
    let count = |route: &str, outcome: &'static str| {
        by_route
            .get(&(route.to_owned(), outcome))
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(count("r", "relayed"), 2, "{by_route:?}");
    assert_eq!(count("r", "deduplicated"), 1, "{by_route:?}");
    assert_eq!(count("r", "filtered"), 1, "{by_route:?}");
    assert_eq!(count("r", "digested"), 1, "{by_route:?}");
    assert_eq!(count("r", "bad_payload"), 1, "{by_route:?}");
    assert_eq!(count("all", "relayed"), 4, "{by_route:?}");
    assert_eq!(count("all", "deduplicated"), 1, "{by_route:?}");
    assert_eq!(relay.stats().digests_by_route.get("r"), Some(&1));
    assert!(
        by_route.keys().all(|(_, o)| OUTCOMES.contains(o)),
        "{by_route:?}"
    );
}
