//! The transactional producer (KIP-98), as Java's `TransactionManager` does it, at the protocol
//! version Java uses before transactions v2 (KIP-890 part 2: Produce up to v11, EndTxn up to
//! v4, AddPartitionsToTxn up to v3, which brokers keep for clients):
//! - [`Producer::init_transactions`]: FindCoordinator (key type TRANSACTION) and InitProducerId
//!   with the transactional id and `transaction_timeout`. The coordinator bumps the id's epoch,
//!   which fences an older producer with the same id, and aborts its open transaction first
//!   (answering CONCURRENT_TRANSACTIONS until that is done; retried, as are
//!   COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR and COORDINATOR_NOT_AVAILABLE, the last two
//!   after finding the coordinator again).
//! - [`Producer::begin_transaction`] (local), then sends: before a partition's first batch of the
//!   transaction goes out, the sender adds the partition (AddPartitionsToTxn; the sender hook is
//!   [`may_send`]), and every Produce request names the transactional id.
//! - [`Producer::commit_transaction`]: flush, then EndTxn(commit); [`Producer::abort_transaction`]:
//!   fail what is not sent yet, wait for what is in flight, EndTxn(abort), and when a record of
//!   the transaction failed or a partition's sequence may have a gap (`idempotence.rs` says
//!   when) bump the epoch with InitProducerId (the current id and epoch, KIP-360), so every
//!   partition's sequence starts again at 0.
//!
//! Errors, as Java classifies them: PRODUCER_FENCED and INVALID_PRODUCER_EPOCH from the
//! coordinator, TRANSACTIONAL_ID_AUTHORIZATION_FAILED, INVALID_TXN_STATE and the like are fatal
//! (`producer-fenced`, or the broker's code): the producer can do nothing more. A failed record
//! (any produce error left after the retries, INVALID_PRODUCER_EPOCH included) or a refused
//! AddPartitionsToTxn (TOPIC_AUTHORIZATION_FAILED, TRANSACTION_ABORTABLE, ...) makes the
//! transaction abortable (`transaction-abortable`): commit refuses, the caller aborts and sends
//! again. A transaction the coordinator aborted because it stayed open past `transaction_timeout`
//! ends the producer too (the coordinator fenced its epoch), as in Java before transactions v2;
//! it is reported as `transaction-timed-out` when the transaction was open that long by our
//! clock, so a caller can tell its own slowness from another producer and start a new one.
//!
//! This file holds the state machine, the sender's hooks and the blocking API; `coordinator.rs`
//! the requests to the transaction coordinator and how their answers are judged.
//!
//! Must not decide what a batch carries or when it is sent (`sender.rs`, `idempotence.rs`): it
//! holds the transaction's state and talks to the coordinator.

use std::time::{Duration, Instant};

use kafka_protocol::messages::TransactionalId;
use kafka_protocol::protocol::StrBytes;

use super::{Producer, ProducerConfig, idempotence, unsent};
use crate::kafka::KafkaError;
use coordinator::{end_txn, init_producer_id, producer};

mod coordinator;
pub(super) mod txn;

pub(super) use txn::Phase;
use txn::Txn;

pub(super) use coordinator::add_partitions;

// ---- hooks for the sender ----

/// Whether a batch of `topic`/`partition` may be sent: its partition is in the transaction.
/// Otherwise the partition is noted for AddPartitionsToTxn (while the transaction can go on).
pub(super) fn may_send(txn: &mut Txn, topic: &str, partition: i32) -> bool {
    if txn.added.get(topic).is_some_and(|s| s.contains(&partition)) {
        return true;
    }
    if txn.phase == Phase::InTransaction && txn.abortable.is_none() && txn.fatal.is_none() {
        txn.pending.insert((topic.to_string(), partition));
    }
    false
}

/// Whether the sender should send AddPartitionsToTxn now; marks it as running.
pub(super) fn start_add(txn: &mut Txn, now: Instant) -> bool {
    let go = !txn.adding
        && !txn.pending.is_empty()
        && txn.phase == Phase::InTransaction
        && txn.abortable.is_none()
        && txn.fatal.is_none()
        && txn.add_retry_at.is_none_or(|t| t <= now);
    if go {
        txn.adding = true;
        txn.add_retry_at = None;
    }
    go
}

/// When the sender should look again for an AddPartitionsToTxn retry.
pub(super) fn add_retry_at(txn: &Txn) -> Option<Instant> {
    (!txn.adding && !txn.pending.is_empty())
        .then_some(txn.add_retry_at)
        .flatten()
}

/// The transactional id a Produce request carries.
pub(super) fn produce_id(cfg: &ProducerConfig) -> Option<TransactionalId> {
    (cfg.transactional_id.as_ref()).map(|id| TransactionalId(name(id)))
}

/// The Produce version to send: a transactional producer stays at v11 (v12 means transactions
/// v2, where the broker adds partitions itself and every commit bumps the epoch).
pub(super) fn produce_version(cfg: &ProducerConfig, negotiated: i16) -> i16 {
    if cfg.transactional() {
        negotiated.min(11)
    } else {
        negotiated
    }
}

fn name(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

// ---- the blocking API ----

impl Producer {
    /// Get this transactional id's producer id and epoch from its transaction coordinator:
    /// an older producer with the same `transactional_id` is fenced (its next request fails
    /// with `producer-fenced`) and its open transaction aborted. Call once, before the first
    /// [`Producer::begin_transaction`]. `Timeout` when the coordinator did not answer in time
    /// (call it again).
    pub fn init_transactions(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.txn_check(&[Phase::Uninitialized])?;
        let deadline = Instant::now() + timeout;
        let (pid, epoch) = crate::kafka::block_on(init_producer_id(&self.inner, deadline, None))
            .inspect_err(|e| self.txn_failed(e))?;
        let mut st = self.inner.lock();
        tracing::info!(transactional_id = ?self.inner.cfg.transactional_id, producer_id = pid, epoch, "transactional producer initialized");
        st.idem.producer = Some((pid, epoch));
        st.txn.finished();
        Ok(())
    }

    /// Open a transaction: the records sent until [`Producer::commit_transaction`] are
    /// committed together, or none of them is (an abort). A read_committed consumer sees them
    /// only after the commit.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use avro_edge::{ErrorKind, Producer, ProducerConfig};
    /// # fn main() -> Result<(), avro_edge::KafkaError> {
    /// let mut cfg = ProducerConfig::new(["127.0.0.1:9092"]);
    /// cfg.transactional_id = Some("meter-7".into());
    /// let producer = Producer::connect(cfg)?;
    /// producer.init_transactions(Duration::from_secs(30))?; // fences an older "meter-7"
    /// producer.begin_transaction()?;
    /// let handles = [
    ///     producer.enqueue("readings", Some(b"m-7"), b"reading 1"),
    ///     producer.enqueue("positions", Some(b"m-7"), b"read up to 1"),
    /// ];
    /// match producer.commit_transaction(Duration::from_secs(30)) {
    ///     Ok(()) => {}
    ///     // A record failed (`transaction-abortable`): abort, then send the transaction again.
    ///     Err(e) if e.kind() == avro_edge::Kind::TransactionAbortable => {
    ///         producer.abort_transaction(Duration::from_secs(30))?;
    ///     }
    ///     // `producer-fenced`: another producer took over the id; this one stops.
    ///     Err(e) => return Err(e),
    /// }
    /// # drop(handles);
    /// # Ok(()) }
    /// ```
    pub fn begin_transaction(&self) -> Result<(), KafkaError> {
        let mut st = self.inner.lock();
        let failed = st.stats.failed;
        let txn = &mut st.txn;
        txn_check_in(txn, &[Phase::Ready])?;
        txn.finished();
        txn.phase = Phase::InTransaction;
        txn.generation += 1;
        txn.failed_before = failed;
        Ok(())
    }

    /// Send what is buffered, wait for it (at most `timeout`), then commit the transaction.
    /// `transaction-abortable` when a record of it failed (call [`Producer::abort_transaction`],
    /// then send again); `Timeout` leaves the commit to be called again; `producer-fenced` and
    /// `transaction-timed-out` end this producer.
    pub fn commit_transaction(&self, timeout: Duration) -> Result<(), KafkaError> {
        let deadline = Instant::now() + timeout;
        if self.txn_check(&[Phase::InTransaction, Phase::Committing])? == Phase::InTransaction {
            self.settle(deadline)?;
            let mut st = self.inner.lock();
            let failed = st.stats.failed > st.txn.failed_before || st.idem.sequence_lost;
            if let Some(e) = st.txn.abortable.clone() {
                return Err(e);
            }
            if failed {
                let e = KafkaError::TransactionAbortable(
                    "a record of the transaction failed (see its delivery result)".into(),
                );
                st.txn.abortable = Some(e.clone());
                return Err(e);
            }
            st.txn.phase = Phase::Committing;
            if !st.txn.has_added() {
                // Nothing was sent: nothing to commit at the coordinator (as Java does).
                st.txn.finished();
                return Ok(());
            }
        }
        match crate::kafka::block_on(end_txn(&self.inner, true, deadline)) {
            Ok(()) => {
                self.inner.lock().txn.finished();
                Ok(())
            }
            Err(e @ KafkaError::TransactionAbortable(_)) => {
                let mut st = self.inner.lock();
                st.txn.phase = Phase::InTransaction;
                st.txn.abortable = Some(e.clone());
                Err(e)
            }
            Err(e) => {
                self.txn_failed(&e);
                Err(e)
            }
        }
    }

    /// Abort the open transaction: records not sent yet fail (`transaction-abortable`), those
    /// in flight are waited for (at most `timeout`), and the coordinator writes abort markers,
    /// so no read_committed consumer ever sees a record of it. After a failed record, or when a
    /// partition's sequence may have a gap, the epoch is bumped (every partition's sequence
    /// starts again). `Timeout` leaves the abort to be called again.
    pub fn abort_transaction(&self, timeout: Duration) -> Result<(), KafkaError> {
        let deadline = Instant::now() + timeout;
        self.txn_check(&[Phase::InTransaction, Phase::Aborting])?;
        let (bump, added) = {
            let mut st = self.inner.lock();
            st.txn.phase = Phase::Aborting;
            let bump = st.stats.failed > st.txn.failed_before
                || st.txn.abortable.is_some()
                || st.idem.sequence_lost;
            (bump, st.txn.has_added())
        };
        let aborted = KafkaError::TransactionAbortable("the transaction was aborted".into());
        unsent::fail_unsent(&self.inner, &aborted);
        self.settle(deadline)?;
        // A batch failed by the abort after it was sent (back for a retry) may be stored or not.
        let bump = bump || idempotence::sequences_unsure(&self.inner.lock());
        let fin = crate::kafka::block_on(async {
            if added {
                end_txn(&self.inner, false, deadline).await?;
            }
            match bump {
                true => {
                    let now = producer(&self.inner)?;
                    init_producer_id(&self.inner, deadline, Some(now))
                        .await
                        .map(Some)
                }
                false => Ok(None),
            }
        });
        match fin {
            Ok(bumped) => {
                let mut st = self.inner.lock();
                if let Some(p) = bumped {
                    tracing::info!(before = ?st.idem.producer, after = ?p, "epoch bumped after the abort");
                    st.idem.producer = Some(p);
                    idempotence::reset_all(&mut st);
                }
                // A failed-record count from before the abort must not make the next one abortable.
                st.txn.failed_before = st.stats.failed;
                st.txn.finished();
                Ok(())
            }
            Err(e) => {
                self.txn_failed(&e);
                Err(e)
            }
        }
    }

    /// Before a record is appended: a transactional producer takes records only inside a
    /// transaction that can still commit.
    pub(super) fn may_append(&self) -> Result<(), KafkaError> {
        if !self.inner.cfg.transactional() {
            return Ok(());
        }
        let st = self.inner.lock();
        if let Some(e) = st.txn.fatal.clone().or_else(|| st.txn.abortable.clone()) {
            return Err(e);
        }
        match st.txn.phase {
            Phase::InTransaction => Ok(()),
            p => Err(KafkaError::TransactionState(format!(
                "a transactional producer sends inside a transaction only (now: {p:?})"
            ))),
        }
    }

    /// After a record was appended (or not): one that could not even be queued makes the
    /// transaction abortable, as in Java.
    pub(super) fn appended<T>(&self, r: Result<T, KafkaError>) -> Result<T, KafkaError> {
        if let Err(e) = &r
            && self.inner.cfg.transactional()
            && !matches!(
                e,
                KafkaError::TransactionState(_) | KafkaError::TransactionAbortable(_)
            )
        {
            let mut st = self.inner.lock();
            if st.txn.phase == Phase::InTransaction && st.txn.fatal.is_none() {
                st.txn.abortable.get_or_insert_with(|| {
                    KafkaError::TransactionAbortable(format!("a record could not be queued: {e}"))
                });
            }
        }
        r
    }

    /// The phase, if it is one of `allowed` and the producer is transactional and not fenced.
    fn txn_check(&self, allowed: &[Phase]) -> Result<Phase, KafkaError> {
        if !self.inner.cfg.transactional() {
            return Err(KafkaError::TransactionState(
                "the producer has no transactional_id".into(),
            ));
        }
        let st = self.inner.lock();
        txn_check_in(&st.txn, allowed)?;
        Ok(st.txn.phase)
    }

    /// A coordinator request failed: fenced and refused ones end the producer; a timeout (or
    /// another retriable failure) leaves the call to be made again.
    fn txn_failed(&self, e: &KafkaError) {
        if e.is_retriable() {
            return;
        }
        tracing::error!(error = %e, "transactional producer failed for good");
        self.inner.lock().txn.fatal.get_or_insert_with(|| e.clone());
    }

    /// Send everything buffered and wait until nothing is in flight and no AddPartitionsToTxn
    /// is out (or `deadline` passes: `Timeout`).
    fn settle(&self, deadline: Instant) -> Result<(), KafkaError> {
        self.flush_until(deadline, "transaction flush", |st| {
            st.unfinished == 0 && !st.txn.adding
        })
    }
}

fn txn_check_in(txn: &Txn, allowed: &[Phase]) -> Result<(), KafkaError> {
    if let Some(e) = &txn.fatal {
        return Err(e.clone());
    }
    if !allowed.contains(&txn.phase) {
        return Err(KafkaError::TransactionState(format!(
            "not allowed while {:?} (allowed: {allowed:?})",
            txn.phase
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_waits_until_it_is_in_the_transaction() {
        let mut txn = Txn {
            phase: Phase::InTransaction,
            ..Txn::default()
        };
        let t0 = Instant::now();
        assert!(!may_send(&mut txn, "t", 1));
        assert!(!may_send(&mut txn, "t", 1));
        assert_eq!(txn.pending.len(), 1, "noted once");
        assert!(start_add(&mut txn, t0));
        assert!(!start_add(&mut txn, t0), "one request at a time");
        txn.adding = false;
        txn.pending.clear();
        txn.added.entry("t".into()).or_default().insert(1);
        assert!(may_send(&mut txn, "t", 1));
        assert!(!may_send(&mut txn, "t", 2), "another partition waits");
        // Nothing is noted once the transaction cannot commit.
        txn.pending.clear();
        txn.abortable = Some(KafkaError::TransactionAbortable("x".into()));
        assert!(!may_send(&mut txn, "u", 0));
        assert!(txn.pending.is_empty());
        assert!(
            may_send(&mut txn, "t", 1),
            "an added partition still drains"
        );
    }

    #[test]
    fn transactional_produce_stays_below_transactions_v2() {
        let mut cfg = ProducerConfig::new(["b:9092"]);
        assert_eq!(produce_version(&cfg, 12), 12);
        assert!(produce_id(&cfg).is_none());
        cfg.transactional_id = Some("t".into());
        assert_eq!(produce_version(&cfg, 12), 11);
        assert_eq!(produce_version(&cfg, 9), 9);
        assert_eq!(produce_id(&cfg).unwrap().0.as_str(), "t");
    }
}
