use super::*;

fn load_one(text: &str) -> Result<CommandSet, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cmd.toml"), text).unwrap();
    let env = |n: &str| (n == "SET").then(|| "value".to_owned());
    load_dir_with_env(dir.path(), &env).map_err(|e| {
        // Paths differ per run: keep "cmd.toml:line:col: message".
        let s = e.to_string();
        s[s.find("cmd.toml").unwrap_or(0)..].to_owned()
    })
}

const OK: &str = r#"name = "bug"
summary = "Look up a bug"
[[args]]
name = "id"
pattern = "[0-9]+"
[http]
url = "https://bz.example.org/rest/bug/{{ args.id }}"
[reply]
success = "{{ json.bugs[0].id }}"
"#;

#[test]
fn shipped_commands_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("commands");
    let env = |n: &str| n.starts_with("SIGBOT_").then(|| "x".to_owned());
    let set = load_dir_with_env(&dir, &env).unwrap();
    let names: Vec<&str> = set.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["bug", "issue", "latest", "release", "repover"]);
    let release = set.get("release").unwrap();
    assert_eq!(release.role.as_deref(), Some("releng"));
    assert!(release.confirm);
    assert!(set.get("rhbz").is_some());
    // Without the trigger token, release is disabled and the rest still load.
    let set = load_dir_with_env(&dir, &|_| None).unwrap();
    assert!(set.get("release").is_none());
    assert_eq!(set.len(), 4);
    assert!(set.disabled()[0].contains("SIGBOT_RELEASE_TOKEN"));
}

#[test]
fn a_good_file_loads_with_defaults() {
    let set = load_one(OK).unwrap();
    let c = set.get("bug").unwrap();
    assert_eq!(c.usage, "bug <id>");
    assert_eq!(c.cooldown, Duration::ZERO);
    assert!(c.args[0].pattern.is_match("12"));
    assert!(!c.args[0].pattern.is_match("12x"), "patterns are anchored");
}

#[test]
fn errors_name_file_line_col_and_key() {
    let cases = [
        (
            OK.replace("summary", "sumary"),
            "cmd.toml:2:1: unknown field `sumary`",
        ),
        (
            OK.replace("[0-9]+", "[0-9"),
            "cmd.toml:5:11: args[0].pattern: bad regular expression",
        ),
        (
            OK.replace("{{ json.bugs[0].id }}", "{{ json.bugs[0].id }"),
            "cmd.toml:9:11: reply.success: template:",
        ),
        (
            OK.replace("https://bz", "ftp://bz"),
            "cmd.toml:7:7: http.url: must be an http:// or https:// URL",
        ),
        (
            OK.replace("name = \"bug\"", "name = \"help\""),
            "cmd.toml:1:8: name: \"help\" is a built-in command",
        ),
        (
            format!("{OK}[koji]\nhub = \"https://k\"\nmethod = \"getBuild\"\n"),
            "cmd.toml:10:1: action: a command has exactly one action table",
        ),
        (
            OK.replace("success = \"", "success = \"${SET} "),
            "cmd.toml:9:11: reply.success: ${ENV} is only allowed in request fields",
        ),
        (
            format!("cooldown = \"soon\"\n{OK}"),
            "cmd.toml:1:12: cooldown: bad duration",
        ),
    ];
    for (text, want) in cases {
        let err = load_one(&text)
            .err()
            .unwrap_or_else(|| panic!("must fail: {want}"));
        assert!(err.starts_with(want), "got {err:?}, want {want:?}");
    }
}

#[test]
fn koji_method_must_be_known() {
    let text = OK.replace(
        "[http]\nurl = \"https://bz.example.org/rest/bug/{{ args.id }}\"",
        "[koji]\nhub = \"https://cbs.example.org/kojihub\"\nmethod = \"deleteBuild\"",
    );
    let err = load_one(&text).unwrap_err();
    assert!(
        err.contains(
            "koji.method: \"deleteBuild\": use one of getLatestBuilds, listTagged, getBuild"
        ),
        "{err}"
    );
}

#[test]
fn names_clash_across_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), OK).unwrap();
    std::fs::write(
        dir.path().join("b.toml"),
        OK.replace("name = \"bug\"", "name = \"b2\"\naliases = [\"bug\"]"),
    )
    .unwrap();
    let err = load_dir_with_env(dir.path(), &|_| None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("b.toml:2:12: name: \"bug\" is already defined in"),
        "{err}"
    );
}

#[test]
fn secrets_become_placeholders() {
    let text = OK.replace(
        "[http]\n",
        "[http]\nheaders = { Authorization = \"Bearer ${SET}\" }\n",
    );
    let set = load_one(&text).unwrap();
    let c = set.get("bug").unwrap();
    let ActionSpec::Http(h) = &c.action else {
        unreachable!()
    };
    assert_eq!(h.headers[0].1, "Bearer \u{E000}SET\u{E001}");
    assert_eq!(c.secrets[0].0, "SET");
    assert!(
        !format!("{c:?}").contains("value\""),
        "Debug never shows the secret"
    );
}
