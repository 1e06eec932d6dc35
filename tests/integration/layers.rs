//! The layers of `src/` (the `# Layout` list in `src/lib.rs`), checked by reading the source.
//!
//! Every `src/**/*.rs` is parsed with syn; its layer is the first directory (or file) under
//! `src/`. Every path it names (`use` trees, paths in code and types, and paths inside macro
//! calls) that starts with `crate::`, `super::` or `self::` is resolved to the module it
//! reaches, and so to a layer, which must be one the file's layer may import. The core also
//! may not name an I/O crate, `std::{fs, net, process}` or a clock, and no adapter driver
//! names another. (`standalone.rs` checks that nothing reaches outside the repository.) No
//! servers; it reads files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::visit::Visit;

/// Who may import whom; every layer may also import itself and `test_support` (unit-test
/// helpers, compiled only for tests). `app`, `lib.rs` and `main.rs` may import anything.
const RULES: &[(&str, &[&str])] = &[
    ("core", &[]),
    ("config", &["core"]),
    ("store", &["core"]),
    ("minutes", &["core"]),
    ("lookup", &["core"]),
    // The Prometheus registry: written to by the layers below, read by the site.
    ("metrics", &[]),
    // Drivers read their connection settings and keep small facts (IRC channel keys).
    ("adapters", &["core", "config", "store", "metrics"]),
    ("outbox", &["core", "store", "adapters", "metrics"]),
    ("web", &["core", "store", "minutes", "adapters", "metrics"]),
    ("test_support", &[]),
];

/// Layers that may import every other. `fuzzing` is test support that drives parsers of
/// every layer (an IRC driver's session included); nothing imports it.
const ANYTHING: &[&str] = &["app", "lib.rs", "main.rs", "fuzzing"];

/// The adapters' driver modules. Other layers see only the adapters' contracts (what
/// `adapters/mod.rs`, `adapters/media.rs` and `adapters/backoff.rs` define); only `app` wires
/// drivers up, and a driver shares code with another only through those contracts.
const DRIVERS: &[&str] = &["console", "irc", "matrix", "mqtt"];

/// Crates that do I/O, which the core never names.
const IO_CRATES: &[&str] = &[
    "tokio",
    "tokio_util",
    "reqwest",
    "rusqlite",
    "axum",
    "rumqttc",
    "rumqttd",
    "matrix_sdk",
    "irc",
];

/// Modules of `std` that do I/O.
const IO_STD: &[&str] = &["fs", "net", "process"];

/// Types whose `now()` reads a clock: the core gets `now` from its caller.
const CLOCKS: &[&str] = &["Utc", "Local", "SystemTime", "Instant"];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The module a file defines, as a path from the crate root: `core/bridge/mod.rs` is
/// `core::bridge`, `core/bridge/presence.rs` is `core::bridge::presence`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().unwrap();
    let stem = file.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts
}

/// The layer of a file: its first directory under `src/`, or its own name at the top.
fn layer_of(rel: &Path) -> String {
    let first = rel.iter().next().unwrap().to_string_lossy().into_owned();
    match first.as_str() {
        "lib.rs" | "main.rs" => first,
        f => f.trim_end_matches(".rs").to_owned(),
    }
}

fn may_import(from: &str, to: &str) -> bool {
    if from == to || to == "test_support" || ANYTHING.contains(&from) {
        return true;
    }
    RULES
        .iter()
        .find(|(layer, _)| *layer == from)
        .is_some_and(|(_, allowed)| allowed.contains(&to))
}

struct File<'a> {
    rel: &'a Path,
    layer: String,
    /// The module of the file, then the inline modules (`mod tests { .. }`) being visited.
    module: Vec<String>,
    problems: &'a mut Vec<String>,
}

impl File<'_> {
    fn report(&mut self, span: Span, what: String) {
        let line = span.start().line;
        self.problems
            .push(format!("src/{}:{line}: {what}", self.rel.display()));
    }

    /// Checks one path, written as `segments` (with a leading `::` when `global`).
    fn check(&mut self, segments: &[String], global: bool, span: Span) {
        let Some(first) = segments.first() else {
            return;
        };
        let shown = format!("{}{}", if global { "::" } else { "" }, segments.join("::"));
        if self.layer == "core" {
            // One segment (`irc`) is a local name; a crate is named with its items.
            let io_crate = segments.len() > 1 && IO_CRATES.contains(&first.as_str());
            let io_std = first == "std"
                && segments
                    .get(1)
                    .is_some_and(|m| IO_STD.contains(&m.as_str()));
            if io_crate || io_std {
                self.report(span, format!("the core does I/O: `{shown}`"));
            }
            let clock = segments
                .windows(2)
                .any(|w| CLOCKS.contains(&w[0].as_str()) && w[1] == "now");
            if clock {
                self.report(span, format!("the core reads a clock: `{shown}`"));
            }
        }
        if global {
            return;
        }
        let target: Vec<String> = match first.as_str() {
            "crate" => segments[1..].to_vec(),
            "self" => self.module.iter().chain(&segments[1..]).cloned().collect(),
            "super" => {
                let up = segments.iter().take_while(|s| *s == "super").count();
                let Some(keep) = self.module.len().checked_sub(up) else {
                    self.report(span, format!("`{shown}` climbs above the crate root"));
                    return;
                };
                self.module[..keep]
                    .iter()
                    .chain(&segments[up..])
                    .cloned()
                    .collect()
            }
            _ => return,
        };
        let Some(to) = target.first() else {
            return;
        };
        // Items of `lib.rs` itself (`crate::VERSION`) belong to no layer.
        let layers: BTreeSet<&str> = RULES.iter().map(|(l, _)| *l).chain(["app"]).collect();
        if !layers.contains(to.as_str()) {
            return;
        }
        let driver = target.get(1).filter(|m| DRIVERS.contains(&m.as_str()));
        if to == "adapters"
            && self.layer == "adapters"
            && driver.is_some_and(|d| self.module.get(1) != Some(d))
        {
            self.report(
                span,
                format!("a driver may not import another driver: `{shown}`"),
            );
        }
        if !may_import(&self.layer, to) {
            self.report(
                span,
                format!("{} may not import {to}: `{shown}`", self.layer),
            );
        } else if to == "adapters"
            && self.layer != "adapters"
            && !ANYTHING.contains(&self.layer.as_str())
            && driver.is_some()
        {
            self.report(
                span,
                format!(
                    "{} may use the adapters' contracts, not a driver: `{shown}`",
                    self.layer
                ),
            );
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, global: bool, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, global, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut full = prefix.clone();
                if n.ident != "self" {
                    full.push(n.ident.to_string());
                }
                self.check(&full, global, n.ident.span());
            }
            syn::UseTree::Rename(r) => {
                let mut full = prefix.clone();
                if r.ident != "self" {
                    full.push(r.ident.to_string());
                }
                self.check(&full, global, r.ident.span());
            }
            syn::UseTree::Glob(g) => {
                let span = g.star_token.spans[0];
                self.check(&prefix.clone(), global, span);
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, global, t);
                }
            }
        }
    }

    /// Paths inside a macro call's tokens (`tracing::info!(.. crate::x::y ..)`), which syn
    /// leaves unparsed: every run of `ident :: ident ...`.
    fn macro_tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(g) => {
                    self.macro_tokens(g.stream());
                    i += 1;
                }
                TokenTree::Ident(first) => {
                    let global = i >= 2 && is_colon2(&tokens, i - 2);
                    let mut segments = vec![first.to_string()];
                    let mut j = i + 1;
                    while is_colon2(&tokens, j) {
                        let Some(TokenTree::Ident(next)) = tokens.get(j + 2) else {
                            break;
                        };
                        segments.push(next.to_string());
                        j += 3;
                    }
                    if segments.len() > 1 {
                        self.check(&segments, global, first.span());
                    }
                    i = j.max(i + 1);
                }
                TokenTree::Punct(_) | TokenTree::Literal(_) => i += 1,
            }
        }
    }
}

fn is_colon2(tokens: &[TokenTree], at: usize) -> bool {
    matches!(
        (tokens.get(at), tokens.get(at + 1)),
        (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
            if a.as_char() == ':' && b.as_char() == ':'
    )
}

impl<'ast> Visit<'ast> for File<'_> {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), u.leading_colon.is_some(), &u.tree);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if m.content.is_some() {
            self.module.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.module.pop();
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if let Some(first) = p.segments.first() {
            self.check(&segments, p.leading_colon.is_some(), first.ident.span());
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.macro_tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }
}

/// The sources under `src`: path relative to `src`, and text.
fn sources() -> Vec<(PathBuf, String)> {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 50,
        "expected the crate's sources in {}",
        src.display()
    );
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path.strip_prefix(&src).unwrap().to_owned(), text)
        })
        .collect()
}

/// Every import that breaks the layers, as `src/<file>:<line>: <what>`.
fn problems() -> Vec<String> {
    let mut problems = Vec::new();
    for (rel, text) in &sources() {
        let ast = syn::parse_file(text).unwrap_or_else(|e| panic!("src/{}: {e}", rel.display()));
        let mut file = File {
            rel,
            layer: layer_of(rel),
            module: module_of(rel),
            problems: &mut problems,
        };
        file.visit_file(&ast);
    }
    problems
}

#[test]
fn every_import_follows_the_layers() {
    let problems = problems();
    assert!(
        problems.is_empty(),
        "{} import(s) break the layers (see `# Layout` in src/lib.rs):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn lib_rs_lists_every_top_level_module() {
    let src = src_dir();
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let module = name.trim_end_matches(".rs");
        if matches!(module, "lib" | "main") {
            continue;
        }
        let described = lib.contains(&format!("//! - [`{module}`]: "))
            || lib.contains(&format!("//! - `{module}`: "));
        if !described || !lib.contains(&format!("mod {module};")) {
            missing.push(module.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "src/lib.rs neither declares nor describes under `# Layout`: {missing:?}"
    );
}

#[test]
fn the_checker_sees_what_it_must_refuse() {
    let check = |rel: &str, code: &str| {
        let rel = Path::new(rel);
        let mut problems = Vec::new();
        let mut file = File {
            rel,
            layer: layer_of(rel),
            module: module_of(rel),
            problems: &mut problems,
        };
        file.visit_file(&syn::parse_file(code).unwrap());
        problems
    };
    let refused = [
        ("core/bridge/mod.rs", "use crate::store::Store;"),
        ("core/bridge/mod.rs", "use super::super::config::Secret;"),
        ("core/relay/tests.rs", "fn f() { crate::app::run(); }"),
        ("core/mod.rs", "fn f() { tokio::spawn(async {}); }"),
        ("core/mod.rs", "use std::fs::read;"),
        ("core/mod.rs", "fn f() { let _ = chrono::Utc::now(); }"),
        (
            "core/mod.rs",
            "fn f() { tracing::info!(x = ?crate::web::X); }",
        ),
        (
            "store/mod.rs",
            "use crate::{core::RoomRef, adapters::NetworkHandle};",
        ),
        ("web/media.rs", "use crate::adapters::matrix::MediaSource;"),
        (
            "config/mod.rs",
            "mod inner { use super::super::store::Store; }",
        ),
        ("adapters/mqtt/mod.rs", "use super::irc::Backoff;"),
    ];
    for (rel, code) in refused {
        assert_eq!(check(rel, code).len(), 1, "{rel}: {code}");
    }
    let allowed = [
        (
            "core/bridge/mod.rs",
            "use super::format::irc_text; use crate::core::Event;",
        ),
        (
            "core/relay/tests.rs",
            "use crate::test_support::pagure_mqtt;",
        ),
        ("config/mod.rs", "use crate::core::RoomRef;"),
        ("web/media.rs", "use crate::adapters::media::FileSource;"),
        (
            "app/mod.rs",
            "use crate::adapters::matrix; use crate::store::Store;",
        ),
        ("store/mod.rs", "mod tests { use super::*; }"),
        (
            "adapters/matrix/sync.rs",
            "use super::super::backoff::Backoff; use super::state::X;",
        ),
        (
            "adapters/irc/history.rs",
            "use crate::adapters::irc::Session;",
        ),
    ];
    for (rel, code) in allowed {
        assert_eq!(check(rel, code), Vec::<String>::new(), "{rel}: {code}");
    }
}
