//! Subject naming strategies: which registry subject a topic's key or value schema lives under.
//!
//! Must not talk HTTP or touch the cache.

use std::str::FromStr;

use super::RegistryError;

/// How a subject name is made from a topic and a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectNameStrategy {
    /// `<topic>-value` / `<topic>-key` (Confluent's `TopicNameStrategy`, the default).
    #[default]
    Topic,
    /// The record's full name (`RecordNameStrategy`).
    Record,
    /// `<topic>-<record full name>` (`TopicRecordNameStrategy`).
    TopicRecord,
}

impl FromStr for SubjectNameStrategy {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "topic" | "topicnamestrategy" => Ok(SubjectNameStrategy::Topic),
            "record" | "recordnamestrategy" => Ok(SubjectNameStrategy::Record),
            "topic-record" | "topicrecordnamestrategy" => Ok(SubjectNameStrategy::TopicRecord),
            _ => Err(RegistryError::Config(format!(
                "unknown subject naming strategy {s:?} (topic, record, topic-record)"
            ))),
        }
    }
}

impl SubjectNameStrategy {
    /// The subject for `topic`'s key (`is_key`) or value, whose record type is `record_fullname`
    /// (needed by the record strategies only).
    pub fn subject(
        self,
        topic: &str,
        is_key: bool,
        record_fullname: Option<&str>,
    ) -> Result<String, RegistryError> {
        let record = || {
            record_fullname.filter(|n| !n.is_empty()).ok_or_else(|| {
                RegistryError::Config(
                    "this subject naming strategy needs a named (record) schema".into(),
                )
            })
        };
        match self {
            SubjectNameStrategy::Topic => {
                Ok(format!("{topic}-{}", if is_key { "key" } else { "value" }))
            }
            SubjectNameStrategy::Record => Ok(record()?.to_string()),
            SubjectNameStrategy::TopicRecord => Ok(format!("{topic}-{}", record()?)),
        }
    }

    /// The subject for `topic` with the writer schema `schema` (its full name, for the record strategies).
    pub fn subject_for_schema(
        self,
        topic: &str,
        is_key: bool,
        schema: &str,
    ) -> Result<String, RegistryError> {
        match self {
            SubjectNameStrategy::Topic => self.subject(topic, is_key, None),
            _ => {
                let parsed = crate::schema::ParsedSchema::parse(schema)?;
                self.subject(topic, is_key, parsed.full_name().as_deref())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies() {
        let t: SubjectNameStrategy = "topic".parse().unwrap();
        assert_eq!(
            t.subject("sensor-data", false, None).unwrap(),
            "sensor-data-value"
        );
        assert_eq!(
            t.subject("sensor-data", true, None).unwrap(),
            "sensor-data-key"
        );
        let r: SubjectNameStrategy = "record".parse().unwrap();
        assert_eq!(
            r.subject("sensor-data", false, Some("io.x.SensorData"))
                .unwrap(),
            "io.x.SensorData"
        );
        assert!(r.subject("sensor-data", false, None).is_err());
        let tr: SubjectNameStrategy = "topic-record".parse().unwrap();
        assert_eq!(
            tr.subject("sensor-data", false, Some("io.x.SensorData"))
                .unwrap(),
            "sensor-data-io.x.SensorData"
        );
        assert!("nope".parse::<SubjectNameStrategy>().is_err());
        let schema = r#"{"type":"record","name":"SensorData","namespace":"io.edge","fields":[]}"#;
        assert_eq!(
            tr.subject_for_schema("t", false, schema).unwrap(),
            "t-io.edge.SensorData"
        );
        assert_eq!(
            t.subject_for_schema("t", true, "not even json").unwrap(),
            "t-key"
        );
    }
}
