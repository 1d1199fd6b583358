//! The edge forwarder: inputs (stdin, file, udp) → codec → spool → producer, dead-letter file, metrics.
//!
//! Must not lose a record silently: every record is spooled, dead-lettered or counted as dropped.
