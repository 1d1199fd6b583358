//! The step between an input and the spool: [`RecordEncoder`] (what turns a line into a framed value
//! and its key) and [`Ingest`] (encode, append to the spool, or dead-letter the line with a reason).
//!
//! Must not encode Avro itself (the encoder does) nor send anything (the sender reads the spool), and
//! must not drop a line without counting it: each is spooled, dead-lettered or counted as dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::inputs::{Flow, Line};
use super::{DeadLetter, Metrics, metrics};
use crate::codec::KeyBytes;
use crate::config::InputConfig;
use crate::error::{ErrorKind, Kind};
use crate::spool::{Spool, SpoolError};

/// Turns one NDJSON line into the bytes of a Kafka message value (Confluent framing) and its key.
/// The real one is `crate::codec::Codec::encode_json_line_into`.
pub trait RecordEncoder: Send + Sync {
    /// Why a line cannot be encoded; its kind and message go to the dead-letter file (a line that is
    /// not JSON: kind `not-json` and serde_json's message, before any schema error).
    type Error: ErrorKind + Send + Sync + 'static;
    /// Append the framed message value for the record on `line` under `subject`'s writer schema to
    /// `out` (the caller clears it between records, so one buffer serves them all), and return the
    /// Kafka key from the top-level field `key_field` (see [`crate::record_key`]).
    fn encode_line_into<'l>(
        &self,
        subject: &str,
        line: &'l [u8],
        key_field: Option<&str>,
        out: &mut Vec<u8>,
    ) -> Result<Option<KeyBytes<'l>>, Self::Error>;
}

/// The step between an input and the spool: parse, encode, key, append; or dead-letter with a reason.
pub struct Ingest<E: RecordEncoder> {
    encoder: Arc<E>,
    spool: Arc<Spool>,
    dead: Arc<DeadLetter>,
    metrics: Arc<Metrics>,
    /// The encoded value of the record at hand, reused from record to record.
    value: Vec<u8>,
}

impl<E: RecordEncoder> Clone for Ingest<E> {
    fn clone(&self) -> Self {
        Ingest {
            encoder: self.encoder.clone(),
            spool: self.spool.clone(),
            dead: self.dead.clone(),
            metrics: self.metrics.clone(),
            value: Vec::new(),
        }
    }
}

impl<E: RecordEncoder> Ingest<E> {
    pub fn new(
        encoder: Arc<E>,
        spool: Arc<Spool>,
        dead: Arc<DeadLetter>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Ingest {
            encoder,
            spool,
            dead,
            metrics,
            value: Vec::new(),
        }
    }

    fn reject(&self, input: &InputConfig, line: &[u8], truncated: bool, kind: Kind, message: &str) {
        metrics::add(&self.metrics.dead_lettered, 1);
        tracing::debug!(input = %input.name, kind = kind.as_str(), "input line dead-lettered");
        if let Err(e) = self.dead.write(&input.name, line, truncated, kind, message) {
            tracing::error!(error = %e, path = %self.dead.path().display(), "cannot write the dead-letter file");
            self.metrics.set_error(Kind::DeadLetterIo, &e.to_string());
        }
    }

    /// Handle one input line. `Flow::Stop` when the spool no longer accepts records (shutting down).
    pub fn handle(&mut self, input: &InputConfig, line: Line, stop: &AtomicBool) -> Flow {
        metrics::add(&self.metrics.received, 1);
        let bytes = match line {
            Line::Ok(b) => b,
            Line::TooLong { prefix, len } => {
                self.reject(
                    input,
                    prefix,
                    true,
                    Kind::LineTooLong,
                    &format!("line of {len} bytes is longer than max_line_bytes"),
                );
                return Flow::Continue;
            }
        };
        let mut value = std::mem::take(&mut self.value);
        value.clear();
        let encoded = self.encoder.encode_line_into(
            &input.subject,
            bytes,
            input.key_field.as_deref(),
            &mut value,
        );
        let flow = match encoded {
            Ok(key) => self.append(input, bytes, key.as_deref(), &value, stop),
            Err(e) => {
                self.reject(input, bytes, false, e.kind(), &e.to_string());
                Flow::Continue
            }
        };
        self.value = value;
        flow
    }

    /// Append an encoded record to the spool, waiting out disk trouble (back-pressure).
    fn append(
        &self,
        input: &InputConfig,
        bytes: &[u8],
        key: Option<&[u8]>,
        value: &[u8],
        stop: &AtomicBool,
    ) -> Flow {
        loop {
            match self.spool.append(&input.topic, key, value) {
                Ok(_) => {
                    metrics::add(&self.metrics.spooled, 1);
                    return Flow::Continue;
                }
                Err(SpoolError::Interrupted) => {
                    metrics::add(&self.metrics.dropped_input, 1);
                    tracing::warn!(input = %input.name, "record read after stop was not accepted (counted as dropped)");
                    return Flow::Stop;
                }
                Err(e @ SpoolError::RecordTooLarge { .. }) => {
                    self.reject(input, bytes, false, e.kind(), &e.to_string());
                    return Flow::Continue;
                }
                Err(e) => {
                    // Disk trouble: keep the record and stop reading until the spool takes it (back-pressure).
                    tracing::error!(error = %e, input = %input.name, "spool append failed; retrying in 1 s");
                    self.metrics.set_error(e.kind(), &e.to_string());
                    if stop.load(Ordering::Relaxed) {
                        metrics::add(&self.metrics.dropped_input, 1);
                        return Flow::Stop;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }
}
