//! The Confluent Schema Registry wire frame: `0x00`, a 4-byte big-endian schema id, the Avro body.
//!
//! Must not know any schema: it only splits and joins frames.
