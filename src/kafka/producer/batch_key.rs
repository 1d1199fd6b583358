//! A batch's key: its place in its partition's order ([`BatchKey`]). The producer's state names its
//! batches by it (`state.rs`), and the sequence bookkeeping keys a partition's unfinished batches by
//! it (`sequence.rs`; key order is sequence order); it has its own file so neither of those two
//! imports the other for it.
//!
//! Must not hold behaviour: it only names the type.

/// A batch's place in its partition's order (`Batch::key`: its order number and first record).
pub(super) type BatchKey = (u64, i32);
