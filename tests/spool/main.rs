//! The crash-safe disk spool: store, corruption, crashes, a full disk, and `spool status` (no broker).
//!
//! One test binary per area (issue 18): each file beside this one was a binary of its own; together
//! they link once.

#[path = "../spool_support/mod.rs"]
mod spool_support;

mod cli;
mod corruption;
mod crash;
mod disk_full;
mod store;
