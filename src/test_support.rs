//! Test fixtures read from `tests/fixtures/`, kept out of
//! `src/core` so that the core's modules, tests included, never touch the file system.

use std::path::PathBuf;

/// The sample payloads (`tests/fixtures/pagure-mqtt/`), or `SIGBOT_FIXTURES`.
fn fixtures_dir() -> PathBuf {
    std::env::var_os("SIGBOT_FIXTURES").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pagure-mqtt"),
        PathBuf::from,
    )
}

/// Every fixture as (file stem, MQTT topic, payload); `.jsonl` files give one per line.
pub(crate) fn pagure_mqtt() -> Vec<(String, String, String)> {
    let dir = fixtures_dir();
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fixtures in {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json") || n.ends_with(".jsonl"))
        .collect();
    names.sort();
    for name in names {
        let text = std::fs::read_to_string(dir.join(&name)).unwrap();
        let stem = name
            .trim_end_matches(".jsonl")
            .trim_end_matches(".json")
            .replace("__", "_");
        // 01_git.centos.org__git.receive.json -> git.centos.org/git.receive
        let (_, rest) = name.split_once('_').unwrap();
        let rest = rest.trim_end_matches(".jsonl").trim_end_matches(".json");
        let (host, pagure_topic) = rest.split_once("__").unwrap();
        let topic = if pagure_topic == "cbs-signing" {
            "cbs-signing".to_owned()
        } else {
            format!("{host}/{pagure_topic}")
        };
        if name.ends_with(".jsonl") {
            for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
                out.push((format!("{stem}_{}", i + 1), topic.clone(), line.to_owned()));
            }
        } else {
            out.push((stem, topic, text));
        }
    }
    assert!(
        out.len() >= 8,
        "expected every fixture, found {}",
        out.len()
    );
    out
}
