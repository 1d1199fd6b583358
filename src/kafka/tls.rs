//! TLS for Kafka connections (cargo feature `tls`): rustls with the ring provider over smol sockets.
//!
//! Only compiled with `--features tls` (ring needs a C compiler; the default build stays pure
//! Rust). Must not disable certificate verification.

use std::path::PathBuf;
use std::sync::Arc;

use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use futures_rustls::rustls;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use super::KafkaError;

/// TLS settings: trust the Mozilla roots (webpki-roots), or only the CA certificates in `ca_file`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file of CA certificates to trust instead of the Mozilla roots (`ssl.ca.location`).
    pub ca_file: Option<PathBuf>,
    /// Name to verify instead of the host part of the broker address.
    pub server_name: Option<String>,
}

fn client_config(cfg: &TlsConfig) -> Result<rustls::ClientConfig, KafkaError> {
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| KafkaError::Tls(format!("reading {}: {e}", path.display())))?;
            for c in certs {
                let c =
                    c.map_err(|e| KafkaError::Tls(format!("parsing {}: {e}", path.display())))?;
                roots
                    .add(c)
                    .map_err(|e| KafkaError::Tls(format!("bad CA certificate: {e}")))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| KafkaError::Tls(e.to_string()))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// Run the TLS handshake over an open TCP stream to `addr` (`host:port`).
pub async fn connect(
    addr: &str,
    tcp: smol::net::TcpStream,
    cfg: &TlsConfig,
) -> Result<TlsStream<smol::net::TcpStream>, KafkaError> {
    let host = match &cfg.server_name {
        Some(n) => n.clone(),
        None => addr
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(addr)
            .trim_matches(['[', ']'])
            .to_string(),
    };
    let name =
        ServerName::try_from(host).map_err(|e| KafkaError::Tls(format!("server name: {e}")))?;
    let connector = TlsConnector::from(Arc::new(client_config(cfg)?));
    connector
        .connect(name, tcp)
        .await
        .map_err(|e| KafkaError::Tls(format!("handshake with {addr}: {e}")))
}
