//! `[[irc]]`: IRC networks.

use std::path::PathBuf;
use std::time::Duration;

use super::Checker;
use crate::config::raw::{RawIrc, RawRate, RawSasl};
use crate::config::{ConfigError, IrcChannel, IrcConfig, NetworkKind, Rate, Sasl};

impl Checker<'_> {
    pub(super) fn irc(
        &mut self,
        raw: &[RawIrc],
        bot_nick: &str,
    ) -> Result<Vec<IrcConfig>, ConfigError> {
        raw.iter().map(|n| self.irc_network(n, bot_nick)).collect()
    }

    fn irc_network(&mut self, n: &RawIrc, bot_nick: &str) -> Result<IrcConfig, ConfigError> {
        let name = self.add_network(&n.name, NetworkKind::Irc, "irc")?;
        let (host, port) = self.host_port(&n.server, if n.tls { 6697 } else { 6667 })?;
        let sasl = n
            .sasl
            .as_ref()
            .map(|s| self.sasl(s, n, &name, bot_nick))
            .transpose()?;
        let channels = self.irc_channels(n)?;
        let rate = self.rate(n.rate.as_ref())?;
        let nick = n.nick.clone().unwrap_or_else(|| bot_nick.to_owned());
        Ok(IrcConfig {
            username: n.username.clone().unwrap_or_else(|| nick.clone()),
            realname: n
                .realname
                .clone()
                .unwrap_or_else(|| "sigbot chat-ops bot".to_owned()),
            nick,
            alt_nicks: n.alt_nicks.clone(),
            host,
            port,
            tls: n.tls,
            ca_file: n.ca_file.as_ref().map(PathBuf::from),
            client_cert: n.client_cert.as_ref().map(PathBuf::from),
            client_key: n.client_key.as_ref().map(PathBuf::from),
            password: self.opt_secret(&n.password, "password")?,
            sasl,
            nickserv_password: self.opt_secret(&n.nickserv_password, "nickserv_password")?,
            channels,
            rate,
            queue_limit: n.queue_limit.unwrap_or(1000),
            staleness: self.duration(&n.staleness, "staleness", Duration::from_secs(600))?,
            rejoin_delay: self.duration(
                &n.rejoin_delay,
                "rejoin_delay",
                Duration::from_secs(10),
            )?,
            ping_timeout: self.duration(
                &n.ping_timeout,
                "ping_timeout",
                Duration::from_secs(240),
            )?,
            relaymsg: n.relaymsg,
            relaymsg_channels: Vec::new(),
            private_notice: self.private_notice(n)?,
            name,
        })
    }

    fn sasl(
        &self,
        s: &RawSasl,
        n: &RawIrc,
        name: &str,
        bot_nick: &str,
    ) -> Result<Sasl, ConfigError> {
        match s.mechanism.get_ref().to_ascii_uppercase().as_str() {
            "PLAIN" => {
                let password = s.password.as_ref().ok_or_else(|| {
                    self.loc
                        .span(&n.name, format!("irc {name}: sasl PLAIN needs a password"))
                })?;
                Ok(Sasl::Plain {
                    user: s
                        .user
                        .clone()
                        .unwrap_or_else(|| n.nick.clone().unwrap_or_else(|| bot_nick.to_owned())),
                    password: self.secret(password, "sasl.password")?,
                })
            }
            "EXTERNAL" if n.client_cert.is_none() => Err(self.loc.span(
                &s.mechanism,
                format!("irc {name}: sasl EXTERNAL needs client_cert"),
            )),
            "EXTERNAL" => Ok(Sasl::External),
            other => Err(self.loc.span(
                &s.mechanism,
                format!("sasl mechanism {other:?}: use \"PLAIN\" or \"EXTERNAL\""),
            )),
        }
    }

    /// `"#channel"` or `"#channel key"` entries.
    fn irc_channels(&self, n: &RawIrc) -> Result<Vec<IrcChannel>, ConfigError> {
        let mut channels = Vec::new();
        for c in &n.channels {
            let mut parts = c.get_ref().split_whitespace();
            let chan = parts.next().unwrap_or_default();
            if !(chan.starts_with('#') || chan.starts_with('&')) || chan.len() < 2 {
                return Err(self.loc.span(
                    c,
                    format!("irc channel {:?} must start with '#' or '&'", c.get_ref()),
                ));
            }
            let key = parts.next().map(str::to_owned);
            if parts.next().is_some() {
                return Err(self
                    .loc
                    .span(c, "a channel entry is \"#channel\" or \"#channel key\""));
            }
            channels.push(IrcChannel {
                name: chan.to_owned(),
                key,
            });
        }
        Ok(channels)
    }

    fn rate(&self, raw: Option<&RawRate>) -> Result<Rate, ConfigError> {
        let Some(r) = raw else {
            // Libera and OFTC both tolerate a short burst and about one line per second.
            return Ok(Rate {
                burst: 4,
                per_second: 0.8,
            });
        };
        if *r.burst.get_ref() == 0 {
            return Err(self.loc.span(&r.burst, "rate.burst must be at least 1"));
        }
        let ps = *r.per_second.get_ref();
        if !(ps.is_finite() && ps > 0.0) {
            return Err(self
                .loc
                .span(&r.per_second, "rate.per_second must be above 0"));
        }
        Ok(Rate {
            burst: *r.burst.get_ref(),
            per_second: ps,
        })
    }

    /// Whether answers to private messages go out as NOTICE.
    fn private_notice(&self, n: &RawIrc) -> Result<bool, ConfigError> {
        match &n.private_replies {
            None => Ok(false),
            Some(p) => match p.get_ref().as_str() {
                "privmsg" => Ok(false),
                "notice" => Ok(true),
                other => Err(self.loc.span(
                    p,
                    format!("private_replies {other:?}: use \"privmsg\" or \"notice\""),
                )),
            },
        }
    }
}
