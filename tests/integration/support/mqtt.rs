//! mosquitto with a plain and a mutual-TLS listener, certificates made with the `openssl` CLI,
//! and a small rumqttc client.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{
    EXCHANGE_TIMEOUT, LOCALHOST, ProcessSpec, Recent, SERVER_START_TIMEOUT, ServerProcess,
    free_port, port_accepts, require_program, running_as_root, temp_dir, wait_until, write_file,
};

const INSTALL_HINT: &str =
    "run scripts/test, which installs it (apt-get install mosquitto mosquitto-clients openssl)";

/// How a [`MosquittoServer`] is set up.
#[derive(Debug, Clone, Copy, Default)]
pub struct MosquittoOptions {
    /// Keep retained messages, subscriptions and queued messages of persistent sessions across
    /// restarts. mosquitto saves them after every change, at its next turn of its event loop,
    /// so what a `SIGKILL` ([`MosquittoServer::stop`]) loses is at most the last moment's
    /// changes; [`MosquittoServer::shutdown`] loses nothing.
    pub persistence: bool,
}

/// A certificate authority, a server certificate (for `localhost` and `127.0.0.1`) and a client
/// certificate it signed, as PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TlsFiles {
    /// Generates the CA and both certificates (ECDSA P-256, valid two days) into `dir`.
    pub fn generate(dir: &Path) -> Self {
        let files = Self {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
        };
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-new",
                "-nodes",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=sigbot test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        files.issue(
            dir,
            "server",
            "localhost",
            "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
        );
        files.issue(
            dir,
            "client",
            "sigbot-test-client",
            "extendedKeyUsage=clientAuth\n",
        );
        files
    }

    fn issue(&self, dir: &Path, name: &str, common_name: &str, extensions: &str) {
        let ext = format!("{name}.ext");
        write_file(
            &dir.join(&ext),
            format!("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n{extensions}"),
        );
        let (key, csr, cert) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let subject = format!("/CN={common_name}");
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-nodes",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &subject,
            ],
        );
        let serial = format!("0x{:x}", rand::random::<u64>());
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &serial,
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &cert,
            ],
        );
    }
}

pub(crate) fn openssl(dir: &Path, args: &[&str]) {
    let program = require_program("openssl", INSTALL_HINT);
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// mosquitto 2 on two free loopback ports: [`MosquittoServer::port`] (plain MQTT, anonymous)
/// and [`MosquittoServer::tls_port`] (TLS that requires a client certificate signed by
/// [`TlsFiles::ca_cert`]). Killed on drop.
#[derive(Debug)]
pub struct MosquittoServer {
    port: u16,
    tls_port: u16,
    tls: TlsFiles,
    options: MosquittoOptions,
    process: ServerProcess,
    // Last: removed after the process is killed.
    dir: tempfile::TempDir,
}

impl MosquittoServer {
    /// Starts mosquitto and waits until both listeners accept connections.
    pub async fn start(options: MosquittoOptions) -> Self {
        let mosquitto = require_program("mosquitto", INSTALL_HINT);
        let dir = temp_dir("mosquitto");
        let port = free_port();
        let tls_port = free_port();
        let tls = TlsFiles::generate(dir.path());
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("create mosquitto data dir");
        let config = dir.path().join("mosquitto.conf");
        write_file(
            &config,
            mosquitto_config(&data, port, tls_port, &tls, options),
        );
        let process = ServerProcess::spawn(
            ProcessSpec::new("mosquitto", mosquitto, dir.path())
                .arg("-c")
                .arg(&config),
        );
        let mut server = Self {
            port,
            tls_port,
            tls,
            options,
            process,
            dir,
        };
        server.wait_ready().await;
        server
    }

    pub fn host(&self) -> &'static str {
        LOCALHOST
    }

    /// The plain MQTT listener (anonymous clients allowed).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS listener (client certificate required).
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// The CA, server and client certificates and keys.
    pub fn tls_files(&self) -> &TlsFiles {
        &self.tls
    }

    /// The CA certificate that signed the server and client certificates.
    pub fn ca_cert_path(&self) -> &Path {
        &self.tls.ca_cert
    }

    /// A client certificate the TLS listener accepts.
    pub fn client_cert_path(&self) -> &Path {
        &self.tls.client_cert
    }

    /// The key of [`MosquittoServer::client_cert_path`] (PKCS#8 PEM).
    pub fn client_key_path(&self) -> &Path {
        &self.tls.client_key
    }

    pub fn options(&self) -> MosquittoOptions {
        self.options
    }

    /// The temporary directory with the config, certificates, `data/` and `mosquitto.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills mosquitto with `SIGKILL`.
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Stops mosquitto gracefully (`SIGTERM`): it saves its persistent state first.
    pub async fn shutdown(&mut self) {
        self.process.terminate(EXCHANGE_TIMEOUT).await;
    }

    /// Where mosquitto saves its state when [`MosquittoOptions::persistence`] is on; the file
    /// appears at the first save.
    pub fn persistence_file(&self) -> PathBuf {
        self.dir.path().join("data/mosquitto.db")
    }

    /// Starts mosquitto again on the same ports (killing it first if it runs) and waits until
    /// it is ready.
    pub async fn restart(&mut self) {
        self.process.kill();
        self.process.start();
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let ports = [self.port, self.tls_port].map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
        let process = &mut self.process;
        wait_until(
            "mosquitto to accept connections",
            SERVER_START_TIMEOUT,
            || {
                process.assert_running();
                async move {
                    for addr in ports {
                        if !port_accepts(addr).await {
                            return None;
                        }
                    }
                    Some(())
                }
            },
        )
        .await;
    }

    /// rumqttc options for the plain listener.
    pub fn mqtt_options(&self, client_id: &str) -> MqttOptions {
        let mut options = MqttOptions::new(client_id, LOCALHOST, self.port);
        options.set_keep_alive(Duration::from_secs(30));
        options
    }

    /// rumqttc options for the TLS listener, trusting the test CA, presenting the client
    /// certificate if `with_client_cert`.
    pub fn mqtt_tls_options(&self, client_id: &str, with_client_cert: bool) -> MqttOptions {
        let read = |path: &Path| {
            std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        };
        let client_auth =
            with_client_cert.then(|| (read(&self.tls.client_cert), read(&self.tls.client_key)));
        let mut options = MqttOptions::new(client_id, LOCALHOST, self.tls_port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
            ca: read(&self.tls.ca_cert),
            alpn: None,
            client_auth,
        }));
        options
    }
}

fn mosquitto_config(
    data: &Path,
    port: u16,
    tls_port: u16,
    tls: &TlsFiles,
    options: MosquittoOptions,
) -> String {
    // As root, mosquitto would switch to the "mosquitto" user, who cannot read the temp dir.
    let user = if running_as_root() { "user root\n" } else { "" };
    let persistence = if options.persistence {
        format!(
            "persistence true\npersistence_location {}/\nautosave_on_changes true\n\
             autosave_interval 1\n",
            data.display()
        )
    } else {
        "persistence false\n".to_owned()
    };
    format!(
        "{user}{persistence}per_listener_settings false
allow_anonymous true
log_dest stdout
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
log_timestamp_format %Y-%m-%dT%H:%M:%S

listener {port} {LOCALHOST}

listener {tls_port} {LOCALHOST}
cafile {ca}
certfile {cert}
keyfile {key}
require_certificate true
use_identity_as_username false
",
        ca = tls.ca_cert.display(),
        cert = tls.server_cert.display(),
        key = tls.server_key.display(),
    )
}

/// A message an [`MqttClient`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttMessage {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl MqttMessage {
    /// The payload as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

#[derive(Debug)]
enum Incoming {
    ConnAck,
    SubAck,
    PubAck,
    Publish(MqttMessage),
    /// The connection failed or ended; the client does not reconnect.
    Failed(String),
}

/// An MQTT client whose event loop runs in a background task; it does not reconnect.
#[derive(Debug)]
pub struct MqttClient {
    client: AsyncClient,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    /// Messages that arrived while waiting for an acknowledgement.
    pending: VecDeque<MqttMessage>,
    recent: Recent,
    task: JoinHandle<()>,
}

impl MqttClient {
    /// Connects to the plain listener of `server`.
    pub async fn connect(server: &MosquittoServer, client_id: &str) -> Self {
        Self::try_connect(server.mqtt_options(client_id))
            .await
            .unwrap_or_else(|e| panic!("MQTT client {client_id} could not connect: {e}"))
    }

    /// Connects to the TLS listener of `server` with the client certificate.
    pub async fn connect_tls(server: &MosquittoServer, client_id: &str) -> Self {
        Self::try_connect(server.mqtt_tls_options(client_id, true))
            .await
            .unwrap_or_else(|e| panic!("MQTT client {client_id} could not connect over TLS: {e}"))
    }

    /// Connects with `options` and waits for the broker's CONNACK, or says why it failed.
    pub async fn try_connect(options: MqttOptions) -> Result<Self, String> {
        let (client, mut event_loop) = AsyncClient::new(options, 100);
        let (tx, mut incoming) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let event = match event_loop.poll().await {
                    Ok(Event::Incoming(packet)) => match packet {
                        Packet::ConnAck(_) => Incoming::ConnAck,
                        Packet::SubAck(_) => Incoming::SubAck,
                        Packet::PubAck(_) => Incoming::PubAck,
                        Packet::Publish(p) => Incoming::Publish(MqttMessage {
                            topic: p.topic,
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                        }),
                        _ => continue,
                    },
                    Ok(Event::Outgoing(_)) => continue,
                    Err(e) => {
                        let _ = tx.send(Incoming::Failed(e.to_string()));
                        return;
                    }
                };
                if tx.send(event).is_err() {
                    return;
                }
            }
        });
        let first = tokio::time::timeout(EXCHANGE_TIMEOUT, incoming.recv()).await;
        match first {
            Ok(Some(Incoming::ConnAck)) => Ok(Self {
                client,
                incoming,
                pending: VecDeque::new(),
                recent: Recent::default(),
                task,
            }),
            Ok(Some(Incoming::Failed(e))) => Err(e),
            Ok(other) => Err(format!("expected CONNACK, got {other:?}")),
            Err(_) => Err(format!("no CONNACK within {EXCHANGE_TIMEOUT:?}")),
        }
    }

    /// The underlying rumqttc client, for anything this wrapper does not offer.
    pub fn client(&self) -> &AsyncClient {
        &self.client
    }

    /// Subscribes to `filter` (QoS 1) and waits for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("queue SUBSCRIBE");
        self.wait_ack(|i| matches!(i, Incoming::SubAck), "SUBACK")
            .await;
    }

    /// Publishes `payload` to `topic` (QoS 1, not retained) and waits for the PUBACK.
    pub async fn publish(&mut self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.publish_with(topic, payload, false).await;
    }

    /// Publishes `payload` to `topic` with QoS 1 and `retain`, and waits for the PUBACK.
    pub async fn publish_with(&mut self, topic: &str, payload: impl Into<Vec<u8>>, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.into())
            .await
            .expect("queue PUBLISH");
        self.wait_ack(|i| matches!(i, Incoming::PubAck), "PUBACK")
            .await;
    }

    async fn wait_ack(&mut self, is_ack: impl Fn(&Incoming) -> bool, what: &str) {
        let deadline = tokio::time::Instant::now() + EXCHANGE_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Err(_) => panic!("no {what} within {EXCHANGE_TIMEOUT:?}"),
                Ok(None) => panic!("MQTT connection ended while waiting for {what}"),
                Ok(Some(Incoming::Publish(message))) => self.pending.push_back(message),
                Ok(Some(Incoming::Failed(e))) => panic!("MQTT connection failed: {e}"),
                Ok(Some(other)) if is_ack(&other) => return,
                Ok(Some(_)) => {}
            }
        }
    }

    /// Waits for the next message that `matches`, dropping the ones before it. Panics on
    /// timeout or disconnection with the last messages received.
    pub async fn wait_for_message(
        &mut self,
        timeout: Duration,
        mut matches: impl FnMut(&MqttMessage) -> bool,
    ) -> MqttMessage {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = match self.pending.pop_front() {
                Some(message) => message,
                None => match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                    Err(_) => panic!(
                        "no matching MQTT message within {timeout:?}; last received:\n{}",
                        self.recent.dump()
                    ),
                    Ok(None) => panic!("MQTT connection ended"),
                    Ok(Some(Incoming::Failed(e))) => panic!("MQTT connection failed: {e}"),
                    Ok(Some(Incoming::Publish(message))) => message,
                    Ok(Some(_)) => continue,
                },
            };
            self.recent
                .push(&format!("{} {}", message.topic, message.text()));
            if matches(&message) {
                return message;
            }
        }
    }

    /// Sends DISCONNECT and waits for the event loop to end.
    pub async fn disconnect(mut self) {
        if self.client.disconnect().await.is_ok() {
            let deadline = tokio::time::Instant::now() + EXCHANGE_TIMEOUT;
            while let Ok(Some(event)) =
                tokio::time::timeout_at(deadline, self.incoming.recv()).await
            {
                if matches!(event, Incoming::Failed(_)) {
                    break;
                }
            }
        }
    }
}

impl Drop for MqttClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}
