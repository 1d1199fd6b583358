//! The real parts behind the forwarder's two traits: the Avro codec as [`RecordEncoder`] and the Kafka
//! producer as [`RecordSink`] (its settings from
//! [`KafkaSettings::producer_config`](crate::config::KafkaSettings::producer_config)).
//!
//! Must not hold forwarder logic (that is in `forward::run` and the sender) nor change what the codec or
//! the producer do: it only adapts their signatures.

use std::io::BufRead;

use super::{
    Delivery, ForwardError, LazySink, OutRecord, RecordEncoder, RecordSink, Refusal, Snapshot,
    StopFlag,
};
use crate::codec::{Codec, KeyBytes, LineError};
use crate::config::Config;
use crate::kafka::KafkaError;
use crate::kafka::producer::Producer;

impl RecordEncoder for Codec {
    type Error = LineError;
    fn encode_line_into<'l>(
        &self,
        subject: &str,
        line: &'l [u8],
        key_field: Option<&str>,
        out: &mut Vec<u8>,
    ) -> Result<Option<KeyBytes<'l>>, LineError> {
        self.encode_json_line_into(subject, line, key_field, out)
    }
}

impl RecordSink for Producer {
    type Error = KafkaError;
    fn send_batch(
        &mut self,
        topic: &str,
        records: &[OutRecord],
    ) -> Vec<Result<Delivery, KafkaError>> {
        Producer::send_batch(self, topic, records)
    }

    fn permanent(error: &KafkaError) -> Option<crate::error::Kind> {
        error.permanent_rejection()
    }

    fn refusal(error: &KafkaError) -> Option<Refusal> {
        Some(Refusal {
            kind: error.setup_refusal()?,
            timestamp: error.refused_timestamp(),
        })
    }

    fn retry_note(&mut self) -> Option<crate::kafka::producer::RetryNote> {
        Some(Producer::retry_note(self))
    }
}

/// Run the forwarder with its real parts: the codec over the configured registry URLs and/or offline
/// cache, and the producer from the `[kafka]` settings (it connects on first use, so the forwarder
/// starts and spools while the broker is down; with `forward.exactly_once` it is the transactional
/// `TxnSink` (`forward/transactional.rs`)). `stdin` feeds the `stdin` input, if there is one.
pub fn run_configured(
    cfg: &Config,
    stdin: Box<dyn BufRead + Send>,
    stop: StopFlag,
) -> Result<Snapshot, ForwardError> {
    let source =
        crate::registry::open_source(&cfg.registry.urls, cfg.registry.schema_cache.as_deref())?;
    let codec = Codec::new(source);
    let pcfg = cfg.kafka.producer_config();
    if cfg.forward.exactly_once {
        let sink = super::transactional::TxnSink::new(pcfg, &cfg.forward.positions_topic);
        return super::run(cfg, codec, sink, stdin, stop);
    }
    let sink = LazySink::new(move || Producer::new(pcfg.clone()));
    super::run(cfg, codec, sink, stdin, stop)
}
