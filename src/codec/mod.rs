//! Avro binary ⇄ natural JSON and typed Rust values, through a plan compiled once per schema.
//!
//! Must not do network or disk I/O: schemas come in through [`crate::registry::SchemaSource`].
