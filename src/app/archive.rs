//! MeetBot archives on disk: `sigbot meetings render LOG.txt --out DIR` rewrites the minutes
//! from a raw log; `sigbot meetings import DIR` indexes an archive tree for the web site.

use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::core::RoomRef;
use crate::core::meeting::{Meeting, room_slug};
use crate::minutes::log::{date_from_path, meeting_from_log};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no log lines (expected `HH:MM:SS <nick> text`)", path.display())]
    Empty { path: PathBuf },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The room a MeetBot archive file belongs to: `<room>/<YYYY-MM-DD>/<file>` or
/// `<room>/<YYYY>/<file>` as MeetBot lays them out; `#meeting` otherwise.
pub fn room_from_path(path: &Path) -> String {
    let dirs: Vec<String> = path
        .parent()
        .into_iter()
        .flat_map(|p| p.iter().rev().take(2))
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    match dirs.as_slice() {
        [date, room, ..] if date.chars().next().is_some_and(|c| c.is_ascii_digit()) => {
            format!("#{room}")
        }
        _ => "#meeting".to_owned(),
    }
}

/// Reads a raw log into the meeting it records.
pub fn read_log(path: &Path, room: Option<&str>) -> Result<Meeting, ArchiveError> {
    let contents = std::fs::read(path).map_err(|source| ArchiveError::Io {
        path: path.to_owned(),
        source,
    })?;
    let contents = String::from_utf8_lossy(&contents);
    let date = date_from_path(path).unwrap_or_else(|| Utc::now().date_naive());
    let room = room.map_or_else(|| room_from_path(path), str::to_owned);
    meeting_from_log(&contents, RoomRef::new("archive", room), date).ok_or_else(|| {
        ArchiveError::Empty {
            path: path.to_owned(),
        }
    })
}

/// `sigbot meetings render`: writes the six files into `out`.
pub fn render_log_file(
    log: &Path,
    out: &Path,
    room: Option<&str>,
) -> Result<Vec<PathBuf>, ArchiveError> {
    let m = read_log(log, room)?;
    crate::minutes::write_files_into(out, &m).map_err(|source| ArchiveError::Io {
        path: out.to_owned(),
        source,
    })
}

/// `sigbot meetings import`: indexes every `*.log.txt` below `dir` (its minutes files stay
/// where they are and are served from there). Returns how many meetings were indexed.
pub fn import_archive(store: &Store, dir: &Path) -> Result<usize, ArchiveError> {
    let mut logs = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| ArchiveError::Io {
            path: d.clone(),
            source,
        })?;
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".log.txt") {
                logs.push(p);
            }
        }
    }
    logs.sort();
    let mut n = 0;
    for log in logs {
        let m = match read_log(&log, None) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "skipped");
                continue;
            }
        };
        // MeetBot leaves stubs behind (the realtime log under a name that `#meetingname`
        // replaced); they never reach `#endmeeting` and would shadow the real meeting.
        if !m.lines.iter().any(|l| {
            l.text
                .trim_start()
                .to_lowercase()
                .starts_with("#endmeeting")
        }) {
            tracing::warn!(log = %log.display(), "no #endmeeting: a stub or unfinished log; skipped");
            continue;
        }
        let file = log.file_name().unwrap_or_default().to_string_lossy();
        let base_name = file.trim_end_matches(".log.txt");
        let base = format!("{}/{base_name}", m.started.format("%Y-%m-%d"));
        let files_dir = log.parent().unwrap_or(dir);
        store.record_imported_meeting(&m, &room_slug(&m.room), &base, files_dir)?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn importing_the_fedora_archive_indexes_the_meeting_and_skips_the_stub() {
        let archive =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/meetbot/fedora-meeting");
        let data = tempfile::tempdir().unwrap();
        let store = Store::open(data.path()).unwrap();
        assert_eq!(import_archive(&store, &archive).unwrap(), 1);
        let listed = store.finished_meetings(Some("fedora-meeting")).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].base, "2020-06-10/magazine.2020-06-10-12.02");
        assert!(
            Path::new(&listed[0].files_dir)
                .join("magazine.2020-06-10-12.02.html")
                .exists()
        );
        let hits = store.search_meetings("infographic", 50).unwrap();
        assert!(
            hits.iter().any(|h| h.kind == "TOPIC" && h.line == 249),
            "{hits:?}"
        );
        assert!(hits.iter().any(|h| h.kind == "log"));
    }

    #[test]
    fn room_comes_from_meetbots_layout() {
        assert_eq!(
            room_from_path(Path::new("/a/fedora-meeting/2020-06-10/x.log.txt")),
            "#fedora-meeting"
        );
        assert_eq!(room_from_path(Path::new("x.log.txt")), "#meeting");
    }
}
