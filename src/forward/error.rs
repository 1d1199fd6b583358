//! [`ForwardError`]: what can stop the forwarder from starting, or make a run fail, with its kind.
//!
//! Must not carry a record's failure: those go to the dead-letter file or stay in the spool.

use crate::error::{ErrorKind, Kind};
use crate::spool::SpoolError;

/// What can stop the forwarder from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// The spool cannot be opened (I/O, locked by another process, bad options).
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The schema source (registry URLs / offline cache) could not be set up.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// The dead-letter file cannot be opened for appending.
    #[error("dead-letter file {path}: {source}")]
    DeadLetter {
        /// The file.
        path: String,
        /// Why it cannot be opened.
        source: std::io::Error,
    },
    /// An input cannot be started (file not openable, UDP address not bindable).
    #[error("input '{input}': {source}")]
    Input {
        /// The input's name.
        input: String,
        /// Why it cannot start.
        source: std::io::Error,
    },
    /// The sender stopped for good: with exactly-once, another forwarder took over this gateway
    /// (`producer-fenced`), or the sink cannot do transactions. Kind: the cause's.
    #[error("sender stopped: {message}")]
    Sender {
        /// The cause's kind.
        kind: Kind,
        /// The cause.
        message: String,
    },
    /// The Prometheus listener cannot bind its address.
    #[error("metrics listener {addr}: {source}")]
    Metrics {
        /// The `metrics.listen` address.
        addr: String,
        /// Why it cannot bind.
        source: std::io::Error,
    },
    /// The input ended while a refusal that fixing the setup cures held records (our clock, an
    /// ACL, the credentials, a missing topic): they stay in the spool for the next start. Kind: the
    /// refusal's.
    #[error("{records} records kept in the spool, refused: {message}")]
    Held {
        /// The refusal's kind, e.g. `clock-ahead-of-broker`.
        kind: Kind,
        /// Unacknowledged records left in the spool.
        records: u64,
        /// The refusal's latest error message.
        message: String,
    },
}

impl ErrorKind for ForwardError {
    fn kind(&self) -> Kind {
        match self {
            ForwardError::Spool(e) => e.kind(),
            ForwardError::Registry(e) => e.kind(),
            ForwardError::DeadLetter { .. } => Kind::DeadLetterIo,
            ForwardError::Input { .. } => Kind::InputIo,
            ForwardError::Metrics { .. } => Kind::MetricsListen,
            ForwardError::Sender { kind, .. } => *kind,
            ForwardError::Held { kind, .. } => *kind,
        }
    }
}
