//! avro-edge: schema-checked Avro records from small gateways straight to Kafka, in pure Rust.
//!
//! Data flows one way:
//! `input → codec → spool → producer → Kafka` and `consumer → codec → output`.
//!
//! | module | job |
//! | --- | --- |
//! | [`schema`] | parse `.avsc`, canonical form, compatibility checks |
//! | [`codec`] | Avro binary ⇄ natural JSON / typed Rust values, through a plan compiled once per schema |
//! | [`wire`] | the Confluent frame: `0x00` + big-endian schema id + Avro body |
//! | [`records`] | typed Rust records for the seed schemas |
//! | [`registry`] | Schema Registry client, offline schema cache, test registry |
//! | [`kafka`] | a thin Kafka client over `kafka-protocol`, driven by smol, behind a blocking API |
//! | [`producer`] / [`consumer`] | the user-facing producer and group consumer |
//! | [`spool`] | crash-safe disk spool between the codec and the producer |
//! | [`config`] | forwarder configuration (file, env, flags) |
//! | [`forward`] | the edge forwarder: inputs, dead-letter file, metrics |
//! | [`cli`] | the `avro-edge` command line |
pub mod cli;
pub mod codec;
pub mod config;
pub mod consumer;
pub mod error;
pub mod forward;
pub mod kafka;
pub mod producer;
pub mod records;
pub mod registry;
pub mod schema;
pub mod spool;
pub mod testkit;
pub mod testkit_kafka;
pub mod wire;
