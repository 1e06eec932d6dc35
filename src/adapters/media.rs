//! The contract between the web site's `/media/<id>` and the drivers that can fetch the files
//! their networks share: the web site serves them without knowing which driver it asks.

use std::future::Future;

/// Why a file could not be fetched from its network.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("not logged in to the homeserver yet")]
    NotLoggedIn,
    #[error("not an mxc:// URI: {0:?}")]
    BadUri(String),
    #[error("download failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the homeserver answered {0}")]
    Status(reqwest::StatusCode),
    #[error("larger than {max} bytes")]
    TooLarge { max: u64 },
}

/// A file fetched from its network.
#[derive(Debug)]
pub struct Download {
    pub bytes: Vec<u8>,
    /// The content type the network gave.
    pub content_type: Option<String>,
}

/// Fetches a network's files by URI with the bot's own login.
pub trait FileSource: Clone + Send + Sync + 'static {
    /// Downloads `uri`, at most `max` bytes.
    fn download(
        &self,
        uri: &str,
        max: u64,
    ) -> impl Future<Output = Result<Download, MediaError>> + Send;
}
