//! avro-edge: schema-checked Avro records from small gateways straight to Kafka, in pure Rust.
//!
//! Data flows one way:
//! `input → codec → spool → producer → Kafka` and `consumer → codec → output`.
//! The modules follow it (all private; what a user needs is re-exported here):
//!
//! | module | job |
//! | --- | --- |
//! | `schema` | parse `.avsc`, canonical form, compatibility checks |
//! | `codec` | Avro binary ⇄ natural JSON / typed Rust values, through a plan compiled once per schema |
//! | `wire` | the Confluent frame: `0x00` + big-endian schema id + Avro body |
//! | [`records`] | typed Rust records for the seed schemas |
//! | `registry` | Schema Registry client, offline schema cache, test registry (feature `registry-server`) |
//! | `spool` | crash-safe disk spool between the codec and the producer |
//! | `kafka` | the Kafka client over `kafka-protocol`, driven by smol, behind a blocking API: connections, metadata, the producer, the group consumer, the record-batch format; bytes only, no Avro |
//! | `avro_io` | Avro records over Kafka, above both `kafka` and `codec`: typed sends ([`SendAvro`]) and decoding polls ([`PollAvro`]) |
//! | [`dedupe`] | the forwarder's `avro-edge-gateway` / `avro-edge-seq` record headers, and [`dedupe::Dedupe`], which drops repeats by them on the consumer's side |
//! | `config`, `forward` | the edge forwarder: configuration, inputs, dead-letter file, metrics ([`forwarder`]) |
//!
//! The `avro-edge` command line lives in the binary (`src/main.rs`, `src/cli/`), on top of this public API.
//!
//! # Encode a record
//!
//! ```
//! use std::sync::Arc;
//! use avro_edge::{Codec, OfflineCache};
//! use avro_edge::records::{SensorData, SensorStatus};
//!
//! # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/schema-cache");
//! // Schemas from an offline cache (a registry URL works the same way, see `open_source`).
//! let codec = Codec::new(Arc::new(OfflineCache::new(dir)));
//! let reading = SensorData {
//!     sensor_id: "s-1".into(),
//!     timestamp: 1_700_000_000_000,
//!     temperature: Some(21.5),
//!     humidity: None,
//!     status: SensorStatus::Normal,
//! };
//! let bytes = codec.encode("sensor-data-value", &reading)?; // 0x00, schema id, Avro body
//! let back: SensorData = codec.decode(&bytes)?;
//! assert_eq!(back, reading);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Produce
//!
//! ```no_run
//! use std::time::Duration;
//! use avro_edge::{Acks, Producer, ProducerConfig, SendAvro};
//!
//! # let (codec, reading): (avro_edge::Codec, avro_edge::records::SensorData) = unimplemented!();
//! let mut cfg = ProducerConfig::new(["127.0.0.1:9092"]);
//! cfg.acks = Acks::All;
//! let producer = Producer::new(cfg)?;
//! let delivery = producer.send("sensor-data", Some(b"s-1"), b"\x00\x00\x00\x00\x01...")?;
//! println!("stored at partition {} offset {:?}", delivery.partition, delivery.offset);
//! // A typed record, encoded first with the topic's value subject (`sensor-data-value`):
//! producer.send_record("sensor-data", Some(b"s-1"), &reading, &codec)?;
//! producer.flush(Duration::from_secs(10))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Consume
//!
//! ```no_run
//! use std::time::Duration;
//! use avro_edge::{Consumer, ConsumerConfig, Item, OffsetReset, PollAvro};
//!
//! # let codec: avro_edge::Codec = unimplemented!();
//! let mut cfg = ConsumerConfig::group("127.0.0.1:9092", "my-group", &["sensor-data"]);
//! cfg.auto_offset_reset = OffsetReset::Earliest; // a new group reads from the beginning
//! let mut consumer = Consumer::connect(cfg)?;
//! for item in consumer.poll_items(Duration::from_secs(1), &codec)? {
//!     match item {
//!         Item::Record { value, partition, offset, .. } => println!("{partition}@{offset}: {value}"),
//!         Item::Undecodable { error_kind, offset, .. } => eprintln!("{offset}: {error_kind}"),
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Run a forwarder
//!
//! ```no_run
//! use avro_edge::forwarder::{self, Config};
//!
//! let cfg = Config::load(Some("forwarder.toml".as_ref()), std::env::vars(), &[])?;
//! let stop = forwarder::stop_on_signals()?; // SIGINT/SIGTERM: drain, then return
//! // The codec over the configured registry/cache, the producer, the spool; stdin is the `stdin` input.
//! let stdin = Box::new(std::io::BufReader::new(std::io::stdin()));
//! let totals = forwarder::run_configured(&cfg, stdin, stop)?;
//! println!("acknowledged {}", totals.acked);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod avro_io;
mod clock;
mod codec;
mod config;
pub mod dedupe;
mod error;
mod forward;
mod kafka;
pub mod records;
mod registry;
mod schema;
mod short_copy;
mod spool;
mod wire;

// Errors: one trait for the stable kind names, one enum per layer.
pub use error::{ErrorKind, Kind, UnknownKind};

// Schemas, the codec and the Confluent wire frame.
pub use codec::{
    AvroField, AvroRecord, Bound, Codec, CodecError, KeyBytes, LineError, Plan, Resolver,
    SubjectWriter, TextDecoder, TypedReader, TypedWriter, parse_record, record_key,
};
pub use schema::{Compatibility, ParsedSchema, SchemaError};
pub use wire::{WireError, frame, unframe};

// The Schema Registry: client, offline cache, naming, and the test registry (feature `registry-server`).
pub use registry::cache::OfflineCache;
pub use registry::schema_files::{avsc_files, subject_for_file};
#[cfg(feature = "registry-server")]
pub use registry::server::TestRegistry;
pub use registry::{
    Auth, ClientOptions, CompatibilityResult, RegistryClient, RegistryError, SchemaSource,
    SubjectNameStrategy, SubjectSchema, WriterMode, client_options, open_source,
};

// The crash-safe spool.
pub use spool::{
    FsyncPolicy, RecoveryReport, Spool, SpoolError, SpoolFull, SpoolOptions, SpoolRecord,
    SpoolStatus, WhenFull,
};

// Kafka: the producer, the group consumer, and what they share.
pub use kafka::consumer::{
    Assignor, BatchError, Consumer, ConsumerConfig, IsolationLevel, OffsetReset, RawRecord,
};
pub use kafka::group::GroupError;
pub use kafka::producer::{
    Acks, Compression, Delivery, DeliveryHandle, OutRecord, Partitioner, Producer, ProducerConfig,
    ProducerStats, RetryNote,
};
pub use kafka::quirks::BrokerQuirks;
pub use kafka::record::partition_for_key;
#[cfg(feature = "tls")]
pub use kafka::tls::TlsConfig;
pub use kafka::{KafkaError, Mechanism as SaslMechanism, RefusedTimestamp, SaslConfig, TopicSpec};

// Avro records over Kafka: typed sends on the producer, decoding polls on the consumer.
pub use avro_io::{Item, PollAvro, RecordError, SendAvro, decode_records};

/// The edge forwarder: configuration (file, `AVRO_EDGE_*` environment, flags), the pipeline
/// `input → codec → spool → producer → Kafka`, its metrics, and the traits it is built on.
pub mod forwarder {
    pub use crate::config::{
        Command, Config, ConfigError, ConsumerSettings, DefaultValue, ForwardSettings, InputConfig,
        InputKind, KafkaSettings, MetricsSettings, ProducerSettings, RegistrySettings, SETTINGS,
        Sasl, Secret, SecurityProtocol, Setting, StartAt, ValueType, env_name, kafka_settings,
        parse_property, parse_set, parse_size, resolve_key, setting,
    };
    pub use crate::forward::dead_letter::rfc3339_ms;
    pub use crate::forward::metrics::LastError;
    pub use crate::forward::plug::run_configured;
    pub use crate::forward::{
        ForwardError, LazySink, RecordEncoder, RecordSink, Snapshot, StopFlag, Transactions, run,
        stop_on_signals,
    };
}

/// Not part of the API: what the `avro_record!`/`avro_enum!` macros expand to.
#[doc(hidden)]
pub mod __macro_support {
    pub use crate::codec::typed::{read_enum, write_enum};
    pub use crate::codec::{AvroField, CodecError, Shape, Slot, Walk};
}

/// Not part of the API: internals the project's own tests and benchmarks reach into (the raw
/// client, the spool's frame format). Only with the `_test` feature, which only avro-edge-testkit
/// turns on.
#[cfg(feature = "_test")]
#[doc(hidden)]
pub mod __test {
    pub use crate::kafka::client::TopicMeta;
    pub use crate::kafka::conn::decode_response;
    pub use crate::kafka::group::{decode_assignment, decode_subscription};
    pub use crate::kafka::record::{BatchBuilder, Compression as RecordCompression};
    pub use crate::kafka::{Client, ClientConfig, ConnConfig, Target, block_on};
    pub use crate::spool::{cursor, frame};

    /// The consumer's reader of one Fetch partition's `records` bytes (every batch from offset 0,
    /// decompressed size capped at `limit`): how many records it read, and the first batch error.
    pub fn decode_fetched_records(
        data: &bytes::Bytes,
        limit: usize,
    ) -> (usize, Option<crate::BatchError>) {
        let f = crate::kafka::record::decode_fetched("t", 0, data, 0, limit, None);
        (f.records.len(), f.error)
    }
}
