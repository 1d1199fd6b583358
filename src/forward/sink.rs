//! What the sender sends through: [`RecordSink`] (a batch in, one result per record out, in order),
//! [`Refusal`] (a failure that fixing the setup cures) and [`LazySink`] (connects on first use).
//!
//! Must not know Avro nor the spool: a sink is handed the producer's [`OutRecord`]s and answers with
//! [`Delivery`]s; deciding what stays in the spool is the sender's job.

use super::Transactions;
use crate::error::{ErrorKind, Kind};

use crate::kafka::RefusedTimestamp;
use crate::kafka::producer::{Delivery, OutRecord};

/// A refusal that fixing the setup cures ([`RecordSink::refusal`]): its kind and, for a refused
/// timestamp, what the broker said about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// E.g. `clock-ahead-of-broker`, `topic-authorization-failed`, `auth-failed`, `unknown-topic`.
    pub kind: Kind,
    /// For a refused timestamp (our clock at the send): the timestamp and the range the broker
    /// accepted, when it named them.
    pub timestamp: Option<RefusedTimestamp>,
}

/// Sends records to a topic and says, per record and in input order, whether the broker acknowledged it.
/// The real one is `crate::kafka::producer::Producer::send_batch`. A result vector shorter than `records` means
/// the records without a result were not acknowledged. A record that fails (for a reason that is not
/// [permanent](RecordSink::permanent)) must fail every later record of its partition in the same call,
/// as the producer does, or a retry would put it behind them.
pub trait RecordSink: Send {
    /// Why a record was not acknowledged; its kind goes to the metrics and the log.
    type Error: ErrorKind + Send + 'static;
    /// Send `records` to `topic` and return one result per record, in order (possibly fewer).
    fn send_batch(
        &mut self,
        topic: &str,
        records: &[OutRecord],
    ) -> Vec<Result<Delivery, Self::Error>>;

    /// Why the broker refuses the record `error` was returned for for good (sending it again fails the
    /// same way, whatever the setup), such as [`Kind::MessageTooLarge`]; the sender then dead-letters
    /// it. `None` (the default) for an error that a retry, or a fix of the setup, can get past: the
    /// record stays in the spool.
    fn permanent(_error: &Self::Error) -> Option<Kind> {
        None
    }

    /// Why the setup refuses the record `error` was returned for, when a fix of the setup cures it
    /// (our clock, an ACL, the credentials, a missing topic): the record stays in the spool like any
    /// record that is not [permanent](RecordSink::permanent), and the refusal is told with its
    /// kind. `None` (the default) for a passing failure (a broker down, a leader moving).
    fn refusal(_error: &Self::Error) -> Option<Refusal> {
        None
    }

    /// The sink's last retried error, read while a send blocks (`stall`); `None` (default): none.
    fn retry_note(&mut self) -> Option<crate::kafka::producer::RetryNote> {
        None
    }

    /// The sink's transactions, for the exactly-once sender; `None` (the default): it has none.
    fn transactions(&mut self) -> Option<&mut dyn Transactions<Error = Self::Error>> {
        None
    }
}

/// A sink that connects on first use and again after a failed connect, so the forwarder starts and
/// spools while the broker is down. `connect` is e.g. `move || Producer::connect(cfg.clone())`.
pub struct LazySink<S: RecordSink, F: FnMut() -> Result<S, S::Error> + Send> {
    sink: Option<S>,
    connect: F,
}

impl<S: RecordSink, F: FnMut() -> Result<S, S::Error> + Send> LazySink<S, F> {
    /// A sink that calls `connect` on its first send (nothing is connected yet).
    pub fn new(connect: F) -> Self {
        LazySink {
            sink: None,
            connect,
        }
    }
}

impl<S: RecordSink, F: FnMut() -> Result<S, S::Error> + Send> RecordSink for LazySink<S, F> {
    type Error = S::Error;
    fn send_batch(
        &mut self,
        topic: &str,
        records: &[OutRecord],
    ) -> Vec<Result<Delivery, S::Error>> {
        if self.sink.is_none() {
            match (self.connect)() {
                Ok(s) => self.sink = Some(s),
                Err(e) => return vec![Err(e)],
            }
        }
        match self.sink.as_mut() {
            Some(s) => s.send_batch(topic, records),
            None => Vec::new(),
        }
    }

    fn permanent(error: &S::Error) -> Option<Kind> {
        S::permanent(error)
    }

    fn refusal(error: &S::Error) -> Option<Refusal> {
        S::refusal(error)
    }

    /// Connects first, as a send would (so the note is there before the first send blocks).
    fn retry_note(&mut self) -> Option<crate::kafka::producer::RetryNote> {
        self.sink = self.sink.take().or_else(|| (self.connect)().ok());
        self.sink.as_mut()?.retry_note()
    }
}
