//! The transactional producer's state ([`Txn`]: its phase, the partitions in the open
//! transaction, and why it cannot go on), kept under the producer's state lock as a field of
//! `state.rs`'s `State`. Its own file so that `state.rs` needs nothing of the transaction's
//! requests and hooks (which import the sender and the state).
//!
//! Must not talk to a broker or decide anything: `mod.rs` and `coordinator.rs` change it.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use crate::kafka::KafkaError;

/// Where the transactional producer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(in crate::kafka::producer) enum Phase {
    /// `init_transactions` has not succeeded yet.
    #[default]
    Uninitialized,
    /// Initialized, no transaction open.
    Ready,
    /// Between `begin_transaction` and the end of a commit or abort.
    InTransaction,
    /// EndTxn(commit) sent and not answered yet (a commit that timed out resumes here).
    Committing,
    /// An abort under way (one that timed out resumes here).
    Aborting,
}

/// The transaction's state, under the producer's state lock.
#[derive(Default)]
pub(in crate::kafka::producer) struct Txn {
    pub(super) phase: Phase,
    /// Counts transactions: an AddPartitionsToTxn answer for an earlier one is ignored.
    pub(super) generation: u64,
    /// Partitions in the open transaction (AddPartitionsToTxn answered).
    pub(super) added: HashMap<String, BTreeSet<i32>>,
    /// Partitions with a batch waiting to be added.
    pub(super) pending: BTreeSet<(String, i32)>,
    /// An AddPartitionsToTxn request is out.
    pub(super) adding: bool,
    pub(super) add_retry_at: Option<Instant>,
    pub(super) add_attempts: u32,
    /// When the first partition was added: the coordinator's transaction clock runs from there.
    pub(super) started: Option<Instant>,
    /// The producer's failed-record count when the transaction began: more at commit, and the
    /// transaction is abortable.
    pub(super) failed_before: u64,
    /// Why the open transaction cannot commit.
    pub(super) abortable: Option<KafkaError>,
    /// Why the producer can do nothing more.
    pub(super) fatal: Option<KafkaError>,
    /// The transaction coordinator's address, once found.
    pub(super) coordinator: Option<String>,
}

impl Txn {
    pub(super) fn has_added(&self) -> bool {
        self.added.values().any(|s| !s.is_empty())
    }

    /// The transaction is over (committed or aborted): back to [`Phase::Ready`].
    pub(super) fn finished(&mut self) {
        self.phase = Phase::Ready;
        self.added.clear();
        self.pending.clear();
        self.add_retry_at = None;
        self.add_attempts = 0;
        self.started = None;
        self.abortable = None;
    }
}
