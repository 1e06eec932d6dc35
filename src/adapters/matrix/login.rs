//! Logging in: the saved session is restored when it still fits the config, so that the bot
//! keeps one device and its keys across restarts; otherwise a password or access-token login
//! makes a new device, with fresh SDK stores, and saves its session.

use std::time::Duration;

use matrix_sdk::authentication::matrix::{MatrixAuth as SdkAuth, MatrixSession};
use matrix_sdk::config::RequestConfig;
use matrix_sdk::ruma::UserId;
use matrix_sdk::store::RoomLoadSettings;
use matrix_sdk::{Client, ClientBuildError, SessionMeta, SessionTokens};
use matrix_sdk_sqlite::OpenStoreError;
use serde_json::Value;

use super::state::{SavedSession, StateError};
use super::{Driver, MatrixError};
use crate::config::MatrixAuth;

impl Driver {
    /// Restores the saved session, or logs in and saves it.
    pub(super) async fn connect(&self) -> Result<Client, MatrixError> {
        self.dir.create()?;
        let saved = self.reusable_session()?;
        let client = self.build_client().await?;
        // The SDK drops a sync answer whose `next_batch` it saved before, but it saves one
        // before the bot has handled its events: after a crash in between, the answer to the
        // bot's own older position would be dropped and its events lost. The bot keeps its own
        // position (sync.db), so the SDK starts without one.
        client
            .state_store()
            .remove_kv_data(matrix_sdk::store::StateStoreDataKey::SyncToken)
            .await
            .map_err(matrix_sdk::Error::from)?;
        let auth = client.matrix_auth();
        if let Some(saved) = saved {
            tracing::info!(device = %saved.session.meta.device_id, "restoring the saved session");
            auth.restore_session(saved.session, RoomLoadSettings::default())
                .await?;
            return Ok(client);
        }
        let session = self.log_in(&auth).await?;
        if session.meta.user_id != self.cfg.user {
            return Err(MatrixError::WrongUser {
                configured: self.cfg.user.clone(),
                actual: session.meta.user_id.to_string(),
            });
        }
        tracing::info!(device = %session.meta.device_id, "logged in as a new device");
        self.dir.save_session(&SavedSession {
            homeserver: self.cfg.homeserver.clone(),
            session,
        })?;
        Ok(client)
    }

    /// The saved session, if there is one for the configured homeserver and user. Without
    /// one, the stores of the old device are removed.
    fn reusable_session(&self) -> Result<Option<SavedSession>, StateError> {
        let saved = self.dir.load_session().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "saved session unreadable; logging in again");
            None
        });
        let saved = saved.filter(|s| {
            s.homeserver == self.cfg.homeserver && s.session.meta.user_id == self.cfg.user
        });
        if saved.is_none() {
            // A new login is a new device: the old device's stores are of no use to it.
            self.dir.forget_session()?;
        }
        Ok(saved)
    }

    /// A client on the network's own SDK store, encrypted with `store_passphrase` when set.
    /// A store that does not open with the configured passphrase (a wrong one, or one made
    /// with or without a passphrase when the config says otherwise) is an error: logging in
    /// again would make a new device.
    async fn build_client(&self) -> Result<Client, MatrixError> {
        let path = self.dir.sdk_store();
        let passphrase = self.cfg.store_passphrase.as_ref().map(|p| p.expose());
        let refused = |why| MatrixError::StoreSecret {
            path: path.clone(),
            why,
        };
        if let Some(why) = passphrase_mismatch(self.dir.sdk_store_encrypted()?, passphrase) {
            return Err(refused(why));
        }
        self.dir.private_sdk_store()?;
        let built = Client::builder()
            .homeserver_url(&self.cfg.homeserver)
            .sqlite_store(&path, passphrase)
            .request_config(
                RequestConfig::new()
                    .timeout(Duration::from_secs(60))
                    .retry_limit(4),
            )
            .build()
            .await;
        let client = match built {
            Ok(client) => client,
            Err(ClientBuildError::SqliteStore(OpenStoreError::InitCipher(_))) => {
                return Err(refused(
                    "wrong store_passphrase (or the store was made with another)",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        // The SDK made its databases with the umask's mode.
        self.dir.private_sdk_store()?;
        Ok(client)
    }

    /// Logs in as a new device with the configured credentials.
    async fn log_in(&self, auth: &SdkAuth) -> Result<MatrixSession, MatrixError> {
        match &self.cfg.auth {
            MatrixAuth::Password(password) => {
                auth.login_username(&self.cfg.user, password.expose())
                    .initial_device_display_name(&self.cfg.device_name)
                    .send()
                    .await?;
                auth.session()
                    .ok_or_else(|| MatrixError::Auth("the login gave no session".into()))
            }
            MatrixAuth::AccessToken(token) => {
                let (user_id, device_id) = whoami(&self.cfg.homeserver, token.expose()).await?;
                let session = MatrixSession {
                    meta: SessionMeta {
                        user_id: UserId::parse(&user_id)
                            .map_err(|e| MatrixError::Auth(e.to_string()))?,
                        device_id: device_id.into(),
                    },
                    tokens: SessionTokens {
                        access_token: token.expose().to_owned(),
                        refresh_token: None,
                    },
                };
                auth.restore_session(session.clone(), RoomLoadSettings::default())
                    .await?;
                Ok(session)
            }
        }
    }
}

/// Why an existing SDK store (encrypted or not, `None` when there is none yet) cannot be
/// opened with the configured passphrase, if it cannot. A wrong passphrase shows only when
/// the store is opened.
fn passphrase_mismatch(encrypted: Option<bool>, passphrase: Option<&str>) -> Option<&'static str> {
    match (encrypted, passphrase) {
        (Some(true), None) => Some("it is encrypted, and no store_passphrase is set"),
        (Some(false), Some(_)) => Some(
            "it was made without store_passphrase; remove store_passphrase, or remove \
             session.json and sdk/ beside it to log in as a new device with an encrypted store",
        ),
        _ => None,
    }
}

/// Asks the homeserver whose access token this is: (user ID, device ID).
async fn whoami(homeserver: &str, token: &str) -> Result<(String, String), MatrixError> {
    let reply = crate::http_client(None)
        .map_err(|e| MatrixError::Auth(e.to_string()))?
        .get(format!("{homeserver}/_matrix/client/v3/account/whoami"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| MatrixError::Auth(e.without_url().to_string()))?;
    let body: Value = reply
        .json()
        .await
        .map_err(|e| MatrixError::Auth(e.to_string()))?;
    match (body["user_id"].as_str(), body["device_id"].as_str()) {
        (Some(u), Some(d)) => Ok((u.to_owned(), d.to_owned())),
        _ => Err(MatrixError::Auth(
            "the token has no device; log in with a password instead".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::passphrase_mismatch;

    #[test]
    fn a_store_opens_only_with_a_passphrase_exactly_when_it_was_made_with_one() {
        assert_eq!(passphrase_mismatch(None, None), None);
        assert_eq!(passphrase_mismatch(None, Some("pw")), None);
        assert_eq!(passphrase_mismatch(Some(false), None), None);
        assert_eq!(passphrase_mismatch(Some(true), Some("pw")), None);
        assert!(
            passphrase_mismatch(Some(true), None)
                .unwrap()
                .contains("no store_passphrase is set")
        );
        assert!(
            passphrase_mismatch(Some(false), Some("pw"))
                .unwrap()
                .starts_with("it was made without store_passphrase")
        );
    }
}
