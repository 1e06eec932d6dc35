//! `[console]`: standard input and output as one chat room.

use toml::Spanned;

use super::Checker;
use crate::config::raw::RawConsole;
use crate::config::{ConfigError, ConsoleConfig, NetworkKind};

impl Checker<'_> {
    pub(super) fn console(
        &mut self,
        raw: Option<&RawConsole>,
    ) -> Result<Option<ConsoleConfig>, ConfigError> {
        let Some(c) = raw.filter(|c| c.enabled) else {
            return Ok(None);
        };
        let default_name = Spanned::new(0..0, "console".to_owned());
        let name = self.add_network(
            c.name.as_ref().unwrap_or(&default_name),
            NetworkKind::Console,
            "console",
        )?;
        let room = c
            .room
            .as_ref()
            .map_or_else(|| "#local".to_owned(), |r| r.get_ref().clone());
        if room.is_empty() || room.contains(char::is_whitespace) {
            let r = c.room.as_ref().expect("default room is valid");
            return Err(self
                .loc
                .span(r, format!("console room {room:?} is not a room name")));
        }
        let console = ConsoleConfig { name, room };
        self.console = Some(console.clone());
        Ok(Some(console))
    }
}
