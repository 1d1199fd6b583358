//! Crash-safe disk spool: encoded records wait here until the broker acknowledged them.
//!
//! Must not know Kafka or Avro: it stores framed bytes with keys, in order.
