//! `[web]`: the site's listening address, public URL, media cache, and how long pastes are
//! served.

use std::net::SocketAddr;
use std::time::Duration;

use super::Checker;
use crate::config::raw::RawWeb;
use crate::config::{ConfigError, DEFAULT_PASTE_TTL, WebConfig};

const DEFAULT_MEDIA_CACHE_MIB: u64 = 512;
const MIN_MEDIA_CACHE_MIB: u64 = 25;
/// How long a network may be down before `/readyz` answers 503.
pub const DEFAULT_READY_GRACE: Duration = Duration::from_secs(120);

impl Checker<'_> {
    pub(super) fn web(&self, raw: Option<&RawWeb>) -> Result<Option<WebConfig>, ConfigError> {
        let Some(w) = raw.filter(|w| w.enabled) else {
            return Ok(None);
        };
        let loc = &self.loc;
        let listen_s = w
            .listen
            .as_ref()
            .map_or("127.0.0.1:8080", |l| l.get_ref().as_str());
        let listen: SocketAddr = listen_s.parse().map_err(|_| match &w.listen {
            Some(l) => loc.span(
                l,
                format!("web.listen {listen_s:?} is not an address like 127.0.0.1:8080"),
            ),
            None => loc.at(0, "web.listen default is invalid"),
        })?;
        let public_url = match &w.public_url {
            Some(u) => {
                if !(u.get_ref().starts_with("http://") || u.get_ref().starts_with("https://")) {
                    return Err(loc.span(u, "web.public_url must be an http:// or https:// URL"));
                }
                u.get_ref().trim_end_matches('/').to_owned()
            }
            None => format!("http://{listen}"),
        };
        let paste_ttl = self.duration(&w.paste_ttl, "web.paste_ttl", DEFAULT_PASTE_TTL)?;
        if paste_ttl.is_zero() {
            let at = w.paste_ttl.as_ref().expect("a zero ttl was written");
            return Err(loc.span(at, "web.paste_ttl must be longer than 0s"));
        }
        let media_cache_bytes = match &w.media_cache_mib {
            // Room for at least one file at the media cap (25 MiB).
            Some(m) if *m.get_ref() < MIN_MEDIA_CACHE_MIB => {
                return Err(loc.span(
                    m,
                    format!("web.media_cache_mib must be at least {MIN_MEDIA_CACHE_MIB}"),
                ));
            }
            Some(m) => m.get_ref().saturating_mul(1024 * 1024),
            None => DEFAULT_MEDIA_CACHE_MIB * 1024 * 1024,
        };
        let ready_grace = self.duration(&w.ready_grace, "web.ready_grace", DEFAULT_READY_GRACE)?;
        Ok(Some(WebConfig {
            listen,
            public_url,
            paste_ttl,
            media_cache_bytes,
            ready_grace,
        }))
    }
}
