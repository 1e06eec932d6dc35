//! `[broker]`: the embedded MQTT broker.

use super::Checker;
use crate::config::raw::RawBroker;
use crate::config::{BrokerConfig, ConfigError};

impl Checker<'_> {
    pub(super) fn broker(
        &self,
        raw: Option<&RawBroker>,
    ) -> Result<Option<BrokerConfig>, ConfigError> {
        let Some(b) = raw.filter(|b| b.enabled) else {
            return Ok(None);
        };
        let listen = b.listen.get_ref().parse().map_err(|_| {
            self.loc.span(
                &b.listen,
                format!("broker.listen {:?} is not host:port", b.listen.get_ref()),
            )
        })?;
        Ok(Some(BrokerConfig { listen }))
    }
}
