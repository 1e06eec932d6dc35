use super::*;
use crate::core::watch::PackageSource;

fn env(name: &str) -> Option<String> {
    match name {
        "SET" => Some("s3cret".into()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_str_with_env(text, Path::new("bot.toml"), &env)
}

fn err(text: &str) -> String {
    parse(text)
        .expect_err("config should be refused")
        .to_string()
}

const BASE: &str = r##"
[bot]
nick = "sigbot"

[console]
enabled = true

[[irc]]
name = "libera"
server = "irc.libera.chat:6697"
channels = ["#sig"]
"##;

#[test]
fn a_small_config_is_accepted() {
    let c = parse(BASE).unwrap();
    assert_eq!(c.bot.prefix, "!");
    assert_eq!(
        c.console.as_ref().unwrap().room_ref().to_string(),
        "console/#local"
    );
    assert_eq!(c.irc[0].host, "irc.libera.chat");
    assert_eq!(c.irc[0].port, 6697);
    assert!(c.irc[0].tls);
    assert_eq!(
        c.irc[0].rate,
        Rate {
            burst: 4,
            per_second: 0.8
        }
    );
}

#[test]
fn unknown_key_is_refused_with_its_location() {
    let e = err("[bot]\nnick = \"x\"\nnickname = \"y\"\n");
    assert!(
        e.starts_with("bot.toml:3:1: unknown field `nickname`"),
        "{e}"
    );
}

#[test]
fn unknown_key_in_an_array_table_is_refused() {
    let e = err(&format!("{BASE}chanels = [\"#x\"]\n"));
    assert!(
        e.starts_with("bot.toml:12:1: unknown field `chanels`"),
        "{e}"
    );
}

#[test]
fn malformed_room_reference_is_refused() {
    let e = err(&format!("{BASE}\n[meetings]\nrooms = [\"libera#sig\"]\n"));
    assert!(e.starts_with("bot.toml:14:10: "), "{e}");
    assert!(e.contains("has no '/'"), "{e}");
}

#[test]
fn room_on_an_undefined_network_is_refused() {
    let e = err(&format!(
        "{BASE}\n[[bridge]]\nname = \"b\"\nrooms = [\"libera/#sig\", \"oftc/#sig\"]\n"
    ));
    assert!(e.starts_with("bot.toml:15:25: "), "{e}");
    assert!(
        e.contains("names network \"oftc\", which is not defined"),
        "{e}"
    );
}

#[test]
fn two_networks_with_one_name_are_refused() {
    let e = err(&format!(
        "{BASE}\n[[matrix]]\nname = \"libera\"\nhomeserver = \"https://m.org\"\nuser = \"@b:m.org\"\npassword = \"x\"\n"
    ));
    assert!(
        e.starts_with("bot.toml:14:8: two networks are named \"libera\""),
        "{e}"
    );
}

#[test]
fn unset_environment_variable_is_named() {
    let e = err(&format!("{BASE}password = \"${{NOPE_NOT_SET}}\"\n"));
    assert_eq!(
        e,
        "bot.toml:12:12: environment variable NOPE_NOT_SET is not set"
    );
}

#[test]
fn set_environment_variable_is_expanded_and_redacted() {
    let c = parse(&format!(
        "{BASE}sasl = {{ user = \"bot\", password = \"${{SET}}\" }}\n"
    ))
    .unwrap();
    let Some(Sasl::Plain { user, password }) = &c.irc[0].sasl else {
        panic!("expected sasl plain")
    };
    assert_eq!(user, "bot");
    assert_eq!(password.expose(), "s3cret");
    let debug = format!("{c:?}");
    assert!(!debug.contains("s3cret"), "secret leaked in Debug");
    assert!(!c.summary().contains("s3cret"), "secret leaked in summary");
}

#[test]
fn unreadable_secret_file_is_refused() {
    let e = err(&format!(
        "{BASE}password = {{ file = \"/nonexistent/secret\" }}\n"
    ));
    assert!(
        e.starts_with("bot.toml:12:12: password: cannot read secret file /nonexistent/secret"),
        "{e}"
    );
}

#[test]
fn secret_file_is_read_without_its_newline() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pw");
    std::fs::write(&f, "hunter2\n").unwrap();
    let c = parse(&format!(
        "{BASE}password = {{ file = \"{}\" }}\n",
        f.display()
    ))
    .unwrap();
    assert_eq!(c.irc[0].password.as_ref().unwrap().expose(), "hunter2");
}

/// Under systemd, secrets come from `LoadCredential=` as files in `$CREDENTIALS_DIRECTORY`:
/// `${ENV}` is expanded inside a secret's `file` too.
#[test]
fn secret_file_path_may_name_the_credentials_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sigbot_libera"), "hunter2\n").unwrap();
    let creds = dir.path().display().to_string();
    let env = |name: &str| (name == "CREDENTIALS_DIRECTORY").then(|| creds.clone());
    let text =
        format!("{BASE}password = {{ file = \"${{CREDENTIALS_DIRECTORY}}/sigbot_libera\" }}\n");
    let c = Config::from_str_with_env(&text, Path::new("bot.toml"), &env).unwrap();
    assert_eq!(c.irc[0].password.as_ref().unwrap().expose(), "hunter2");
    // Outside systemd the variable is unset: an error at the secret, naming it.
    let e = err(&text);
    assert!(
        e.starts_with("bot.toml:12:21: environment variable CREDENTIALS_DIRECTORY is not set"),
        "{e}"
    );
}

#[test]
fn log_format_and_level_default_to_text_and_info() {
    assert_eq!(parse(BASE).unwrap().log, LogConfig::default());
    let c = parse(&format!(
        "[log]\nformat = \"json\"\nlevel = \"DEBUG\"\n{BASE}"
    ))
    .unwrap();
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.log.level, LogLevel::Debug);
    assert_eq!(c.log.level.as_str(), "debug");
    let e = err(&format!("[log]\nlevel = \"verbose\"\n{BASE}"));
    assert!(e.starts_with("bot.toml:2:9: log.level \"verbose\""), "{e}");
    let e = err(&format!("[log]\nfile = \"x.log\"\n{BASE}"));
    assert!(e.starts_with("bot.toml:2:1: unknown field `file`"), "{e}");
}

#[test]
fn toml_syntax_error_has_a_location() {
    let e = err("[bot\nnick = 1\n");
    assert!(e.starts_with("bot.toml:1:"), "{e}");
}

#[test]
fn role_members_must_be_principals_on_chat_networks() {
    let e = err(&format!("{BASE}\n[roles]\nreleng = [\"dcavalca\"]\n"));
    assert!(
        e.starts_with("bot.toml:14:11: role releng: \"dcavalca\" is not"),
        "{e}"
    );
    let e = err(&format!("{BASE}\n[roles]\nreleng = [\"oftc:dcavalca\"]\n"));
    assert!(e.contains("not a defined chat network"), "{e}");
    let c = parse(&format!(
        "{BASE}\n[roles]\nreleng = [\"libera:dcavalca\"]\n"
    ))
    .unwrap();
    assert_eq!(c.roles["releng"], [Principal::new("libera", "dcavalca")]);
}

#[test]
fn irc_room_must_be_a_channel_and_matrix_room_an_alias_or_id() {
    let e = err(&format!("{BASE}\n[meetings]\nrooms = [\"libera/sig\"]\n"));
    assert!(e.contains("an IRC channel starts with '#'"), "{e}");
    let e = err(
        "[[matrix]]\nname = \"m\"\nhomeserver = \"https://m.org\"\nuser = \"@b:m.org\"\npassword = \"x\"\nrooms = [\"general\"]\n",
    );
    assert!(
        e.starts_with("bot.toml:6:10: matrix room \"general\""),
        "{e}"
    );
    // Room version 12 IDs have no server part.
    for room in ["!abc:m.org", "!Sm9obk1hdHJpeA", "#sig:m.org"] {
        let cfg = format!(
            "[[matrix]]\nname = \"m\"\nhomeserver = \"https://m.org\"\nuser = \"@b:m.org\"\npassword = \"x\"\nrooms = [\"{room}\"]\n"
        );
        assert!(parse(&cfg).is_ok(), "{room}");
    }
    for room in ["!", "#sig", "!a:", "#:m.org"] {
        let cfg = format!(
            "[[matrix]]\nname = \"m\"\nhomeserver = \"https://m.org\"\nuser = \"@b:m.org\"\npassword = \"x\"\nrooms = [\"{room}\"]\n"
        );
        assert!(parse(&cfg).is_err(), "{room}");
    }
}

#[test]
fn env_expansion_rules() {
    let env = |n: &str| (n == "A").then(|| "1".to_owned());
    assert_eq!(expand_env("x${A}y", &env).unwrap(), "x1y");
    assert_eq!(expand_env("$${A}", &env).unwrap(), "${A}");
    assert_eq!(expand_env("cost $5", &env).unwrap(), "cost $5");
    assert!(
        expand_env("${B}", &env)
            .unwrap_err()
            .contains("B is not set")
    );
    assert!(expand_env("${A", &env).is_err());
    assert!(expand_env("${A-B}", &env).is_err());
}

#[test]
fn bad_durations_and_rates_are_refused() {
    let e = err(&format!("{BASE}staleness = \"ten minutes\"\n"));
    assert!(
        e.starts_with("bot.toml:12:13: staleness: bad duration"),
        "{e}"
    );
    let e = err(&format!("{BASE}rate = {{ burst = 0, per_second = 1.0 }}\n"));
    assert!(e.contains("rate.burst must be at least 1"), "{e}");
}

/// Every config shipped in config/ must parse (with placeholder secrets in the environment).
#[test]
fn shipped_configs_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            // Secret files named in the example do not exist here; check everything else.
            let text = text.replace("{ file = \"/etc/sigbot/", "{ file = \"/dev/null\" } # ");
            let cfg = Config::from_str_with_env(&text, &path, &|_| Some("placeholder".into()))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(!cfg.summary().is_empty());
            seen += 1;
        }
    }
    assert!(
        seen >= 2,
        "expected config/sigbot.toml and config/example-full.toml"
    );
}

#[test]
fn bridged_irc_channels_are_joined_without_being_listed() {
    let c = parse(&format!(
        "{BASE}\n[[bridge]]\nname = \"b\"\nrooms = [\"libera/#other\", \"console/#local\", \"libera/#SIG\"]\nmax_mentions = 2\n"
    ))
    .unwrap();
    let chans: Vec<&str> = c.irc[0].channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(chans, ["#sig", "#other"]);
    let b = &c.bridges[0];
    assert_eq!(b.max_mentions, 2);
    assert_eq!(b.max_lines, 3);
    assert!(!b.encrypted);
    assert!(!b.join_part);
    assert!(!b.quits && !b.nick_changes && !b.topics);
}

#[test]
fn presence_relay_is_chosen_per_kind() {
    let c = parse(&format!(
        "{BASE}\n[[bridge]]\nname = \"b\"\nrooms = [\"libera/#x\", \"console/#local\"]\n\
         join_part = true\nquits = true\nnick_changes = false\ntopics = true\n"
    ))
    .unwrap();
    let b = &c.bridges[0];
    assert!(b.join_part && b.quits && !b.nick_changes && b.topics);
    assert!(c.irc[0].relaymsg_channels.is_empty());
}

#[test]
fn relaymsg_is_turned_on_for_the_channels_of_its_bridge() {
    let c = parse(&format!(
        "{BASE}\n[[bridge]]\nname = \"b\"\nrooms = [\"libera/#X\", \"console/#local\"]\nrelaymsg = true\n"
    ))
    .unwrap();
    assert_eq!(c.irc[0].relaymsg_channels, ["#x"]);
}

#[test]
fn a_room_belongs_to_one_bridge() {
    let e = err(&format!(
        "{BASE}\n[[bridge]]\nname = \"a\"\nrooms = [\"libera/#sig\", \"console/#local\"]\n\
         [[bridge]]\nname = \"b\"\nrooms = [\"libera/#x\", \"libera/#sig\"]\n"
    ));
    assert!(e.contains("room libera/#sig is in bridges a and b"), "{e}");
    let e = err(&format!(
        "{BASE}\n[[bridge]]\nname = \"a\"\nrooms = [\"libera/#sig\", \"libera/#sig\"]\n"
    ));
    assert!(e.contains("listed twice"), "{e}");
}

#[test]
fn bridge_ignore_regex_must_compile() {
    let e = err(&format!(
        "{BASE}\n[[bridge]]\nname = \"a\"\nrooms = [\"libera/#sig\", \"console/#local\"]\nignore_regex = [\"github bot\", \"(\"]\n"
    ));
    assert!(e.contains("ignore_regex[1]"), "{e}");
}

const WATCH_BASE: &str = r##"
[console]

[[mqtt]]
name = "centos"
url = "mqtt://127.0.0.1:1883"
client_id = "t"
"##;

#[test]
fn a_watch_is_read_with_both_kinds_of_source() {
    let c = parse(&format!(
        r#"{WATCH_BASE}
[[watch]]
name = "c9s"
packages = ["systemd", "util-linux"]
ours = {{ repodata = "http://ours.example/repo/" }}
upstream = {{ koji = {{ hub = "https://koji.example/kojihub", tag = "c9s-gate" }} }}
to = ["console/#local"]
poll = "10m"
on = "cbs-signing/#"
from = "centos"
"#
    ))
    .unwrap();
    let w = &c.watches[0];
    assert_eq!(w.name, "c9s");
    assert_eq!(w.packages, ["systemd", "util-linux"]);
    assert_eq!(
        w.ours,
        PackageSource::Repodata {
            url: "http://ours.example/repo/".into()
        }
    );
    assert_eq!(
        w.upstream,
        PackageSource::Koji {
            hub: "https://koji.example/kojihub".into(),
            tag: "c9s-gate".into()
        }
    );
    assert_eq!(w.to, [RoomRef::new("console", "#local")]);
    assert_eq!(w.poll, Duration::from_secs(600));
    assert_eq!(w.on, ["cbs-signing/#"]);
    assert_eq!(w.from.as_deref(), Some("centos"));
    assert!(c.summary().contains("watch c9s: 2 package(s), every 10m"));
}

#[test]
fn bad_watches_are_refused_at_their_location() {
    let watch = |body: &str| {
        err(&format!(
            "{WATCH_BASE}\n[[watch]]\nname = \"w\"\nto = [\"console/#local\"]\n{body}"
        ))
    };
    let good_sources =
        "ours = { repodata = \"http://a/\" }\nupstream = { repodata = \"http://b/\" }\n";
    // The [[watch]] header is on line 9 of these configs, `packages` on line 12.
    let e = watch(&format!("packages = []\n{good_sources}"));
    assert!(
        e.starts_with("bot.toml:12:12: packages: name at least one package"),
        "{e}"
    );
    let e = watch(&format!("packages = [\"a b\"]\n{good_sources}"));
    assert!(
        e.contains(":12:13: packages: \"a b\" is not an RPM package name"),
        "{e}"
    );
    let e = watch(
        "packages = [\"x\"]\nours = { repodata = \"ftp://a/\" }\nupstream = { repodata = \"http://b/\" }\n",
    );
    assert!(
        e.contains(":13:21: ours.repodata: \"ftp://a/\" is not an http"),
        "{e}"
    );
    let e = watch("packages = [\"x\"]\nours = { }\nupstream = { repodata = \"http://b/\" }\n");
    assert!(e.contains(":13:8: ours: give exactly one of"), "{e}");
    let e = watch(&format!(
        "packages = [\"x\"]\n{good_sources}poll = \"soon\"\n"
    ));
    assert!(e.contains(":15:8: poll: bad duration"), "{e}");
    let e = watch(&format!(
        "packages = [\"x\"]\n{good_sources}on = [\"a/#/b\"]\n"
    ));
    assert!(e.contains(":15:7: on: "), "{e}");
    let e = watch(&format!(
        "packages = [\"x\"]\n{good_sources}from = \"console\"\n"
    ));
    assert!(
        e.contains(":15:8: from: no [[mqtt]] connection is named"),
        "{e}"
    );
    let e = watch(&format!("packages = [\"x\"]\n{good_sources}wat = 1\n"));
    assert!(e.contains("unknown field `wat`"), "{e}");
}

#[test]
fn the_embedded_broker_listens_on_loopback_unless_told_and_wants_a_whole_login() {
    let c = parse(&format!("{BASE}\n[broker]\n")).unwrap();
    let b = c.broker.unwrap();
    assert_eq!(b.listen.to_string(), "127.0.0.1:1883");
    assert!(b.login.is_none());

    let c = parse(&format!(
        "{BASE}\n[broker]\nlisten = \"0.0.0.0:1884\"\nusername = \"u\"\npassword = \"p\"\n"
    ))
    .unwrap();
    let (user, password) = c.broker.unwrap().login.unwrap();
    assert_eq!((user.as_str(), password.expose()), ("u", "p"));

    let e = parse(&format!("{BASE}\n[broker]\nusername = \"u\"\n")).unwrap_err();
    assert!(
        e.to_string()
            .contains("broker.username needs broker.password"),
        "{e}"
    );
    let e = parse(&format!("{BASE}\n[broker]\npassword = \"p\"\n")).unwrap_err();
    assert!(
        e.to_string()
            .contains("broker.password needs broker.username"),
        "{e}"
    );
}

#[test]
fn the_media_cache_is_sized_in_mib_with_room_for_one_file() {
    let web = |extra: &str| format!("{BASE}\n[web]\nlisten = \"127.0.0.1:8080\"\n{extra}");
    let c = parse(&web("")).unwrap();
    assert_eq!(c.web.unwrap().media_cache_bytes, 512 * 1024 * 1024);
    let c = parse(&web("media_cache_mib = 64\n")).unwrap();
    assert_eq!(c.web.unwrap().media_cache_bytes, 64 * 1024 * 1024);
    let e = err(&web("media_cache_mib = 24\n"));
    assert!(
        e.starts_with("bot.toml:15:19: web.media_cache_mib must be at least 25"),
        "{e}"
    );
}

#[test]
fn meetings_idle_timeout_defaults_to_three_hours_and_is_a_positive_duration() {
    let rooms = "[meetings]\nrooms = [\"libera/#sig\"]\n";
    let c = parse(&format!("{BASE}\n{rooms}")).unwrap();
    assert_eq!(
        c.meeting_idle_timeout,
        std::time::Duration::from_secs(3 * 3600)
    );
    let c = parse(&format!("{BASE}\n{rooms}idle_timeout = \"90m\"\n")).unwrap();
    assert_eq!(
        c.meeting_idle_timeout,
        std::time::Duration::from_secs(90 * 60)
    );
    let e = err(&format!("{BASE}\n{rooms}idle_timeout = \"soon\"\n"));
    assert!(
        e.contains("idle_timeout") && e.contains("bad duration"),
        "{e}"
    );
    let e = err(&format!("{BASE}\n{rooms}idle_timeout = \"0s\"\n"));
    assert!(e.contains("longer than 0s"), "{e}");
}

#[test]
fn matrix_store_passphrase_takes_every_secret_form_and_never_shows() {
    let matrix = "\n[[matrix]]\nname = \"m\"\nhomeserver = \"https://m.org\"\nuser = \"@b:m.org\"\npassword = \"x\"\n";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passphrase");
    std::fs::write(&file, "s3cret\n").unwrap();
    for form in [
        "\"s3cret\"".to_owned(),
        "\"${SET}\"".to_owned(),
        format!("{{ file = \"{}\" }}", file.display()),
    ] {
        let c = parse(&format!("{BASE}{matrix}store_passphrase = {form}\n")).unwrap();
        let p = c.matrix[0].store_passphrase.as_ref().expect("set");
        assert_eq!(p.expose(), "s3cret", "{form}");
        assert!(!format!("{c:?}").contains("s3cret"), "leaked in Debug");
        let summary = c.summary();
        assert!(!summary.contains("s3cret"), "leaked in the summary");
        assert!(summary.contains("store encrypted"), "{summary}");
    }
    let c = parse(&format!("{BASE}{matrix}")).unwrap();
    assert!(c.matrix[0].store_passphrase.is_none());
    let e = err(&format!("{BASE}{matrix}store_passphrase = \"\"\n"));
    assert_eq!(e, "bot.toml:18:20: store_passphrase is empty");
}

#[test]
fn metrics_default_to_the_web_site_and_may_have_a_listener_of_their_own() {
    let c = parse(BASE).unwrap();
    assert_eq!(c.metrics, MetricsConfig::default());
    assert!(c.metrics.enabled);
    let c = parse(&format!(
        "{BASE}\n[metrics]\nlisten = \"127.0.0.1:9187\"\n[web]\nready_grace = \"5s\"\n"
    ))
    .unwrap();
    assert_eq!(c.metrics.listen, Some("127.0.0.1:9187".parse().unwrap()));
    assert!(
        c.summary()
            .contains("metrics: http://127.0.0.1:9187/metrics"),
        "{}",
        c.summary()
    );
    assert_eq!(
        c.web.as_ref().unwrap().ready_grace,
        std::time::Duration::from_secs(5)
    );
    let c = parse(&format!("{BASE}\n[web]\n")).unwrap();
    assert_eq!(
        c.web.unwrap().ready_grace,
        std::time::Duration::from_secs(120)
    );
}

#[test]
fn a_wrong_metrics_key_or_address_is_refused_with_its_location() {
    let e = err(&format!(
        "{BASE}\n[metrics]\nlisten = \"127.0.0.1:9187\"\nlisen = \"x\"\n"
    ));
    assert!(e.starts_with("bot.toml:15:1: unknown field `lisen`"), "{e}");
    let e = err(&format!("{BASE}\n[metrics]\nlisten = \"localhost\"\n"));
    assert!(e.starts_with("bot.toml:14:10: metrics.listen"), "{e}");
    let e = err(&format!("{BASE}\n[web]\nready_grace = \"soon\"\n"));
    assert!(e.starts_with("bot.toml:14:15: "), "{e}");
    assert!(e.contains("ready_grace"), "{e}");
}

const MAIL_ROOMS: &str = "[meetings]\nrooms = [\"libera/#sig\", \"console/#local\"]\n";

fn mail(body: &str) -> String {
    format!("{BASE}\n{MAIL_ROOMS}\n[meetings.mail]\n{body}")
}

#[test]
fn meetings_mail_reads_addresses_the_smtp_url_and_a_secret_password() {
    let c = parse(&mail(
        "to = [\"sig@lists.example.org\", \"Board <board@example.org>\"]\n\
         from = \"sigbot <sigbot@example.org>\"\n\
         smtp = \"smtps://mail.example.org\"\n\
         user = \"sigbot\"\npassword = \"${SET}\"\nca_file = \"ca.pem\"\n",
    ))
    .unwrap();
    let m = c.meeting_mail.as_ref().expect("mail configured");
    assert_eq!(m.to.len(), 2);
    assert_eq!(m.to[0].email.to_string(), "sig@lists.example.org");
    assert_eq!(m.to[1].name.as_deref(), Some("Board"));
    assert_eq!(m.from.email.to_string(), "sigbot@example.org");
    assert_eq!(m.smtp.host, "mail.example.org");
    assert_eq!(m.smtp.port, 465);
    assert_eq!(m.smtp.security, SmtpSecurity::Tls);
    let (user, password) = m.login.as_ref().expect("login");
    assert_eq!((user.as_str(), password.expose()), ("sigbot", "s3cret"));
    assert_eq!(m.ca_file.as_deref(), Some(Path::new("ca.pem")));
    assert!(!format!("{c:?}").contains("s3cret"), "leaked in Debug");
    let summary = c.summary();
    assert!(!summary.contains("s3cret"), "leaked in the summary");
    assert!(summary.contains("mailed to 2 address(es)"), "{summary}");
    // No rooms: every meeting room is mailed.
    assert!(m.covers(&RoomRef::new("libera", "#sig")));
    assert!(m.covers(&RoomRef::new("console", "#local")));
    // Without the table nothing is mailed.
    assert!(
        parse(&format!("{BASE}\n{MAIL_ROOMS}"))
            .unwrap()
            .meeting_mail
            .is_none()
    );
}

#[test]
fn meetings_mail_smtp_is_starttls_tls_or_plain_only_on_loopback() {
    let base = "to = [\"a@example.org\"]\nfrom = \"b@example.org\"\n";
    let server = |url: &str| {
        parse(&mail(&format!("{base}smtp = \"{url}\"\n")))
            .unwrap()
            .meeting_mail
            .unwrap()
            .smtp
    };
    let s = server("smtp://mail.example.org");
    assert_eq!((s.port, s.security), (587, SmtpSecurity::StartTls));
    let s = server("smtp://mail.example.org:2525");
    assert_eq!((s.port, s.security), (2525, SmtpSecurity::StartTls));
    let s = server("smtps://mail.example.org:4650");
    assert_eq!((s.port, s.security), (4650, SmtpSecurity::Tls));
    for local in ["127.0.0.1", "localhost", "[::1]"] {
        let s = server(&format!("smtp://{local}:25"));
        assert_eq!((s.port, s.security), (25, SmtpSecurity::Plain), "{local}");
    }
    let e = err(&mail(&format!(
        "{base}smtp = \"smtp://mail.example.org:25\"\n"
    )));
    assert!(
        e.starts_with("bot.toml:19:8: meetings.mail.smtp") && e.contains("loopback"),
        "{e}"
    );
    let e = err(&mail(&format!("{base}smtp = \"mail.example.org:465\"\n")));
    assert!(
        e.starts_with("bot.toml:19:8:") && e.contains("smtps:// or smtp://"),
        "{e}"
    );
    let e = err(&mail(&format!(
        "{base}smtp = \"smtp://mail.example.org:x\"\n"
    )));
    assert!(
        e.starts_with("bot.toml:19:8:") && e.contains("bad port"),
        "{e}"
    );
}

#[test]
fn a_bad_mail_address_is_refused_where_it_is_written() {
    let e = err(&mail(
        "to = [\"a@example.org\", \"not an address\"]\nfrom = \"b@example.org\"\nsmtp = \"smtps://m.example.org\"\n",
    ));
    assert!(
        e.starts_with("bot.toml:17:24: meetings.mail.to: bad mail address \"not an address\""),
        "{e}"
    );
    let e = err(&mail(
        "to = [\"a@example.org\"]\nfrom = \"b@\"\nsmtp = \"smtps://m.example.org\"\n",
    ));
    assert!(
        e.starts_with("bot.toml:18:8: meetings.mail.from: bad mail address \"b@\""),
        "{e}"
    );
    let e = err(&mail(
        "to = []\nfrom = \"b@example.org\"\nsmtp = \"smtps://m.example.org\"\n",
    ));
    assert!(
        e.starts_with("bot.toml:17:6:") && e.contains("at least one"),
        "{e}"
    );
    let e = err(&mail(
        "to = [\"a@example.org\"]\nsmtp = \"smtps://m.example.org\"\n",
    ));
    assert!(e.contains("from"), "{e}");
    let e = err(&mail(
        "to = [\"a@example.org\"]\nfrom = \"b@example.org\"\nsmtp = \"smtps://m.example.org\"\nbcc = \"x\"\n",
    ));
    assert!(e.starts_with("bot.toml:20:1:") && e.contains("bcc"), "{e}");
}

#[test]
fn meetings_mail_wants_a_whole_login_and_rooms_that_hold_meetings() {
    let base =
        "to = [\"a@example.org\"]\nfrom = \"b@example.org\"\nsmtp = \"smtps://m.example.org\"\n";
    let e = err(&mail(&format!("{base}user = \"bot\"\n")));
    assert!(
        e.starts_with("bot.toml:20:8:") && e.contains("needs a password"),
        "{e}"
    );
    let e = err(&mail(&format!("{base}password = \"x\"\n")));
    assert!(
        e.starts_with("bot.toml:20:12:") && e.contains("needs a user"),
        "{e}"
    );
    let c = parse(&mail(&format!("{base}rooms = [\"libera/#sig\"]\n"))).unwrap();
    let m = c.meeting_mail.unwrap();
    assert!(m.covers(&RoomRef::new("libera", "#sig")));
    assert!(!m.covers(&RoomRef::new("console", "#local")));
    let e = err(&mail(&format!("{base}rooms = [\"libera/#other\"]\n")));
    assert!(
        e.starts_with("bot.toml:20:10:") && e.contains("holds no meetings"),
        "{e}"
    );
}
