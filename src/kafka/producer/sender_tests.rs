//! Unit tests of the sender's per-partition rules (expiry), on a bare partition queue.

use std::time::{Duration, Instant};

use super::*;
use crate::kafka::producer::idempotence::tests::batch;

/// A batch past its delivery timeout fails, and the batches queued behind it with it (not yet
/// due, they would be stored ahead of its records sent again); nothing is failed while a batch
/// of the partition is in flight, nor before the oldest is due.
#[test]
fn an_expired_batch_fails_the_batches_queued_behind_it() {
    let now = Instant::now();
    let mut q = PartQueue::default();
    for (order, due_in) in [(0, 0), (1, 30), (2, 60)] {
        let mut b = batch(order, 1);
        b.deadline = now + Duration::from_secs(due_in);
        q.batches.push_back(b);
    }
    let mut idem = Idem::default();
    let mut expired = Vec::new();
    q.in_flight.insert((9, 0));
    expire_due(&mut idem, &mut q, "t", 0, now, &mut expired);
    assert!(
        expired.is_empty(),
        "nothing fails while a batch is in flight"
    );
    q.in_flight.clear();
    expire_due(
        &mut idem,
        &mut q,
        "t",
        0,
        now - Duration::from_secs(1),
        &mut expired,
    );
    assert!(expired.is_empty(), "nothing fails before the oldest is due");
    expire_due(&mut idem, &mut q, "t", 0, now, &mut expired);
    let orders: Vec<u64> = expired.iter().map(|(b, _)| b.order).collect();
    assert_eq!(
        orders,
        [0, 1, 2],
        "the due batch and both behind it, in order"
    );
    assert!(q.batches.is_empty());
}
