//! What a caller gets back for a record: [`Delivery`] (where it landed) and [`DeliveryHandle`]
//! (a pending one), both read from the shared outcome of the record's batch. A batch split after
//! MESSAGE_TOO_LARGE completes its outcome in parts (record ranges), so one record can fail
//! alone while the others of its batch are delivered.
//!
//! Must not touch the producer's state: the sender completes an outcome once, handles only
//! read (or wait for) it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::kafka::KafkaError;

/// Where a record landed. `offset` is `None` with `acks=0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The partition the record went to.
    pub partition: i32,
    /// Its offset in the partition; `None` when the broker does not say (`acks=0`).
    pub offset: Option<i64>,
}

/// The result for the records `start..start + len` of a batch (its base offset, or the error).
struct Part {
    start: i32,
    len: i32,
    result: Result<Option<i64>, KafkaError>,
}

/// The shared fate of one batch as appended (the records of its later split parts included).
#[derive(Default)]
pub(super) struct Outcome {
    parts: Mutex<Vec<Part>>,
    done: Condvar,
    /// Set once any part is complete: [`DeliveryHandle::try_result`] reads it without the lock.
    any: AtomicBool,
}

impl Outcome {
    /// Complete records `start..start + len` (the first result for a record wins).
    pub(super) fn complete(&self, start: i32, len: i32, r: Result<Option<i64>, KafkaError>) {
        let mut g = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        g.push(Part {
            start,
            len,
            result: r,
        });
        self.any.store(true, Ordering::Release);
        self.done.notify_all();
    }

    /// The result for record `index`, if its part is complete.
    fn lookup(parts: &[Part], index: i32, partition: i32) -> Option<Result<Delivery, KafkaError>> {
        let p = parts
            .iter()
            .find(|p| p.start <= index && index < p.start + p.len)?;
        Some(match &p.result {
            Ok(base) => Ok(Delivery {
                partition,
                offset: base.map(|b| b + (index - p.start) as i64),
            }),
            Err(e) => Err(e.clone()),
        })
    }
}

/// A pending delivery returned by [`Producer::enqueue`](super::Producer::enqueue); [`DeliveryHandle::wait`] blocks for it.
pub struct DeliveryHandle {
    /// The record's batch and its index there, or why it was not queued (boxed: a handle per
    /// record stays three words).
    pub(super) outcome: Result<(Arc<Outcome>, i32), Box<KafkaError>>,
    pub(super) partition: i32,
}

impl DeliveryHandle {
    /// Block until the record is acknowledged or failed.
    pub fn wait(self) -> Result<Delivery, KafkaError> {
        let (outcome, index) = self.outcome.map_err(|e| *e)?;
        let mut g = outcome.parts.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(r) = Outcome::lookup(&g, index, self.partition) {
                return r;
            }
            g = outcome.done.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The result, if already known, without blocking.
    pub fn try_result(&self) -> Option<Result<Delivery, KafkaError>> {
        let (outcome, index) = match &self.outcome {
            Ok(o) => o,
            Err(e) => return Some(Err((**e).clone())),
        };
        if !outcome.any.load(Ordering::Acquire) {
            return None;
        }
        let g = outcome.parts.lock().unwrap_or_else(|p| p.into_inner());
        Outcome::lookup(&g, *index, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(o: &Arc<Outcome>, index: i32) -> DeliveryHandle {
        DeliveryHandle {
            outcome: Ok((o.clone(), index)),
            partition: 4,
        }
    }

    /// A split batch completes in parts: each record gets its own part's offset or error.
    #[test]
    fn parts_complete_their_own_records() {
        let o = Arc::new(Outcome::default());
        assert!(handle(&o, 0).try_result().is_none());
        o.complete(0, 2, Ok(Some(100)));
        o.complete(3, 2, Ok(Some(102)));
        let too_large = KafkaError::from_code(10, "produce t-4").unwrap();
        o.complete(2, 1, Err(too_large));
        let offsets: Vec<Option<i64>> = [0, 1, 3, 4]
            .iter()
            .map(|i| handle(&o, *i).wait().unwrap().offset)
            .collect();
        assert_eq!(offsets, [Some(100), Some(101), Some(102), Some(103)]);
        let e = handle(&o, 2).wait().unwrap_err();
        assert_eq!(crate::error::ErrorKind::kind(&e), "message-too-large");
        assert!(handle(&o, 5).try_result().is_none());
    }
}
