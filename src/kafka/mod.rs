//! A thin Kafka client over `kafka-protocol`: connections, metadata, SASL, driven by smol; the
//! record-batch format ([`record`]); the user-facing [`producer`] and group [`consumer`] on top.
//!
//! Must not know Avro: it moves bytes, and imports neither `codec` nor `registry` (the typed
//! sends and decoding polls are a layer above both, in `avro_io`). No tokio.
//!
//! # Design (read this before using the client from blocking code)
//! - [`conn::Conn`]: one connection to one broker. Requests are written in one write on a
//!   TCP_NODELAY socket; a reader task matches responses by correlation id. Timeouts close the
//!   connection. It never retries.
//! - [`client::Client`]: cheap `Clone` handle on the cluster: one `Conn` per broker address,
//!   reconnect with capped exponential backoff until `connect_deadline`, metadata cache
//!   (refreshed after `metadata_max_age`, or at once after [`Client::invalidate`], which callers
//!   do on NOT_LEADER_OR_FOLLOWER / UNKNOWN_TOPIC_OR_PARTITION), optional CreateTopics.
//!   `client.request(&Target::Node(id), &req)` sends any `kafka_protocol` request at the
//!   highest version both sides support (capped by [`conn::version_cap`], which keeps Produce,
//!   Fetch, Metadata and OffsetCommit/OffsetFetch on versions that name topics, not topic ids).
//!   For version-dependent requests, take `client.conn(&target)`, read `conn.version_for::<R>()`
//!   and call `conn.request_at(&req, v)`.
//! - Blocking facade: all async work runs on smol. Reader tasks are spawned on smol's global
//!   executor (one background thread unless `SMOL_THREADS` says otherwise); sockets and timers
//!   are driven by async-io's reactor. Blocking code calls [`block_on`] (= `smol::block_on`) on
//!   its own thread, e.g. `kafka::block_on(client.request(&Target::Any, &req))`. The producer
//!   runs its sender loop on its own thread with `block_on`. Never call `block_on` from inside
//!   a task running on smol's global executor (it would stall the reader tasks).
//!
//!   ```text
//!   // inside the crate (the raw client is not part of the public API)
//!   use crate::kafka::{self, Client, ClientConfig, Target};
//!   use kafka_protocol::messages::FindCoordinatorRequest;
//!   let client = Client::new(ClientConfig { bootstrap: vec!["127.0.0.1:9092".into()], ..Default::default() })?;
//!   let resp = kafka::block_on(client.request(&Target::Any, &FindCoordinatorRequest::default()))?;
//!   ```
//! - Security: SASL (PLAIN, SCRAM-SHA-256/512: [`sasl`]) and TLS with an optional client
//!   certificate (`tls`, feature `tls`) per connection. When the broker announces a SASL session
//!   lifetime, the connection re-authenticates itself before it runs out (KIP-368, `conn::reauth`).
//!   Refusals (`KafkaError::is_security_rejection`) are never retried.
//! - Errors: [`KafkaError`] (Kafka error codes kept; `is_retriable()`, `needs_metadata_refresh()`).
//! - Brokers that are not Apache Kafka: every workaround for one (tansu) is in [`quirks`], with the
//!   rule that switches it on per connection; none runs on Apache Kafka.
pub mod client;
pub mod conn;
pub mod consumer;
mod coordinator;
mod error;
mod frame;
pub mod group;
pub mod producer;
pub mod quirks;
pub mod record;
pub mod sasl;
mod setting;
#[cfg(feature = "tls")]
pub mod tls;

pub use client::{Client, ClientConfig, Target, TopicSpec};
pub use conn::ConnConfig;
pub use error::{KafkaError, RefusedTimestamp};
pub use sasl::{Mechanism, SaslConfig};

/// Run a future to completion on the calling thread (the blocking facade).
pub fn block_on<T>(fut: impl std::future::Future<Output = T>) -> T {
    smol::block_on(fut)
}
