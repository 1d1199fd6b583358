//! The blocking Kafka producer: acks all/1/0, batching, compression, retries, partitioning.
//!
//! Must not encode Avro itself: typed helpers call [`crate::codec`].
