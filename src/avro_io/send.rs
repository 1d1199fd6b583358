//! The producer's typed sends: [`SendAvro`] encodes a record (any `Serialize` value, or natural
//! JSON) with its subject's latest writer schema, then sends the framed bytes; [`RecordError`]
//! says which of the two failed.
//!
//! Must not send anything that did not encode: a record the codec refuses never reaches the
//! producer.

use crate::codec::Codec;
use crate::kafka::KafkaError;
use crate::kafka::producer::{Delivery, Producer};
use crate::registry::SubjectNameStrategy;

/// Why a typed send failed: the record did not encode, or Kafka did not take it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The topic's subject or its writer schema could not be looked up.
    #[error(transparent)]
    Subject(#[from] crate::registry::RegistryError),
    /// The record does not encode with the subject's writer schema.
    #[error(transparent)]
    Codec(#[from] crate::codec::CodecError),
    /// The producer did not take or deliver the record.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
}

impl crate::error::ErrorKind for RecordError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            RecordError::Subject(e) => e.kind(),
            RecordError::Codec(e) => e.kind(),
            RecordError::Kafka(e) => e.kind(),
        }
    }
}

/// Typed sends on a [`Producer`]: encode with `codec` (Confluent wire format), send, wait for
/// the acknowledgement.
///
/// ```no_run
/// use std::sync::Arc;
/// use avro_edge::{Codec, OfflineCache, Producer, ProducerConfig, SendAvro};
/// use avro_edge::records::{SensorData, SensorStatus};
///
/// let codec = Codec::new(Arc::new(OfflineCache::new("schema-cache")));
/// let producer = Producer::connect(ProducerConfig::new(["127.0.0.1:9092"]))?;
/// let reading = SensorData {
///     sensor_id: "s-1".into(),
///     timestamp: 1_700_000_000_000,
///     temperature: Some(21.5),
///     humidity: None,
///     status: SensorStatus::Normal,
/// };
/// // Subject `sensor-data-value` (TopicNameStrategy), key `s-1`.
/// producer.send_record("sensor-data", Some(b"s-1"), &reading, &codec)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait SendAvro {
    /// Encode `record` (any `Serialize` type, e.g. [`crate::records::SensorData`]) in the
    /// Confluent wire format with the latest schema of the topic's value subject
    /// (`TopicNameStrategy`: `<topic>-value`), send it and wait for the ack.
    fn send_record<T: serde::Serialize + ?Sized>(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        record: &T,
        codec: &Codec,
    ) -> Result<Delivery, RecordError> {
        let subject = SubjectNameStrategy::Topic.subject(topic, false, None)?;
        self.send_record_as(&subject, topic, key, record, codec)
    }

    /// [`SendAvro::send_record`] with an explicit subject.
    fn send_record_as<T: serde::Serialize + ?Sized>(
        &self,
        subject: &str,
        topic: &str,
        key: Option<&[u8]>,
        record: &T,
        codec: &Codec,
    ) -> Result<Delivery, RecordError>;

    /// [`SendAvro::send_record_as`] for a natural-JSON record.
    fn send_json(
        &self,
        subject: &str,
        topic: &str,
        key: Option<&[u8]>,
        record: &serde_json::Value,
        codec: &Codec,
    ) -> Result<Delivery, RecordError>;
}

impl SendAvro for Producer {
    fn send_record_as<T: serde::Serialize + ?Sized>(
        &self,
        subject: &str,
        topic: &str,
        key: Option<&[u8]>,
        record: &T,
        codec: &Codec,
    ) -> Result<Delivery, RecordError> {
        let bytes = codec.encode(subject, record)?;
        Ok(self.send(topic, key, &bytes)?)
    }

    fn send_json(
        &self,
        subject: &str,
        topic: &str,
        key: Option<&[u8]>,
        record: &serde_json::Value,
        codec: &Codec,
    ) -> Result<Delivery, RecordError> {
        let bytes = codec.encode_json(subject, record)?;
        Ok(self.send(topic, key, &bytes)?)
    }
}
