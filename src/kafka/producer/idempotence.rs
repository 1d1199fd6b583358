//! The idempotent producer's bookkeeping, as Kafka's Java client does it: a producer id and
//! epoch from InitProducerId (asked of any broker, retriable errors retried with backoff), a
//! sequence number per partition stamped into each batch when it is first taken for sending and
//! kept across its retries (so the broker drops a batch it already has instead of storing it
//! twice), and the recovery of KIP-360: when a partition's sequence can no longer be trusted (the
//! broker answered OUT_OF_ORDER_SEQUENCE_NUMBER or UNKNOWN_PRODUCER_ID, or a batch with a
//! sequence failed for good, so it may or may not be stored), the epoch is bumped locally and that
//! partition starts again at sequence 0. Other partitions move to the new epoch, at sequence 0,
//! with their next new batch (a batch already sequenced keeps its epoch for its retries). When
//! the epoch is exhausted a new producer id is fetched.
//!
//! A transactional producer gets its id and epoch from its transaction coordinator instead
//! (`transaction.rs`, through [`init_request`]), and never bumps its epoch locally: a lost
//! sequence there makes the transaction abortable, and the abort bumps the epoch at the
//! coordinator.
//!
//! Must not send Produce requests or complete batches: the sender does both; this module only
//! says which id, epoch and sequence a batch carries.

use std::time::Instant;

use std::time::Duration;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::protocol::StrBytes;

use super::Inner;
use super::state::{Batch, Idem, PartQueue, State};
use crate::kafka::conn::Conn;
use crate::kafka::{KafkaError, Target};

/// Java's `DefaultRecordBatch.incrementSequence`: sequences wrap to 0 after `i32::MAX`.
fn incremented(seq: i32, by: i32) -> i32 {
    if seq > i32::MAX - by {
        by - (i32::MAX - seq) - 1
    } else {
        seq + by
    }
}

/// Give `b` its producer id, epoch and base sequence if it has none yet; `false` while there is
/// no producer id (the batch must wait). A partition whose sequence belongs to another id or
/// epoch starts again at 0.
pub(super) fn stamp(idem: &Idem, q: &mut PartQueue, b: &mut Batch) -> bool {
    if b.seq.is_some() {
        return true;
    }
    let Some(owner) = idem.producer else {
        return false;
    };
    if q.seq_owner != Some(owner) {
        q.next_seq = 0;
        q.seq_owner = Some(owner);
    }
    let seq = (owner.0, owner.1, q.next_seq);
    q.next_seq = incremented(q.next_seq, b.builder.len() as i32);
    b.seq = Some(seq);
    b.builder.set_producer(Some(seq));
    b.builder.set_transactional(idem.transactional);
    true
}

/// Drop a batch's sequence (it is sequenced again when next taken).
pub(super) fn unstamp(b: &mut Batch) {
    b.seq = None;
    b.builder.set_producer(None);
}

/// The two halves of a batch split after MESSAGE_TOO_LARGE (which the broker did not store):
/// they take over its sequence range, `first` from its base and `second` after it, so batches
/// of the partition sequenced (and maybe in flight) after it stay valid. After an epoch bump of
/// the partition both are sequenced anew when taken.
pub(super) fn split_seq(q: &PartQueue, first: &mut Batch, second: &mut Batch) {
    match first.seq {
        Some((id, epoch, base)) if q.seq_owner == Some((id, epoch)) => {
            let next = (id, epoch, incremented(base, first.builder.len() as i32));
            first.builder.set_producer(first.seq);
            second.seq = Some(next);
            second.builder.set_producer(Some(next));
        }
        _ => {
            unstamp(first);
            unstamp(second);
        }
    }
}

/// A stamped batch (back for a retry, or a split half) whose partition was given a new epoch
/// since: its sequence is dropped, and it is sequenced anew, in order, when taken.
pub(super) fn restamp_if_stale(q: &PartQueue, b: &mut Batch) {
    if let Some((id, epoch, _)) = b.seq
        && q.seq_owner != Some((id, epoch))
    {
        unstamp(b);
    }
}

/// KIP-360 for an idempotent producer: bump the epoch (locally, as Java does; a new producer id
/// when the epoch is exhausted) and restart this partition's sequence at 0.
pub(super) fn reset_partition(idem: &mut Idem, q: &mut PartQueue, topic: &str, partition: i32) {
    if idem.transactional {
        // Not here: the transaction is abortable now, and its abort bumps the epoch.
        tracing::debug!(topic, partition, "sequence lost inside a transaction");
        return;
    }
    let before = idem.producer;
    idem.producer = match before {
        Some((id, epoch)) if epoch < i16::MAX => Some((id, epoch + 1)),
        _ => None,
    };
    q.seq_owner = None;
    tracing::info!(topic, partition, ?before, after = ?idem.producer, "bumped the producer epoch; the partition's sequence restarts at 0");
}

/// Whether the sender should ask for a producer id now (none, none asked, backoff over, and
/// records waiting); marks the request as running.
pub(super) fn start_init(st: &mut State, now: Instant) -> bool {
    let idem = &st.idem;
    if idem.transactional
        || idem.producer.is_some()
        || idem.init_running
        || idem.init_retry_at.is_some_and(|t| t > now)
    {
        return false;
    }
    let waiting = st
        .topics
        .values()
        .any(|t| t.parts.iter().any(|q| !q.batches.is_empty()));
    if waiting {
        st.idem.init_running = true;
    }
    waiting
}

/// When the sender should look again for a producer id retry.
pub(super) fn init_retry_at(st: &State) -> Option<Instant> {
    (st.idem.producer.is_none() && !st.idem.init_running)
        .then_some(st.idem.init_retry_at)
        .flatten()
}

/// A transactional InitProducerId's fields: the id, the transaction timeout, and the producer id
/// and epoch to bump (KIP-360; sent from version 3 on).
pub(super) struct TxnInit<'a> {
    pub(super) id: &'a str,
    pub(super) timeout: Duration,
    pub(super) bump: Option<(i64, i16)>,
}

/// One InitProducerId on `conn`: the idempotent producer's (`txn` `None`) or a transactional
/// one's. The answer's error code is the caller's to judge.
pub(super) async fn init_request(
    conn: &Conn,
    txn: Option<TxnInit<'_>>,
) -> Result<InitProducerIdResponse, KafkaError> {
    let version = conn.version_for::<InitProducerIdRequest>()?;
    let mut req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(i32::MAX);
    if let Some(t) = txn {
        let ms = t.timeout.as_millis().min(i32::MAX as u128) as i32;
        req = req
            .with_transactional_id(Some(StrBytes::from_string(t.id.to_string()).into()))
            .with_transaction_timeout_ms(ms);
        if let Some((id, epoch)) = t.bump.filter(|_| version >= 3) {
            req = req
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch);
        }
    }
    conn.request_at(&req, version).await
}

async fn ask_producer_id(inner: &Inner) -> Result<(i64, i16), KafkaError> {
    let conn = inner.client.conn(&Target::Any).await?;
    let resp = init_request(&conn, None).await?;
    match KafkaError::from_code(resp.error_code, "InitProducerId") {
        Some(e) => Err(e),
        None => Ok((resp.producer_id.0, resp.producer_epoch)),
    }
}

/// Ask any broker for a producer id. A retriable failure is tried again after a backoff; any
/// other is returned: it fails the records waiting for an id (later records ask again).
pub(super) async fn init_producer_id(inner: &Inner) -> Option<KafkaError> {
    let res = ask_producer_id(inner).await;
    let cfg = &inner.cfg;
    let mut st = inner.lock();
    let idem = &mut st.idem;
    idem.init_running = false;
    match res {
        Ok(p) => {
            tracing::info!(producer_id = p.0, epoch = p.1, "idempotent producer id");
            idem.producer = Some(p);
            idem.init_attempts = 0;
            idem.init_error = None;
            None
        }
        Err(e) => {
            let backoff = crate::kafka::client::backoff(
                cfg.retry_backoff,
                cfg.retry_backoff_max,
                idem.init_attempts,
            );
            idem.init_attempts = idem.init_attempts.saturating_add(1);
            idem.init_retry_at = Some(Instant::now() + backoff);
            idem.init_error = Some(e.clone());
            tracing::warn!(error = %e, kind = crate::error::ErrorKind::kind(&e).as_str(), "InitProducerId failed");
            (!e.is_retriable()).then_some(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap_like_java() {
        assert_eq!(incremented(0, 5), 5);
        assert_eq!(incremented(i32::MAX - 5, 5), i32::MAX);
        assert_eq!(incremented(i32::MAX - 4, 5), 0);
        assert_eq!(incremented(i32::MAX, 1), 0);
        assert_eq!(incremented(i32::MAX - 1, 10), 8);
    }
}
