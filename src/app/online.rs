//! `sigbot check-config --online`: after the offline checks, tries each network as the bot
//! would and resolves the host of each command and watch, one line per check (DESIGN §4).

use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;

use crate::adapters::{irc, matrix, mqtt};
use crate::config::{BrokerConfig, Config, MqttConfig};
use crate::core::CommandSet;
use crate::core::commands::declarative::ActionSpec;
use crate::core::watch::PackageSource;

/// How many checks run at once.
const AT_ONCE: usize = 8;

/// How long resolving one host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(15);

/// One check's line: `<what>: ok (<detail>)` or `<what>: FAILED: <reason>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub what: String,
    pub result: Result<String, String>,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.result {
            Ok(detail) if detail.is_empty() => write!(f, "{}: ok", self.what),
            Ok(detail) => write!(f, "{}: ok ({detail})", self.what),
            Err(reason) => write!(f, "{}: FAILED: {reason}", self.what),
        }
    }
}

/// Runs every check, several at once, handing each to `each` in config order as soon as it
/// and those before it are done; returns how many failed.
pub async fn check_online(
    cfg: &Config,
    commands: &CommandSet,
    mut each: impl FnMut(&Check),
) -> usize {
    let mut failed = 0;
    let mut checks = futures_util::stream::iter(checks(cfg, commands)).buffered(AT_ONCE);
    while let Some(check) = checks.next().await {
        if check.result.is_err() {
            failed += 1;
        }
        each(&check);
    }
    failed
}

/// The checks, in the order of the config: IRC, Matrix, MQTT, commands, watches.
fn checks<'a>(cfg: &'a Config, commands: &'a CommandSet) -> Vec<BoxFuture<'a, Check>> {
    let mut out: Vec<BoxFuture<'a, Check>> = Vec::new();
    for n in &cfg.irc {
        let what = format!("irc {} ({}:{})", n.name, n.host, n.port);
        out.push(Box::pin(async move {
            Check {
                what,
                result: irc::probe::probe(n).await,
            }
        }));
    }
    for n in &cfg.matrix {
        let what = format!("matrix {} ({} on {})", n.name, n.user, n.homeserver);
        out.push(Box::pin(async move {
            Check {
                what,
                result: matrix::probe::probe(n).await,
            }
        }));
    }
    for n in &cfg.mqtt {
        let what = format!("mqtt {} ({})", n.name, n.url);
        let embedded = cfg.broker.as_ref().filter(|b| is_embedded(n, b)).is_some();
        out.push(Box::pin(async move {
            let result = if embedded {
                Ok("the embedded broker, which sigbot itself runs: not checked".to_owned())
            } else {
                mqtt::probe(n).await
            };
            Check { what, result }
        }));
    }
    for c in commands.iter() {
        let url = match &c.action {
            ActionSpec::Http(h) => &h.url,
            ActionSpec::Koji(k) => &k.hub,
            ActionSpec::Repodata(r) => &r.url,
        };
        out.push(resolve_check(format!("command {}", c.name), url.clone()));
    }
    for w in &cfg.watches {
        for (side, source) in [("ours", &w.ours), ("upstream", &w.upstream)] {
            let url = match source {
                PackageSource::Repodata { url } => url.clone(),
                PackageSource::Koji { hub, .. } => hub.clone(),
            };
            out.push(resolve_check(format!("watch {} {side}", w.name), url));
        }
    }
    out
}

/// Whether an `[[mqtt]]` connection goes to the embedded broker, which runs only inside a
/// running bot.
fn is_embedded(m: &MqttConfig, b: &BrokerConfig) -> bool {
    if m.port != b.listen.port() {
        return false;
    }
    match m.host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip == b.listen.ip() || (ip.is_loopback() && b.listen.ip().is_unspecified()),
        Err(_) => {
            m.host == "localhost" && (b.listen.ip().is_loopback() || b.listen.ip().is_unspecified())
        }
    }
}

fn resolve_check<'a>(what: String, url: String) -> BoxFuture<'a, Check> {
    Box::pin(async move {
        let what = match host_of(&url) {
            Ok((host, _)) => format!("{what} ({host})"),
            Err(_) => what,
        };
        Check {
            what,
            result: resolve(&url).await.map(|()| String::new()),
        }
    })
}

/// The host and port of a URL; a host filled in per call (a template) cannot be checked.
fn host_of(url: &str) -> Result<(String, u16), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| "the URL names no host".to_owned())?;
    if host.contains("{{") || host.contains("${") || host.contains("%7B") {
        return Err("the host is a template, filled in per call".into());
    }
    let port = parsed.port_or_known_default().unwrap_or(443);
    Ok((host.trim_matches(['[', ']']).to_owned(), port))
}

/// Resolves a URL's host as the bot's requests would.
async fn resolve(url: &str) -> Result<(), String> {
    let (host, port) = host_of(url)?;
    match tokio::time::timeout(
        RESOLVE_TIMEOUT,
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(addrs)) => match addrs.count() {
            0 => Err(format!("{host} has no address")),
            _ => Ok(()),
        },
        Ok(Err(e)) => Err(format!("{host} does not resolve: {e}")),
        Err(_) => Err(format!(
            "{host} did not resolve within {} s",
            RESOLVE_TIMEOUT.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_is_one_line_saying_ok_or_why_it_failed() {
        let ok = Check {
            what: "irc libera (irc.libera.chat:6697)".into(),
            result: Ok("TLS, registered as sigbot".into()),
        };
        assert_eq!(
            ok.to_string(),
            "irc libera (irc.libera.chat:6697): ok (TLS, registered as sigbot)"
        );
        let bare = Check {
            what: "command bug (bugzilla.redhat.com)".into(),
            result: Ok(String::new()),
        };
        assert_eq!(bare.to_string(), "command bug (bugzilla.redhat.com): ok");
        let failed = Check {
            what: "mqtt centos (mqtts://x:8883)".into(),
            result: Err("connection refused".into()),
        };
        assert_eq!(
            failed.to_string(),
            "mqtt centos (mqtts://x:8883): FAILED: connection refused"
        );
    }

    #[test]
    fn a_url_s_host_and_port_and_templates_left_alone() {
        assert_eq!(
            host_of("https://bugzilla.redhat.com/rest/bug/{{ args.id }}").unwrap(),
            ("bugzilla.redhat.com".to_owned(), 443)
        );
        assert_eq!(
            host_of("http://[::1]:8080/x").unwrap(),
            ("::1".to_owned(), 8080)
        );
        assert!(host_of("https://{{ args.host }}/x").is_err());
        assert!(host_of("not a url").is_err());
    }

    #[tokio::test]
    async fn an_unknown_host_does_not_resolve_and_localhost_does() {
        assert_eq!(resolve("http://127.0.0.1:1/").await, Ok(()));
        let err = resolve("https://nonexistent.invalid/x").await.unwrap_err();
        assert!(
            err.starts_with("nonexistent.invalid does not resolve"),
            "{err}"
        );
    }
}
