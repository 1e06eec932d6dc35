//! MQTT events per second through parse, route, `when` and template (DESIGN §9), for the
//! git.receive fixture with the shipped Pagure template, on one core.
//!
//! `cargo bench --bench relay`; the fixture comes from `tests/fixtures/pagure-mqtt/` (or
//! `SIGBOT_FIXTURES`).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{TimeZone as _, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sigbot::core::RoomRef;
use sigbot::core::relay::RelaySpec;
use sigbot::core::relay::{Delivery, MqttMessage, MqttPayload, Relay};

fn git_receive() -> Vec<u8> {
    let dir = std::env::var_os("SIGBOT_FIXTURES").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pagure-mqtt"),
        PathBuf::from,
    );
    let path = dir.join("01_git.centos.org__git.receive.json");
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

fn routes() -> Vec<RelaySpec> {
    let route = |name: &str, topic: &str, when: Option<&str>| RelaySpec {
        name: name.to_owned(),
        from: "centos".to_owned(),
        topic: topic.to_owned(),
        when: when.map(str::to_owned),
        template: r#"{% include "pagure.j2" %}"#.to_owned(),
        html_template: None,
        to: vec![RoomRef::new("libera", "#centos-hyperscale")],
        max_per_minute: None,
        dedup_key: None,
        // Every event counts as new: the benchmark measures the relay, not the dedup hit.
        dedup_window: Duration::from_secs(0),
        digest_label: None,
    };
    vec![
        // A route that does not match, one whose `when` says no, one that relays.
        route("issues", "pagure.io/#", None),
        route(
            "sig",
            "git.centos.org/#",
            Some("topic == 'git.centos.org/git.receive' and msg.repo.namespace == 'sig'"),
        ),
        route(
            "rpms",
            "git.centos.org/#",
            Some("topic == 'git.centos.org/git.receive' and msg.repo.namespace == 'rpms'"),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let payload = git_receive();
    let mut relay = Relay::new(&routes()).expect("routes compile");
    let now = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
    let mut group = c.benchmark_group("relay");
    group.throughput(Throughput::Elements(1));
    let mut pkid = 0u16;
    group.bench_function("git.receive parse+route+when+template", |b| {
        b.iter(|| {
            pkid = pkid.wrapping_add(1);
            let batch = relay.on_message(
                MqttMessage {
                    network: "centos".to_owned(),
                    topic: "git.centos.org/git.receive".to_owned(),
                    payload: MqttPayload::Bytes(payload.clone()),
                    delivery: Some(Delivery {
                        connection: 1,
                        pkid,
                    }),
                },
                now,
            );
            assert_eq!(batch.messages.len(), 1);
            batch
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
