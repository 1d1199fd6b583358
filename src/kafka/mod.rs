//! A thin Kafka client over `kafka-protocol`: connections, metadata, SASL, driven by smol.
//!
//! Must not know Avro: it moves bytes. No tokio.
pub mod group;
