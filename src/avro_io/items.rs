//! One consumed message after the codec: [`Item`] (decoded, or undecodable with its coordinates,
//! raw bytes and error kind) and [`decode_records`].
//!
//! Must not drop a record it cannot decode: it becomes an [`Item::Undecodable`] in its place.

use std::sync::Arc;

use bytes::Bytes;

use crate::error::{ErrorKind, Kind};
use crate::kafka::record::RawRecord;

/// One consumed message after the codec.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// Decoded to natural JSON (a tombstone, with no value, decodes to `null`).
    Record {
        /// The topic.
        topic: Arc<str>,
        /// The partition.
        partition: i32,
        /// The message's offset in the partition.
        offset: i64,
        /// The message key, if any.
        key: Option<Bytes>,
        /// The message timestamp, milliseconds since the Unix epoch (create or log-append time, as
        /// the topic is configured).
        timestamp: i64,
        /// The message headers, in order (a header value may be null).
        headers: Vec<(String, Option<Bytes>)>,
        /// The decoded value as natural JSON.
        value: serde_json::Value,
    },
    /// The value did not decode: the coordinates, the raw bytes and why.
    Undecodable {
        /// The topic.
        topic: Arc<str>,
        /// The partition.
        partition: i32,
        /// The message's offset in the partition.
        offset: i64,
        /// The message key, if any.
        key: Option<Bytes>,
        /// The message timestamp, milliseconds since the Unix epoch (create or log-append time, as
        /// the topic is configured).
        timestamp: i64,
        /// The message value as received.
        raw: Bytes,
        /// The codec error's stable kind, e.g. `invalid-magic-byte` or `unknown-schema-id`.
        error_kind: Kind,
        /// The codec error's message.
        error: String,
    },
}

impl Item {
    /// The item for record `r` whose value `raw` did not decode with `error`.
    pub fn undecodable<E: ErrorKind + ?Sized>(r: RawRecord, raw: Bytes, error: &E) -> Item {
        Item::Undecodable {
            topic: r.topic,
            partition: r.partition,
            offset: r.offset,
            key: r.key,
            timestamp: r.timestamp,
            raw,
            error_kind: error.kind(),
            error: error.to_string(),
        }
    }

    /// `(topic, partition, offset)` of the message.
    pub fn coordinates(&self) -> (&str, i32, i64) {
        match self {
            Item::Record {
                topic,
                partition,
                offset,
                ..
            }
            | Item::Undecodable {
                topic,
                partition,
                offset,
                ..
            } => (topic, *partition, *offset),
        }
    }

    /// The dead-letter line for an undecodable message (`None` for a decoded one): coordinates,
    /// timestamp, key and raw value in base64, the error kind and message.
    pub fn dead_letter(&self) -> Option<serde_json::Value> {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        match self {
            Item::Record { .. } => None,
            Item::Undecodable {
                topic,
                partition,
                offset,
                key,
                timestamp,
                raw,
                error_kind,
                error,
            } => Some(serde_json::json!({
                "topic": &**topic,
                "partition": partition,
                "offset": offset,
                "timestamp": timestamp,
                "key_base64": key.as_deref().map(b64),
                "raw_base64": b64(raw),
                "error_kind": error_kind,
                "error": error,
            })),
        }
    }
}

/// Decode every record's value with `decode`; failures become [`Item::Undecodable`], in place.
pub fn decode_records<E, F>(records: Vec<RawRecord>, decode: F) -> Vec<Item>
where
    E: ErrorKind,
    F: Fn(&[u8]) -> Result<serde_json::Value, E>,
{
    records
        .into_iter()
        .map(|mut r| {
            // A tombstone (no value) decodes to null.
            let value = match r.value.take() {
                None => Ok(serde_json::Value::Null),
                Some(raw) => decode(&raw).map_err(|e| (raw, e)),
            };
            match value {
                Ok(value) => Item::Record {
                    topic: r.topic,
                    partition: r.partition,
                    offset: r.offset,
                    key: r.key,
                    timestamp: r.timestamp,
                    headers: r.headers,
                    value,
                },
                Err((raw, e)) => Item::undecodable(r, raw, &e),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("bad magic byte 0x{0:02x}")]
    struct BadMagic(u8);
    impl ErrorKind for BadMagic {
        fn kind(&self) -> Kind {
            Kind::InvalidMagicByte
        }
    }

    #[test]
    fn undecodable_values_become_dead_letter_items_in_place() {
        let raw = |offset: i64, value: Option<&'static [u8]>| RawRecord {
            topic: "t".into(),
            partition: 2,
            offset,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from_static(b"\xffk")),
            headers: vec![],
            value: value.map(Bytes::from_static),
        };
        let records = vec![
            raw(7, Some(b"\x00ok")),
            raw(8, Some(b"\x01no")),
            raw(9, None),
        ];
        let items = decode_records(records, |b: &[u8]| match b.first() {
            Some(0) => Ok(serde_json::json!({"ok": true})),
            other => Err(BadMagic(other.copied().unwrap_or(0))),
        });
        assert_eq!(
            items.iter().map(|i| i.coordinates().2).collect::<Vec<_>>(),
            vec![7, 8, 9]
        );
        assert!(matches!(&items[0], Item::Record { value, .. } if value["ok"] == true));
        assert!(items[0].dead_letter().is_none());
        assert!(
            matches!(
                &items[2],
                Item::Record {
                    value: serde_json::Value::Null,
                    ..
                }
            ),
            "tombstone"
        );
        let dl = items[1].dead_letter().unwrap();
        assert_eq!(dl["topic"], "t");
        assert_eq!(dl["partition"], 2);
        assert_eq!(dl["offset"], 8);
        assert_eq!(dl["raw_base64"], "AW5v"); // 0x01 'n' 'o'
        assert_eq!(dl["key_base64"], "/2s="); // 0xff 'k'
        assert_eq!(dl["error_kind"], "invalid-magic-byte");
        assert_eq!(dl["error"], "bad magic byte 0x01");
    }
}
