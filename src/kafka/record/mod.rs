//! The record-batch format (v2), written and read side by side: [`BatchBuilder`] writes the
//! producer's batches (`write.rs`), the consumer's Fetch answers are read in `read.rs`,
//! compression for both is in `compression.rs`, and the Java-compatible murmur2 partitioner in
//! `partition.rs`. The reader and the decompressors share the bounds-checked `cursor.rs` and
//! [`BatchError`] (`error.rs`); imports run one way: read → compression → cursor, error.
//!
//! Must not do I/O.

mod aborted;
mod compression;
mod cursor;
mod error;
mod partition;
mod read;
mod write;

pub(crate) use aborted::Aborted;
pub use compression::Compression;
pub use error::BatchError;
pub use partition::partition_for_key;
pub use read::RawRecord;
pub(crate) use read::{Fetched, decode_fetched, records_hint};
pub use write::{BATCH_HEADER_LEN, BatchBuilder};
