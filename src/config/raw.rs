//! Stage one of both file formats: the structs serde reads, as written, with spans.
//!
//! Every struct denies unknown fields, so a misspelt key is refused at its location. The
//! checks that turn these into the validated types live in [`super::check`] (the config)
//! and [`super::commands`] (command files).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use toml::Spanned;

// ---------------------------------------------------------------------------------------
// The config file.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) bot: RawBot,
    pub(super) log: Option<RawLog>,
    pub(super) web: Option<RawWeb>,
    pub(super) metrics: Option<RawMetrics>,
    pub(super) store: Option<RawStore>,
    pub(super) console: Option<RawConsole>,
    #[serde(default)]
    pub(super) irc: Vec<RawIrc>,
    #[serde(default)]
    pub(super) matrix: Vec<RawMatrix>,
    #[serde(default)]
    pub(super) mqtt: Vec<RawMqtt>,
    pub(super) broker: Option<RawBroker>,
    #[serde(default)]
    pub(super) bridge: Vec<RawBridge>,
    #[serde(default)]
    pub(super) relay: Vec<RawRelay>,
    #[serde(default)]
    pub(super) watch: Vec<RawWatch>,
    pub(super) meetings: Option<RawMeetings>,
    #[serde(default)]
    pub(super) roles: BTreeMap<String, Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBot {
    pub(super) nick: Option<Spanned<String>>,
    pub(super) prefix: Option<Spanned<String>>,
    pub(super) data_dir: Option<String>,
    pub(super) commands_dir: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) format: Option<Spanned<String>>,
    pub(super) level: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) public_url: Option<Spanned<String>>,
    pub(super) paste_ttl: Option<Spanned<String>>,
    pub(super) media_cache_mib: Option<Spanned<u64>>,
    pub(super) ready_grace: Option<Spanned<String>>,
    #[serde(default = "yes")]
    pub(super) enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) listen: Option<Spanned<String>>,
    #[serde(default = "yes")]
    pub(super) enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) audit_retention: Option<Spanned<String>>,
    pub(super) journal_retention: Option<Spanned<String>>,
    pub(super) max_db_size: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsole {
    pub(super) name: Option<Spanned<String>>,
    pub(super) room: Option<Spanned<String>>,
    #[serde(default = "yes")]
    pub(super) enabled: bool,
}

/// A secret as written: a string (after `${ENV}` expansion) or `{ file = "path" }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawSecret {
    Inline(String),
    File(RawSecretFile),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecretFile {
    pub(super) file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSasl {
    #[serde(default = "sasl_plain")]
    pub(super) mechanism: Spanned<String>,
    pub(super) user: Option<String>,
    pub(super) password: Option<Spanned<RawSecret>>,
}

fn sasl_plain() -> Spanned<String> {
    Spanned::new(0..0, "PLAIN".to_owned())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRate {
    pub(super) burst: Spanned<u32>,
    pub(super) per_second: Spanned<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIrc {
    pub(super) name: Spanned<String>,
    pub(super) server: Spanned<String>,
    #[serde(default = "yes")]
    pub(super) tls: bool,
    pub(super) ca_file: Option<String>,
    pub(super) client_cert: Option<String>,
    pub(super) client_key: Option<String>,
    pub(super) nick: Option<String>,
    #[serde(default)]
    pub(super) alt_nicks: Vec<String>,
    pub(super) username: Option<String>,
    pub(super) realname: Option<String>,
    pub(super) password: Option<Spanned<RawSecret>>,
    pub(super) sasl: Option<RawSasl>,
    pub(super) nickserv_password: Option<Spanned<RawSecret>>,
    #[serde(default)]
    pub(super) channels: Vec<Spanned<String>>,
    pub(super) rate: Option<RawRate>,
    pub(super) queue_limit: Option<usize>,
    pub(super) staleness: Option<Spanned<String>>,
    pub(super) rejoin_delay: Option<Spanned<String>>,
    pub(super) ping_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) relaymsg: bool,
    pub(super) private_replies: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMatrix {
    pub(super) name: Spanned<String>,
    pub(super) homeserver: Spanned<String>,
    pub(super) user: Spanned<String>,
    pub(super) password: Option<Spanned<RawSecret>>,
    pub(super) access_token: Option<Spanned<RawSecret>>,
    pub(super) store_passphrase: Option<Spanned<RawSecret>>,
    pub(super) device_name: Option<String>,
    #[serde(default)]
    pub(super) rooms: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) encrypted_rooms: bool,
    #[serde(default)]
    pub(super) invites_from: Vec<String>,
    pub(super) catch_up: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMqtt {
    pub(super) name: Spanned<String>,
    pub(super) url: Spanned<String>,
    pub(super) client_id: Option<String>,
    pub(super) ca_file: Option<String>,
    pub(super) cert_file: Option<String>,
    pub(super) key_file: Option<String>,
    pub(super) username: Option<String>,
    pub(super) password: Option<Spanned<RawSecret>>,
    pub(super) keep_alive: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) clean_session: bool,
    pub(super) max_payload: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBroker {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) username: Option<Spanned<String>>,
    pub(super) password: Option<Spanned<RawSecret>>,
    #[serde(default = "yes")]
    pub(super) enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBridge {
    pub(super) name: Spanned<String>,
    pub(super) rooms: Vec<Spanned<String>>,
    pub(super) nick_format: Option<String>,
    pub(super) max_lines: Option<usize>,
    pub(super) edits: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) join_part: bool,
    #[serde(default)]
    pub(super) quits: bool,
    #[serde(default)]
    pub(super) nick_changes: bool,
    #[serde(default)]
    pub(super) topics: bool,
    #[serde(default)]
    pub(super) ignore_nicks: Vec<String>,
    #[serde(default)]
    pub(super) ignore_users: Vec<String>,
    #[serde(default)]
    pub(super) ignore_regex: Vec<String>,
    #[serde(default)]
    pub(super) reactions: bool,
    #[serde(default)]
    pub(super) redactions: bool,
    #[serde(default)]
    pub(super) relaymsg: bool,
    pub(super) staleness: Option<Spanned<String>>,
    pub(super) max_mentions: Option<usize>,
    #[serde(default)]
    pub(super) encrypted: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRelay {
    pub(super) name: Option<String>,
    pub(super) from: Spanned<String>,
    pub(super) topic: Spanned<String>,
    pub(super) when: Option<Spanned<String>>,
    pub(super) template: Spanned<String>,
    pub(super) html_template: Option<Spanned<String>>,
    pub(super) to: Vec<Spanned<String>>,
    pub(super) max_per_minute: Option<Spanned<u32>>,
    pub(super) dedup_key: Option<Spanned<String>>,
    pub(super) dedup_window: Option<Spanned<String>>,
    pub(super) digest_label: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWatch {
    pub(super) name: Spanned<String>,
    pub(super) packages: Spanned<Vec<Spanned<String>>>,
    pub(super) ours: Spanned<RawPackageSource>,
    pub(super) upstream: Spanned<RawPackageSource>,
    pub(super) to: Vec<Spanned<String>>,
    pub(super) poll: Option<Spanned<String>>,
    pub(super) on: Option<Spanned<RawOneOrMany>>,
    pub(super) from: Option<Spanned<String>>,
}

/// `{ repodata = URL }` or `{ koji = { hub, tag } }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPackageSource {
    pub(super) repodata: Option<Spanned<String>>,
    pub(super) koji: Option<RawKojiTag>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKojiTag {
    pub(super) hub: Spanned<String>,
    pub(super) tag: Spanned<String>,
}

/// One string or a list of them, keeping each one's span.
#[derive(Debug)]
pub(super) struct RawOneOrMany(pub(super) Vec<Spanned<String>>);

impl<'de> Deserialize<'de> for RawOneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<Spanned<String>>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a topic filter or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                // A lone string: its span is the whole value's, which the caller has.
                Ok(vec![Spanned::new(0..0, v.to_owned())])
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element()? {
                    out.push(s);
                }
                Ok(out)
            }
        }
        d.deserialize_any(V).map(RawOneOrMany)
    }
}

/// `"all"` or a list of room references. Written by hand rather than `untagged`, which
/// would buffer the values and lose the spans that error messages need.
#[derive(Debug)]
pub(super) enum RawMeetingRooms {
    All(String),
    List(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for RawMeetingRooms {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawMeetingRooms;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"all\" or a list of rooms")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawMeetingRooms::All(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut rooms = Vec::new();
                while let Some(r) = seq.next_element()? {
                    rooms.push(r);
                }
                Ok(RawMeetingRooms::List(rooms))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMeetings {
    pub(super) rooms: Spanned<RawMeetingRooms>,
    #[serde(default)]
    pub(super) idle_timeout: Option<Spanned<String>>,
    pub(super) mail: Option<RawMeetingMail>,
    /// `[[meetings.schedule]]`
    #[serde(default)]
    pub(super) schedule: Vec<Spanned<RawSchedule>>,
}

/// `[[meetings.schedule]]`: a meeting held at set times, with reminders.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSchedule {
    pub(super) room: Spanned<String>,
    pub(super) name: Spanned<String>,
    pub(super) start: Spanned<String>,
    pub(super) timezone: Option<Spanned<String>>,
    pub(super) rrule: Option<Spanned<String>>,
    pub(super) duration: Option<Spanned<String>>,
    pub(super) agenda: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) remind: Vec<Spanned<String>>,
}

/// `[meetings.mail]`: where the minutes are mailed at `#endmeeting`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMeetingMail {
    pub(super) to: Spanned<Vec<Spanned<String>>>,
    pub(super) from: Spanned<String>,
    pub(super) smtp: Spanned<String>,
    pub(super) user: Option<Spanned<String>>,
    pub(super) password: Option<Spanned<RawSecret>>,
    pub(super) ca_file: Option<String>,
    pub(super) rooms: Option<Vec<Spanned<String>>>,
}

fn yes() -> bool {
    true
}

// ---------------------------------------------------------------------------------------
// A command file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCommand {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) aliases: Vec<Spanned<String>>,
    pub(super) summary: Spanned<String>,
    pub(super) usage: Option<Spanned<String>>,
    pub(super) role: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) confirm: bool,
    pub(super) cooldown: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) args: Vec<RawArg>,
    pub(super) http: Option<Spanned<RawHttp>>,
    pub(super) koji: Option<Spanned<RawKoji>>,
    pub(super) repodata: Option<Spanned<RawRepodata>>,
    pub(super) reply: Spanned<RawReply>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArg {
    pub(super) name: Spanned<String>,
    pub(super) pattern: Spanned<String>,
    #[serde(default)]
    pub(super) rest: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) method: Option<Spanned<String>>,
    pub(super) url: Spanned<String>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub(super) query: BTreeMap<String, Spanned<String>>,
    pub(super) json: Option<Spanned<toml::Value>>,
    pub(super) form: Option<BTreeMap<String, Spanned<String>>>,
    pub(super) body: Option<Spanned<String>>,
    pub(super) timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) expect: Vec<Spanned<u16>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKoji {
    pub(super) hub: Spanned<String>,
    pub(super) method: Spanned<String>,
    #[serde(default)]
    pub(super) params: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    pub(super) kwargs: BTreeMap<String, Spanned<toml::Value>>,
    pub(super) timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRepodata {
    pub(super) url: Spanned<String>,
    pub(super) package: Spanned<String>,
    pub(super) timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReply {
    pub(super) success: Spanned<String>,
    pub(super) not_found: Option<Spanned<String>>,
    pub(super) error: Option<Spanned<String>>,
}
