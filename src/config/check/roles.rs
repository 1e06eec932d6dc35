//! `[roles]`: who may run the commands that name a role.

use std::collections::BTreeMap;

use toml::Spanned;

use super::Checker;
use crate::config::ConfigError;
use crate::core::Principal;

impl Checker<'_> {
    pub(super) fn roles(
        &self,
        raw: &BTreeMap<String, Vec<Spanned<String>>>,
    ) -> Result<BTreeMap<String, Vec<Principal>>, ConfigError> {
        raw.iter()
            .map(|(role, members)| {
                let list = members
                    .iter()
                    .map(|m| self.principal(role, m))
                    .collect::<Result<_, _>>()?;
                Ok((role.clone(), list))
            })
            .collect()
    }

    /// `<network>:<account or user ID>` on a chat network defined above.
    fn principal(&self, role: &str, m: &Spanned<String>) -> Result<Principal, ConfigError> {
        let p = Principal::parse(m.get_ref()).ok_or_else(|| {
            self.loc.span(
                m,
                format!(
                    "role {role}: {:?} is not <network>:<account or user ID>",
                    m.get_ref()
                ),
            )
        })?;
        match self.networks.get(&p.network) {
            Some(k) if k.is_chat() => Ok(p),
            _ => Err(self.loc.span(
                m,
                format!(
                    "role {role}: {:?} names network {:?}, which is not a defined chat network",
                    m.get_ref(),
                    p.network
                ),
            )),
        }
    }
}
