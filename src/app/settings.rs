//! The checked config turned into what the core is told: its own settings, the bridges and
//! the meetings. Nothing here starts anything.

use std::collections::BTreeMap;

use crate::config::{BridgeConfig, Config, EditMode, MeetingRooms, NetworkKind};
use crate::core::bridge::PresenceRelay;
use crate::core::{
    BridgeSettings, BridgeSpec, CoreSettings, MatrixRelay, MeetingScope, MeetingSettings, Roles,
    SideKind,
};

/// How the health page names a network's kind.
pub(super) fn kind_name(kind: NetworkKind) -> &'static str {
    match kind {
        NetworkKind::Console => "console",
        NetworkKind::Irc => "irc",
        NetworkKind::Matrix => "matrix",
        NetworkKind::Mqtt => "mqtt",
    }
}

pub(super) fn core_settings(cfg: &Config) -> CoreSettings {
    CoreSettings {
        nick: cfg.bot.nick.clone(),
        prefix: cfg.bot.prefix.clone(),
        roles: Roles::new(cfg.roles.clone()),
        networks: cfg.networks().into_iter().map(|(n, _)| n).collect(),
        version: crate::VERSION.to_owned(),
    }
}

/// The bridges as the core sees them: each network's kind, and the line budget on IRC.
pub(super) fn bridge_settings(cfg: &Config) -> BridgeSettings {
    BridgeSettings {
        bridges: cfg.bridges.iter().map(bridge_spec).collect(),
        sides: bridge_sides(cfg),
        public_url: cfg.web.as_ref().map(|w| w.public_url.clone()),
    }
}

fn bridge_sides(cfg: &Config) -> BTreeMap<String, SideKind> {
    let mut sides = BTreeMap::new();
    if let Some(c) = &cfg.console {
        sides.insert(c.name.clone(), SideKind::Console);
    }
    for n in &cfg.irc {
        // The adapter may add up to a few `_` to the longest configured nick.
        let nick_len = n
            .alt_nicks
            .iter()
            .map(String::len)
            .chain([n.nick.len()])
            .max()
            .unwrap_or(9)
            + 3;
        sides.insert(
            n.name.clone(),
            SideKind::Irc {
                nick_len,
                user_len: n.username.len() + 1,
            },
        );
    }
    for n in &cfg.matrix {
        sides.insert(n.name.clone(), SideKind::Matrix);
    }
    sides
}

fn bridge_spec(b: &BridgeConfig) -> BridgeSpec {
    BridgeSpec {
        name: b.name.clone(),
        rooms: b.rooms.clone(),
        max_lines: b.max_lines,
        ignore_nicks: b.ignore_nicks.clone(),
        ignore_users: b.ignore_users.clone(),
        // Checked when the config was read.
        ignore_regex: b
            .ignore_regex
            .iter()
            .filter_map(|r| regex::Regex::new(r).ok())
            .collect(),
        staleness: b.staleness,
        max_mentions: b.max_mentions,
        presence: PresenceRelay {
            join_part: b.join_part,
            quits: b.quits,
            nick_changes: b.nick_changes,
            topics: b.topics,
        },
        matrix: MatrixRelay {
            edits: match b.edits {
                EditMode::Diff => crate::core::EditMode::Diff,
                EditMode::Full => crate::core::EditMode::Full,
                EditMode::Ignore => crate::core::EditMode::Ignore,
            },
            reactions: b.reactions,
            redactions: b.redactions,
            encrypted: b.encrypted,
        },
    }
}

/// Where meetings may be held, or `None` when they are off.
pub(super) fn meeting_settings(cfg: &Config) -> Option<MeetingSettings> {
    let scope = match &cfg.meetings {
        MeetingRooms::None => return None,
        MeetingRooms::All => MeetingScope::All,
        MeetingRooms::Some(rooms) => MeetingScope::Rooms(rooms.clone()),
    };
    Some(MeetingSettings {
        scope,
        public_url: cfg
            .web
            .as_ref()
            .map(|w| w.public_url.clone())
            .unwrap_or_default(),
        bot_nick: cfg.bot.nick.clone(),
        prefix: cfg.bot.prefix.clone(),
        display_name_networks: cfg.matrix.iter().map(|m| m.name.clone()).collect(),
        enders: ["admin", "chair"]
            .iter()
            .filter_map(|role| cfg.roles.get(*role))
            .flatten()
            .cloned()
            .collect(),
        idle_timeout: Some(cfg.meeting_idle_timeout),
        // The journal holds the log; the files are written from it.
        keep_lines: false,
    })
}
