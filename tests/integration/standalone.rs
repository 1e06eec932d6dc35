//! The repository stands alone: a clone into an empty directory has everything its tests,
//! benchmarks and docs use, so no file may point outside it at the project's old shared folder.
//! Reads files only; no server.

use std::path::{Path, PathBuf};

use crate::support::repo_root;

/// What is scanned, relative to the repository root. `tests/fixtures/` is data, not code, and
/// its SOURCES.txt names where the files came from.
const ROOTS: &[&str] = &[
    "src",
    "tests",
    "benches",
    "scripts",
    "config",
    "commands",
    "docs",
    "fuzz",
    ".ci",
    "Cargo.toml",
    "README.md",
];

/// Directories never scanned: fixtures, and what builds and fuzz runs leave behind.
const SKIPPED_DIRS: &[&str] = &["tests/fixtures", "target", "corpus", "artifacts"];

/// The references that would break a clone, assembled at run time so that this file does not
/// match itself.
fn needles() -> Vec<String> {
    let outside = ["..", "shared"].join("/");
    let folder = ["shared", "fixtures"].join("/");
    vec![outside, folder]
}

fn skipped(root: &Path, dir: &Path) -> bool {
    let rel = dir.strip_prefix(root).unwrap_or(dir);
    SKIPPED_DIRS
        .iter()
        .any(|s| rel == Path::new(s) || dir.file_name().is_some_and(|n| n == *s))
}

fn collect(root: &Path, path: &Path, files: &mut Vec<PathBuf>) {
    if path.is_dir() {
        if skipped(root, path) {
            return;
        }
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for entry in entries {
            collect(root, &entry, files);
        }
    } else if path.is_file() {
        files.push(path.to_owned());
    }
}

/// Every `file:line` under `root` that holds one of the needles; binary files are skipped.
fn references_outside(root: &Path) -> (usize, Vec<String>) {
    let mut files = Vec::new();
    for name in ROOTS {
        collect(root, &root.join(name), &mut files);
    }
    let needles = needles();
    let mut found = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            if needles.iter().any(|needle| line.contains(needle.as_str())) {
                let rel = file.strip_prefix(root).unwrap_or(file);
                found.push(format!("{}:{}: {}", rel.display(), n + 1, line.trim()));
            }
        }
    }
    (files.len(), found)
}

#[test]
fn nothing_in_the_repository_reads_outside_it() {
    let (scanned, found) = references_outside(&repo_root());
    // A wrong root would pass with nothing scanned.
    assert!(scanned > 50, "only {scanned} files scanned");
    assert!(
        found.is_empty(),
        "references to a folder outside the repository (a fresh clone does not have it; \
         use tests/fixtures/ or benches/ instead):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_finds_a_reference_and_names_its_line() {
    let dir = crate::support::temp_dir("standalone");
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let line = format!("let p = \"{}/fixtures/x.json\";", needles()[0]);
    std::fs::write(src.join("a.rs"), format!("// fine\n{line}\n")).unwrap();
    // The fixtures' own notes may name their old home.
    let fixtures = dir.path().join("tests/fixtures");
    std::fs::create_dir_all(&fixtures).unwrap();
    std::fs::write(fixtures.join("SOURCES.txt"), &line).unwrap();
    let (scanned, found) = references_outside(dir.path());
    assert_eq!(scanned, 1);
    assert_eq!(found, [format!("src/a.rs:2: {line}")]);
}
