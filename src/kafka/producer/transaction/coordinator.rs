//! The transaction coordinator's requests, as Java's `TransactionManager` handlers make them:
//! FindCoordinator (key type TRANSACTION), InitProducerId, AddPartitionsToTxn (the sender's task,
//! before a partition's first batch of a transaction) and EndTxn, each retried on the answers
//! Java retries (CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS; NOT_COORDINATOR and
//! COORDINATOR_NOT_AVAILABLE after finding the coordinator again), and their answers judged:
//! fenced, fatal, abortable.
//!
//! Must not change the transaction's phase (the API in `mod.rs` does): it records what the
//! coordinator said (partitions added, the coordinator's address, an abortable or fatal error).

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, EndTxnRequest, FindCoordinatorRequest, ProducerId, TopicName,
    TransactionalId,
};

use super::super::idempotence::{self, TxnInit};
use super::super::{Inner, unsent};
use super::{Txn, name};
use crate::kafka::conn::Conn;
use crate::kafka::coordinator::{self as find, KeyType};
use crate::kafka::{KafkaError, Target};

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
    let req = find::request(KeyType::Transaction, id, v);
    let resp = conn.request_at(&req, v).await?;
    find::address(&resp, &format!("FindCoordinator transaction {id}"))
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
pub(super) async fn init_producer_id(
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
pub(super) async fn end_txn(
    inner: &Inner,
    commit: bool,
    deadline: Instant,
) -> Result<(), KafkaError> {
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
pub(super) fn producer(inner: &Inner) -> Result<(i64, i16), KafkaError> {
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
pub(in crate::kafka::producer) async fn add_partitions(inner: Arc<Inner>) {
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
        unsent::fail_unsent(&inner, &e);
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
