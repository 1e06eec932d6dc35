//! The durable outboxes: what the bot must still say on a network, kept in the store until
//! the network's driver reports it delivered.
//!
//! - [`bridge`]: the bridge's copies, one deliverer per network.
//! - [`relay`]: relayed MQTT events, stored before the MQTT ack and delivered in order.

pub mod bridge;
pub mod relay;
