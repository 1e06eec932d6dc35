//! One link option for the `sigbot` binary: RELR relocations (`-z pack-relative-relocs`).
//!
//! A position-independent binary carries a table of relative relocations that the loader reads
//! whole at every start (about 2 MB in a release build); RELR packs it into a few kilobytes,
//! which takes about 1.7 MiB off the bot's idle resident memory (issue 16, DESIGN §9). The
//! binary then needs glibc 2.36 or later where it runs, so the option is used only when the
//! machine that builds it has that glibc and builds for itself (a bot is built on the
//! distribution it runs on: Debian 12 and later, Fedora 37 and later, RHEL 10; not RHEL 9).
//! `SIGBOT_RELR=0` leaves it out, `SIGBOT_RELR=1` forces it (cross builds).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SIGBOT_RELR");
    if relr_wanted() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

fn relr_wanted() -> bool {
    let var = |name| std::env::var(name).unwrap_or_default();
    match var("SIGBOT_RELR").as_str() {
        "0" => return false,
        "1" => return true,
        _ => {}
    }
    var("TARGET") == var("HOST")
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
        && glibc_version().is_some_and(|v| v >= (2, 36))
}

/// The building machine's glibc, from `getconf GNU_LIBC_VERSION` ("glibc 2.36").
fn glibc_version() -> Option<(u32, u32)> {
    let out = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let (major, rest) = text.trim().strip_prefix("glibc ")?.split_once('.')?;
    let minor = rest.split('.').next()?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}
