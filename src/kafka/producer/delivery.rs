//! What a caller gets back for a record: [`Delivery`] (where it landed) and [`DeliveryHandle`]
//! (a pending one), both read from the shared outcome of the record's batch.
//!
//! Must not touch the producer's state: the sender completes an outcome once, handles only
//! read (or wait for) it.

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

/// The shared fate of one batch.
#[derive(Default)]
pub(super) struct Outcome {
    result: Mutex<Option<Result<Option<i64>, KafkaError>>>,
    done: Condvar,
}

impl Outcome {
    pub(super) fn complete(&self, r: Result<Option<i64>, KafkaError>) {
        let mut g = self.result.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(r);
        }
        self.done.notify_all();
    }
}

/// A pending delivery returned by [`Producer::enqueue`](super::Producer::enqueue); [`DeliveryHandle::wait`] blocks for it.
pub struct DeliveryHandle {
    pub(super) outcome: Result<(Arc<Outcome>, i32), KafkaError>,
    pub(super) partition: i32,
}

impl DeliveryHandle {
    /// Block until the record is acknowledged or failed.
    pub fn wait(self) -> Result<Delivery, KafkaError> {
        let (outcome, index) = self.outcome?;
        let mut g = outcome.result.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(r) = g.as_ref() {
                return match r {
                    Ok(base) => Ok(Delivery {
                        partition: self.partition,
                        offset: base.map(|b| b + index as i64),
                    }),
                    Err(e) => Err(e.clone()),
                };
            }
            g = outcome.done.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The result, if already known, without blocking.
    pub fn try_result(&self) -> Option<Result<Delivery, KafkaError>> {
        let (outcome, index) = match &self.outcome {
            Ok(o) => o,
            Err(e) => return Some(Err(e.clone())),
        };
        let g = outcome.result.lock().unwrap_or_else(|p| p.into_inner());
        g.as_ref().map(|r| match r {
            Ok(base) => Ok(Delivery {
                partition: self.partition,
                offset: base.map(|b| b + *index as i64),
            }),
            Err(e) => Err(e.clone()),
        })
    }
}
