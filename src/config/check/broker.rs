//! `[broker]`: the embedded MQTT broker.

use super::Checker;
use crate::config::raw::RawBroker;
use crate::config::{BrokerConfig, ConfigError};

/// Where the embedded broker listens unless told: loopback only.
const DEFAULT_LISTEN: &str = "127.0.0.1:1883";

impl Checker<'_> {
    pub(super) fn broker(
        &self,
        raw: Option<&RawBroker>,
    ) -> Result<Option<BrokerConfig>, ConfigError> {
        let Some(b) = raw.filter(|b| b.enabled) else {
            return Ok(None);
        };
        let listen = match &b.listen {
            None => DEFAULT_LISTEN.parse().expect("the default is host:port"),
            Some(l) => l.get_ref().parse().map_err(|_| {
                self.loc.span(
                    l,
                    format!("broker.listen {:?} is not host:port", l.get_ref()),
                )
            })?,
        };
        let login = match (&b.username, &b.password) {
            (None, None) => None,
            (Some(user), Some(password)) => Some((
                user.get_ref().clone(),
                self.secret(password, "broker.password")?,
            )),
            (Some(user), None) => {
                return Err(self.loc.span(user, "broker.username needs broker.password"));
            }
            (None, Some(password)) => {
                return Err(self
                    .loc
                    .span(password, "broker.password needs broker.username"));
            }
        };
        Ok(Some(BrokerConfig { listen, login }))
    }
}
