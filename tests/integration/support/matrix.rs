//! Synapse from a Python virtualenv, and a small client-server API client.
//!
//! The homeserver uses SQLite, listens on loopback only (client API and admin API, no
//! federation), has every rate limit raised out of the way, and registers users through the
//! shared-secret admin API.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use hmac::Mac as _;
use serde_json::{Value, json};

use super::{
    EXCHANGE_TIMEOUT, LOCALHOST, ProcessSpec, Recent, SERVER_START_TIMEOUT, ServerProcess,
    free_port, port_accepts, random_token, repo_root, temp_dir, wait_until, wait_until_within,
    write_file,
};

/// The version `scripts/test` installs into `.cache/synapse-venv`.
pub const SYNAPSE_VERSION: &str = "1.163.2";

/// The homeserver's `server_name`: user IDs are `@name:sigbot.test`.
pub const SERVER_NAME: &str = "sigbot.test";

/// The virtualenv with Synapse: `$SIGBOT_SYNAPSE_VENV`, else `<repo>/.cache/synapse-venv`.
pub fn synapse_venv() -> PathBuf {
    std::env::var_os("SIGBOT_SYNAPSE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache/synapse-venv"))
}

/// A Synapse homeserver on a free loopback port, in a temporary directory; killed on drop.
#[derive(Debug)]
pub struct SynapseServer {
    port: u16,
    shared_secret: String,
    process: ServerProcess,
    http: reqwest::Client,
    // Last: removed after the process is killed.
    dir: tempfile::TempDir,
}

impl SynapseServer {
    /// Starts Synapse and waits until `GET /health` answers 200.
    pub async fn start() -> Self {
        Self::start_with_message_rate(None).await
    }

    /// Like [`SynapseServer::start`], with `rc_message` (messages a second, burst) set as a
    /// public homeserver would, so that senders get `429 M_LIMIT_EXCEEDED` with `retry_after_ms`.
    /// Exempt the test's own users with [`SynapseServer::exempt_from_rate_limits`].
    pub async fn start_with_message_rate(rc_message: Option<(f64, u32)>) -> Self {
        Self::start_with(rc_message, &[]).await
    }

    /// Like [`SynapseServer::start`], with application services registered: each path is a
    /// registration YAML file (`app_service_config_files`), for bridges that run as one.
    pub async fn start_with_appservices(registrations: &[PathBuf]) -> Self {
        Self::start_with(None, registrations).await
    }

    async fn start_with(rc_message: Option<(f64, u32)>, registrations: &[PathBuf]) -> Self {
        let venv = synapse_venv();
        let python = venv.join("bin/python");
        if !venv.join("bin/synapse_homeserver").is_file() || !python.exists() {
            panic!(
                "Synapse not found in {}: run scripts/test, which creates it (python3 -m venv \
                 .cache/synapse-venv && .cache/synapse-venv/bin/pip install \
                 matrix-synapse=={SYNAPSE_VERSION}), or set SIGBOT_SYNAPSE_VENV to a virtualenv \
                 that has matrix-synapse",
                venv.display()
            );
        }
        let dir = temp_dir("synapse");
        let port = free_port();
        let shared_secret = random_token(32);
        write_signing_key(&dir.path().join("signing.key"));
        let config = dir.path().join("homeserver.yaml");
        let mut text = synapse_config(dir.path(), port, &shared_secret, rc_message);
        if !registrations.is_empty() {
            text.push_str("app_service_config_files:\n");
            for file in registrations {
                text.push_str(&format!("  - {:?}\n", file.display().to_string()));
            }
        }
        write_file(&config, text);

        let process = ServerProcess::spawn(
            ProcessSpec::new("synapse", python, dir.path())
                .arg("-m")
                .arg("synapse.app.homeserver")
                .arg("--config-path")
                .arg(&config),
        );
        let mut server = Self {
            port,
            shared_secret,
            process,
            http: reqwest::Client::new(),
            dir,
        };
        server.wait_ready().await;
        server
    }

    /// The base URL of the client-server API: `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{LOCALHOST}:{}", self.port)
    }

    pub fn host(&self) -> &'static str {
        LOCALHOST
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `sigbot.test`.
    pub fn server_name(&self) -> &'static str {
        SERVER_NAME
    }

    /// `@<localpart>:sigbot.test`.
    pub fn user_id(&self, localpart: &str) -> String {
        format!("@{localpart}:{SERVER_NAME}")
    }

    /// The temporary directory with the config, the database and `synapse.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills Synapse with `SIGKILL`.
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Starts Synapse again on the same port with the same database (killing it first if it
    /// runs), and waits until it is ready.
    pub async fn restart(&mut self) {
        self.process.kill();
        self.process.start();
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let health = format!("{}/health", self.url());
        let http = &self.http;
        let process = &mut self.process;
        wait_until("synapse to answer /health", SERVER_START_TIMEOUT, || {
            process.assert_running();
            let request = http.get(&health).timeout(Duration::from_secs(2)).send();
            async move {
                let response = request.await.ok()?;
                (response.status() == reqwest::StatusCode::OK).then_some(())
            }
        })
        .await;
    }

    /// Registers a normal user through the shared-secret admin API.
    pub async fn register_user(&self, localpart: &str, password: &str) -> MatrixUser {
        self.register(localpart, password, false).await
    }

    /// Registers a server admin through the shared-secret admin API.
    /// Lifts the message rate limit for `user_id` (admin API; `admin` must be a server admin).
    pub async fn exempt_from_rate_limits(&self, admin: &MatrixUser, user_id: &str) {
        let url = format!(
            "{}/_synapse/admin/v1/users/{}/override_ratelimit",
            self.url(),
            encode(user_id)
        );
        let reply = self
            .http
            .post(url)
            .bearer_auth(&admin.access_token)
            .json(&serde_json::json!({"messages_per_second": 0, "burst_count": 0}))
            .send()
            .await
            .expect("override_ratelimit");
        assert!(
            reply.status().is_success(),
            "override_ratelimit: {}",
            reply.status()
        );
    }

    pub async fn register_admin(&self, localpart: &str, password: &str) -> MatrixUser {
        self.register(localpart, password, true).await
    }

    async fn register(&self, localpart: &str, password: &str, admin: bool) -> MatrixUser {
        let url = format!("{}/_synapse/admin/v1/register", self.url());
        let nonce = expect_ok(self.http.get(&url).send().await, "get a registration nonce").await;
        let nonce = nonce["nonce"].as_str().expect("nonce in reply").to_owned();

        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(self.shared_secret.as_bytes())
            .expect("HMAC accepts any key length");
        let role = if admin { "admin" } else { "notadmin" };
        mac.update(format!("{nonce}\0{localpart}\0{password}\0{role}").as_bytes());
        let mac: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();

        let body = json!({
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac,
        });
        let reply = expect_ok(
            self.http.post(&url).json(&body).send().await,
            &format!("register Matrix user {localpart}"),
        )
        .await;
        MatrixUser {
            user_id: reply["user_id"].as_str().expect("user_id").to_owned(),
            localpart: localpart.to_owned(),
            password: password.to_owned(),
            access_token: reply["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
            device_id: reply["device_id"].as_str().unwrap_or_default().to_owned(),
        }
    }

    /// A client for `user`, using the access token registration gave.
    pub fn client(&self, user: &MatrixUser) -> MatrixClient {
        MatrixClient::with_token(&self.url(), &user.user_id, &user.access_token)
    }
}

fn write_signing_key(path: &Path) {
    // Synapse's format: "<algorithm> <key version> <unpadded base64 of the ed25519 seed>".
    let seed: [u8; 32] = rand::random();
    let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(seed);
    write_file(path, format!("ed25519 a_{} {encoded}\n", random_token(4)));
}

fn synapse_config(
    dir: &Path,
    port: u16,
    shared_secret: &str,
    rc_message: Option<(f64, u32)>,
) -> String {
    let dir = dir.display();
    let macaroon = random_token(32);
    let form = random_token(32);
    // Every rate limit out of the way: tests send bursts that a real server would slow down.
    let unlimited = "{per_second: 100000, burst_count: 100000}";
    let rc_message = match rc_message {
        Some((per_second, burst)) => format!("{{per_second: {per_second}, burst_count: {burst}}}"),
        None => unlimited.to_owned(),
    };
    format!(
        r#"server_name: "{SERVER_NAME}"
public_baseurl: "http://{LOCALHOST}:{port}/"
pid_file: "{dir}/homeserver.pid"
listeners:
  - port: {port}
    bind_addresses: ["{LOCALHOST}"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: "{dir}/homeserver.db"
media_store_path: "{dir}/media_store"
signing_key_path: "{dir}/signing.key"
registration_shared_secret: "{shared_secret}"
macaroon_secret_key: "{macaroon}"
form_secret: "{form}"
report_stats: false
enable_metrics: false
enable_registration: false
url_preview_enabled: false
presence:
  enabled: false
trusted_key_servers: []
suppress_key_server_warning: true
rc_message: {rc_message}
rc_registration: {unlimited}
rc_registration_token_validity: {unlimited}
rc_login:
  address: {unlimited}
  account: {unlimited}
  failed_attempts: {unlimited}
rc_admin_redaction: {unlimited}
rc_joins:
  local: {unlimited}
  remote: {unlimited}
rc_joins_per_room: {unlimited}
rc_3pid_validation: {unlimited}
rc_invites:
  per_room: {unlimited}
  per_user: {unlimited}
  per_issuer: {unlimited}
rc_third_party_invite: {unlimited}
rc_presence:
  per_user: {unlimited}
rc_delayed_event_mgmt: {unlimited}
rc_room_creation: {unlimited}
rc_reports: {unlimited}
rc_media_create: {unlimited}
rc_profile: {unlimited}
rc_user_directory: {unlimited}
rc_key_requests: {unlimited}
"#
    )
}

/// A user registered on a [`SynapseServer`].
#[derive(Debug, Clone)]
pub struct MatrixUser {
    /// `@localpart:sigbot.test`.
    pub user_id: String,
    pub localpart: String,
    pub password: String,
    /// The token of the device registration created.
    pub access_token: String,
    pub device_id: String,
}

/// What [`MatrixClient::create_room`] creates.
#[derive(Debug, Clone, Default)]
pub struct RoomSpec {
    /// Local part of an alias: `Some("room")` publishes `#room:sigbot.test`.
    pub alias: Option<String>,
    pub name: Option<String>,
    /// Anyone may join (preset `public_chat`); otherwise invitation only.
    pub public: bool,
    /// User IDs to invite.
    pub invite: Vec<String>,
    /// Turn on end-to-end encryption (`m.megolm.v1.aes-sha2`).
    pub encrypted: bool,
}

/// A client of the Matrix client-server API, enough to talk to the bot from a test.
#[derive(Debug)]
pub struct MatrixClient {
    http: reqwest::Client,
    base: String,
    user_id: String,
    access_token: String,
    since: Option<String>,
    txn: u64,
    /// Timeline events synced but not yet looked at: (room ID, event).
    pending: VecDeque<(String, Value)>,
    invites: VecDeque<String>,
    recent: Recent,
}

impl MatrixClient {
    /// Uses an existing access token.
    /// The homeserver's address, from its base URL (`http://127.0.0.1:PORT`).
    fn homeserver_addr(&self) -> std::net::SocketAddr {
        let hostport = self.base.trim_start_matches("http://");
        hostport
            .parse()
            .unwrap_or_else(|e| panic!("homeserver address {hostport:?}: {e}"))
    }

    pub fn with_token(base_url: &str, user_id: &str, access_token: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base_url.trim_end_matches('/').to_owned(),
            user_id: user_id.to_owned(),
            access_token: access_token.to_owned(),
            since: None,
            txn: 0,
            pending: VecDeque::new(),
            invites: VecDeque::new(),
            recent: Recent::default(),
        }
    }

    /// Logs in with a password (a new device).
    pub async fn login(base_url: &str, user: &str, password: &str) -> Self {
        let http = reqwest::Client::new();
        let base = base_url.trim_end_matches('/');
        let body = json!({
            "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": user },
            "password": password,
            "initial_device_display_name": "sigbot integration test",
        });
        let reply = expect_ok(
            http.post(format!("{base}/_matrix/client/v3/login"))
                .json(&body)
                .send()
                .await,
            &format!("log in to Matrix as {user}"),
        )
        .await;
        Self::with_token(
            base,
            reply["user_id"].as_str().expect("user_id"),
            reply["access_token"].as_str().expect("access_token"),
        )
    }

    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    pub fn access_token(&self) -> &str {
        &self.access_token
    }

    /// A request with the access token, to any endpoint (`path` starts with `/_matrix/...`).
    /// The IDs of this user's devices, sorted: a login that made a new device shows here.
    pub async fn device_ids(&self) -> Vec<String> {
        let reply: Value = self
            .request(reqwest::Method::GET, "/_matrix/client/v3/devices")
            .send()
            .await
            .expect("devices")
            .json()
            .await
            .expect("devices reply");
        let mut ids: Vec<String> = reply["devices"]
            .as_array()
            .expect("devices list")
            .iter()
            .map(|d| d["device_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.access_token)
            .timeout(EXCHANGE_TIMEOUT)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.request(method.clone(), path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        expect_ok(request.send().await, &format!("{method} {path}")).await
    }

    /// Creates a room and returns its ID.
    pub async fn create_room(&self, spec: RoomSpec) -> String {
        let mut body = json!({
            "preset": if spec.public { "public_chat" } else { "private_chat" },
            "invite": spec.invite,
        });
        if let Some(alias) = &spec.alias {
            body["room_alias_name"] = json!(alias);
        }
        if let Some(name) = &spec.name {
            body["name"] = json!(name);
        }
        if spec.encrypted {
            body["initial_state"] = json!([{
                "type": "m.room.encryption",
                "state_key": "",
                "content": { "algorithm": "m.megolm.v1.aes-sha2" },
            }]);
        }
        let reply = self
            .call(
                reqwest::Method::POST,
                "/_matrix/client/v3/createRoom",
                Some(body),
            )
            .await;
        reply["room_id"].as_str().expect("room_id").to_owned()
    }

    /// Joins a room by ID or alias and returns its ID.
    pub async fn join(&self, room_id_or_alias: &str) -> String {
        let path = format!("/_matrix/client/v3/join/{}", encode(room_id_or_alias));
        let reply = self
            .call(reqwest::Method::POST, &path, Some(json!({})))
            .await;
        reply["room_id"].as_str().expect("room_id").to_owned()
    }

    /// Invites `user_id` to `room_id`.
    pub async fn invite(&self, room_id: &str, user_id: &str) {
        let path = format!("/_matrix/client/v3/rooms/{}/invite", encode(room_id));
        self.call(
            reqwest::Method::POST,
            &path,
            Some(json!({ "user_id": user_id })),
        )
        .await;
    }

    /// Resolves a room alias (`#name:server`) to a room ID.
    pub async fn resolve_alias(&self, alias: &str) -> String {
        let path = format!("/_matrix/client/v3/directory/room/{}", encode(alias));
        let reply = self.call(reqwest::Method::GET, &path, None).await;
        reply["room_id"].as_str().expect("room_id").to_owned()
    }

    /// Sends an `m.text` message and returns its event ID.
    pub async fn send_text(&mut self, room_id: &str, body: &str) -> String {
        self.send_message(room_id, json!({ "msgtype": "m.text", "body": body }))
            .await
    }

    /// Sends an `m.room.message` with the given content and returns its event ID.
    pub async fn send_message(&mut self, room_id: &str, content: Value) -> String {
        self.send_event(room_id, "m.room.message", content).await
    }

    /// Sends a room event of any type and returns its event ID.
    pub async fn send_event(&mut self, room_id: &str, event_type: &str, content: Value) -> String {
        self.txn += 1;
        let txn = format!("sigbot-test-{}-{}", random_token(8), self.txn);
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/{}/{txn}",
            encode(room_id),
            encode(event_type)
        );
        let reply = self.call(reqwest::Method::PUT, &path, Some(content)).await;
        reply["event_id"].as_str().expect("event_id").to_owned()
    }

    /// Waits for the next timeline event in `room_id` that `matches`, dropping the events of
    /// that room before it. The first call also sees the room's recent history. Panics on
    /// timeout with the last events seen.
    pub async fn wait_for_event(
        &mut self,
        room_id: &str,
        timeout: Duration,
        mut matches: impl FnMut(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut kept = VecDeque::new();
            let mut found = None;
            while let Some((room, event)) = self.pending.pop_front() {
                if found.is_some() || room != room_id {
                    kept.push_back((room, event));
                    continue;
                }
                self.recent.push(&event.to_string());
                if matches(&event) {
                    found = Some(event);
                }
            }
            self.pending = kept;
            if let Some(event) = found {
                return event;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                panic!(
                    "{} waited {timeout:?} for an event in {room_id}; last events seen:\n{}",
                    self.user_id,
                    self.recent.dump()
                );
            }
            self.sync(deadline - now).await;
        }
    }

    /// Waits for an `m.room.message` in `room_id` whose body `matches`; returns the event.
    pub async fn wait_for_message(
        &mut self,
        room_id: &str,
        timeout: Duration,
        mut matches: impl FnMut(&str) -> bool,
    ) -> Value {
        self.wait_for_event(room_id, timeout, |event| {
            event["type"] == "m.room.message"
                && event["content"]["body"].as_str().is_some_and(&mut matches)
        })
        .await
    }

    /// Waits for an invitation to any room and returns the room's ID.
    pub async fn wait_for_invite(&mut self, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(room) = self.invites.pop_front() {
                return room;
            }
            let now = tokio::time::Instant::now();
            assert!(
                now < deadline,
                "{} got no invitation in {timeout:?}",
                self.user_id
            );
            self.sync(deadline - now).await;
        }
    }

    /// One `/sync` long poll of at most `wait` (capped at 5 s); queues what it brings. A
    /// homeserver that cannot be reached counts as an empty sync.
    async fn sync(&mut self, wait: Duration) {
        let wait = wait.min(Duration::from_secs(5));
        let filter = json!({
            "room": {
                "timeline": { "limit": 100 },
                "state": { "lazy_load_members": true },
            },
            "presence": { "types": [] },
            "account_data": { "types": [] },
        });
        let mut query = format!(
            "timeout={}&filter={}",
            wait.as_millis(),
            encode(&filter.to_string())
        );
        if let Some(since) = &self.since {
            query.push_str(&format!("&since={}", encode(since)));
        }
        let response = self
            .request(
                reqwest::Method::GET,
                &format!("/_matrix/client/v3/sync?{query}"),
            )
            .timeout(wait + EXCHANGE_TIMEOUT)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            // The homeserver may be restarting (a fault test): the caller's deadline decides.
            Err(e) => {
                self.recent.push(&format!("(sync failed: {e})"));
                // Syncing again makes sense once the homeserver takes connections again.
                let addr = self.homeserver_addr();
                let back = wait_until_within(EXCHANGE_TIMEOUT, || async move {
                    port_accepts(addr).await.then_some(())
                });
                if back.await.is_none() {
                    self.recent.push("(homeserver still down)");
                }
                return;
            }
        };
        let reply = expect_ok(Ok(response), "sync").await;
        self.since = reply["next_batch"].as_str().map(str::to_owned);
        if let Some(joined) = reply["rooms"]["join"].as_object() {
            for (room_id, room) in joined {
                for event in room["timeline"]["events"].as_array().into_iter().flatten() {
                    self.pending.push_back((room_id.clone(), event.clone()));
                }
            }
        }
        if let Some(invited) = reply["rooms"]["invite"].as_object() {
            self.invites.extend(invited.keys().cloned());
        }
    }
}

/// Percent-encodes everything but unreserved characters, for a path segment or query value.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The JSON body of a 2xx reply; panics with the status and body otherwise.
async fn expect_ok(result: reqwest::Result<reqwest::Response>, what: &str) -> Value {
    let response = result.unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = response.status();
    let text = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("{what}: reading the reply: {e}"));
    assert!(status.is_success(), "{what}: HTTP {status}: {text}");
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{what}: reply is not JSON ({e}): {text}"))
}
