//! Forwarder configuration: TOML file, `AVRO_EDGE_*` environment, flags, in that order of precedence.
//!
//! Must not start anything: it only reads and validates settings.
