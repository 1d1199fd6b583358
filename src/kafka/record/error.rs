//! [`BatchError`]: why a record batch in a Fetch answer cannot be read (corrupt, an old format,
//! or over the decompression cap), shared by the batch reader and the decompressors.
//!
//! Must not carry the batch's bytes: only its offset and the reason.

use crate::error::{ErrorKind, Kind};

/// A record batch in a Fetch answer that cannot be read.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The batch fails its CRC or its structure does not parse.
    #[error("corrupt record batch at offset {offset}: {reason}")]
    Corrupt {
        /// The batch's base offset.
        offset: i64,
        /// What is wrong.
        reason: String,
    },
    /// The batch uses a feature this client does not read (an old message format).
    #[error("record batch at offset {offset} uses {what}, which avro-edge does not read")]
    Unsupported {
        /// The batch's base offset.
        offset: i64,
        /// The feature (e.g. `message format v1`).
        what: &'static str,
    },
    /// The batch decompresses to more than the consumer's `max_batch_bytes`.
    #[error("record batch at offset {offset} decompresses to more than {limit} bytes")]
    TooLarge {
        /// The batch's base offset.
        offset: i64,
        /// The limit in bytes.
        limit: usize,
    },
}

impl ErrorKind for BatchError {
    fn kind(&self) -> Kind {
        match self {
            BatchError::Corrupt { .. } => Kind::CorruptRecordBatch,
            BatchError::Unsupported { .. } => Kind::UnsupportedRecordFormat,
            BatchError::TooLarge { .. } => Kind::RecordBatchTooLarge,
        }
    }
}
