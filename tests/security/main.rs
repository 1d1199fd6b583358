//! SASL and TLS on Kafka's own listeners and through a TLS terminator (run with `--features tls` for every row).
//!
//! One test binary per area (issue 18): each file beside this one was a binary of its own; together
//! they link once.

#[path = "../wire_support/mod.rs"]
mod wire_support;

mod sasl_ssl;
mod tls_terminator;
