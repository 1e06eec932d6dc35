//! `sigbot man` and `sigbot completions SHELL`: generated from the clap definitions, printed
//! to stdout, and usable by the tools that read them (groff, bash).

use std::process::Command;

use crate::support::bot::bot_binary;
use crate::support::{repo_root, require_program, temp_dir};

/// Runs `sigbot ARGS`; its stdout, after checking that it succeeded with nothing on stderr.
fn sigbot_stdout(args: &[&str]) -> String {
    let out = Command::new(bot_binary()).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sigbot {args:?}: {stderr}");
    assert!(
        stderr.is_empty(),
        "sigbot {args:?} wrote to stderr: {stderr}"
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn man_prints_a_page_groff_reads_without_warnings() {
    let page = sigbot_stdout(&["man"]);
    assert!(page.contains("\n.TH sigbot 1 "), "{page}");
    for section in [
        "NAME",
        "SYNOPSIS",
        "COMMANDS",
        "CONFIGURATION",
        "ENVIRONMENT",
        "FILES",
    ] {
        assert!(
            page.contains(&format!("\n.SH {section}\n")),
            "no {section} section:\n{page}"
        );
    }
    // Every subcommand, nested ones by their full name, and the full example it points to.
    for command in [
        "sigbot run",
        "sigbot check\\-config",
        "sigbot audit",
        "sigbot meetings render",
        "sigbot meetings import",
        "sigbot man",
        "sigbot completions",
    ] {
        assert!(page.contains(command), "{command:?} missing:\n{page}");
    }
    assert!(page.contains("example\\-full.toml"), "{page}");

    // Every section of the full example is named in the manual.
    let example = std::fs::read_to_string(repo_root().join("config/example-full.toml")).unwrap();
    let example: toml::Table = toml::from_str(&example).unwrap();
    for (key, value) in &example {
        let name = if value.is_array() {
            format!("[[{key}]]")
        } else {
            format!("[{key}]")
        };
        assert!(page.contains(&name), "{name} is not in the manual");
    }

    let groff = require_program("groff", "apt-get install groff-base");
    let dir = temp_dir("man");
    let file = dir.path().join("sigbot.1");
    std::fs::write(&file, &page).unwrap();
    let out = Command::new(groff)
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "groff warns about the page"
    );
}

#[test]
fn completions_offer_the_subcommands() {
    for shell in ["zsh", "fish"] {
        let script = sigbot_stdout(&["completions", shell]);
        assert!(
            script.contains("check-config") && script.contains("meetings"),
            "{shell}:\n{script}"
        );
    }
    // bash loads the script and completes `sigbot <TAB>` with the subcommands.
    let script = sigbot_stdout(&["completions", "bash"]);
    let dir = temp_dir("completions");
    let file = dir.path().join("sigbot.bash");
    std::fs::write(&file, script).unwrap();
    let bash = require_program("bash", "apt-get install bash");
    let out = Command::new(bash)
        .arg("-c")
        .arg(
            r#"source "$1" || exit 1
COMP_WORDS=(sigbot "")
COMP_CWORD=1
COMP_LINE="sigbot "
COMP_POINT=${#COMP_LINE}
_sigbot sigbot "" sigbot
printf '%s\n' "${COMPREPLY[@]}""#,
        )
        .arg("bash")
        .arg(&file)
        .output()
        .unwrap();
    let offered = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for command in [
        "run",
        "check-config",
        "audit",
        "meetings",
        "man",
        "completions",
    ] {
        assert!(
            offered.lines().any(|l| l == command),
            "bash does not offer {command}: {offered}"
        );
    }

    // A shell clap does not know is refused with the ones it does.
    let out = Command::new(bot_binary())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values: bash"));
}
