//! The contract between the web site's `/media/<id>` and the drivers that can fetch the files
//! their networks share: the web site serves them without knowing which driver it asks.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;

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

/// A file's bytes as the network sends them, chunk by chunk.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, MediaError>> + Send>>;

/// A file being fetched from its network: nothing of the body is read yet.
pub struct Download {
    /// The body. The source has refused a file whose announced length is over the cap, but
    /// an announced length can be missing or wrong: whoever reads the body counts it.
    pub body: ByteStream,
    /// The content type the network gave.
    pub content_type: Option<String>,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

/// Fetches a network's files by URI with the bot's own login.
pub trait FileSource: Clone + Send + Sync + 'static {
    /// Starts downloading `uri`; refuses at once a file announced as larger than `max` bytes.
    fn download(
        &self,
        uri: &str,
        max: u64,
    ) -> impl Future<Output = Result<Download, MediaError>> + Send;
}
