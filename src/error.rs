//! The one trait every error enum in the crate implements: a stable, machine-readable kind name.
//!
//! Kind names are part of the public interface (the CLI prints `error[<kind>]: <message>`,
//! the dead-letter file records them), so they never change once released. This module holds
//! no error types of its own: each module owns its enum.

/// A stable kebab-case name for each failure, e.g. `truncated-body` or `broker-unreachable`.
pub trait ErrorKind: std::error::Error {
    fn kind(&self) -> &'static str;
}
