//! Small real implementations of the forwarder's two seams for tests: an encoder that checks a record
//! against the SensorData schema's rules (required fields, types, enum symbols, long range) and emits JSON,
//! and a sink that appends to a shared Vec and can be told to fail.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use avro_edge::forwarder::{RecordEncoder, RecordSink};
use avro_edge::{Delivery, KeyBytes, OutRecord};
use avro_edge::{ErrorKind, Kind};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum TestEncodeError {
    #[error(transparent)]
    NotJson(serde_json::Error),
    #[error("missing field '{0}'")]
    Missing(String),
    #[error("field '{0}' has the wrong type")]
    WrongType(String),
    #[error("'{0}' is not a symbol of SensorStatus")]
    Symbol(String),
    #[error("field '{0}' is out of range")]
    Range(String),
}

impl ErrorKind for TestEncodeError {
    fn kind(&self) -> Kind {
        match self {
            TestEncodeError::NotJson(_) => Kind::NotJson,
            TestEncodeError::Missing(_) => Kind::MissingField,
            TestEncodeError::WrongType(_) => Kind::WrongType,
            TestEncodeError::Symbol(_) => Kind::UnknownEnumSymbol,
            TestEncodeError::Range(_) => Kind::IntOutOfRange,
        }
    }
}

/// Checks the SensorData rules of `schemas/sensor-data.avsc`, then writes the record as JSON.
pub struct SensorEncoder;

impl RecordEncoder for SensorEncoder {
    type Error = TestEncodeError;
    fn encode_line_into<'l>(
        &self,
        _subject: &str,
        line: &'l [u8],
        key_field: Option<&str>,
        out: &mut Vec<u8>,
    ) -> Result<Option<KeyBytes<'l>>, TestEncodeError> {
        let r = &avro_edge::parse_record(line).map_err(TestEncodeError::NotJson)?;
        let obj = r
            .as_object()
            .ok_or_else(|| TestEncodeError::WrongType("(record)".into()))?;
        let get = |k: &str| obj.get(k).ok_or_else(|| TestEncodeError::Missing(k.into()));
        if !get("sensorId")?.is_string() {
            return Err(TestEncodeError::WrongType("sensorId".into()));
        }
        let ts = get("timestamp")?;
        if !ts.is_number() {
            return Err(TestEncodeError::WrongType("timestamp".into()));
        }
        if ts.as_i64().is_none() {
            return Err(TestEncodeError::Range("timestamp".into()));
        }
        for f in ["temperature", "humidity"] {
            if let Some(v) = obj.get(f)
                && !(v.is_null() || v.is_number())
            {
                return Err(TestEncodeError::WrongType(f.into()));
            }
        }
        match get("status")? {
            Value::String(s) if ["NORMAL", "WARNING", "CRITICAL"].contains(&s.as_str()) => {}
            Value::String(s) => return Err(TestEncodeError::Symbol(s.clone())),
            _ => return Err(TestEncodeError::WrongType("status".into())),
        }
        serde_json::to_writer(out, r).unwrap();
        Ok(key_field
            .and_then(|f| avro_edge::record_key(r, f))
            .map(KeyBytes::Owned))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("test broker unavailable")]
pub struct SinkDown;

impl ErrorKind for SinkDown {
    fn kind(&self) -> Kind {
        Kind::BrokerUnreachable
    }
}

/// One delivered record.
#[derive(Debug, Clone)]
pub struct Got {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Value,
}

/// Appends to a shared Vec. `fail_batches` makes the next N calls fail completely;
/// `fail_after` makes the next call acknowledge only its first K records (the rest fail).
#[derive(Clone, Default)]
pub struct VecSink {
    pub got: Arc<Mutex<Vec<Got>>>,
    pub fail_batches: Arc<AtomicUsize>,
    pub fail_after: Arc<Mutex<Option<usize>>>,
    pub calls: Arc<AtomicUsize>,
}

impl VecSink {
    pub fn delivered(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

impl RecordSink for VecSink {
    type Error = SinkDown;
    fn send_batch(
        &mut self,
        topic: &str,
        records: &[OutRecord],
    ) -> Vec<Result<Delivery, SinkDown>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail_batches.load(Ordering::SeqCst) > 0 {
            self.fail_batches.fetch_sub(1, Ordering::SeqCst);
            return records.iter().map(|_| Err(SinkDown)).collect();
        }
        let limit = self.fail_after.lock().unwrap().take().unwrap_or(usize::MAX);
        let mut got = self.got.lock().unwrap();
        records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                if i >= limit {
                    return Err(SinkDown);
                }
                got.push(Got {
                    topic: topic.into(),
                    key: r.key.clone(),
                    value: serde_json::from_slice(&r.value).unwrap(),
                });
                Ok(Delivery {
                    partition: 0,
                    offset: Some(got.len() as i64 - 1),
                })
            })
            .collect()
    }
}

/// A good SensorData line with a unique id in `sensorId`'s reading number (`timestamp`).
pub fn good_line(id: u64) -> String {
    format!(
        r#"{{"sensorId":"sensor-{}","timestamp":{},"temperature":21.5,"humidity":null,"status":"NORMAL"}}"#,
        id % 5,
        1_700_000_000_000u64 + id
    )
}

pub fn id_of(v: &Value) -> u64 {
    v["timestamp"].as_u64().unwrap() - 1_700_000_000_000
}
