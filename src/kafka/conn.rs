//! One connection to one Kafka broker: correlation ids, ApiVersions negotiation, SASL, TLS (frames
//! are read by the `frame` module).
//!
//! Each request goes out in ONE write (length prefix + header + body in one buffer) on a
//! TCP_NODELAY socket; many requests may be in flight; a reader task (on smol's global executor)
//! matches responses to waiters by correlation id and drops responses nobody awaits (answers to
//! acks=0 produce requests, which some brokers send: discarded, never misparsed). A request that
//! times out closes the connection (like the Java client), failing every other waiter with
//! `Disconnected`. This module must not retry or reconnect: that is `client`'s job.
//!
//! The ApiVersions answer also says which broker workarounds apply on the connection
//! ([`Conn::quirks`]; the rule and every workaround are in [`super::quirks`]). An answer to a
//! correlation id this connection never sent is a broken broker: `protocol-error` for every
//! waiter, and the connection closes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use smol::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::KafkaError;
use super::frame::{self, Stop};
use super::quirks::{BrokerQuirks, Quirks};
use super::sasl::SaslConfig;

mod reauth;

/// Settings for one connection.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    /// Client id in every request header (`client.id`, default `avro-edge`).
    pub client_id: String,
    /// Bound on one TCP connect plus handshakes (default 5 s; librdkafka's `socket.connection.setup.timeout.ms`).
    pub connect_timeout: Duration,
    /// Bound on one request's response (`request.timeout.ms`, default 30 s).
    pub request_timeout: Duration,
    /// Largest response frame accepted (hostile or broken brokers cannot make us allocate more).
    pub max_frame_bytes: usize,
    /// SASL authentication after connecting; `None`: none.
    pub sasl: Option<SaslConfig>,
    /// TLS for the connection; `None`: plain TCP.
    #[cfg(feature = "tls")]
    pub tls: Option<super::tls::TlsConfig>,
    /// Which broker workarounds the connection may use (`kafka::quirks`; default `Auto`).
    pub broker_quirks: BrokerQuirks,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            client_id: "avro-edge".into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_frame_bytes: 100 * 1024 * 1024,
            sasl: None,
            #[cfg(feature = "tls")]
            tls: None,
            broker_quirks: BrokerQuirks::Auto,
        }
    }
}

type Waiter = smol::channel::Sender<Result<Bytes, KafkaError>>;

struct Shared {
    addr: String,
    pending: Mutex<HashMap<i32, Waiter>>,
    closed: AtomicBool,
    /// The next correlation id to use: the reader tells ids we sent from ids we never did.
    next_corr: AtomicI32,
}

impl Shared {
    fn fail_all(&self, reason: &str) {
        self.fail_all_with(KafkaError::Disconnected {
            broker: self.addr.clone(),
            reason: reason.into(),
        });
    }

    fn fail_all_with(&self, err: KafkaError) {
        self.closed.store(true, Ordering::SeqCst);
        let waiters: Vec<Waiter> = match self.pending.lock() {
            Ok(mut p) => p.drain().map(|(_, w)| w).collect(),
            Err(_) => Vec::new(),
        };
        for w in waiters {
            let _ = w.try_send(Err(err.clone()));
        }
    }

    /// Whether `corr` is an id this connection sent (ids count up from 1 and wrap to 0).
    fn was_sent(&self, corr: i32) -> bool {
        let next = self.next_corr.load(Ordering::Relaxed);
        corr >= 0 && (next <= 0 || corr < next)
    }
}

type Writer = Box<dyn AsyncWrite + Send + Unpin>;
type Reader = Box<dyn AsyncRead + Send + Unpin>;

/// An open, negotiated (and authenticated) connection to one broker.
pub struct Conn {
    shared: Arc<Shared>,
    tcp: smol::net::TcpStream,
    writer: smol::lock::Mutex<Writer>,
    /// Broker-supported version range per API key.
    versions: HashMap<i16, (i16, i16)>,
    client_id: StrBytes,
    request_timeout: Duration,
    /// The broker workarounds in force (none for Apache Kafka).
    quirks: Quirks,
    /// SASL settings and the session's re-authentication deadline (`reauth`).
    auth: reauth::AuthState,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("addr", &self.shared.addr)
            .finish()
    }
}

/// A connection's first exchange failed: with TLS, a refused client certificate gets its own kind.
#[cfg(feature = "tls")]
use super::tls::refusal_after_handshake as first_exchange_error;
#[cfg(not(feature = "tls"))]
fn first_exchange_error(e: KafkaError) -> KafkaError {
    e
}

/// Highest version we choose to speak per API key, below kafka-protocol's maximum: newer
/// Produce/Fetch versions (13+) identify topics by id only, which we do not track.
pub fn version_cap(api_key: i16) -> i16 {
    match api_key {
        0 => 12, // Produce
        1 => 12, // Fetch
        3 => 12, // Metadata
        8 => 9,  // OffsetCommit (v10 uses topic ids)
        9 => 9,  // OffsetFetch (v10 uses topic ids)
        _ => i16::MAX,
    }
}

impl Conn {
    /// Connect, negotiate API versions and authenticate. Bounded by `connect_timeout` (TCP)
    /// and `request_timeout` (each handshake request).
    pub async fn connect(addr: &str, cfg: &ConnConfig) -> Result<Conn, KafkaError> {
        let unreachable = |reason: String| KafkaError::BrokerUnreachable {
            broker: addr.to_string(),
            reason,
        };
        let tcp = with_timeout(cfg.connect_timeout, smol::net::TcpStream::connect(addr))
            .await
            .ok_or_else(|| {
                unreachable(format!("connect timed out after {:?}", cfg.connect_timeout))
            })?
            .map_err(|e| unreachable(e.to_string()))?;
        tcp.set_nodelay(true)
            .map_err(|e| unreachable(format!("TCP_NODELAY: {e}")))?;
        let (reader, writer): (Reader, Writer) = Self::wrap(addr, tcp.clone(), cfg).await?;
        let shared = Arc::new(Shared {
            addr: addr.to_string(),
            pending: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            next_corr: AtomicI32::new(1),
        });
        smol::spawn(read_loop(reader, shared.clone(), cfg.max_frame_bytes)).detach();
        let mut conn = Conn {
            shared,
            tcp,
            writer: smol::lock::Mutex::new(writer),
            versions: HashMap::new(),
            client_id: StrBytes::from_string(cfg.client_id.clone()),
            request_timeout: cfg.request_timeout,
            quirks: Quirks::default(),
            auth: reauth::AuthState::new(cfg.sasl.clone()),
        };
        conn.negotiate(cfg.broker_quirks)
            .await
            .map_err(first_exchange_error)?;
        conn.authenticate().await?;
        tracing::debug!(broker = addr, apis = conn.versions.len(), "connected");
        Ok(conn)
    }

    #[cfg(not(feature = "tls"))]
    async fn wrap(
        _addr: &str,
        tcp: smol::net::TcpStream,
        _cfg: &ConnConfig,
    ) -> Result<(Reader, Writer), KafkaError> {
        Ok((Box::new(tcp.clone()), Box::new(tcp)))
    }

    #[cfg(feature = "tls")]
    async fn wrap(
        addr: &str,
        tcp: smol::net::TcpStream,
        cfg: &ConnConfig,
    ) -> Result<(Reader, Writer), KafkaError> {
        match &cfg.tls {
            None => Ok((Box::new(tcp.clone()), Box::new(tcp))),
            Some(tls) => {
                let stream = super::tls::connect(addr, tcp, tls).await?;
                let (r, w) = smol::io::split(stream);
                Ok((Box::new(super::tls::ClientCertAlerts(r)), Box::new(w)))
            }
        }
    }

    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// False once the connection has failed or been closed, or its SASL session ran out unused;
    /// the client then reconnects.
    pub fn is_alive(&self) -> bool {
        !self.shared.closed.load(Ordering::SeqCst) && !self.auth.expired()
    }

    /// The broker workarounds in force on this connection ([`super::quirks`]).
    pub fn quirks(&self) -> Quirks {
        self.quirks
    }

    /// The broker's supported version range for an API key.
    pub fn broker_versions(&self, api_key: i16) -> Option<(i16, i16)> {
        self.versions.get(&api_key).copied()
    }

    /// The highest version of `R` both sides support (capped by [`version_cap`]).
    pub fn version_for<R: Request>(&self) -> Result<i16, KafkaError> {
        let (bmin, bmax) =
            self.broker_versions(R::KEY)
                .ok_or_else(|| KafkaError::UnsupportedVersion {
                    api_key: R::KEY,
                    broker: self.addr().to_string(),
                })?;
        let max = bmax.min(R::VERSIONS.max).min(version_cap(R::KEY));
        let min = bmin.max(R::VERSIONS.min);
        if max < min {
            return Err(KafkaError::UnsupportedVersion {
                api_key: R::KEY,
                broker: self.addr().to_string(),
            });
        }
        Ok(max)
    }

    /// Send `req` at the negotiated version and wait for its response.
    pub async fn request<R: Request>(&self, req: &R) -> Result<R::Response, KafkaError> {
        let v = self.version_for::<R>()?;
        self.request_at(req, v).await
    }

    /// Send `req` at an explicit version and wait for its response (bounded by the request timeout).
    pub async fn request_at<R: Request>(
        &self,
        req: &R,
        version: i16,
    ) -> Result<R::Response, KafkaError> {
        self.send_at(req, version).await?.response(self).await
    }

    /// Write `req` at `version` and return once its frame is on the socket, with a handle on the
    /// response. Requests written one after the other on a connection reach the broker in that
    /// order (Kafka answers them in order too): the producer keeps several batches of a partition
    /// in flight this way.
    pub async fn send_at<R: Request>(&self, req: &R, version: i16) -> Result<Sent<R>, KafkaError> {
        self.reauthenticate_if_due().await?;
        let (corr, frame) = self.encode(req, version)?;
        let (tx, rx) = smol::channel::bounded(1);
        self.register(corr, tx)?;
        if let Err(e) = self.write_frame(&frame).await {
            self.unregister(corr);
            return Err(e);
        }
        Ok(Sent {
            corr,
            version,
            rx,
            _req: std::marker::PhantomData,
        })
    }

    /// Send a request that gets no response (Produce with acks=0). Any answer the broker sends
    /// anyway is dropped by the reader because nobody waits for its correlation id.
    pub async fn send_no_response<R: Request>(
        &self,
        req: &R,
        version: i16,
    ) -> Result<(), KafkaError> {
        self.reauthenticate_if_due().await?;
        let (_, frame) = self.encode(req, version)?;
        self.write_frame(&frame).await
    }

    /// Close the socket; every waiter fails with `Disconnected`.
    pub fn close(&self, reason: &str) {
        let _ = self.tcp.shutdown(std::net::Shutdown::Both);
        self.shared.fail_all(reason);
    }

    fn encode<R: Request>(&self, req: &R, version: i16) -> Result<(i32, Vec<u8>), KafkaError> {
        let corr = self.shared.next_corr.fetch_add(1, Ordering::Relaxed) & i32::MAX;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(corr)
            .with_client_id(Some(self.client_id.clone()));
        let hv = R::header_version(version);
        let size = header
            .compute_size(hv)
            .and_then(|h| req.compute_size(version).map(|b| h + b))
            .map_err(|e| {
                KafkaError::Protocol(format!("sizing API key {} v{version}: {e}", R::KEY))
            })?;
        let mut buf = Vec::with_capacity(size + 4);
        buf.extend_from_slice(&(size as i32).to_be_bytes());
        header
            .encode(&mut buf, hv)
            .and_then(|_| req.encode(&mut buf, version))
            .map_err(|e| {
                KafkaError::Protocol(format!("encoding API key {} v{version}: {e}", R::KEY))
            })?;
        Ok((corr, buf))
    }

    fn register(&self, corr: i32, tx: Waiter) -> Result<(), KafkaError> {
        let mut p = self
            .shared
            .pending
            .lock()
            .map_err(|_| KafkaError::Protocol("pending map poisoned".into()))?;
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(KafkaError::Disconnected {
                broker: self.addr().to_string(),
                reason: "connection closed".into(),
            });
        }
        p.insert(corr, tx);
        Ok(())
    }

    fn unregister(&self, corr: i32) {
        if let Ok(mut p) = self.shared.pending.lock() {
            p.remove(&corr);
        }
    }

    async fn write_frame(&self, frame: &[u8]) -> Result<(), KafkaError> {
        if !self.is_alive() {
            return Err(KafkaError::Disconnected {
                broker: self.addr().to_string(),
                reason: "connection closed".into(),
            });
        }
        let mut w = self.writer.lock().await;
        let res = with_timeout(self.request_timeout, async {
            w.write_all(frame).await?;
            w.flush().await
        })
        .await;
        match res {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => {
                self.close("write failed");
                Err(KafkaError::Disconnected {
                    broker: self.addr().to_string(),
                    reason: e.to_string(),
                })
            }
            None => {
                self.close("write timed out");
                Err(KafkaError::Timeout {
                    what: format!("write to {}", self.addr()),
                    after: self.request_timeout,
                })
            }
        }
    }

    /// ApiVersions (v3, else v0): the broker's version ranges, and the workarounds `setting`
    /// allows for it (the v3 answer's bytes identify the broker, see [`Quirks::detect`]).
    async fn negotiate(&mut self, setting: BrokerQuirks) -> Result<(), KafkaError> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("avro-edge"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let v3 = async {
            let frame = self.send_at(&req, 3).await?.frame(self).await?;
            let resp = decode_response::<ApiVersionsRequest>(frame.clone(), 3)?;
            Ok::<_, KafkaError>((resp, frame))
        };
        let resp: ApiVersionsResponse = match v3.await {
            Ok((r, frame)) if r.error_code == 0 => {
                self.quirks = Quirks::detect(setting, Some((&r, &frame)));
                r
            }
            // UNSUPPORTED_VERSION (35) or an undecodable v3 answer: fall back to v0.
            Ok(_) | Err(KafkaError::Protocol(_)) => {
                self.quirks = Quirks::detect(setting, None);
                self.request_at(&ApiVersionsRequest::default(), 0).await?
            }
            Err(e) => return Err(e),
        };
        if let Some(e) =
            KafkaError::from_code(resp.error_code, format!("ApiVersions from {}", self.addr()))
        {
            return Err(e);
        }
        self.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }
}

/// A request whose frame was written: [`Sent::response`] waits for its answer.
pub struct Sent<R> {
    corr: i32,
    version: i16,
    rx: smol::channel::Receiver<Result<Bytes, KafkaError>>,
    _req: std::marker::PhantomData<fn() -> R>,
}

impl<R: Request> Sent<R> {
    /// Wait for the answer, bounded by the request timeout (counted from now); a timeout closes
    /// `conn` (the one it was sent on), failing its other waiters.
    pub async fn response(self, conn: &Conn) -> Result<R::Response, KafkaError> {
        let version = self.version;
        decode_response::<R>(self.frame(conn).await?, version)
    }

    /// [`Sent::response`] undecoded: the whole response frame, correlation id first.
    async fn frame(self, conn: &Conn) -> Result<Bytes, KafkaError> {
        match with_timeout(conn.request_timeout, self.rx.recv()).await {
            None => {
                conn.unregister(self.corr);
                conn.close("request timed out");
                Err(KafkaError::Timeout {
                    what: format!("API key {} request to {}", R::KEY, conn.addr()),
                    after: conn.request_timeout,
                })
            }
            Some(Err(_)) => Err(KafkaError::Disconnected {
                broker: conn.addr().to_string(),
                reason: "reader stopped".into(),
            }),
            Some(Ok(r)) => r,
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.close("connection dropped");
    }
}

/// Decode one response frame (response header, then the body) to `R`'s answer at `version`.
pub fn decode_response<R: Request>(body: Bytes, version: i16) -> Result<R::Response, KafkaError> {
    let mut buf = body;
    let hv = <R::Response as HeaderVersion>::header_version(version);
    ResponseHeader::decode(&mut buf, hv)
        .and_then(|_| R::Response::decode(&mut buf, version))
        .map_err(|e| {
            KafkaError::Protocol(format!(
                "decoding response to API key {} v{version}: {e}",
                R::KEY
            ))
        })
}

async fn read_loop(mut reader: Reader, shared: Arc<Shared>, max_frame: usize) {
    let stop = loop {
        let body = match frame::read_frame(&mut reader, max_frame).await {
            Ok(body) => body,
            Err(stop) => break stop,
        };
        let corr = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        let waiter = match shared.pending.lock() {
            Ok(mut p) => p.remove(&corr),
            Err(_) => break Stop::Closed("pending map poisoned".to_string()),
        };
        match waiter {
            Some(w) => {
                let _ = w.try_send(Ok(Bytes::from(body)));
            }
            None if shared.was_sent(corr) => {
                tracing::trace!(broker = %shared.addr, correlation_id = corr, "dropping unawaited response")
            }
            None => {
                break Stop::Broken(format!(
                    "response with correlation id {corr}, which was never sent"
                ));
            }
        }
    };
    let err = match stop {
        Stop::Closed(reason) => KafkaError::Disconnected {
            broker: shared.addr.clone(),
            reason,
        },
        Stop::Broken(reason) => KafkaError::Protocol(format!("broker {}: {reason}", shared.addr)),
    };
    if !shared.closed.load(Ordering::SeqCst) {
        tracing::debug!(broker = %shared.addr, error = %err, "connection closed");
    }
    shared.fail_all_with(err);
}

/// Run `fut` for at most `d`; `None` on timeout.
pub async fn with_timeout<T>(d: Duration, fut: impl std::future::Future<Output = T>) -> Option<T> {
    smol::future::or(async { Some(fut.await) }, async {
        smol::Timer::after(d).await;
        None
    })
    .await
}

#[cfg(test)]
mod tests {
    //! A scripted fake broker on a loopback socket: checks correlation matching, unawaited
    //! responses, timeouts and hostile frame lengths without a real broker.
    use super::*;
    use crate::error::ErrorKind;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    fn read_frame(s: &mut impl Read) -> Option<(i16, i16, i32)> {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        s.read_exact(&mut body).ok()?;
        let key = i16::from_be_bytes([body[0], body[1]]);
        let ver = i16::from_be_bytes([body[2], body[3]]);
        let corr = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
        Some((key, ver, corr))
    }

    fn frame<M: Encodable>(corr: i32, header_version: i16, msg: &M, version: i16) -> Vec<u8> {
        let mut body = Vec::new();
        ResponseHeader::default()
            .with_correlation_id(corr)
            .encode(&mut body, header_version)
            .unwrap();
        msg.encode(&mut body, version).unwrap();
        let mut out = (body.len() as i32).to_be_bytes().to_vec();
        out.extend(body);
        out
    }

    /// Answer the ApiVersions request every connection starts with.
    fn answer_api_versions(s: &mut (impl Read + Write)) -> Option<()> {
        let (key, ver, corr) = read_frame(s)?;
        assert_eq!(key, 18);
        let resp = ApiVersionsResponse::default().with_api_keys(vec![
            ApiVersion::default()
                .with_api_key(18)
                .with_min_version(0)
                .with_max_version(3),
            ApiVersion::default()
                .with_api_key(3)
                .with_min_version(0)
                .with_max_version(12),
        ]);
        s.write_all(&frame(corr, 0, &resp, ver)).ok()
    }

    /// Accept one connection, answer ApiVersions, then hand the socket to `script`.
    fn fake_broker(script: impl FnOnce(TcpStream) + Send + 'static) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            answer_api_versions(&mut s).unwrap();
            script(s);
        });
        addr
    }

    fn cfg(timeout_ms: u64) -> ConnConfig {
        ConnConfig {
            request_timeout: Duration::from_millis(timeout_ms),
            ..ConnConfig::default()
        }
    }

    #[test]
    fn out_of_order_and_unawaited_responses_are_matched_by_correlation_id() {
        let addr = fake_broker(|mut s| {
            let (_, _, unawaited) = read_frame(&mut s).unwrap();
            let a = read_frame(&mut s).unwrap();
            let b = read_frame(&mut s).unwrap();
            // An answer to a request sent with no response expected (as some brokers answer
            // acks=0 produce requests), then the two answers in reverse order; throttle = corr id.
            let stray = MetadataResponse::default().with_throttle_time_ms(-7);
            s.write_all(&frame(unawaited, 1, &stray, 12)).unwrap();
            for (_, v, corr) in [b, a] {
                let r = MetadataResponse::default().with_throttle_time_ms(corr);
                s.write_all(&frame(corr, 1, &r, v)).unwrap();
            }
            std::thread::sleep(Duration::from_millis(200));
        });
        smol::block_on(async {
            let c = Conn::connect(&addr, &cfg(5000)).await.unwrap();
            assert_eq!(c.version_for::<MetadataRequest>().unwrap(), 12);
            let req = MetadataRequest::default();
            c.send_no_response(&req, 12).await.unwrap();
            let (r1, r2) = smol::future::zip(c.request(&req), c.request(&req)).await;
            let (r1, r2) = (r1.unwrap(), r2.unwrap());
            // Each waiter got the answer carrying its own correlation id (3 and 4; 1 was
            // ApiVersions, 2 the request sent with no response expected).
            let mut got = [r1.throttle_time_ms, r2.throttle_time_ms];
            got.sort();
            assert_eq!(got, [3, 4]);
            assert!(c.is_alive());
        });
    }

    /// `send_at` returns once the frame is written: two in a row reach the broker in order, and
    /// each handle gets its own answer (a broker that sees them out of order never answers).
    #[test]
    fn requests_sent_one_after_the_other_are_written_in_order() {
        let addr = fake_broker(|mut s| {
            let (a, b) = (read_frame(&mut s).unwrap(), read_frame(&mut s).unwrap());
            assert!(a.2 < b.2, "frames out of order");
            for (_, v, corr) in [a, b] {
                let r = MetadataResponse::default().with_throttle_time_ms(corr);
                s.write_all(&frame(corr, 1, &r, v)).unwrap();
            }
            std::thread::sleep(Duration::from_millis(200));
        });
        smol::block_on(async {
            let c = Conn::connect(&addr, &cfg(2000)).await.unwrap();
            let req = MetadataRequest::default();
            let first = c.send_at(&req, 12).await.unwrap();
            let second = c.send_at(&req, 12).await.unwrap();
            assert_eq!(second.response(&c).await.unwrap().throttle_time_ms, 3);
            assert_eq!(first.response(&c).await.unwrap().throttle_time_ms, 2);
        });
    }

    #[test]
    fn silent_broker_times_out_with_typed_error() {
        let addr = fake_broker(|mut s| {
            let _ = read_frame(&mut s);
            std::thread::sleep(Duration::from_secs(3));
        });
        smol::block_on(async {
            let c = Conn::connect(&addr, &cfg(300)).await.unwrap();
            let t = std::time::Instant::now();
            let err = c.request(&MetadataRequest::default()).await.unwrap_err();
            assert_eq!(err.kind(), "timeout", "{err}");
            assert!(t.elapsed() < Duration::from_secs(2));
            assert!(!c.is_alive(), "a timed-out connection is closed");
        });
    }

    #[test]
    fn hostile_frame_length_is_a_protocol_error_without_allocating() {
        let addr = fake_broker(|mut s| {
            let _ = read_frame(&mut s);
            s.write_all(&i32::MAX.to_be_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(500));
        });
        smol::block_on(async {
            let c = Conn::connect(&addr, &cfg(5000)).await.unwrap();
            let err = c.request(&MetadataRequest::default()).await.unwrap_err();
            assert_eq!(err.kind(), "protocol-error", "{err}");
            assert!(!err.is_retriable() && !c.is_alive(), "{err}");
        });
    }

    #[test]
    fn answer_with_a_correlation_id_never_sent_is_a_protocol_error() {
        let addr = fake_broker(|mut s| {
            let (_, v, corr) = read_frame(&mut s).unwrap();
            let r = MetadataResponse::default();
            s.write_all(&frame(corr + 1000, 1, &r, v)).unwrap();
            std::thread::sleep(Duration::from_secs(3));
        });
        smol::block_on(async {
            let c = Conn::connect(&addr, &cfg(60_000)).await.unwrap();
            let err = c.request(&MetadataRequest::default()).await.unwrap_err();
            assert_eq!(err.kind(), "protocol-error", "{err}");
            assert!(err.to_string().contains("never sent"), "{err}");
            assert!(!c.is_alive());
        });
    }

    /// TLS (feature `tls`): a rustls server with a test CA made by the `openssl` CLI. The
    /// client trusting that CA talks Kafka over TLS; one trusting only the Mozilla roots fails
    /// with `tls-error`. Skipped (with a reason) when `openssl` is missing.
    #[cfg(feature = "tls")]
    #[test]
    fn tls_handshake_with_test_ca_and_rejection_without_it() {
        use futures_rustls::rustls;
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let dir = std::env::temp_dir().join(format!("avro-edge-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        if let Err(e) = avro_edge_testkit::make_test_certs(&dir) {
            eprintln!("SKIP: openssl unavailable for the TLS test: {e}");
            return;
        }
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(dir.join("srv.pem"))
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
        let key = PrivateKeyDer::from_pem_file(dir.join("srv.key")).unwrap();
        let server = std::sync::Arc::new(
            rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
        );
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for _ in 0..2 {
                let Ok((tcp, _)) = l.accept() else { return };
                let conn = rustls::ServerConnection::new(server.clone()).unwrap();
                let mut s = rustls::StreamOwned::new(conn, tcp);
                if answer_api_versions(&mut s).is_none() {
                    continue; // the client that does not trust our CA
                }
                if let Some((_, v, corr)) = read_frame(&mut s) {
                    let r = MetadataResponse::default().with_throttle_time_ms(4242);
                    s.write_all(&frame(corr, 1, &r, v)).unwrap();
                    let _ = s.flush();
                }
            }
        });
        smol::block_on(async {
            let mut bad = cfg(5000);
            bad.tls = Some(super::super::tls::TlsConfig::default());
            let err = Conn::connect(&addr, &bad).await.unwrap_err();
            assert_eq!(err.kind(), "tls-untrusted-broker", "{err}");
            let mut good = cfg(5000);
            good.tls = Some(super::super::tls::TlsConfig {
                ca_file: Some(dir.join("ca.pem")),
                ..Default::default()
            });
            let c = Conn::connect(&addr, &good).await.unwrap();
            let r = c.request(&MetadataRequest::default()).await.unwrap();
            assert_eq!(r.throttle_time_ms, 4242);
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
