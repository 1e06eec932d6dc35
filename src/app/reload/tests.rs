use std::path::Path;

use super::*;

fn parse(text: &str) -> Config {
    Config::from_str_with_env(text, Path::new("bot.toml"), &|_| None).expect("a valid config")
}

const BASE: &str = r##"
[bot]
nick = "sigbot"
data_dir = "data"

[web]
listen = "127.0.0.1:8080"

[console]

[[irc]]
name = "libera"
server = "irc.libera.chat:6697"
channels = ["#sig"]

[[irc]]
name = "oftc"
server = "irc.oftc.net:6697"
channels = ["#ops"]

[[mqtt]]
name = "forge"
url = "mqtt://127.0.0.1"

[[relay]]
name = "pushes"
from = "forge"
topic = "git/#"
template = "{{ msg.x }}"
to = ["libera/#sig"]

[meetings]
rooms = ["libera/#sig"]
"##;

fn plan(old: &str, new: &str) -> Plan {
    let (old, new) = (parse(old), parse(new));
    let filters = |cfg: &Config| {
        let relay = Relay::new(&cfg.relays).expect("routes compile");
        all_mqtt_filters(cfg, &relay, &Triggers::new(&cfg.watches))
    };
    Plan::new(&old, &new, &filters(&old), &filters(&new))
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn the_same_config_keeps_every_network() {
    assert_eq!(
        plan(BASE, BASE),
        Plan {
            kept: names(&["forge", "libera", "oftc"]),
            ..Plan::default()
        }
    );
}

#[test]
fn a_bridge_and_a_relay_on_joined_rooms_keep_every_connection() {
    let new = format!(
        "{BASE}\n{}",
        r##"
[[bridge]]
name = "sig"
rooms = ["libera/#sig", "console/#local"]

[[relay]]
name = "more"
from = "forge"
topic = "git/#"
template = "more {{ msg.x }}"
to = ["oftc/#ops"]
"##
    );
    assert_eq!(plan(BASE, &new).kept, names(&["forge", "libera", "oftc"]));
}

#[test]
fn networks_are_added_removed_and_changed_by_name() {
    let new = BASE
        .replace(
            "name = \"oftc\"\nserver = \"irc.oftc.net:6697\"",
            "name = \"hackint\"\nserver = \"irc.hackint.org:6697\"",
        )
        .replace("channels = [\"#sig\"]", "channels = [\"#sig\", \"#more\"]");
    assert_eq!(
        plan(BASE, &new),
        Plan {
            kept: names(&["forge"]),
            added: names(&["hackint"]),
            removed: names(&["oftc"]),
            changed: names(&["libera"]),
        }
    );
}

#[test]
fn a_bridge_on_a_new_channel_changes_its_network() {
    let new = format!(
        "{BASE}\n{}",
        r##"
[[bridge]]
name = "more"
rooms = ["libera/#more", "oftc/#ops"]
"##
    );
    let p = plan(BASE, &new);
    assert_eq!(p.changed, names(&["libera"]), "{p:?}");
    assert_eq!(p.kept, names(&["forge", "oftc"]), "{p:?}");
}

#[test]
fn a_new_topic_restarts_its_mqtt_connection_only() {
    let new = BASE.replace("topic = \"git/#\"", "topic = \"git/+/push\"");
    assert_eq!(
        plan(BASE, &new),
        Plan {
            kept: names(&["libera", "oftc"]),
            changed: names(&["forge"]),
            ..Plan::default()
        }
    );
}

#[test]
fn what_needs_a_restart_keeps_its_running_value() {
    let old = parse(BASE);
    let mut new = parse(
        &BASE
            .replace("data_dir = \"data\"", "data_dir = \"elsewhere\"")
            .replace("127.0.0.1:8080", "127.0.0.1:9090")
            .replace("[console]\n", "")
            .replace("[meetings]\nrooms = [\"libera/#sig\"]", "")
            .replace("nick = \"sigbot\"", "nick = \"sigbot2\""),
    );
    assert_eq!(
        keep_restart_only(&old, &mut new),
        vec![
            "[bot] data_dir",
            "[web]",
            "[console]",
            "[meetings] on or off"
        ]
    );
    assert_eq!(new.bot.data_dir, old.bot.data_dir);
    assert_eq!(new.web, old.web);
    assert_eq!(new.console, old.console);
    assert_eq!(new.meetings, old.meetings);
    assert_eq!(new.bot.nick, "sigbot2", "the rest is reloaded");
    assert!(keep_restart_only(&old, &mut parse(BASE)).is_empty());
}

#[test]
fn a_task_started_again_is_no_longer_named_dead() {
    let health = crate::web::Health::default();
    health.task_died("network:libera");
    health.task_died("watch");
    health.task_restarted("network:libera");
    assert_eq!(health.dead_tasks(), ["watch"]);
}

#[test]
fn meetings_mail_needs_a_restart() {
    let mail = "[meetings]\nrooms = [\"libera/#sig\"]\n\n[meetings.mail]\nto = [\"a@example.org\"]\nfrom = \"b@example.org\"\nsmtp = \"smtps://m.example.org\"\n";
    let old = parse(BASE);
    let mut new = parse(&BASE.replace("[meetings]\nrooms = [\"libera/#sig\"]\n", mail));
    assert!(new.meeting_mail.is_some());
    assert_eq!(keep_restart_only(&old, &mut new), vec!["[meetings.mail]"]);
    assert_eq!(new.meeting_mail, None, "the running value stays");
}
