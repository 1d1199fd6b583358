//! The real parts behind the forwarder's two traits: the Avro codec as [`RecordEncoder`] and the Kafka
//! producer as [`RecordSink`], and the mapping of the forwarder's `[kafka]` settings onto a
//! [`ProducerConfig`].
//!
//! Must not hold forwarder logic (that is in `forward::run` and the sender) nor change what the codec or
//! the producer do: it only adapts their signatures.

use std::io::BufRead;

use super::{
    Delivery, ForwardError, LazySink, OutRecord, RecordEncoder, RecordSink, Snapshot, StopFlag,
};
use crate::codec::{Codec, KeyBytes, LineError};
use crate::config::{Config, KafkaSettings};
use crate::kafka::producer::{Producer, ProducerConfig};
use crate::kafka::{KafkaError, TopicSpec};

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
}

/// The producer settings for the forwarder's `[kafka]` section (everything else at the producer's
/// defaults).
pub fn producer_config(k: &KafkaSettings) -> ProducerConfig {
    let mut p = ProducerConfig::new(k.brokers.clone());
    p.acks = k.acks;
    p.enable_idempotence = k.enable_idempotence;
    p.max_in_flight = k.max_in_flight;
    p.compression = k.compression;
    p.linger = k.linger;
    p.batch_size = k.batch_size;
    p.client_id = k.client_id.clone();
    p.request_timeout = k.request_timeout;
    p.delivery_timeout = k.delivery_timeout;
    p.sasl = k.sasl_config();
    #[cfg(feature = "tls")]
    {
        p.tls = k.tls_config();
    }
    p.auto_create = k.create_partitions.map(|partitions| TopicSpec {
        partitions,
        // The broker's `default.replication.factor` (KIP-464): 1 on a single node, the cluster's
        // choice on a real one (replication 1 there loses the partition with one broker).
        replication: -1,
    });
    p
}

/// Run the forwarder with its real parts: the codec over the configured registry URLs and/or offline
/// cache, and the producer from the `[kafka]` settings (it connects on first use, so the forwarder
/// starts and spools while the broker is down). `stdin` feeds the `stdin` input, if there is one.
pub fn run_configured(
    cfg: &Config,
    stdin: Box<dyn BufRead + Send>,
    stop: StopFlag,
) -> Result<Snapshot, ForwardError> {
    let source =
        crate::registry::open_source(&cfg.registry.urls, cfg.registry.schema_cache.as_deref())?;
    let codec = Codec::new(source);
    let pcfg = producer_config(&cfg.kafka);
    let sink = LazySink::new(move || Producer::new(pcfg.clone()));
    super::run(cfg, codec, sink, stdin, stop)
}
