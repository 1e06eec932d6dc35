//! Meeting minutes and logs, in the six formats of DESIGN §7, written from a [`Meeting`].
//!
//! Every writer is a pure function from a meeting to a string; [`write_files`] is the one
//! place that touches the disk. The text and HTML minutes keep MeetBot's sections and
//! phrases so that tools that read MeetBot's output keep working.
//!
//! - [`log`]: `log.txt` (MeetBot's raw log, also read back by [`log::parse_log`]) and `log.html`
//!   (line anchors `l-N`);
//! - [`html`], [`text`]: the minutes as MeetBot lays them out; [`markdown`]: for a wiki page or an
//!   issue; [`json`]: for programs.

pub mod html;
pub mod json;
pub mod log;
pub mod markdown;
pub mod text;

use std::path::{Path, PathBuf};

use crate::core::meeting::{Meeting, URL_SCHEMES};

/// The file extensions, in the order they are written (the raw log first: it is enough to
/// rebuild everything else).
pub const EXTENSIONS: [&str; 6] = ["log.txt", "log.html", "html", "txt", "md", "json"];

/// Renders all six files: `(extension, contents)`.
pub fn render_all(m: &Meeting) -> Vec<(&'static str, String)> {
    vec![
        ("log.txt", log::render_txt(m)),
        ("log.html", log::render_html(m)),
        ("html", html::render(m)),
        ("txt", text::render(m)),
        ("md", markdown::render(m)),
        ("json", json::render(m)),
    ]
}

/// Splits text into plain runs and URLs (`(is_url, text)`), for making links.
pub fn split_urls(text: &str) -> Vec<(bool, &str)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some((start, end)) = find_url(rest) {
        if start > 0 {
            out.push((false, &rest[..start]));
        }
        out.push((true, &rest[start..end]));
        rest = &rest[end..];
    }
    if !rest.is_empty() {
        out.push((false, rest));
    }
    out
}

fn find_url(text: &str) -> Option<(usize, usize)> {
    let lower = text.to_ascii_lowercase();
    let mut best: Option<usize> = None;
    for scheme in URL_SCHEMES {
        let mut from = 0;
        while let Some(p) = lower[from..].find(scheme) {
            let at = from + p;
            let ok_before = text[..at]
                .chars()
                .next_back()
                .is_none_or(|c| c.is_whitespace() || "([<\"'".contains(c));
            let has_body = text[at + scheme.len()..]
                .chars()
                .next()
                .is_some_and(|c| !c.is_whitespace());
            if ok_before && has_body {
                best = Some(best.map_or(at, |b| b.min(at)));
                break;
            }
            from = at + scheme.len();
        }
    }
    let start = best?;
    let mut end = text[start..]
        .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
        .map_or(text.len(), |e| start + e);
    // Trailing punctuation is the sentence's, not the URL's.
    while end > start {
        let last = text[..end].chars().next_back().unwrap_or(' ');
        if ".,;:!?)]}'".contains(last) {
            end -= last.len_utf8();
        } else {
            break;
        }
    }
    let scheme_len = text[start..].find(':').map_or(0, |c| c + 1);
    (end > start + scheme_len).then_some((start, end))
}

/// Writes a meeting's six files below `meetings_dir` (`<base>.<ext>`), replacing each
/// atomically; removes the files of `stale_base` (an earlier save under another name).
/// With `restrict`, the files are readable by their owner only.
pub fn write_files(
    meetings_dir: &Path,
    m: &Meeting,
    stale_base: Option<&str>,
) -> std::io::Result<Vec<PathBuf>> {
    let base = meetings_dir.join(m.base_path());
    let dir = base.parent().unwrap_or(meetings_dir);
    let written = write_files_into(dir, m)?;
    if let Some(old) = stale_base {
        let old = meetings_dir.join(old);
        if let (Some(odir), Some(oname)) = (old.parent(), old.file_name()) {
            for ext in EXTENSIONS {
                let p = odir.join(format!("{}.{ext}", oname.to_string_lossy()));
                if !written.contains(&p) {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
    }
    Ok(written)
}

/// Writes the six files into `dir` as `<base name>.<ext>`, each replaced atomically.
pub fn write_files_into(dir: &Path, m: &Meeting) -> std::io::Result<Vec<PathBuf>> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (ext, contents) in render_all(m) {
        let path = dir.join(format!("{}.{ext}", m.base_name()));
        let tmp = dir.join(format!(".{}.{ext}.tmp", m.base_name()));
        let mut f = std::fs::File::create(&tmp)?;
        if m.restrict_logs {
            use std::os::unix::fs::PermissionsExt as _;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        f.write_all(contents.as_bytes())?;
        f.sync_data()?;
        std::fs::rename(&tmp, &path)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests;
