//! `[metrics]`: whether `/metrics` is served, and on which listener.

use std::net::SocketAddr;

use super::Checker;
use crate::config::raw::RawMetrics;
use crate::config::{ConfigError, MetricsConfig};

impl Checker<'_> {
    pub(super) fn metrics(&self, raw: Option<&RawMetrics>) -> Result<MetricsConfig, ConfigError> {
        let Some(m) = raw else {
            return Ok(MetricsConfig::default());
        };
        let listen = match &m.listen {
            Some(l) => Some(l.get_ref().parse::<SocketAddr>().map_err(|_| {
                self.loc.span(
                    l,
                    format!(
                        "metrics.listen {:?} is not an address like 127.0.0.1:9187",
                        l.get_ref()
                    ),
                )
            })?),
            None => None,
        };
        Ok(MetricsConfig {
            enabled: m.enabled,
            listen,
        })
    }
}
