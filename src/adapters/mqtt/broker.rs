//! The in-process MQTT broker of the embedded default (`[broker]`, rumqttd): the bot
//! subscribes to it like to any broker, so that `mosquitto_pub` against 127.0.0.1:1883 is
//! enough to try the relay out. It keeps nothing across restarts.

use std::net::SocketAddr;
#[cfg(feature = "embedded-broker")]
use std::time::Duration;

use crate::config::BrokerConfig;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("embedded MQTT broker: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("embedded MQTT broker: {0}")]
    Config(String),
    #[error("embedded MQTT broker on {0} did not start accepting connections")]
    NotReady(SocketAddr),
    #[error(
        "this sigbot was built without the embedded-broker feature; remove [broker] or rebuild with it"
    )]
    NotBuiltIn,
}

/// Starts the broker on its `listen` address in its own threads and waits until it accepts
/// connections. It runs until the process exits.
#[cfg(feature = "embedded-broker")]
pub async fn start(cfg: &BrokerConfig) -> Result<(), BrokerError> {
    let listen = cfg.listen;
    // rumqttd's own failure to bind only shows in its log: check the port first.
    drop(
        std::net::TcpListener::bind(listen).map_err(|source| BrokerError::Bind {
            addr: listen,
            source,
        })?,
    );
    let mut config: rumqttd::Config = toml::from_str(&format!(
        r#"
id = 0
[router]
id = 0
max_connections = 1000
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "sigbot-embedded"
listen = "{listen}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 16777216
max_inflight_count = 100
dynamic_filters = true
"#
    ))
    .map_err(|e| BrokerError::Config(e.to_string()))?;
    // Set on the parsed config, never written into its text: a password is not TOML.
    if let Some((user, password)) = &cfg.login {
        for server in config.v4.iter_mut().flat_map(|s| s.values_mut()) {
            server.connections.auth = Some(
                [(user.clone(), password.expose().to_owned())]
                    .into_iter()
                    .collect(),
            );
        }
    } else if !listen.ip().is_loopback() {
        tracing::warn!(
            %listen,
            "embedded MQTT broker: anyone who reaches this address can publish; set [broker] username and password"
        );
    }
    let mut broker = rumqttd::Broker::new(config);
    std::thread::Builder::new()
        .name("mqtt-broker".to_owned())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(|e| BrokerError::Config(format!("cannot start its thread: {e}")))?;
    for _ in 0..200 {
        if answers_connect(listen, cfg.login.as_ref()).await {
            tracing::info!(%listen, "embedded MQTT broker listening");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(BrokerError::NotReady(listen))
}

/// Whether the broker answers an MQTT CONNECT with a CONNACK. A bare TCP connection that
/// closes before its CONNECT is what a broken client does, and rumqttd logs it as an ERROR;
/// a client that closes after its CONNACK has merely gone.
#[cfg(feature = "embedded-broker")]
async fn answers_connect(
    listen: SocketAddr,
    login: Option<&(String, crate::core::Secret)>,
) -> bool {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
    let mut options = MqttOptions::new(
        "sigbot-broker-probe",
        listen.ip().to_string(),
        listen.port(),
    );
    options.set_clean_session(true);
    if let Some((user, password)) = login {
        options.set_credentials(user, password.expose());
    }
    let (_client, mut connection) = AsyncClient::new(options, 1);
    matches!(
        tokio::time::timeout(Duration::from_secs(2), connection.poll()).await,
        Ok(Ok(Event::Incoming(Packet::ConnAck(_))))
    )
}

#[cfg(not(feature = "embedded-broker"))]
pub async fn start(_cfg: &BrokerConfig) -> Result<(), BrokerError> {
    Err(BrokerError::NotBuiltIn)
}
