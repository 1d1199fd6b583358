//! TLS for Kafka connections (cargo feature `tls`): rustls with the ring provider over smol sockets,
//! with an optional client certificate (mutual TLS), and the typed refusals the handshake can end in.
//!
//! Only compiled with `--features tls` (ring needs a C compiler; the default build stays pure
//! Rust). Must not disable certificate verification, and must not log or format key material
//! (`TlsConfig` holds file paths only).

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use futures_rustls::rustls;
use futures_rustls::rustls::AlertDescription;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use smol::io::{AsyncRead, ReadHalf};

use super::KafkaError;

/// TLS settings: trust the Mozilla roots (webpki-roots), or only the CA certificates in `ca_file`;
/// present a client certificate when the broker asks for one (`cert_file` + `key_file`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file of CA certificates to trust instead of the Mozilla roots (`ssl.ca.location`).
    pub ca_file: Option<PathBuf>,
    /// Name to verify instead of the host part of the broker address.
    pub server_name: Option<String>,
    /// PEM file of the client certificate, then its chain (`ssl.certificate.location`).
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's unencrypted private key, PKCS#8, PKCS#1 or SEC1
    /// (`ssl.key.location`). Read at connect time; never logged.
    pub key_file: Option<PathBuf>,
}

fn roots(cfg: &TlsConfig) -> Result<rustls::RootCertStore, KafkaError> {
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.ca_file {
        Some(path) => {
            for c in read_certs(path)? {
                roots
                    .add(c)
                    .map_err(|e| KafkaError::Tls(format!("bad CA certificate: {e}")))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(roots)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, KafkaError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| KafkaError::Tls(format!("reading {}: {e}", path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| KafkaError::Tls(format!("parsing {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(KafkaError::Tls(format!(
            "{}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

/// The client certificate chain and key, when both files are given (one without the other is a
/// configuration error).
fn client_identity(
    cfg: &TlsConfig,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, KafkaError> {
    match (&cfg.cert_file, &cfg.key_file) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            // The error names the file only: a key parser's message could quote key bytes.
            let key = PrivateKeyDer::from_pem_file(key).map_err(|_| {
                KafkaError::Tls(format!(
                    "{}: no unencrypted PEM private key in it (PKCS#8, PKCS#1 or SEC1)",
                    key.display()
                ))
            })?;
            Ok(Some((chain, key)))
        }
        (Some(_), None) => Err(KafkaError::Config(
            "ssl.certificate.location is set but ssl.key.location is not".into(),
        )),
        (None, Some(_)) => Err(KafkaError::Config(
            "ssl.key.location is set but ssl.certificate.location is not".into(),
        )),
    }
}

fn client_config(cfg: &TlsConfig) -> Result<rustls::ClientConfig, KafkaError> {
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| KafkaError::Tls(e.to_string()))?
    .with_root_certificates(roots(cfg)?);
    match client_identity(cfg)? {
        None => Ok(builder.with_no_client_auth()),
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| KafkaError::Tls(format!("client certificate and key: {e}"))),
    }
}

/// The name to verify: `server_name`, else the host part of `addr` (`host:port`, `[v6]:port`).
fn server_name(addr: &str, cfg: &TlsConfig) -> Result<ServerName<'static>, KafkaError> {
    let host = match &cfg.server_name {
        Some(n) => n.clone(),
        None => addr
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(addr)
            .trim_matches(['[', ']'])
            .to_string(),
    };
    ServerName::try_from(host).map_err(|e| KafkaError::Tls(format!("server name: {e}")))
}

/// Run the TLS handshake over an open TCP stream to `addr` (`host:port`).
pub async fn connect(
    addr: &str,
    tcp: smol::net::TcpStream,
    cfg: &TlsConfig,
) -> Result<TlsStream<smol::net::TcpStream>, KafkaError> {
    let name = server_name(addr, cfg)?;
    let connector = TlsConnector::from(Arc::new(client_config(cfg)?));
    connector
        .connect(name, tcp)
        .await
        .map_err(|e| handshake_error(addr, cfg, &e))
}

/// The typed error for a failed handshake: our verification of the broker failed
/// (`TlsUntrusted`), the broker refused our certificate or its absence (`TlsClientCert`), or
/// anything else (`Tls`).
fn handshake_error(addr: &str, cfg: &TlsConfig, e: &std::io::Error) -> KafkaError {
    let msg = format!("handshake with {addr}: {e}");
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(_)) => KafkaError::TlsUntrusted(msg),
        Some(rustls::Error::AlertReceived(a)) if refuses_client_cert(*a) => {
            KafkaError::TlsClientCert(msg)
        }
        // TLS 1.2 brokers may answer a missing certificate with a plain handshake failure.
        Some(rustls::Error::AlertReceived(AlertDescription::HandshakeFailure))
            if cfg.cert_file.is_none() =>
        {
            KafkaError::TlsClientCert(msg)
        }
        _ => KafkaError::Tls(msg),
    }
}

/// Alerts a TLS server sends when the client's certificate is missing or not acceptable.
fn refuses_client_cert(a: AlertDescription) -> bool {
    matches!(
        a,
        AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied
    )
}

/// Marks a read error as the broker refusing our client certificate. With TLS 1.3 the client's
/// handshake completes before the server has checked the client certificate, so that refusal
/// arrives as an alert on the first read; [`ClientCertAlerts`] puts this text into the read error,
/// and [`refusal_after_handshake`] turns the resulting disconnect into [`KafkaError::TlsClientCert`].
const CLIENT_CERT_REFUSED: &str = "the broker refused the client certificate: TLS alert";

/// The read half of a TLS stream whose read errors name a client-certificate refusal
/// ([`CLIENT_CERT_REFUSED`]) instead of a bare alert.
pub struct ClientCertAlerts<S>(pub ReadHalf<S>);

impl<S: AsyncRead + Unpin> AsyncRead for ClientCertAlerts<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.0).poll_read(cx, buf) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(mark_client_cert_alert(e))),
            other => other,
        }
    }
}

fn mark_client_cert_alert(e: std::io::Error) -> std::io::Error {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::AlertReceived(a)) if refuses_client_cert(*a) => {
            std::io::Error::new(e.kind(), format!("{CLIENT_CERT_REFUSED} {a:?}"))
        }
        _ => e,
    }
}

/// A connection's first exchange failed: when the cause is the broker refusing our client
/// certificate after the handshake (TLS 1.3), say so with [`KafkaError::TlsClientCert`].
pub fn refusal_after_handshake(e: KafkaError) -> KafkaError {
    match e {
        KafkaError::Disconnected { broker, reason } if reason.contains(CLIENT_CERT_REFUSED) => {
            KafkaError::TlsClientCert(format!("{broker}: {reason}"))
        }
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn rustls_io(e: rustls::Error) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn handshake_errors_are_typed() {
        let cfg = TlsConfig::default();
        let untrusted = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let kind = |e| handshake_error("b:9093", &cfg, &rustls_io(e)).kind();
        assert_eq!(kind(untrusted), "tls-untrusted-broker");
        let required = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
        assert_eq!(kind(required), "tls-client-certificate");
        let failure = rustls::Error::AlertReceived(AlertDescription::HandshakeFailure);
        assert_eq!(kind(failure), "tls-client-certificate");
        let version = rustls::Error::AlertReceived(AlertDescription::ProtocolVersion);
        assert_eq!(kind(version), "tls-error");
    }

    #[test]
    fn a_client_cert_alert_on_first_read_becomes_typed() {
        let e = mark_client_cert_alert(rustls_io(rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired,
        )));
        let gone = KafkaError::Disconnected {
            broker: "b:9093".into(),
            reason: format!("read: {e}"),
        };
        assert_eq!(
            refusal_after_handshake(gone).kind(),
            "tls-client-certificate"
        );
        let other = KafkaError::Disconnected {
            broker: "b:9093".into(),
            reason: "read: early eof".into(),
        };
        assert_eq!(refusal_after_handshake(other).kind(), "disconnected");
    }

    #[test]
    fn a_certificate_without_its_key_is_a_config_error() {
        let cfg = TlsConfig {
            cert_file: Some("client.pem".into()),
            ..TlsConfig::default()
        };
        let err = client_config(&cfg).unwrap_err();
        assert_eq!(err.kind(), "invalid-config", "{err}");
    }
}
