//! The consumer's decoding polls: [`PollAvro`] polls, then turns every record into an [`Item`]
//! through the codec (or any decode function).
//!
//! Must not fail a poll for a value that does not decode: it is an [`Item::Undecodable`] in
//! its place.

use std::time::Duration;

use super::items::{Item, decode_records};
use crate::codec::Codec;
use crate::error::ErrorKind;
use crate::kafka::KafkaError;
use crate::kafka::consumer::Consumer;

/// Decoding polls on a [`Consumer`].
///
/// ```no_run
/// use std::time::Duration;
/// use avro_edge::{Consumer, ConsumerConfig, Item, PollAvro};
///
/// # let codec: avro_edge::Codec = unimplemented!();
/// let mut consumer = Consumer::connect(ConsumerConfig::group("127.0.0.1:9092", "g", &["sensor-data"]))?;
/// for item in consumer.poll_items(Duration::from_secs(1), &codec)? {
///     if let Item::Record { value, .. } = item {
///         println!("{value}");
///     }
/// }
/// # Ok::<(), avro_edge::KafkaError>(())
/// ```
pub trait PollAvro {
    /// [`Consumer::poll`], then `decode`: each record becomes an [`Item`], a value that does not
    /// decode becomes [`Item::Undecodable`] with its coordinates, raw bytes and error kind.
    fn poll_decoded<E, F>(&mut self, timeout: Duration, decode: F) -> Result<Vec<Item>, KafkaError>
    where
        E: ErrorKind,
        F: Fn(&[u8]) -> Result<serde_json::Value, E>;

    /// [`Consumer::poll`] through the codec: Confluent-framed Avro values decoded with their
    /// writer schema (fetched by id from the registry or the offline cache) into natural JSON.
    /// Anything that does not decode is an [`Item::Undecodable`] in its place, never an error
    /// of the poll and never dropped.
    fn poll_items(&mut self, timeout: Duration, codec: &Codec) -> Result<Vec<Item>, KafkaError>;
}

impl PollAvro for Consumer {
    fn poll_decoded<E, F>(&mut self, timeout: Duration, decode: F) -> Result<Vec<Item>, KafkaError>
    where
        E: ErrorKind,
        F: Fn(&[u8]) -> Result<serde_json::Value, E>,
    {
        Ok(decode_records(self.poll(timeout)?, decode))
    }

    fn poll_items(&mut self, timeout: Duration, codec: &Codec) -> Result<Vec<Item>, KafkaError> {
        self.poll_decoded(timeout, |b: &[u8]| codec.decode_json(b))
    }
}
