//! Meetings benchmark: (a) the whole render, all six files, from a raw log;
//! (b) the cost per line of a live meeting, journal write included, fed one by one.
//!
//! usage: `cargo bench --bench meetings [-- LOG.txt] [RUNS]`
//!
//! Without a log it generates the 10,000-line meeting with `benches/gen_meeting_log.py`
//! (`$GEN_MEETING_LOG` names another generator). `benches/meetings.sh N` does the same for a
//! meeting of N lines.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, TimeDelta};
use sigbot::core::meeting::{MeetingScope, MeetingSettings};
use sigbot::core::{
    Action, Core, CoreSettings, Event, IncomingMessage, MessageKind, Roles, RoomRef, Sender,
};
use sigbot::minutes::log::{meeting_from_log, parse_log};
use sigbot::minutes::render_all;
use sigbot::store::Store;

/// The meeting size the issue measures.
const LINES: usize = 10_000;

/// Writes the synthetic meeting of `LINES` lines into `dir` and returns its path.
fn generate_log(dir: &std::path::Path) -> PathBuf {
    let script = std::env::var_os("GEN_MEETING_LOG").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/gen_meeting_log.py"),
        PathBuf::from,
    );
    let log = dir.join("bench.2020-06-10-12.00.log.txt");
    let status = Command::new("python3")
        .arg(&script)
        .arg(LINES.to_string())
        .arg(&log)
        .status()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    assert!(status.success(), "{} failed: {status}", script.display());
    log
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` adds `--bench` (and passes a name filter, if given, as a word): an
    // existing file is the log, a number the runs, anything else is not ours.
    let mut log = None;
    let mut runs: usize = 15;
    for arg in std::env::args().skip(1).filter(|a| !a.starts_with("--")) {
        if let Ok(n) = arg.parse() {
            runs = n;
        } else if std::path::Path::new(&arg).is_file() {
            log = Some(PathBuf::from(arg));
        }
    }
    let scratch = tempfile::tempdir().unwrap();
    let path = log.unwrap_or_else(|| generate_log(scratch.path()));
    let raw = std::fs::read_to_string(&path).expect("read the log");
    println!("meetings benchmark on {}", path.display());
    let date = NaiveDate::from_ymd_opt(2020, 6, 10).unwrap();
    let room = RoomRef::new("libera", "#fedora-meeting");

    // (a) Parse + replay + render all six, in memory; then the same with the files written.
    let mut render = Vec::new();
    let mut bytes = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let m = meeting_from_log(&raw, room.clone(), date).unwrap();
        let files = render_all(&m);
        render.push(t.elapsed());
        bytes = files.iter().map(|(_, s)| s.len()).sum();
    }
    let out = tempfile::tempdir().unwrap();
    let mut render_write = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let m = meeting_from_log(&raw, room.clone(), date).unwrap();
        sigbot::minutes::write_files(out.path(), &m, None).unwrap();
        render_write.push(t.elapsed());
    }
    let lines = parse_log(&raw, date);
    let m = meeting_from_log(&raw, room.clone(), date).unwrap();
    let mut phases = vec![("parse+replay".to_owned(), {
        let t = Instant::now();
        for _ in 0..runs {
            meeting_from_log(&raw, room.clone(), date).unwrap();
        }
        t.elapsed() / runs as u32
    })];
    type Writer = fn(&sigbot::core::Meeting) -> String;
    let writers: [(&str, Writer); 6] = [
        ("log.txt", sigbot::minutes::log::render_txt),
        ("log.html", sigbot::minutes::log::render_html),
        ("html", sigbot::minutes::html::render),
        ("txt", sigbot::minutes::text::render),
        ("md", sigbot::minutes::markdown::render),
        ("json", sigbot::minutes::json::render),
    ];
    for (ext, f) in writers {
        let t = Instant::now();
        for _ in 0..runs {
            std::hint::black_box(f(&m));
        }
        phases.push((ext.to_owned(), t.elapsed() / runs as u32));
    }
    for (name, d) in &phases {
        println!("    {name}: {:.1} ms", d.as_secs_f64() * 1e3);
    }
    println!(
        "(a) render {} lines, six files ({} KiB): median {:.1} ms in memory, {:.1} ms with the files written (fsync each), {runs} runs",
        lines.len(),
        bytes / 1024,
        median(render).as_secs_f64() * 1e3,
        median(render_write).as_secs_f64() * 1e3,
    );

    // (b) Live: each line through the core, its journal actions committed to SQLite before
    // the next, as the core task does; the meeting's files are written at #endmeeting.
    let data = tempfile::tempdir().unwrap();
    let store = Store::open(data.path()).unwrap();
    let mut core = Core::new(
        CoreSettings {
            nick: "sigbot".into(),
            prefix: "!".into(),
            roles: Roles::new([]),
            networks: vec!["libera".into()],
            version: "bench".into(),
        },
        lines[0].time,
    );
    core.enable_meetings(
        MeetingSettings {
            scope: MeetingScope::All,
            public_url: "http://localhost".into(),
            bot_nick: "sigbot".into(),
            prefix: "!".into(),
            display_name_networks: vec![],
            enders: vec![],
            idle_timeout: None,
            keep_lines: true,
        },
        Vec::new(),
        lines[0].time,
    );
    let mut per_line = Vec::with_capacity(lines.len());
    let mut end_write = Duration::ZERO;
    for (i, l) in lines.iter().enumerate() {
        let t = Instant::now();
        let actions = core.handle(
            Event::Message(IncomingMessage {
                room: room.clone(),
                sender: Sender {
                    nick: l.nick.clone(),
                    principal: None,
                    mask: None,
                },
                kind: if l.emote {
                    MessageKind::Emote
                } else {
                    MessageKind::Text
                },
                text: l.text.clone(),
                id: None,
                sent_at: None,
            }),
            l.time + TimeDelta::milliseconds(i as i64),
        );
        for a in actions {
            match a {
                Action::MeetingJournal { key, line } => {
                    store.journal_meeting_line(&key, &line).unwrap();
                }
                Action::MeetingFiles {
                    meeting,
                    finished,
                    stale_base,
                } => {
                    let w = Instant::now();
                    let dir = data.path().join("meetings");
                    sigbot::minutes::write_files(&dir, &meeting, stale_base.as_deref()).unwrap();
                    store
                        .record_meeting_files(&meeting, &dir, finished)
                        .unwrap();
                    end_write += w.elapsed();
                }
                _ => {}
            }
        }
        per_line.push(t.elapsed());
    }
    let chunk = lines.len() / 10;
    let buckets: Vec<String> = per_line
        .chunks(chunk.max(1))
        .map(|c| {
            let total: Duration = c.iter().sum();
            format!("{:.0}", total.as_secs_f64() * 1e6 / c.len() as f64)
        })
        .collect();
    let total: Duration = per_line.iter().sum();
    println!(
        "(b) live: {} lines in {:.0} ms, mean {:.0} µs/line (journal commit included), median {:.0} µs; \
         mean µs/line by tenth of the meeting: [{}]; #endmeeting files + index {:.1} ms",
        lines.len(),
        total.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e6 / lines.len() as f64,
        median(per_line.clone()).as_secs_f64() * 1e6,
        buckets.join(", "),
        end_write.as_secs_f64() * 1e3,
    );
}
