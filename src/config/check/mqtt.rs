//! `[[mqtt]]`: MQTT broker connections.

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::Checker;
use crate::config::raw::RawMqtt;
use crate::config::{ConfigError, MqttConfig, NetworkKind};

impl Checker<'_> {
    pub(super) fn mqtt(
        &mut self,
        raw: &[RawMqtt],
        bot_nick: &str,
    ) -> Result<Vec<MqttConfig>, ConfigError> {
        raw.iter()
            .map(|m| self.mqtt_connection(m, bot_nick))
            .collect()
    }

    fn mqtt_connection(&mut self, m: &RawMqtt, bot_nick: &str) -> Result<MqttConfig, ConfigError> {
        let name = self.add_network(&m.name, NetworkKind::Mqtt, "mqtt")?;
        let url = m.url.get_ref();
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(self.loc.span(
                &m.url,
                format!("mqtt url {url:?} must start with mqtt:// or mqtts://"),
            ));
        };
        let hostport = Spanned::new(m.url.span(), rest.trim_end_matches('/').to_owned());
        let (host, port) = self.host_port(&hostport, if tls { 8883 } else { 1883 })?;
        Ok(MqttConfig {
            url: url.clone(),
            tls,
            host,
            port,
            client_id: m
                .client_id
                .clone()
                .unwrap_or_else(|| format!("sigbot-{bot_nick}-{name}")),
            ca_file: m.ca_file.as_ref().map(PathBuf::from),
            cert_file: m.cert_file.as_ref().map(PathBuf::from),
            key_file: m.key_file.as_ref().map(PathBuf::from),
            username: m.username.clone(),
            password: self.opt_secret(&m.password, "password")?,
            keep_alive: self.duration(&m.keep_alive, "keep_alive", Duration::from_secs(30))?,
            clean_session: m.clean_session,
            max_payload: m.max_payload.unwrap_or(1024 * 1024),
            name,
        })
    }
}
