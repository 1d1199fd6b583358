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
//!   the transaction failed (its sequence may be lost) bump the epoch with InitProducerId (the
//!   current id and epoch, KIP-360), so every partition's sequence starts again at 0.
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
//! Must not decide what a batch carries or when it is sent (`sender.rs`, `idempotence.rs`): it
//! holds the transaction's state and talks to the coordinator.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, EndTxnRequest, FindCoordinatorRequest, ProducerId, TopicName,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use super::idempotence::{self, TxnInit};
use super::{Inner, Producer, ProducerConfig, sender};
use crate::kafka::conn::Conn;
use crate::kafka::{KafkaError, Target};

/// Where the transactional producer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Phase {
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
pub(super) struct Txn {
    pub(super) phase: Phase,
    /// Counts transactions: an AddPartitionsToTxn answer for an earlier one is ignored.
    generation: u64,
    /// Partitions in the open transaction (AddPartitionsToTxn answered).
    added: HashMap<String, BTreeSet<i32>>,
    /// Partitions with a batch waiting to be added.
    pending: BTreeSet<(String, i32)>,
    /// An AddPartitionsToTxn request is out.
    adding: bool,
    add_retry_at: Option<Instant>,
    add_attempts: u32,
    /// When the first partition was added: the coordinator's transaction clock runs from there.
    started: Option<Instant>,
    /// The producer's failed-record count when the transaction began: more at commit, and the
    /// transaction is abortable.
    failed_before: u64,
    /// Why the open transaction cannot commit.
    abortable: Option<KafkaError>,
    /// Why the producer can do nothing more.
    fatal: Option<KafkaError>,
    /// The transaction coordinator's address, once found.
    coordinator: Option<String>,
}

impl Txn {
    fn has_added(&self) -> bool {
        self.added.values().any(|s| !s.is_empty())
    }

    /// The transaction is over (committed or aborted): back to [`Phase::Ready`].
    fn finished(&mut self) {
        self.phase = Phase::Ready;
        self.added.clear();
        self.pending.clear();
        self.add_retry_at = None;
        self.add_attempts = 0;
        self.started = None;
        self.abortable = None;
    }
}

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

// ---- the coordinator ----

/// What a coordinator request answered.
enum Answer<T> {
    Done(T),
    /// A non-zero error code.
    Code(i16),
}

/// What a non-zero code from the coordinator calls for.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Retry after a backoff.
    Retry,
    /// Find the coordinator again, then retry.
    Refind,
    /// This producer is fenced.
    Fenced,
    /// Anything else: the caller's to judge.
    Other,
}

fn step(code: i16) -> Step {
    match code {
        // COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR
        15 | 16 => Step::Refind,
        // COORDINATOR_LOAD_IN_PROGRESS, CONCURRENT_TRANSACTIONS, UNKNOWN_TOPIC_OR_PARTITION,
        // REQUEST_TIMED_OUT
        14 | 51 | 3 | 7 => Step::Retry,
        // INVALID_PRODUCER_EPOCH, PRODUCER_FENCED (Java: both fatal from the coordinator)
        47 | 90 => Step::Fenced,
        _ => Step::Other,
    }
}

/// The error for a fenced epoch: the coordinator's timeout when the transaction has been open
/// that long by our clock, another producer otherwise.
fn fenced(inner: &Inner, started: Option<Instant>, context: &str) -> KafkaError {
    let id = inner.cfg.transactional_id.clone().unwrap_or_default();
    match started.map(|t| t.elapsed()) {
        Some(open) if open >= inner.cfg.transaction_timeout => KafkaError::TransactionTimedOut {
            transactional_id: id,
            open,
        },
        _ => KafkaError::ProducerFenced {
            transactional_id: id,
            context: context.to_string(),
        },
    }
}

/// A connection to the transaction coordinator, found with FindCoordinator when not known.
async fn coordinator(inner: &Inner, deadline: Instant) -> Result<Arc<Conn>, KafkaError> {
    let known = inner.lock().txn.coordinator.clone();
    let addr = match known {
        Some(a) => a,
        None => {
            let a = find_coordinator(inner, deadline).await?;
            inner.lock().txn.coordinator = Some(a.clone());
            a
        }
    };
    inner.client.conn_until(&Target::Addr(addr), deadline).await
}

async fn find_coordinator(inner: &Inner, deadline: Instant) -> Result<String, KafkaError> {
    let id = inner.cfg.transactional_id.as_deref().unwrap_or_default();
    let conn = inner.client.conn_until(&Target::Any, deadline).await?;
    let v = conn.version_for::<FindCoordinatorRequest>()?;
    let req = FindCoordinatorRequest::default().with_key_type(1);
    let req = if v >= 4 {
        req.with_coordinator_keys(vec![name(id)])
    } else {
        req.with_key(name(id))
    };
    let resp = conn.request_at(&req, v).await?;
    let (code, host, port) = match resp.coordinators.first() {
        Some(c) => (c.error_code, c.host.to_string(), c.port),
        None => (resp.error_code, resp.host.to_string(), resp.port),
    };
    if let Some(e) = KafkaError::from_code(code, format!("FindCoordinator transaction {id}")) {
        return Err(e);
    }
    Ok(format!("{host}:{port}"))
}

/// Call the coordinator until `call` is done or `deadline` passes: retriable answers and lost
/// connections are retried with backoff (after finding the coordinator again where the answer
/// says it moved); a fenced epoch is [`fenced`]; any other code is returned as its error.
async fn coordinator_call<T, F, Fut>(
    inner: &Inner,
    what: &str,
    deadline: Instant,
    mut call: F,
) -> Result<T, KafkaError>
where
    F: FnMut(Arc<Conn>) -> Fut,
    Fut: Future<Output = Result<Answer<T>, KafkaError>>,
{
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        let res = match coordinator(inner, deadline).await {
            Ok(conn) => call(conn).await,
            Err(e) => Err(e),
        };
        let last = match res {
            Ok(Answer::Done(t)) => return Ok(t),
            Ok(Answer::Code(code)) => {
                let e = KafkaError::from_code(code, what.to_string())
                    .unwrap_or_else(|| KafkaError::Protocol(format!("{what}: error code 0")));
                match step(code) {
                    Step::Retry => e,
                    Step::Refind => {
                        inner.lock().txn.coordinator = None;
                        e
                    }
                    Step::Fenced => return Err(fenced(inner, inner.lock().txn.started, what)),
                    Step::Other => return Err(e),
                }
            }
            Err(e) if e.is_retriable() => {
                inner.lock().txn.coordinator = None;
                e
            }
            Err(e) => return Err(e),
        };
        let cfg = &inner.cfg;
        let backoff =
            crate::kafka::client::backoff(cfg.retry_backoff, cfg.retry_backoff_max, attempt);
        attempt += 1;
        tracing::debug!(what, error = %last, backoff_ms = backoff.as_millis() as u64, "transaction request retried");
        if Instant::now() + backoff >= deadline {
            return Err(KafkaError::Timeout {
                what: format!("{what} (last: {last})"),
                after: started.elapsed(),
            });
        }
        smol::Timer::after(backoff).await;
    }
}

/// InitProducerId with the transactional id; `bump`: the current id and epoch (after an abort).
async fn init_producer_id(
    inner: &Inner,
    deadline: Instant,
    bump: Option<(i64, i16)>,
) -> Result<(i64, i16), KafkaError> {
    let id = inner.cfg.transactional_id.as_deref().unwrap_or_default();
    coordinator_call(inner, "InitProducerId", deadline, |conn| async move {
        let txn = TxnInit {
            id,
            timeout: inner.cfg.transaction_timeout,
            bump,
        };
        let resp = idempotence::init_request(&conn, Some(txn)).await?;
        Ok(match resp.error_code {
            0 => Answer::Done((resp.producer_id.0, resp.producer_epoch)),
            code => Answer::Code(code),
        })
    })
    .await
}

/// EndTxn: commit or abort the open transaction. TRANSACTION_ABORTABLE makes it abortable; a
/// repeated EndTxn for a transaction already ended the same way is answered with success.
async fn end_txn(inner: &Inner, commit: bool, deadline: Instant) -> Result<(), KafkaError> {
    let id = inner.cfg.transactional_id.as_deref().unwrap_or_default();
    let what = if commit {
        "EndTxn commit"
    } else {
        "EndTxn abort"
    };
    let res = coordinator_call(inner, what, deadline, |conn| async move {
        let (pid, epoch) = producer(inner)?;
        let v = conn.version_for::<EndTxnRequest>()?.min(4);
        let req = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(name(id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit);
        let resp = conn.request_at(&req, v).await?;
        Ok(match resp.error_code {
            0 => Answer::Done(()),
            code => Answer::Code(code),
        })
    })
    .await;
    match res {
        Err(e) if e.code() == Some(120) => Err(KafkaError::TransactionAbortable(e.to_string())),
        other => other,
    }
}

/// The producer id and epoch (set by `init_transactions`).
fn producer(inner: &Inner) -> Result<(i64, i16), KafkaError> {
    (inner.lock().idem.producer).ok_or_else(|| {
        KafkaError::TransactionState("no producer id: call init_transactions".into())
    })
}

/// One AddPartitionsToTxn for `parts`: each partition's code.
async fn add_once(
    inner: &Inner,
    parts: &BTreeSet<(String, i32)>,
    deadline: Instant,
) -> Result<Vec<((String, i32), i16)>, KafkaError> {
    let (pid, epoch) = producer(inner)?;
    let id = inner.cfg.transactional_id.as_deref().unwrap_or_default();
    let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
    for (t, p) in parts {
        match topics.iter_mut().find(|x| x.name.0.as_str() == t) {
            Some(x) => x.partitions.push(*p),
            None => topics.push(
                AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(name(t)))
                    .with_partitions(vec![*p]),
            ),
        }
    }
    let conn = coordinator(inner, deadline).await?;
    let v = conn.version_for::<AddPartitionsToTxnRequest>()?.min(3);
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(name(id)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(topics);
    let resp = conn.request_at(&req, v).await?;
    let mut out = Vec::new();
    for t in &resp.results_by_topic_v3_and_below {
        for p in &t.results_by_partition {
            out.push((
                (t.name.0.to_string(), p.partition_index),
                p.partition_error_code,
            ));
        }
    }
    if out.is_empty() && resp.error_code != 0 {
        out.extend(parts.iter().map(|tp| (tp.clone(), resp.error_code)));
    }
    Ok(out)
}

/// What an AddPartitionsToTxn answer (or failure) leaves the transaction with.
#[derive(Debug)]
enum Added {
    /// Every partition is in.
    Done,
    /// Try again after a backoff (finding the coordinator again if `refind`).
    Retry { refind: bool },
    /// The transaction cannot commit.
    Abortable(KafkaError),
    /// The epoch is fenced.
    Fenced,
    /// The producer can do nothing more.
    Fatal(KafkaError),
}

/// Judge one AddPartitionsToTxn's per-partition codes (OPERATION_NOT_ATTEMPTED only says that
/// another partition failed).
fn judge_add(codes: &[i16]) -> Added {
    let mut out = Added::Done;
    for &code in codes.iter().filter(|c| !matches!(c, 0 | 55)) {
        let e = || KafkaError::from_code(code, "AddPartitionsToTxn").unwrap_or(KafkaError::Closed);
        let this = match (step(code), code) {
            (Step::Fenced, _) => return Added::Fenced,
            // TRANSACTIONAL_ID_AUTHORIZATION_FAILED, INVALID_TXN_STATE, CLUSTER_AUTHORIZATION_FAILED
            (_, 53 | 48 | 31) => return Added::Fatal(e()),
            (Step::Refind, _) => Added::Retry { refind: true },
            (Step::Retry, _) => Added::Retry { refind: false },
            _ => Added::Abortable(e()),
        };
        out = match (out, this) {
            (a @ Added::Abortable(_), _) | (_, a @ Added::Abortable(_)) => a,
            (Added::Retry { refind: a }, Added::Retry { refind: b }) => {
                Added::Retry { refind: a || b }
            }
            (_, t) => t,
        };
    }
    if matches!(out, Added::Done) && codes.contains(&55) {
        return Added::Retry { refind: false };
    }
    out
}

/// The sender's AddPartitionsToTxn task: add the pending partitions, then let their batches go.
pub(super) async fn add_partitions(inner: Arc<Inner>) {
    let (generation, parts) = {
        let st = inner.lock();
        (st.txn.generation, st.txn.pending.clone())
    };
    let deadline = Instant::now() + inner.cfg.request_timeout;
    let res = add_once(&inner, &parts, deadline).await;
    let judged = match &res {
        Ok(codes) => judge_add(&codes.iter().map(|(_, c)| *c).collect::<Vec<_>>()),
        Err(e) if e.is_retriable() => Added::Retry { refind: true },
        Err(e) => Added::Abortable(e.clone()),
    };
    let fail = {
        let mut st = inner.lock();
        let started = st.txn.started;
        let txn = &mut st.txn;
        txn.adding = false;
        if txn.generation != generation {
            None
        } else {
            if let Ok(codes) = &res {
                for ((t, p), _) in codes.iter().filter(|(_, c)| *c == 0) {
                    txn.pending.remove(&(t.clone(), *p));
                    txn.added.entry(t.clone()).or_default().insert(*p);
                    txn.started.get_or_insert_with(Instant::now);
                }
            }
            match judged {
                Added::Done => {
                    txn.add_attempts = 0;
                    None
                }
                Added::Retry { refind } => {
                    if refind {
                        txn.coordinator = None;
                    }
                    let cfg = &inner.cfg;
                    let backoff = crate::kafka::client::backoff(
                        cfg.retry_backoff.min(Duration::from_millis(20)),
                        cfg.retry_backoff_max,
                        txn.add_attempts,
                    );
                    txn.add_attempts = txn.add_attempts.saturating_add(1);
                    txn.add_retry_at = Some(Instant::now() + backoff);
                    tracing::debug!(error = ?res.as_ref().err(), backoff_ms = backoff.as_millis() as u64, "AddPartitionsToTxn retried");
                    None
                }
                Added::Abortable(e) => {
                    tracing::warn!(error = %e, "AddPartitionsToTxn refused: the transaction must be aborted");
                    let e = KafkaError::TransactionAbortable(e.to_string());
                    txn.abortable = Some(e.clone());
                    Some(e)
                }
                Added::Fenced => set_fatal(txn, fenced(&inner, started, "AddPartitionsToTxn")),
                Added::Fatal(e) => set_fatal(txn, e),
            }
        }
    };
    if let Some(e) = fail {
        // Batches waiting for their partition go no further in this transaction.
        sender::fail_unsent(&inner, &e);
    }
    inner.progress.notify_all();
    inner.wake();
}

/// The producer can do nothing more: the error every later call gets.
fn set_fatal(txn: &mut Txn, e: KafkaError) -> Option<KafkaError> {
    tracing::error!(error = %e, "AddPartitionsToTxn: the producer is fenced or refused");
    txn.fatal = Some(e.clone());
    Some(e)
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
            let failed = st.stats.failed > st.txn.failed_before;
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
    /// so no read_committed consumer ever sees a record of it. After a failed record the epoch
    /// is bumped (every partition's sequence starts again). `Timeout` leaves the abort to be
    /// called again.
    pub fn abort_transaction(&self, timeout: Duration) -> Result<(), KafkaError> {
        let deadline = Instant::now() + timeout;
        self.txn_check(&[Phase::InTransaction, Phase::Aborting])?;
        let (bump, added) = {
            let mut st = self.inner.lock();
            st.txn.phase = Phase::Aborting;
            let bump = st.stats.failed > st.txn.failed_before || st.txn.abortable.is_some();
            (bump, st.txn.has_added())
        };
        let aborted = KafkaError::TransactionAbortable("the transaction was aborted".into());
        sender::fail_unsent(&self.inner, &aborted);
        self.settle(deadline)?;
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
        let mut st = self.inner.lock();
        st.flushing += 1;
        self.inner.wake();
        let res = loop {
            if st.unfinished == 0 && !st.txn.adding {
                break Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Err(KafkaError::Timeout {
                    what: format!("transaction flush ({} records pending)", st.unfinished),
                    after: left,
                });
            }
            st = (self.inner.progress.wait_timeout(st, left))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        };
        st.flushing = st.flushing.saturating_sub(1);
        res
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
    fn add_partitions_answers_are_judged_as_java_does() {
        assert!(matches!(judge_add(&[0, 0]), Added::Done));
        assert!(matches!(
            judge_add(&[51, 55]),
            Added::Retry { refind: false }
        ));
        assert!(matches!(judge_add(&[16]), Added::Retry { refind: true }));
        assert!(matches!(
            judge_add(&[0, 55]),
            Added::Retry { refind: false }
        ));
        for fatal in [47, 90, 53, 48] {
            let judged = judge_add(&[55, fatal]);
            assert!(matches!(judged, Added::Fatal(_) | Added::Fenced), "{fatal}");
        }
        // TOPIC_AUTHORIZATION_FAILED, TRANSACTION_ABORTABLE, UNKNOWN_PRODUCER_ID: abort.
        for abortable in [29, 120, 59] {
            match judge_add(&[abortable, 55, 51]) {
                Added::Abortable(e) => assert_eq!(e.code(), Some(abortable)),
                other => panic!("{abortable}: {other:?}"),
            }
        }
    }

    #[test]
    fn coordinator_codes_retry_refind_or_fence() {
        assert_eq!(step(51), Step::Retry);
        assert_eq!(step(14), Step::Retry);
        assert_eq!(step(16), Step::Refind);
        assert_eq!(step(15), Step::Refind);
        assert_eq!(step(90), Step::Fenced);
        assert_eq!(step(47), Step::Fenced);
        assert_eq!(step(53), Step::Other);
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
