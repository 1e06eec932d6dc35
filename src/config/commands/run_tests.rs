//! Declarative commands, parsed from command files, run through `Core::handle` with a fixed
//! `now` and a fixed code seed. They live on the config side because the core never reads
//! command files.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::parse_str;
use crate::core::commands::declarative::{SECRET_CLOSE, SECRET_OPEN};
use crate::core::*;

const RELEASE: &str = r#"
name = "release"
summary = "Start the release pipeline"
role = "releng"
confirm = true
cooldown = "30s"
[[args]]
name = "version"
pattern = "[0-9.]+"
[http]
method = "POST"
url = "https://ci.example.org/trigger?token=${TOKEN}"
headers = { Authorization = "Bearer ${TOKEN}" }
form = { ref = "main", version = "{{ args.version }}" }
expect = [201]
[reply]
success = "started {{ json.id }} for {{ caller.nick }}"
error = "not started: {{ error }}"
"#;

const BUG: &str = r#"
name = "bug"
aliases = ["rhbz"]
summary = "Look up a bug"
cooldown = "5s"
[[args]]
name = "id"
pattern = "[0-9]+"
[http]
url = "https://bz.example.org/rest/bug/{{ args.id }}"
[reply]
success = "rhbz#{{ json.bugs[0].id }}: {{ json.bugs[0].summary }}"
not_found = "No bug {{ args.id }}"
error = "Bugzilla did not answer: {{ error }}"
"#;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
}

fn core() -> Core {
    let env = |n: &str| (n == "TOKEN").then(|| "tok-SECRET-123".to_owned());
    let parse = |text, file: &str| parse_str(text, std::path::Path::new(file), &env).unwrap();
    let set =
        CommandSet::new(vec![parse(RELEASE, "release.toml"), parse(BUG, "bug.toml")]).unwrap();
    let mut c = Core::new(
        CoreSettings {
            nick: "sigbot".into(),
            prefix: "!".into(),
            roles: Roles::new([(
                "releng".to_owned(),
                vec![Principal::new("libera", "dcavalca")],
            )]),
            networks: vec!["libera".into()],
            version: "1".into(),
        },
        t0(),
    );
    c.set_commands(Arc::new(set));
    c.set_code_seed(7);
    c
}

fn room() -> RoomRef {
    RoomRef::new("libera", "#sig")
}

fn msg_in(room: RoomRef, nick: &str, account: Option<&str>, text: &str) -> Event {
    Event::Message(IncomingMessage {
        room,
        sender: Sender {
            nick: nick.into(),
            principal: account.map(|a| Principal::new("libera", a)),
            mask: None,
        },
        kind: MessageKind::Text,
        text: text.into(),
        id: None,
        sent_at: None,
    })
}

fn msg(nick: &str, account: Option<&str>, text: &str) -> Event {
    msg_in(room(), nick, account, text)
}

fn texts(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn audits(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Audit(e) => Some(format!(
                "{} {} {} [{}] {}",
                e.principal, e.room, e.command, e.args, e.result
            )),
            _ => None,
        })
        .collect()
}

fn fetch(actions: &[Action]) -> FetchRequest {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Fetch(f) => Some(f.clone()),
            _ => None,
        })
        .expect("a fetch action")
}

/// The code in "... say !confirm CODE within ...".
fn code_in(text: &str) -> String {
    let after = text.split("!confirm ").nth(1).expect("a confirm code");
    after.split_whitespace().next().unwrap().to_owned()
}

fn http(status: u16, body: &str) -> FetchOutcome {
    FetchOutcome::Http {
        status,
        reason: "R".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        text: body.into(),
    }
}

#[test]
fn lookup_renders_request_then_reply() {
    let mut c = core();
    let out = c.handle(msg("alice", None, "!rhbz 1839234"), t0());
    let f = fetch(&out);
    assert_eq!(
        f.request,
        Request::Http {
            method: "GET".into(),
            url: "https://bz.example.org/rest/bug/1839234".into(),
            headers: vec![],
            query: vec![],
            body: RequestBody::None,
        }
    );
    assert!(audits(&out).is_empty(), "unguarded lookups are not audited");
    let body = r#"{"bugs":[{"id":1839234,"summary":"sqlite-3.32.0 is available"}]}"#;
    let out = c.handle(
        Event::FetchDone {
            id: f.id,
            outcome: http(200, body),
        },
        t0(),
    );
    assert_eq!(texts(&out), ["rhbz#1839234: sqlite-3.32.0 is available"]);
}

#[test]
fn not_found_empty_and_errors_pick_their_templates() {
    let mut c = core();
    let cases = [
        (http(404, r#"{"error":true,"code":101}"#), "No bug 5"),
        (http(200, r#"{"bugs":[]}"#), "No bug 5"),
        (http(500, "oops"), "Bugzilla did not answer: HTTP 500 R"),
        (
            FetchOutcome::Failed("timed out after 10s".into()),
            "Bugzilla did not answer: timed out after 10s",
        ),
    ];
    for (i, (outcome, want)) in cases.into_iter().enumerate() {
        let now = t0() + TimeDelta::seconds(10 * i as i64);
        let f = fetch(&c.handle(msg("alice", None, "!bug 5"), now));
        let out = c.handle(Event::FetchDone { id: f.id, outcome }, now);
        assert_eq!(texts(&out), [want]);
    }
    let counts = c.command_counts();
    assert_eq!(counts.get(&("bug".to_owned(), "not_found")), Some(&2));
    assert_eq!(counts.get(&("bug".to_owned(), "error")), Some(&2));
}

#[test]
fn bad_arguments_get_the_usage_and_no_request() {
    let mut c = core();
    let out = c.handle(msg("alice", None, "!bug abc"), t0());
    assert_eq!(
        texts(&out),
        ["alice: <id> does not look right; usage: !bug <id>"]
    );
    let out = c.handle(msg("alice", None, "!bug"), t0());
    assert_eq!(texts(&out), ["alice: missing <id>; usage: !bug <id>"]);
    let out = c.handle(msg("alice", None, "!bug 1 2"), t0());
    assert_eq!(texts(&out), ["alice: too many arguments; usage: !bug <id>"]);
    // A secret placeholder cannot be smuggled in through an argument.
    let out = c.handle(msg("alice", None, "!bug 1\u{E000}TOKEN\u{E001}"), t0());
    assert!(texts(&out)[0].contains("not allowed"));
}

#[test]
fn cooldown_answers_a_flood_once() {
    let mut c = core();
    assert!(matches!(
        c.handle(msg("a", Some("alice"), "!bug 1"), t0())[0],
        Action::Fetch(_)
    ));
    let t1 = t0() + TimeDelta::seconds(1);
    let out = c.handle(msg("a", Some("alice"), "!bug 1"), t1);
    assert_eq!(texts(&out), ["a: slow down; bug again in 4s"]);
    for _ in 0..5 {
        assert!(c.handle(msg("a", Some("alice"), "!bug 1"), t1).is_empty());
    }
    // Someone else is not slowed down by alice.
    assert!(matches!(
        c.handle(msg("b", Some("bob"), "!bug 1"), t1)[0],
        Action::Fetch(_)
    ));
    // After the cooldown alice runs it again.
    let later = t0() + TimeDelta::seconds(5);
    assert!(matches!(
        c.handle(msg("a", Some("alice"), "!bug 1"), later)[0],
        Action::Fetch(_)
    ));
}

#[test]
fn usage_errors_and_refusals_share_the_callers_allowance_across_nick_changes() {
    use crate::core::commands::allowance::BURST;
    let mut c = core();
    let from = |nick: &str, text: &str| {
        let Event::Message(mut m) = msg(nick, None, text) else {
            unreachable!()
        };
        m.sender.mask = Some("u@evil.example".into());
        Event::Message(m)
    };
    // Bad arguments and a missing role, alternately, under ever new nicks.
    let mut answered = 0;
    for i in 0..BURST {
        let text = if i % 2 == 0 { "!bug x" } else { "!release 1" };
        answered += texts(&c.handle(from(&format!("n{i}"), text), t0())).len();
    }
    assert_eq!(answered, BURST as usize);
    let out = c.handle(from("n9", "!bug x"), t0());
    assert_eq!(texts(&out), ["n9: slow down; try again in 4s"]);
    let out = c.handle(from("n10", "!release 1"), t0());
    assert!(texts(&out).is_empty());
    // The refusal is still audited.
    assert_eq!(audits(&out).len(), 1);
    // A command's own cooldown holds across a nick change too.
    let t1 = t0() + TimeDelta::seconds(60);
    assert!(matches!(
        c.handle(from("a", "!bug 1"), t1)[0],
        Action::Fetch(_)
    ));
    let out = c.handle(from("a_", "!bug 1"), t1);
    assert_eq!(texts(&out), ["a_: slow down; bug again in 5s"]);
}

#[test]
fn role_guard_refuses_and_audits() {
    let mut c = core();
    let out = c.handle(msg("dcavalca", None, "!release 1.2"), t0());
    assert_eq!(texts(&out), ["dcavalca: release needs the releng role"]);
    assert_eq!(
        audits(&out),
        ["libera/dcavalca (no account) libera/#sig release [line=1.2] refused: no role"]
    );
    let out = c.handle(msg("m", Some("mallory"), "!release 1.2"), t0());
    assert_eq!(texts(&out), ["m: release needs the releng role"]);
    assert_eq!(audits(&out).len(), 1);
}

#[test]
fn confirmation_runs_only_for_the_same_principal_and_room_once() {
    let mut c = core();
    let out = c.handle(msg("dc", Some("dcavalca"), "!release 1.2"), t0());
    let text = &texts(&out)[0];
    let code = code_in(text);
    assert_eq!(code.len(), 6);
    assert!(
        code.chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit())
    );
    assert!(!out.iter().any(|a| matches!(a, Action::Fetch(_))));
    assert_eq!(
        audits(&out),
        ["libera:dcavalca libera/#sig release [version=1.2] awaiting confirmation"]
    );

    // Someone else's code is refused, and audited.
    let t1 = t0() + TimeDelta::seconds(10);
    let out = c.handle(msg("m", Some("mallory"), &format!("!confirm {code}")), t1);
    assert_eq!(
        texts(&out),
        [format!("m: code {code} was not given to you in this room")]
    );
    assert!(audits(&out)[0].ends_with("refused: someone else's code"));
    // The same person in another room is refused too.
    let other = RoomRef::new("libera", "#other");
    let out = c.handle(
        msg_in(other, "dc", Some("dcavalca"), &format!("!confirm {code}")),
        t1,
    );
    assert!(texts(&out)[0].contains("was not given to you"));

    // The owner, in the room, within 2 minutes: it runs.
    let Event::Message(mut confirm) = msg("dc", Some("dcavalca"), &format!("!confirm {code}"))
    else {
        unreachable!()
    };
    confirm.id = Some("$confirm-event".into());
    let out = c.handle(Event::Message(confirm), t1);
    // The prompt is rewritten, so the room no longer shows a live code, and the !confirm
    // line gets a check mark where the network has reactions.
    assert!(
        out.contains(&Action::Edit {
            room: room(),
            tag: format!("confirm:{code}"),
            text: "dc: release version=1.2: confirmed by dc".into(),
        }),
        "{out:?}"
    );
    assert!(out.contains(&Action::React {
        room: room(),
        to: "$confirm-event".into(),
        key: "\u{2705}".into(),
    }));
    let f = fetch(&out);
    assert_eq!(
        audits(&out),
        ["libera:dcavalca libera/#sig release [version=1.2] confirmed"]
    );
    // Secrets stay placeholders in the core; the request carries their values for the executor.
    let Request::Http {
        url,
        headers,
        body,
        method,
        ..
    } = &f.request
    else {
        unreachable!()
    };
    assert_eq!(method, "POST");
    assert_eq!(
        url,
        "https://ci.example.org/trigger?token=\u{E000}TOKEN\u{E001}"
    );
    assert_eq!(headers[0].1, "Bearer \u{E000}TOKEN\u{E001}");
    assert_eq!(
        body,
        &RequestBody::Form(vec![
            ("ref".into(), "main".into()),
            ("version".into(), "1.2".into())
        ])
    );
    assert!(!format!("{f:?}").contains("tok-SECRET-123"));
    assert_eq!(f.secrets[0].1.expose(), "tok-SECRET-123");

    // The result is replied and audited with its status; a reply never shows a secret.
    let out = c.handle(
        Event::FetchDone {
            id: f.id,
            outcome: http(201, r#"{"id": 257, "echo": "tok-SECRET-123"}"#),
        },
        t1,
    );
    assert_eq!(texts(&out), ["started 257 for dc"]);
    let Action::Audit(e) = &out[1] else {
        panic!("audit expected")
    };
    assert_eq!((e.result.as_str(), e.http_status), ("success", Some(201)));

    // A used code is refused.
    let out = c.handle(msg("dc", Some("dcavalca"), &format!("!confirm {code}")), t1);
    assert!(texts(&out)[0].contains("no command is waiting for code"));
}

#[test]
fn expired_codes_and_cancel() {
    let mut c = core();
    let code = code_in(&texts(&c.handle(msg("dc", Some("dcavalca"), "!release 1.2"), t0()))[0]);
    let late = t0() + TimeDelta::seconds(121);
    let out = c.handle(
        msg("dc", Some("dcavalca"), &format!("!confirm {code}")),
        late,
    );
    assert_eq!(
        texts(&out),
        [format!("dc: code {code} has expired; run release again")]
    );
    assert!(audits(&out)[0].ends_with("refused: code expired"));

    // Cancel drops the pending one; the code no longer works.
    let t1 = late + TimeDelta::seconds(60);
    let code = code_in(&texts(&c.handle(msg("dc", Some("dcavalca"), "!release 1.3"), t1))[0]);
    let out = c.handle(msg("dc", Some("dcavalca"), "!cancel"), t1);
    assert_eq!(texts(&out), ["dc: cancelled release"]);
    assert!(audits(&out)[0].ends_with("cancelled"));
    let out = c.handle(msg("dc", Some("dcavalca"), &format!("!confirm {code}")), t1);
    assert!(texts(&out)[0].contains("no command is waiting"));
    let out = c.handle(msg("dc", Some("dcavalca"), "!cancel"), t1);
    assert_eq!(
        texts(&out),
        ["dc: nothing is waiting for your confirmation here"]
    );

    // An unconfirmed code expires on a tick, and that is audited.
    let t2 = t1 + TimeDelta::seconds(60);
    c.handle(msg("dc", Some("dcavalca"), "!release 1.4"), t2);
    let out = c.handle(Event::Tick, t2 + TimeDelta::seconds(121));
    assert_eq!(
        audits(&out),
        ["libera:dcavalca libera/#sig release [version=1.4] expired unconfirmed"]
    );
}

#[test]
fn codes_are_deterministic_for_a_seed() {
    let code = |seed| {
        let mut c = core();
        c.set_code_seed(seed);
        code_in(&texts(&c.handle(msg("dc", Some("dcavalca"), "!release 1.2"), t0()))[0])
    };
    assert_eq!(code(1), code(1));
    assert_ne!(code(1), code(2));
}

#[test]
fn help_lists_what_the_caller_may_run() {
    let mut c = core();
    let anon = texts(&c.handle(msg("a", None, "!help"), t0()));
    assert!(anon[0].contains("!bug"), "{}", anon[0]);
    assert!(!anon[0].contains("!release"));
    let releng = texts(&c.handle(msg("a", Some("dcavalca"), "!help"), t0()));
    assert!(releng[0].contains("!release"));
    let usage = texts(&c.handle(msg("a", None, "!help rhbz"), t0()));
    assert_eq!(usage, ["!bug <id>: Look up a bug (aliases: rhbz)"]);
    let usage = texts(&c.handle(msg("a", None, "!help release"), t0()));
    assert_eq!(
        usage,
        ["!release <version>: Start the release pipeline (role releng) (asks for confirmation)"]
    );
}

#[test]
fn reload_replaces_the_set() {
    let mut c = core();
    c.handle(
        Event::CommandsReloaded(CommandSetHandle(Arc::new(CommandSet::default()))),
        t0(),
    );
    assert!(c.handle(msg("a", None, "!bug 1"), t0()).is_empty());
}

#[test]
fn a_name_holding_placeholder_characters_never_pulls_a_secret_into_a_request() {
    const ECHO: &str = r#"
name = "echo"
summary = "Says hello to the echo service"
[http]
url = "https://echo.example.org/hello/{{ caller.nick }}"
headers = { Authorization = "Bearer ${TOKEN}", X-Who = "{{ caller.nick }}" }
query = { say = "{{ args.rest }}" }
[[args]]
name = "rest"
pattern = ".+"
rest = true
[reply]
success = "done"
"#;
    let env = |n: &str| (n == "TOKEN").then(|| "tok-SECRET-123".to_owned());
    let spec = parse_str(ECHO, std::path::Path::new("echo.toml"), &env).unwrap();
    let mut c = core();
    c.set_commands(Arc::new(CommandSet::new(vec![spec]).unwrap()));
    let nasty = format!("{SECRET_OPEN}TOKEN{SECRET_CLOSE}");
    // Arguments with those characters are refused already; a display name is not an argument.
    let out = c.handle(msg(&nasty, None, &format!("!echo {nasty}")), t0());
    assert!(texts(&out)[0].contains("characters that are not allowed"));
    let out = c.handle(msg(&nasty, None, "!echo hello"), t0());
    let f = fetch(&out);
    let Request::Http {
        url,
        headers,
        query,
        ..
    } = &f.request
    else {
        panic!("{:?}", f.request)
    };
    assert_eq!(query[0].1, "hello");
    let user_parts = [url.clone(), headers[1].1.clone()];
    for part in &user_parts {
        assert!(
            !part.contains(SECRET_OPEN) && !part.contains(SECRET_CLOSE),
            "a placeholder from user text: {part:?}"
        );
        assert!(
            part.contains("TOKEN"),
            "the rest of the text stays: {part:?}"
        );
    }
    // The command's own secret is still a placeholder, filled in by the executor only.
    assert_eq!(
        headers[0].1,
        format!("Bearer {SECRET_OPEN}TOKEN{SECRET_CLOSE}")
    );
}

#[test]
fn an_argument_never_leaves_its_place_in_the_url() {
    const GET: &str = r#"
name = "get"
summary = "Fetches a path"
[http]
url = "https://api.example.org/v1/{{ args.path }}/info"
[[args]]
name = "path"
pattern = ".+"
[reply]
success = "done"
"#;
    let env = |_: &str| None;
    let spec = parse_str(GET, std::path::Path::new("get.toml"), &env).unwrap();
    let mut c = core();
    c.set_commands(Arc::new(CommandSet::new(vec![spec]).unwrap()));
    let url_of = |c: &mut Core, arg: &str| {
        let out = c.handle(msg("alice", None, &format!("!get {arg}")), t0());
        match fetch(&out).request {
            Request::Http { url, .. } => url,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        url_of(&mut c, "rpms/kernel"),
        "https://api.example.org/v1/rpms/kernel/info"
    );
    assert_eq!(
        url_of(&mut c, "../../admin?x=1"),
        "https://api.example.org/v1/%2E%2E/%2E%2E/admin%3Fx%3D1/info"
    );
}
