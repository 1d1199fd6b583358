//! SASL authentication of one connection: at connect, and again on the same connection before the
//! session the broker granted runs out (KIP-368: SaslAuthenticate v1+ answers `session_lifetime_ms`
//! when the broker sets `connections.max.reauth.ms`).
//!
//! An exchange holds the connection's writer from SaslHandshake to the last SaslAuthenticate, so no
//! other request is written in between (the broker would close the connection); requests already
//! in flight are answered as usual, their responses matched by correlation id. Re-authentication
//! is lazy, as in the Java client: the next request after 85–95 % of the lifetime (jittered, so
//! a fleet does not re-authenticate in step) runs it first. A connection left idle past the whole
//! lifetime is no longer alive ([`super::Conn::is_alive`]): the client opens a new one instead of
//! sending into a session the broker would close.
//!
//! Must not log or format the password, and must not retry: a refused re-authentication closes
//! the connection and returns its typed error.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::{Request, StrBytes};
use smol::io::AsyncWriteExt;

use super::{Conn, Writer, decode_response, with_timeout};
use crate::kafka::KafkaError;
use crate::kafka::sasl::{self, Mechanism, SaslConfig};

/// SaslHandshake error code for a mechanism the listener does not enable.
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;

/// Re-authenticate between these fractions of the session lifetime (the Java client's window).
const REAUTH_WINDOW: (f64, f64) = (0.85, 0.95);

/// One authenticated session's deadlines, on our clock (started before the broker's, so early).
#[derive(Debug, Clone, Copy)]
struct Session {
    reauth_at: Instant,
    expires_at: Instant,
}

/// A connection's SASL settings and its current session (none without SASL, or when the broker
/// announced no lifetime).
#[derive(Debug, Default)]
pub(super) struct AuthState {
    sasl: Option<SaslConfig>,
    session: Mutex<Option<Session>>,
}

impl AuthState {
    pub(super) fn new(sasl: Option<SaslConfig>) -> AuthState {
        AuthState {
            sasl,
            session: Mutex::new(None),
        }
    }

    fn session(&self) -> Option<Session> {
        *self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(&self, started: Instant, lifetime_ms: i64) {
        let session = (lifetime_ms > 0).then(|| {
            let lifetime = Duration::from_millis(lifetime_ms as u64);
            let (lo, hi) = REAUTH_WINDOW;
            Session {
                reauth_at: started + lifetime.mul_f64(lo + (hi - lo) * fastrand::f64()),
                expires_at: started + lifetime,
            }
        });
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = session;
    }

    fn due(&self) -> bool {
        self.session()
            .is_some_and(|s| Instant::now() >= s.reauth_at)
    }

    /// The broker's session has run out: the next request would be refused with a disconnect.
    pub(super) fn expired(&self) -> bool {
        self.session()
            .is_some_and(|s| Instant::now() >= s.expires_at)
    }
}

impl Conn {
    /// Authenticate a new connection (nothing without SASL settings).
    pub(super) async fn authenticate(&self) -> Result<(), KafkaError> {
        let Some(cfg) = &self.auth.sasl else {
            return Ok(());
        };
        let mut w = self.writer.lock().await;
        self.sasl_exchange(&mut w, cfg).await
    }

    /// Re-authenticate first when the session is in its re-authentication window. Called before
    /// every request is written.
    pub(super) async fn reauthenticate_if_due(&self) -> Result<(), KafkaError> {
        let Some(cfg) = &self.auth.sasl else {
            return Ok(());
        };
        if !self.auth.due() {
            return Ok(());
        }
        let mut w = self.writer.lock().await;
        if !self.auth.due() {
            return Ok(()); // another request re-authenticated while we waited
        }
        if self.auth.expired() {
            self.close("SASL session expired");
            return Err(KafkaError::Disconnected {
                broker: self.addr().to_string(),
                reason: "SASL session expired before it could be renewed".into(),
            });
        }
        let res = self.sasl_exchange(&mut w, cfg).await;
        if res.is_err() {
            self.close("re-authentication failed");
        }
        tracing::debug!(broker = self.addr(), ok = res.is_ok(), "re-authenticated");
        res
    }

    /// SaslHandshake, then the mechanism's SaslAuthenticate rounds, with the writer held.
    async fn sasl_exchange(&self, w: &mut Writer, cfg: &SaslConfig) -> Result<(), KafkaError> {
        let started = Instant::now();
        let mechanism = cfg.mechanism.name();
        let hs =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
        let resp = self.request_locked(w, &hs, 1).await?;
        if resp.error_code != 0 {
            let offered: Vec<&str> = resp.mechanisms.iter().map(|m| m.as_str()).collect();
            if resp.error_code == UNSUPPORTED_SASL_MECHANISM {
                return Err(KafkaError::MechanismRefused {
                    broker: self.addr().to_string(),
                    mechanism,
                    offered: offered.join(","),
                });
            }
            return Err(KafkaError::Auth(format!(
                "broker refused {mechanism} with error code {} (offers {offered:?})",
                resp.error_code
            )));
        }
        let lifetime_ms = match cfg.mechanism {
            Mechanism::Plain => self.sasl_round(w, sasl::plain_message(cfg)).await?.1,
            Mechanism::ScramSha256 | Mechanism::ScramSha512 => self.scram(w, cfg).await?,
        };
        self.auth.start(started, lifetime_ms);
        tracing::debug!(
            broker = self.addr(),
            mechanism,
            session_lifetime_ms = lifetime_ms,
            "authenticated"
        );
        Ok(())
    }

    /// The two SCRAM rounds; the session lifetime the last one announced.
    async fn scram(&self, w: &mut Writer, cfg: &SaslConfig) -> Result<i64, KafkaError> {
        let mut scram = sasl::Scram::new(cfg, sasl::client_nonce()?)?;
        // Kafka refuses the client-first message only when it has no credentials for the user.
        let (server_first, _) = self
            .sasl_round(w, scram.client_first().into_bytes())
            .await
            .map_err(|e| match e {
                KafkaError::Auth(message) => KafkaError::UnknownUser {
                    user: cfg.username.clone(),
                    mechanism: cfg.mechanism.name(),
                    message,
                },
                e => e,
            })?;
        let server_first = String::from_utf8(server_first.to_vec())
            .map_err(|_| KafkaError::Auth("SCRAM server-first is not UTF-8".into()))?;
        let client_final = scram.client_final(&server_first)?;
        let (server_final, lifetime_ms) = self.sasl_round(w, client_final.into_bytes()).await?;
        let server_final = String::from_utf8(server_final.to_vec())
            .map_err(|_| KafkaError::Auth("SCRAM server-final is not UTF-8".into()))?;
        scram.verify_server_final(&server_final)?;
        Ok(lifetime_ms)
    }

    /// One SaslAuthenticate round: the broker's bytes and its `session_lifetime_ms` (0 when none).
    async fn sasl_round(
        &self,
        w: &mut Writer,
        auth_bytes: Vec<u8>,
    ) -> Result<(Bytes, i64), KafkaError> {
        let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(auth_bytes));
        let version = self.version_for::<SaslAuthenticateRequest>()?;
        let resp = self.request_locked(w, &req, version).await?;
        if resp.error_code != 0 {
            let msg = resp
                .error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            return Err(KafkaError::Auth(format!(
                "error code {}: {msg}",
                resp.error_code
            )));
        }
        Ok((resp.auth_bytes, resp.session_lifetime_ms))
    }

    /// [`Conn::request_at`] through a writer the caller already holds.
    async fn request_locked<R: Request>(
        &self,
        w: &mut Writer,
        req: &R,
        version: i16,
    ) -> Result<R::Response, KafkaError> {
        let (corr, frame) = self.encode(req, version)?;
        let (tx, rx) = smol::channel::bounded(1);
        self.register(corr, tx)?;
        let written = with_timeout(self.request_timeout, async {
            w.write_all(&frame).await?;
            w.flush().await
        })
        .await;
        let failed = match written {
            Some(Ok(())) => None,
            Some(Err(e)) => Some(("write failed", e.to_string())),
            None => Some(("write timed out", "write timed out".to_string())),
        };
        let got = match failed {
            None => with_timeout(self.request_timeout, rx.recv()).await,
            Some((why, reason)) => {
                self.unregister(corr);
                self.close(why);
                return Err(KafkaError::Disconnected {
                    broker: self.addr().to_string(),
                    reason,
                });
            }
        };
        let body = match got {
            None => {
                self.unregister(corr);
                self.close("request timed out");
                return Err(KafkaError::Timeout {
                    what: format!("API key {} request to {}", R::KEY, self.addr()),
                    after: self.request_timeout,
                });
            }
            Some(Err(_)) => {
                return Err(KafkaError::Disconnected {
                    broker: self.addr().to_string(),
                    reason: "reader stopped".into(),
                });
            }
            Some(Ok(r)) => r?,
        };
        decode_response::<R>(body, version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_renewed_inside_its_window_and_expires_at_its_end() {
        let state = AuthState::new(None);
        assert!(!state.due() && !state.expired(), "no session, nothing due");
        let started = Instant::now();
        state.start(started, 10_000);
        let s = state.session().unwrap();
        let at = s.reauth_at - started;
        assert!(
            at >= Duration::from_millis(8_500) && at <= Duration::from_millis(9_500),
            "{at:?}"
        );
        assert_eq!(s.expires_at - started, Duration::from_secs(10));
        assert!(!state.due() && !state.expired());
        state.start(started - Duration::from_secs(20), 10_000);
        assert!(state.due() && state.expired());
        state.start(started, 0);
        assert!(
            state.session().is_none(),
            "lifetime 0: no re-authentication"
        );
    }
}
