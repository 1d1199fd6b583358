//! Avro records over Kafka: the layer above both [`crate::kafka`], which moves bytes, and
//! [`crate::codec`], which turns records into Confluent-framed Avro bytes and back.
//! [`SendAvro`] (on [`Producer`](crate::kafka::producer::Producer)) encodes a record with its
//! subject's writer schema and sends it; [`PollAvro`] (on
//! [`Consumer`](crate::kafka::consumer::Consumer)) polls and decodes each value with the writer
//! schema its id names, into an [`Item`].
//!
//! Must not reach into the Kafka client: it uses the producer's and consumer's public API only,
//! as a library user could, and neither `kafka/` nor `codec/` imports it. Must not drop a record
//! it cannot decode: it becomes an [`Item::Undecodable`] in its place.

mod items;
mod poll;
mod send;

pub use items::{Item, decode_records};
pub use poll::PollAvro;
pub use send::{RecordError, SendAvro};
