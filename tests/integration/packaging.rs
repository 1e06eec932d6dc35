//! The RPM spec, `dist/sigbot.spec`: rpmlint finds no error in it, it parses with Debian's rpm
//! (which has none of Fedora's systemd, sysusers or rust-packaging macros) into complete
//! scriptlets and paths, and it uses Fedora's macros where they are defined. No server; needs
//! Debian's `rpm` (rpmspec) and `rpmlint` packages, which scripts/test installs. Building the
//! package itself (a release build) is `scripts/rpm`, not a test.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{repo_root, require_program};

const HINT: &str = "install Debian's rpm and rpmlint packages \
                    (apt-get install --no-install-recommends rpm rpmlint; scripts/test does)";

fn spec() -> PathBuf {
    repo_root().join("dist/sigbot.spec")
}

/// Runs `program` with `args` in the repository; its stdout, or a panic with both streams
/// if it fails.
fn output_of(program: &str, args: &[&str]) -> String {
    let path = require_program(program, HINT);
    let out = Command::new(&path)
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The spec as rpm sees it after macro expansion, with `defines` (`name body`) given first.
fn parsed_spec(defines: &[&str]) -> String {
    let spec = spec();
    let mut args = Vec::new();
    for define in defines {
        args.extend(["--define", define]);
    }
    args.extend(["-P", spec.to_str().unwrap()]);
    output_of("rpmspec", &args)
}

/// The lines of one section (`%post`, `%files`, …) of a parsed spec, up to the next section.
fn section(parsed: &str, name: &str) -> String {
    const SECTIONS: &[&str] = &[
        "%prep",
        "%build",
        "%install",
        "%check",
        "%pre",
        "%post",
        "%preun",
        "%postun",
        "%files",
        "%changelog",
    ];
    let mut lines = parsed.lines().skip_while(|l| l.trim_end() != name);
    assert!(lines.next().is_some(), "no {name} section in:\n{parsed}");
    lines
        .take_while(|l| !SECTIONS.contains(&l.split_whitespace().next().unwrap_or("")))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn rpmlint_finds_no_error_in_the_spec() {
    let spec = spec();
    let report = output_of("rpmlint", &[spec.to_str().unwrap()]);
    let errors: Vec<&str> = report.lines().filter(|l| l.contains(": E: ")).collect();
    assert!(errors.is_empty(), "rpmlint errors:\n{report}");
    assert!(
        report.contains("0 errors"),
        "rpmlint gave no summary:\n{report}"
    );
}

#[test]
fn without_fedoras_macros_the_spec_expands_to_complete_scriptlets_and_paths() {
    let parsed = parsed_spec(&[]);
    for needle in [
        "%systemd",
        "%sysusers",
        "%{_unitdir}",
        "%{_sysusersdir}",
        "%{_tmpfilesdir}",
        "_completions_dir}",
        "%{sigbot_statedir}",
    ] {
        assert!(
            !parsed.contains(needle),
            "{needle} is left unexpanded:\n{parsed}"
        );
    }

    let pre = section(&parsed, "%pre");
    assert!(
        pre.contains("getent passwd sigbot >/dev/null ||")
            && pre.contains("useradd -r -g sigbot -d /var/lib/sigbot -s /sbin/nologin"),
        "%pre does not make the sigbot user:\n{pre}"
    );
    let units = "sigbot.service sigbot@.service";
    for (name, command) in [
        ("%post", format!("systemctl --no-reload preset {units}")),
        (
            "%preun",
            format!("systemctl --no-reload disable --now {units}"),
        ),
        ("%postun", format!("systemctl try-restart {units}")),
    ] {
        let body = section(&parsed, name);
        assert!(body.contains(&command), "{name} lacks {command:?}:\n{body}");
    }
    // The scriptlets run with /bin/sh: nothing bash-only.
    for name in ["%pre", "%post", "%preun", "%postun"] {
        let body = section(&parsed, name);
        assert!(!body.contains("&>"), "{name} uses bash's &>:\n{body}");
    }

    // No -debuginfo package without Fedora's macros: the binary is installed stripped.
    let install = section(&parsed, "%install");
    assert!(
        install.contains("install -Dpm 0755 -s sigbot.bin "),
        "%install does not strip the binary:\n{install}"
    );

    let files = section(&parsed, "%files");
    for path in [
        "/usr/bin/sigbot",
        "/usr/lib/systemd/system/sigbot.service",
        "/usr/lib/systemd/system/sigbot@.service",
        "/usr/lib/sysusers.d/sigbot.conf",
        "/usr/lib/tmpfiles.d/sigbot.conf",
        "%config(noreplace) /etc/sigbot/sigbot.toml",
        "%config(noreplace) /etc/sigbot/commands/*.toml",
        "%dir %attr(0700,root,root) /etc/sigbot/credentials",
        "/usr/share/man/man1/sigbot.1*",
        "/usr/share/bash-completion/completions/sigbot",
        "/usr/share/zsh/site-functions/_sigbot",
        "/usr/share/fish/vendor_completions.d/sigbot.fish",
        "%license LICENSE-MIT LICENSE-APACHE",
    ] {
        assert!(
            files
                .lines()
                .any(|l| l.trim() == path || l.starts_with(path)),
            "%files lacks {path}:\n{files}"
        );
    }
}

#[test]
fn with_fedoras_macros_the_spec_uses_them() {
    let parsed = parsed_spec(&[
        "systemd_requires Requires(post): systemd-from-macros",
        "sysusers_requires_compat Requires(pre): sysusers-from-macros",
        "systemd_post() POST_FROM_MACROS %{?*}",
        "systemd_preun() PREUN_FROM_MACROS %{?*}",
        "systemd_postun_with_restart() POSTUN_FROM_MACROS %{?*}",
        "sysusers_create_compat() SYSUSERS_FROM_MACROS %1",
        "_unitdir /fedora/unitdir",
        "_sysusersdir /fedora/sysusers.d",
        "_tmpfilesdir /fedora/tmpfiles.d",
        "bash_completions_dir /fedora/bash",
        "zsh_completions_dir /fedora/zsh",
        "fish_completions_dir /fedora/fish",
        "_enable_debug_packages 1",
    ]);
    let preamble = &parsed[..parsed.find("%description").expect("no %description")];
    assert!(
        preamble.contains("Requires(post): systemd-from-macros")
            && preamble.contains("Requires(pre): sysusers-from-macros"),
        "the preamble lacks %{{?systemd_requires}} or %{{?sysusers_requires_compat}}:\n{preamble}"
    );
    let units = "sigbot.service sigbot@.service";
    for (name, line) in [
        ("%post", format!("POST_FROM_MACROS {units}")),
        ("%preun", format!("PREUN_FROM_MACROS {units}")),
        ("%postun", format!("POSTUN_FROM_MACROS {units}")),
    ] {
        let body = section(&parsed, name);
        assert!(
            body.contains(&line) && !body.contains("systemctl"),
            "{name} does not use the host's macro:\n{body}"
        );
    }
    let pre = section(&parsed, "%pre");
    assert!(
        pre.contains("SYSUSERS_FROM_MACROS") && pre.contains("sigbot.sysusers"),
        "%pre does not use %sysusers_create_compat on Source2:\n{pre}"
    );
    assert!(
        !pre.contains("useradd"),
        "%pre still has the fallback:\n{pre}"
    );
    // find-debuginfo strips the binary for its -debuginfo package: %install leaves it whole.
    let install = section(&parsed, "%install");
    assert!(
        install.contains("install -Dpm 0755 sigbot.bin ") && !install.contains(" -s sigbot.bin"),
        "%install strips the binary before find-debuginfo:\n{install}"
    );
    let files = section(&parsed, "%files");
    for path in [
        "/fedora/unitdir/sigbot.service",
        "/fedora/sysusers.d/sigbot.conf",
        "/fedora/tmpfiles.d/sigbot.conf",
        "/fedora/bash/sigbot",
        "/fedora/zsh/_sigbot",
        "/fedora/fish/sigbot.fish",
    ] {
        assert!(
            files.lines().any(|l| l.trim() == path),
            "%files lacks {path}:\n{files}"
        );
    }
}
