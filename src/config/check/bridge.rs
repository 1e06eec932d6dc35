//! `[[bridge]]`: rooms whose conversations are relayed to each other.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::Checker;
use crate::config::locate::SECTION_NAME;
use crate::config::raw::RawBridge;
use crate::config::{BridgeConfig, ConfigError, EditMode, IrcChannel, IrcConfig, MatrixConfig};
use crate::core::RoomRef;

impl Checker<'_> {
    pub(super) fn bridges(&self, raw: &[RawBridge]) -> Result<Vec<BridgeConfig>, ConfigError> {
        let mut names = BTreeSet::new();
        // Each room with the bridge it belongs to.
        let mut bridged: BTreeMap<RoomRef, String> = BTreeMap::new();
        raw.iter()
            .map(|b| self.bridge(b, &mut names, &mut bridged))
            .collect()
    }

    fn bridge(
        &self,
        b: &RawBridge,
        names: &mut BTreeSet<String>,
        bridged: &mut BTreeMap<RoomRef, String>,
    ) -> Result<BridgeConfig, ConfigError> {
        let loc = &self.loc;
        let name = loc.name(&b.name, &SECTION_NAME, "bridge name ")?;
        if !names.insert(name.clone()) {
            return Err(loc.span(&b.name, format!("two bridges are named {name:?}")));
        }
        if b.rooms.len() < 2 {
            return Err(loc.span(&b.name, format!("bridge {name}: needs at least two rooms")));
        }
        let rooms = self.chat_rooms(&b.rooms)?;
        for (r, spanned) in rooms.iter().zip(&b.rooms) {
            if let Some(other) = bridged.insert(r.clone(), name.clone()) {
                let message = if other == name {
                    format!("bridge {name}: room {r} is listed twice")
                } else {
                    format!(
                        "room {r} is in bridges {other} and {name}: a room belongs to one bridge"
                    )
                };
                return Err(loc.span(spanned, message));
            }
        }
        for (i, pattern) in b.ignore_regex.iter().enumerate() {
            if let Err(e) = regex::Regex::new(pattern) {
                return Err(loc.span(
                    &b.name,
                    format!(
                        "bridge {name}: ignore_regex[{i}] {pattern:?} is not a valid regex: {e}"
                    ),
                ));
            }
        }
        Ok(BridgeConfig {
            rooms,
            nick_format: b.nick_format.clone(),
            max_lines: b.max_lines.unwrap_or(3).max(1),
            edits: self.edits(b)?,
            join_part: b.join_part,
            quits: b.quits,
            nick_changes: b.nick_changes,
            topics: b.topics,
            ignore_nicks: b.ignore_nicks.clone(),
            ignore_users: b.ignore_users.clone(),
            ignore_regex: b.ignore_regex.clone(),
            reactions: b.reactions,
            redactions: b.redactions,
            relaymsg: b.relaymsg,
            staleness: self.duration(&b.staleness, "staleness", Duration::from_secs(600))?,
            max_mentions: b.max_mentions.unwrap_or(5),
            encrypted: b.encrypted,
            name,
        })
    }

    fn edits(&self, b: &RawBridge) -> Result<EditMode, ConfigError> {
        let Some(e) = &b.edits else {
            return Ok(EditMode::Diff);
        };
        match e.get_ref().as_str() {
            "diff" => Ok(EditMode::Diff),
            "full" => Ok(EditMode::Full),
            "ignore" => Ok(EditMode::Ignore),
            other => Err(self.loc.span(
                e,
                format!("edits {other:?}: use \"diff\", \"full\" or \"ignore\""),
            )),
        }
    }
}

/// Bridged IRC channels and Matrix rooms are joined without being listed under `channels`
/// or `rooms` (DESIGN §8); bridged IRC channels note whether they relay with RELAYMSG.
pub(super) fn join_bridged_rooms(
    bridges: &[BridgeConfig],
    irc: &mut [IrcConfig],
    matrix: &mut [MatrixConfig],
) {
    for b in bridges {
        for r in &b.rooms {
            if let Some(n) = irc.iter_mut().find(|n| n.name == r.network) {
                if !n
                    .channels
                    .iter()
                    .any(|c| c.name.eq_ignore_ascii_case(&r.room))
                {
                    n.channels.push(IrcChannel {
                        name: r.room.clone(),
                        key: None,
                    });
                }
                if b.relaymsg || n.relaymsg {
                    n.relaymsg_channels.push(r.room.to_lowercase());
                }
            }
            if let Some(m) = matrix.iter_mut().find(|m| m.name == r.network)
                && !m.rooms.contains(&r.room)
            {
                m.rooms.push(r.room.clone());
            }
        }
    }
}
