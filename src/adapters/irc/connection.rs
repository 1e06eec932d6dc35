//! The transport: TCP or TLS, and reading and writing lines.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::config::IrcConfig;

/// Opens the connection, through TLS when configured.
pub(super) async fn connect(cfg: &IrcConfig) -> std::io::Result<(Reader, Writer)> {
    let addr = (cfg.host.as_str(), cfg.port);
    let tcp = tokio::time::timeout(Duration::from_secs(30), TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    tcp.set_nodelay(true)?;
    if !cfg.tls {
        let (r, w) = tokio::io::split(tcp);
        return Ok((BufReader::new(Box::new(r)), Box::new(w)));
    }
    let tls = tls_connector(cfg)?;
    let name = rustls::pki_types::ServerName::try_from(cfg.host.clone())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let stream = tokio::time::timeout(Duration::from_secs(30), tls.connect(name, tcp))
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
        })??;
    let (r, w) = tokio::io::split(stream);
    Ok((BufReader::new(Box::new(r)), Box::new(w)))
}

pub(super) type Reader = BufReader<Box<dyn AsyncRead + Unpin + Send>>;

pub(super) type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// Longest server line accepted (IRCv3 tags may take 8191 bytes, the rest 512).
const MAX_LINE: u64 = 8191 + 512;

pub(super) async fn write_line(w: &mut Writer, line: &str) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(line.len() + 2);
    bytes.extend_from_slice(line.as_bytes());
    bytes.extend_from_slice(b"\r\n");
    w.write_all(&bytes).await?;
    w.flush().await
}

/// Reads one line (without CR LF), replacing invalid UTF-8; `None` at end of stream.
pub(super) async fn read_line(
    r: &mut Reader,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<String>> {
    loop {
        buf.clear();
        let n = (&mut *r).take(MAX_LINE).read_until(b'\n', buf).await?;
        if n == 0 {
            return Ok(None);
        }
        if buf.last() != Some(&b'\n') && n as u64 == MAX_LINE {
            // An overlong line: skip the rest of it.
            let mut rest = Vec::new();
            r.read_until(b'\n', &mut rest).await?;
            tracing::debug!("overlong server line skipped");
            continue;
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        if buf.is_empty() {
            continue;
        }
        return Ok(Some(String::from_utf8_lossy(buf).into_owned()));
    }
}

fn tls_connector(cfg: &IrcConfig) -> std::io::Result<tokio_rustls::TlsConnector> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(ca) = &cfg.ca_file {
        for cert in CertificateDer::pem_file_iter(ca)
            .map_err(|e| invalid(format!("ca_file {}: {e}", ca.display())))?
        {
            let cert = cert.map_err(|e| invalid(format!("ca_file {}: {e}", ca.display())))?;
            roots
                .add(cert)
                .map_err(|e| invalid(format!("ca_file {}: {e}", ca.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_root_certificates(roots);
    let config = match &cfg.client_cert {
        Some(cert_path) => {
            let certs = CertificateDer::pem_file_iter(cert_path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| invalid(format!("client_cert {}: {e}", cert_path.display())))?;
            let key_path = cfg.client_key.as_ref().unwrap_or(cert_path);
            let key = PrivateKeyDer::from_pem_file(key_path)
                .map_err(|e| invalid(format!("client_key {}: {e}", key_path.display())))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| invalid(format!("client certificate: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
