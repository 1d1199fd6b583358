//! Offline: the Avro codec, the Confluent wire frame and the CLI's encode/decode against the fixtures (no broker).
//!
//! One test binary per area (issue 18): each file beside this one was a binary of its own; together
//! they link once.

#[path = "../wire_support/mod.rs"]
mod wire_support;

mod bound;
mod cli;
mod records;
mod roundtrip;
mod wire_fixtures;
