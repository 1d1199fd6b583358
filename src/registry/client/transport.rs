//! The HTTP transport: one request with retries and jittered exponential backoff across every base
//! URL, headers (accept, content type, auth), bounded answers, and TLS settings.
//!
//! Must not know the registry's endpoints or cache anything; must never log credentials.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

#[cfg(feature = "tls")]
use super::ClientOptions;
use super::response::{error_from_response, truncate};
use super::{ACCEPT, CONTENT_TYPE, RegistryClient};
use crate::registry::{RegistryError, is_retryable_status};

const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// A failed TLS handshake (bad or untrusted certificate): retrying cannot help.
#[cfg(feature = "tls")]
fn is_tls_failure(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => true,
        // rustls' stream reports handshake failures as io::Error wrapping a rustls::Error.
        ureq::Error::Io(io) => io
            .get_ref()
            .is_some_and(|inner| inner.is::<futures_rustls::rustls::Error>()),
        _ => false,
    }
}

/// I/O-level failures worth retrying (and trying the next URL for); anything else is not.
fn is_transient(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::HostNotFound
            | ureq::Error::ConnectionFailed
            | ureq::Error::BodyStalled
            | ureq::Error::Protocol(_)
    )
}

/// ureq's TLS settings: rustls, with the CA file's certificates as the only roots when one is given.
#[cfg(feature = "tls")]
pub(super) fn tls_config(opts: &ClientOptions) -> Result<ureq::tls::TlsConfig, RegistryError> {
    use ureq::tls::{PemItem, RootCerts, TlsConfig, TlsProvider};
    let builder = TlsConfig::builder().provider(TlsProvider::Rustls);
    let Some(path) = &opts.ca_file else {
        return Ok(builder.build());
    };
    let pem = std::fs::read(path)
        .map_err(|e| RegistryError::Config(format!("reading {}: {e}", path.display())))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(RegistryError::Config(format!(
                    "parsing {}: {e}",
                    path.display()
                )));
            }
        }
    }
    if certs.is_empty() {
        return Err(RegistryError::Config(format!(
            "no CA certificate in {}",
            path.display()
        )));
    }
    Ok(builder
        .root_certs(RootCerts::new_with_certs(&certs))
        .build())
}

impl RegistryClient {
    fn next_random(&self) -> u64 {
        // xorshift64: jitter only, not cryptographic.
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        x
    }

    /// The pause before retry round `round` (0-based): half the capped exponential backoff plus
    /// a random part of the other half.
    fn backoff(&self, round: u32) -> Duration {
        let base = self
            .opts
            .backoff_initial
            .saturating_mul(1u32 << round.min(20))
            .min(self.opts.backoff_max);
        let half = base / 2;
        let jitter_ms = self.next_random() % (half.as_millis() as u64 + 1);
        half + Duration::from_millis(jitter_ms)
    }

    /// One request with retries over every base URL. Returns the final `(status, body)` of an
    /// answer that is not worth retrying; errors when none came.
    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String), RegistryError> {
        if self.urls.is_empty() {
            return Err(RegistryError::Unreachable(
                "no registry URL configured (offline cache only)".into(),
            ));
        }
        let body_text = body.map(Value::to_string);
        let mut last: Option<RegistryError> = None;
        for round in 0..=self.opts.retries {
            if round > 0 {
                let pause = self.backoff(round - 1);
                tracing::debug!(
                    round,
                    pause_ms = pause.as_millis() as u64,
                    "registry retry backoff"
                );
                std::thread::sleep(pause);
            }
            for base in &self.urls {
                let url = format!("{base}{path}");
                match self.send_once(method, &url, body_text.as_deref()) {
                    Ok((status, text)) if is_retryable_status(status) => {
                        tracing::warn!(url = %url, status, "registry answered with a retryable status");
                        last = Some(error_from_response(status, &text));
                    }
                    Ok(answer) => return Ok(answer),
                    #[cfg(feature = "tls")]
                    Err(e) if is_tls_failure(&e) => {
                        return Err(RegistryError::Tls(format!("{url}: {e}")));
                    }
                    Err(e) if is_transient(&e) => {
                        tracing::warn!(url = %url, error = %e, "registry request failed");
                        last = Some(RegistryError::Unreachable(format!("{url}: {e}")));
                    }
                    Err(
                        e @ (ureq::Error::BadUri(_)
                        | ureq::Error::Http(_)
                        | ureq::Error::RequireHttpsOnly(_)),
                    ) => {
                        return Err(RegistryError::Config(format!("{url}: {e}")));
                    }
                    Err(e) => return Err(RegistryError::Protocol(format!("{url}: {e}"))),
                }
            }
        }
        Err(last.unwrap_or_else(|| RegistryError::Unreachable("no attempt made".into())))
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        body: Option<&str>,
    ) -> Result<(u16, String), ureq::Error> {
        let auth = self.auth_header.as_deref();
        let mut resp = match (method, body) {
            ("GET", _) | ("DELETE", _) => {
                let rb = if method == "GET" {
                    self.agent.get(url)
                } else {
                    self.agent.delete(url)
                };
                let rb = rb.header("accept", ACCEPT);
                let rb = match auth {
                    Some(a) => rb.header("authorization", a),
                    None => rb,
                };
                rb.call()?
            }
            (_, body) => {
                let rb = if method == "PUT" {
                    self.agent.put(url)
                } else {
                    self.agent.post(url)
                };
                let rb = rb
                    .header("accept", ACCEPT)
                    .header("content-type", CONTENT_TYPE);
                let rb = match auth {
                    Some(a) => rb.header("authorization", a),
                    None => rb,
                };
                rb.send(body.unwrap_or(""))?
            }
        };
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .lossy_utf8(true)
            .read_to_string()?;
        Ok((status, text))
    }

    /// Any registry request (`path` with its query); the JSON answer, or the typed error.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, RegistryError> {
        self.call(method, path, body)
    }

    /// A request whose success answer is JSON; error answers become typed errors.
    pub(super) fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, RegistryError> {
        let (status, text) = self.send(method, path, body)?;
        if !(200..300).contains(&status) {
            return Err(error_from_response(status, &text));
        }
        serde_json::from_str(&text).map_err(|e| {
            RegistryError::Protocol(format!("{method} {path}: {e}: {}", truncate(&text)))
        })
    }
}
