//! An `[[mqtt]]` connection: one driver task owns rumqttc's event loop, turns each PUBLISH
//! into an [`Event::Mqtt`], and acknowledges it only when the core says its chat messages
//! are stored (the [`MqttHandle`] carries those acks back).
//!
//! QoS 1 with manual acks and, by default, a persistent session (`clean_session = false`):
//! a message the bot received but did not store before a crash is sent again by the broker,
//! and the relay's dedup keys keep it from being posted twice. After every reconnect the
//! driver subscribes again (a broker may have forgotten the session) and acks are only sent
//! on the connection that received the message: a packet id means nothing on another one.

pub mod broker;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng as _;
use rumqttc::{
    AsyncClient, ConnectionError, Event as MqttEvent, MqttOptions, Packet, Publish, QoS,
    SubscribeFilter, SubscribeReasonCode, TlsConfiguration, Transport,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::backoff::Backoff;
use super::report_link;
use crate::config::MqttConfig;
use crate::core::relay::{Delivery, MqttMessage, MqttPayload};
use crate::core::{Event, LinkState};

/// The largest packet MQTT allows.
const MQTT_MAX_PACKET: usize = 268_435_455;

/// Room in a PUBLISH beside its payload: the topic (at most 65,535 bytes with its length),
/// the packet ID. A packet over `max_payload` plus this is refused from its header, unread.
const PUBLISH_OVERHEAD: usize = 65_537 + 2;

/// The largest packet read from the broker: one carrying a `max_payload` body. Payloads a
/// little over it (within the topic's room) are still read and then skipped by the relay;
/// anything larger is refused from its fixed header, before its body is read.
fn max_incoming_packet(max_payload: usize) -> usize {
    max_payload
        .saturating_add(PUBLISH_OVERHEAD)
        .min(MQTT_MAX_PACKET)
}

/// The size of a packet refused from its header, when that is why the connection failed.
fn refused_size(e: &ConnectionError) -> Option<usize> {
    match e {
        ConnectionError::MqttState(rumqttc::StateError::Deserialization(
            rumqttc::Error::PayloadSizeLimitExceeded(len),
        )) => Some(*len),
        _ => None,
    }
}

/// Why a connection cannot even be set up. Connection failures are not errors: they are
/// logged and retried.
#[derive(Debug, thiserror::Error)]
pub enum MqttSetupError {
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: std::path::PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{what} {} holds no PEM certificate", path.display())]
    NoCertificate {
        what: &'static str,
        path: std::path::PathBuf,
    },
    #[error("CA file {}: no usable certificate: {source}", path.display())]
    BadCa {
        path: std::path::PathBuf,
        source: rustls::Error,
    },
    #[error("client certificate and key do not go together: {0}")]
    ClientAuth(rustls::Error),
    #[error("no CA file given and no system root certificates found")]
    NoRoots,
    #[error("{0}")]
    Tls(rustls::Error),
}

/// The core's way to acknowledge messages on one connection.
#[derive(Debug, Clone)]
pub struct MqttHandle {
    pub name: String,
    acks: mpsc::UnboundedSender<Delivery>,
}

impl MqttHandle {
    /// Acknowledges a message once its chat messages are stored. A no-op once the
    /// connection has stopped (the broker will send it again).
    pub fn ack(&self, delivery: Delivery) {
        let _ = self.acks.send(delivery);
    }

    /// Completes once the connection stopped taking acks.
    pub async fn closed(&self) {
        self.acks.closed().await;
    }
}

/// Starts the driver for `cfg`, subscribing to `filters` (QoS 1).
pub fn spawn(
    cfg: MqttConfig,
    filters: Vec<String>,
    events: mpsc::Sender<Event>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> MqttHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let name = cfg.name.clone();
    tracker.spawn(run(cfg, filters, events, rx, shutdown));
    MqttHandle { name, acks: tx }
}

/// rumqttc options from the config: TLS, credentials, session, manual acks.
pub fn options(cfg: &MqttConfig) -> Result<MqttOptions, MqttSetupError> {
    let mut o = MqttOptions::new(&cfg.client_id, &cfg.host, cfg.port);
    o.set_keep_alive(cfg.keep_alive.max(Duration::from_secs(5)));
    o.set_clean_session(cfg.clean_session);
    o.set_manual_acks(true);
    o.set_max_packet_size(max_incoming_packet(cfg.max_payload), 64 * 1024);
    if let Some(user) = &cfg.username {
        let pass = cfg
            .password
            .as_ref()
            .map(|p| p.expose().to_owned())
            .unwrap_or_default();
        o.set_credentials(user, pass);
    }
    if cfg.tls {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls_config(cfg)?),
        )));
    }
    Ok(o)
}

fn read_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, MqttSetupError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| MqttSetupError::Read {
            what,
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(MqttSetupError::NoCertificate {
            what,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The rustls client config: the CA file (or the system's roots), and the client
/// certificate and key (one PEM holding both, or two files).
pub fn tls_config(cfg: &MqttConfig) -> Result<rustls::ClientConfig, MqttSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.ca_file {
        Some(ca) => {
            for cert in read_certs(ca, "CA file")? {
                roots.add(cert).map_err(|source| MqttSetupError::BadCa {
                    path: ca.clone(),
                    source,
                })?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                return Err(MqttSetupError::NoRoots);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(MqttSetupError::Tls)?
        .with_root_certificates(roots);
    let cert_file = cfg.cert_file.as_ref().or(cfg.key_file.as_ref());
    let config = match cert_file {
        None => builder.with_no_client_auth(),
        Some(cert_path) => {
            let certs = read_certs(cert_path, "client certificate")?;
            let key_path = cfg.key_file.as_ref().unwrap_or(cert_path);
            let key =
                PrivateKeyDer::from_pem_file(key_path).map_err(|source| MqttSetupError::Read {
                    what: "client key",
                    path: key_path.clone(),
                    source,
                })?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(MqttSetupError::ClientAuth)?
        }
    };
    Ok(config)
}

/// A connection failure in words an operator can act on.
pub fn explain(e: &ConnectionError) -> String {
    let mut chain = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let text = s.to_string();
        if !chain.contains(&text) {
            chain.push_str(": ");
            chain.push_str(&text);
        }
        src = s.source();
    }
    let lower = chain.to_lowercase();
    let hint = if lower.contains("alert") && lower.contains("cert")
        || lower.contains("unknownca")
        || lower.contains("certificaterequired")
        || lower.contains("badcertificate")
    {
        "; the broker refused our TLS client certificate (check cert_file/key_file and that the broker trusts their CA)"
    } else if lower.contains("invalid peer certificate") || lower.contains("invalidcertificate") {
        "; the broker's certificate is not trusted (check ca_file and the host name in url)"
    } else if lower.contains("connection refused") && !lower.contains("connack") {
        "; nothing listens there (is the broker running?)"
    } else if lower.contains("notauthorized") || lower.contains("badusernamepassword") {
        "; the broker refused our credentials"
    } else {
        ""
    };
    format!("{chain}{hint}")
}

#[tracing::instrument(skip_all, fields(network = %cfg.name))]
async fn run(
    cfg: MqttConfig,
    filters: Vec<String>,
    events: mpsc::Sender<Event>,
    acks: mpsc::UnboundedReceiver<Delivery>,
    shutdown: CancellationToken,
) {
    let opts = match options(&cfg) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "cannot set up the MQTT connection; it stays stopped");
            report_link(&events, &cfg.name, LinkState::Stopped, 0).await;
            return;
        }
    };
    if filters.is_empty() {
        tracing::warn!("no [[relay]] reads from this connection; it subscribes to nothing");
    }
    let (client, mut event_loop) = AsyncClient::new(opts, 1024);
    let link = Link {
        cfg,
        filters,
        events,
        client,
        connection: Arc::new(AtomicU64::new(0)),
    };
    let acker = tokio::spawn(send_acks(
        link.client.clone(),
        link.connection.clone(),
        acks,
        shutdown.clone(),
    ));
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    loop {
        let ev = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            ev = event_loop.poll() => ev,
        };
        let go_on = match ev {
            Ok(MqttEvent::Incoming(Packet::ConnAck(ack))) => {
                backoff.reset();
                link.connected(ack.session_present).await;
                true
            }
            Ok(MqttEvent::Incoming(Packet::SubAck(s))) => {
                link.subscribed(&s.return_codes);
                true
            }
            Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                link.events.send(Event::Mqtt(link.message(p))).await.is_ok()
            }
            Ok(_) => true,
            Err(e) => {
                if let Some(len) = refused_size(&e) {
                    // The broker would send the same message on every reconnect of this
                    // session, and the relay would never move past it: drop the session.
                    tracing::warn!(
                        len,
                        max = link.cfg.max_payload,
                        "MQTT packet refused unread: larger than max_payload; the broker's \
                         session is cleared so that it does not send it again (what it had \
                         queued for this bot is dropped with it)"
                    );
                    if !link.cfg.clean_session {
                        clear_session(&event_loop.mqtt_options).await;
                    }
                    event_loop.pending.clear();
                }
                link.wait_to_retry(&e, &mut backoff, &shutdown).await
            }
        };
        if !go_on {
            break;
        }
    }
    // Let the acker send what the core acknowledged, then say goodbye politely.
    let _ = acker.await;
    if link.client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(super::SHUTDOWN_GRACE, async {
            while let Ok(ev) = event_loop.poll().await {
                if matches!(ev, MqttEvent::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
    }
    link.report(LinkState::Stopped).await;
    tracing::info!("MQTT connection stopped");
}

/// What the driver loop works with: the connection's settings, the core's event channel,
/// and which connection is current (acks for messages of an earlier one are dropped).
struct Link {
    cfg: MqttConfig,
    filters: Vec<String>,
    events: mpsc::Sender<Event>,
    client: AsyncClient,
    connection: Arc<AtomicU64>,
}

impl Link {
    async fn report(&self, state: LinkState) {
        report_link(&self.events, &self.cfg.name, state, 0).await;
    }

    /// A new connection: it becomes the current one, and subscribes again (the broker may
    /// have forgotten the session).
    async fn connected(&self, session_present: bool) {
        let n = self.connection.fetch_add(1, Ordering::AcqRel) + 1;
        tracing::info!(
            host = %self.cfg.host,
            port = self.cfg.port,
            tls = self.cfg.tls,
            session_present,
            connection = n,
            "MQTT connected"
        );
        if !self.filters.is_empty() {
            let subs = self
                .filters
                .iter()
                .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
            if let Err(e) = self.client.try_subscribe_many(subs) {
                tracing::warn!(error = %e, "cannot queue SUBSCRIBE");
            }
        }
        self.report(LinkState::Connected).await;
    }

    /// Logs the broker's answer to each subscription.
    fn subscribed(&self, codes: &[SubscribeReasonCode]) {
        for (f, code) in self.filters.iter().zip(codes) {
            if matches!(code, SubscribeReasonCode::Failure) {
                tracing::warn!(filter = %f, "the broker refused the subscription");
            } else {
                tracing::debug!(filter = %f, ?code, "subscribed");
            }
        }
    }

    /// A PUBLISH as the core's event: payloads over `max_payload` are not passed on, only
    /// their size, and QoS 1 messages carry what their ack needs.
    fn message(&self, p: Publish) -> MqttMessage {
        let delivery = (p.qos != QoS::AtMostOnce).then(|| Delivery {
            connection: self.connection.load(Ordering::Acquire),
            pkid: p.pkid,
        });
        let payload = if p.payload.len() > self.cfg.max_payload {
            MqttPayload::TooLarge {
                len: p.payload.len(),
                max: self.cfg.max_payload,
            }
        } else {
            MqttPayload::Bytes(p.payload.to_vec())
        };
        tracing::trace!(topic = %p.topic, pkid = p.pkid, dup = p.dup, "MQTT message");
        MqttMessage {
            network: self.cfg.name.clone(),
            topic: p.topic,
            payload,
            delivery,
        }
    }

    /// After a failed connection: says so, then waits out the backoff; `false` when the
    /// bot shuts down meanwhile.
    async fn wait_to_retry(
        &self,
        e: &ConnectionError,
        backoff: &mut Backoff,
        shutdown: &CancellationToken,
    ) -> bool {
        let delay = backoff.next_delay(rand::rng().random());
        tracing::warn!(error = %explain(e), retry_in = ?delay, "MQTT connection failed");
        self.report(LinkState::Reconnecting).await;
        tokio::select! {
            () = shutdown.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }
}

/// `sigbot check-config --online` for one connection: connects with the connection's own TLS
/// setup and credentials, then disconnects. It uses the client ID `<client_id>-check` and a
/// clean session, so that neither a running bot's connection nor the messages its broker
/// session holds are touched.
pub async fn probe(cfg: &MqttConfig) -> Result<String, String> {
    let mut opts = options(cfg).map_err(|e| e.to_string())?;
    opts.set_client_id(format!("{}-check", cfg.client_id));
    opts.set_clean_session(true);
    opts.set_manual_acks(false);
    let (client, mut event_loop) = AsyncClient::new(opts, 4);
    let checked = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match event_loop.poll().await {
                Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.try_disconnect();
                }
                Ok(MqttEvent::Outgoing(rumqttc::Outgoing::Disconnect)) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(explain(&e)),
            }
        }
    })
    .await;
    let tls = if cfg.tls { "TLS, " } else { "" };
    let login = match (
        cfg.cert_file.as_ref().or(cfg.key_file.as_ref()),
        &cfg.username,
    ) {
        (Some(_), Some(_)) => "with a client certificate and a password",
        (Some(_), None) => "with a client certificate",
        (None, Some(_)) => "with a username and password",
        (None, None) => "without login",
    };
    match checked {
        Ok(Ok(())) => Ok(format!("{tls}connected {login}")),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("no answer from the broker within 30 s".into()),
    }
}

/// Ends the broker's session for this client ID with a short connection that asks for a clean
/// one, so the next ordinary connection starts a new persistent session with nothing queued.
async fn clear_session(options: &MqttOptions) {
    let mut options = options.clone();
    options.set_clean_session(true);
    let (client, mut event_loop) = AsyncClient::new(options, 4);
    let cleared = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match event_loop.poll().await {
                Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                    if client.try_disconnect().is_err() {
                        return false;
                    }
                }
                Ok(MqttEvent::Outgoing(rumqttc::Outgoing::Disconnect)) => return true,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %explain(&e), "cannot clear the MQTT session");
                    return false;
                }
            }
        }
    })
    .await;
    if cleared == Ok(true) {
        tracing::info!("MQTT session cleared");
    }
}

/// Sends the acks the core gives back, on the connection that received their messages.
async fn send_acks(
    client: AsyncClient,
    connection: Arc<AtomicU64>,
    mut acks: mpsc::UnboundedReceiver<Delivery>,
    shutdown: CancellationToken,
) {
    loop {
        let d = tokio::select! {
            d = acks.recv() => match d { Some(d) => d, None => return },
            () = shutdown.cancelled() => {
                // Acks the core sent before shutting down still go out.
                match acks.try_recv() { Ok(d) => d, Err(_) => return }
            }
        };
        if d.connection != connection.load(Ordering::Acquire) {
            tracing::debug!(
                pkid = d.pkid,
                "ack for an earlier connection dropped; the broker sends the message again"
            );
            continue;
        }
        let mut p = Publish::new("", QoS::AtLeastOnce, Vec::new());
        p.pkid = d.pkid;
        if client.ack(&p).await.is_err() {
            return;
        }
    }
}
