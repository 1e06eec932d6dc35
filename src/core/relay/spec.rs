//! The relay's route spec, built by the config checker and read by the relay.

use std::time::Duration;

use crate::core::event::RoomRef;

/// One `[[relay]]` route as the config checked it: where MQTT events come from, which match,
/// and what is said where.
#[derive(Debug, Clone, PartialEq)]
pub struct RelaySpec {
    pub name: String,
    pub from: String,
    pub topic: String,
    pub when: Option<String>,
    pub template: String,
    pub html_template: Option<String>,
    pub to: Vec<RoomRef>,
    pub max_per_minute: Option<u32>,
    pub dedup_key: Option<String>,
    pub dedup_window: Duration,
    /// How a digest names each folded event (a template); default: project and branch.
    pub digest_label: Option<String>,
}
