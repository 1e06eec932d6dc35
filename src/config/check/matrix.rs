//! `[[matrix]]`: Matrix accounts, and what a Matrix room reference looks like.

use std::time::Duration;

use toml::Spanned;

use super::Checker;
use crate::config::locate::Locator;
use crate::config::raw::RawMatrix;
use crate::config::{ConfigError, MatrixAuth, MatrixConfig, NetworkKind};

impl Checker<'_> {
    pub(super) fn matrix(&mut self, raw: &[RawMatrix]) -> Result<Vec<MatrixConfig>, ConfigError> {
        raw.iter().map(|m| self.matrix_account(m)).collect()
    }

    fn matrix_account(&mut self, m: &RawMatrix) -> Result<MatrixConfig, ConfigError> {
        let loc = self.loc;
        let name = self.add_network(&m.name, NetworkKind::Matrix, "matrix")?;
        let hs = m.homeserver.get_ref();
        if !(hs.starts_with("https://") || hs.starts_with("http://")) {
            return Err(loc.span(
                &m.homeserver,
                format!("homeserver {hs:?} must be an http:// or https:// URL"),
            ));
        }
        let user = m.user.get_ref();
        if !(user.starts_with('@') && user.contains(':')) {
            return Err(loc.span(
                &m.user,
                format!("matrix user {user:?} must be a user ID like @bot:example.org"),
            ));
        }
        let auth = self.matrix_auth(m, &name)?;
        let store_passphrase = self.opt_secret(&m.store_passphrase, "store_passphrase")?;
        if let (Some(p), Some(raw)) = (&store_passphrase, &m.store_passphrase)
            && p.expose().is_empty()
        {
            return Err(loc.span(raw, "store_passphrase is empty"));
        }
        let mut rooms = Vec::new();
        for r in &m.rooms {
            matrix_room(&loc, r)?;
            rooms.push(r.get_ref().clone());
        }
        Ok(MatrixConfig {
            homeserver: hs.trim_end_matches('/').to_owned(),
            user: user.clone(),
            auth,
            store_passphrase,
            device_name: m.device_name.clone().unwrap_or_else(|| "sigbot".to_owned()),
            rooms,
            encrypted_rooms: m.encrypted_rooms,
            invites_from: m.invites_from.clone(),
            catch_up: self.duration(&m.catch_up, "catch_up", Duration::from_secs(600))?,
            name,
        })
    }

    /// Exactly one of `password` and `access_token`.
    fn matrix_auth(&self, m: &RawMatrix, name: &str) -> Result<MatrixAuth, ConfigError> {
        match (&m.password, &m.access_token) {
            (Some(p), None) => Ok(MatrixAuth::Password(self.secret(p, "password")?)),
            (None, Some(t)) => Ok(MatrixAuth::AccessToken(self.secret(t, "access_token")?)),
            (Some(_), Some(t)) => Err(self
                .loc
                .span(t, "give either password or access_token, not both")),
            (None, None) => Err(self.loc.span(
                &m.name,
                format!("matrix {name}: needs password or access_token"),
            )),
        }
    }
}

/// An alias (`#room:server`) or a room ID (`!id:server`, or `!id` from room version 12).
pub(super) fn matrix_room(loc: &Locator<'_>, r: &Spanned<String>) -> Result<(), ConfigError> {
    let v = r.get_ref();
    // Room IDs of room version 12 (`!<hash>`) no longer name a server; aliases always do.
    let has_server = v.find(':').is_some_and(|i| i > 1 && i + 1 < v.len());
    let well_formed = if v.starts_with('!') {
        has_server || (v.len() > 1 && !v.contains(':'))
    } else {
        v.starts_with('#') && has_server
    };
    let ok = well_formed && !v.contains(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(loc.span(
            r,
            format!(
                "matrix room {v:?} must be an alias (#room:server) or an ID (!id:server or, \
                 from room version 12, !id)"
            ),
        ))
    }
}
