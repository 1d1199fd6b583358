//! Failing the batches that will never be sent: every queued batch not in flight completes with
//! the error, its records leave the buffer counts and its partition's sequence marks it failed.
//! Used by the sender (after `close`, or when no producer id can be had) and by a transaction that
//! aborts.
//!
//! Must not send, retry or decide when to fail: the callers decide; this only completes.

use super::Inner;
use crate::kafka::KafkaError;

/// Fail every batch that is not in flight with `e`: after `close` (flush already had its
/// chance), or when the idempotent producer cannot get a producer id for good.
pub(super) fn fail_unsent(inner: &Inner, e: &KafkaError) {
    let mut leftover = Vec::new();
    {
        let mut st = inner.lock();
        for ts in st.topics.values_mut() {
            for q in ts.parts.iter_mut().filter(|q| q.in_flight.is_empty()) {
                for b in q.batches.drain(..) {
                    q.seq.failed(b.key());
                    leftover.push(b);
                }
            }
        }
        for b in leftover.drain(..) {
            st.buffered = st.buffered.saturating_sub(b.builder.size());
            st.unfinished = st.unfinished.saturating_sub(b.builder.len());
            st.stats.failed += b.builder.len() as u64;
            b.complete(Err(e.clone()));
        }
    }
    inner.progress.notify_all();
}
