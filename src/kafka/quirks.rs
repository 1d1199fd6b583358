//! Broker quirks: every workaround this client carries for a broker that is not Apache Kafka, in
//! one place. Each is switched on per connection by [`Quirks`], from what the broker's
//! ApiVersions answer says it is; on Apache Kafka none of them runs.
//!
//! | broker | quirk | symptom without the workaround | workaround (where it is applied) |
//! | --- | --- | --- | --- |
//! | tansu 0.6.0 | flexible Fetch v12 answers carry a v16+ tag | every Fetch answer fails to decode | Fetch capped at v11 ([`Quirks::fetch_version`]; `consumer/fetch.rs`) |
//! | tansu 0.6.0 | a Fetch from an offset inside a batch returns only the batches that *start* at or after it (Kafka returns the batch holding the offset) | records between the position and the next batch start are silently skipped, or the partition reads nothing | the fetch offset steps back (1, 2, 4, ... down to the log start) until a batch at or below the position comes back ([`Quirks::step_back`]; `consumer/fetch.rs`, `accept_or_probe`) |
//! | tansu 0.6.0 | ListOffsets "latest" answers the last batch's base offset + 1, not the log end | a consumer starting at "latest" re-reads the last batch | the high watermark of a Fetch is taken as the log end ([`Quirks::latest_from_high_watermark`]; `consumer/fetch.rs`, `reset_positions`) |
//! | tansu 0.6.0 | a new generation starts only when a member's JoinGroup metadata differs (Kafka rebalances whenever the leader rejoins) | the leader's own rejoin (partition count changed) does not reassign | the rejoin count goes into the subscription's user data ([`Quirks::rejoin_user_data`]; `consumer/membership.rs`) |
//! | tansu 0.6.0 | acks=0 Produce requests are answered | — | answers nobody awaits are dropped by correlation id, on any broker (Kafka never sends them; `conn.rs`, not switched) |
//!
//! How they are switched on, per connection ([`Quirks::detect`]), by the client's
//! [`BrokerQuirks`] setting (`ConsumerConfig::broker_quirks`):
//! - `BrokerQuirks::Auto` (the default): only when the broker is positively identified as tansu
//!   by its ApiVersions v3 answer. tansu 0.6.0 answers with no features and writes all four of the
//!   answer's tagged fields, each at its default value: supported features (tag 0) and finalized
//!   features (tag 2) empty, finalized-features epoch (tag 1) -1, ZkMigrationReady (tag 3) false
//!   (tansu-service `api.rs` sets them; tansu-sans-io writes every tagged field that is set).
//!   The sign is tags 1 and 3 written at their defaults. No Apache Kafka writes that: its generated
//!   writers leave out a tagged field at its default value (`MessageDataGenerator`), and brokers
//!   before 2.7 (KIP-584) have none of these tags. So Kafka 2.4–2.6 and ZooKeeper-mode clusters
//!   with an old inter-broker protocol, whose answers also decode to "no features, epoch -1",
//!   get no workaround.
//! - `BrokerQuirks::Tansu`: always (a tansu whose answer no longer carries the sign).
//! - `BrokerQuirks::None`: never.
//!
//! The sign is read from tansu's source; a run against tansu (`AVRO_EDGE_TEST_BROKER=tansu`)
//! checks it on the real broker (tests/kafka/producer.rs, `client_negotiates_and_reads_metadata`),
//! and the consumer's fake-broker tests answer as Kafka 2.6 and as tansu do (`consumer/tests.rs`).
//!
//! Must not do I/O, and must not switch a workaround on for a broker a real Kafka could be:
//! callers apply what it decides.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::{ApiVersionsResponse, BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::kafka::record::Fetched;

/// Highest Fetch version sent to tansu: tansu 0.6.0 puts a v16+ tag into flexible v12 answers.
const TANSU_MAX_FETCH_VERSION: i16 = 11;

/// Which workarounds for a broker that is not Apache Kafka the client may use
/// (`ConsumerConfig::broker_quirks`). Today they are tansu 0.6.0's: Fetch capped at v11, a fetch
/// whose answer does not reach back to the position stepped back, a "latest" position taken from
/// the high watermark, and the rejoin count sent as subscription user data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BrokerQuirks {
    /// Only for a broker positively identified as one that needs them (tansu 0.6.0).
    #[default]
    Auto,
    /// None, whatever the broker.
    None,
    /// tansu's, whatever the broker.
    Tansu,
}

/// The workarounds in force on one connection (none for Apache Kafka).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quirks {
    tansu: bool,
}

/// Where a partition's fetch stands, for [`Quirks::step_back`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Probe {
    /// The consumer's position (the next offset it hands out).
    pub position: i64,
    /// The offset the answer was fetched from (below `position` while stepping back).
    pub fetch_at: i64,
    /// The last step back (0 before the first).
    pub last_step: i64,
}

impl Quirks {
    /// The workarounds for a connection, by `setting` and the broker's ApiVersions v3 answer:
    /// decoded, and the whole response frame as read (correlation id first); `None` when the
    /// broker did not answer v3 (rule in the module doc).
    pub fn detect(setting: BrokerQuirks, v3: Option<(&ApiVersionsResponse, &[u8])>) -> Quirks {
        let tansu = match setting {
            BrokerQuirks::None => false,
            BrokerQuirks::Tansu => true,
            BrokerQuirks::Auto => v3.is_some_and(|(r, frame)| is_tansu(r, frame)),
        };
        Quirks { tansu }
    }

    /// Whether any workaround is on (the broker was taken for tansu).
    pub fn any(self) -> bool {
        self.tansu
    }

    /// The Fetch version to send, given the highest both sides support.
    pub fn fetch_version(self, negotiated: i16) -> i16 {
        if self.tansu {
            negotiated.min(TANSU_MAX_FETCH_VERSION)
        } else {
            negotiated
        }
    }

    /// Whether a "latest" position from ListOffsets must be corrected by a Fetch's high
    /// watermark ([`high_watermark_request`], then [`latest_offset`]).
    pub fn latest_from_high_watermark(self) -> bool {
        self.tansu
    }

    /// The subscription user data for a JoinGroup after `rejoins` rejoins this member asked
    /// for itself: the count, so that the metadata differs and tansu starts a new generation.
    pub fn rejoin_user_data(self, rejoins: u32) -> Option<Bytes> {
        (self.tansu && rejoins > 0).then(|| Bytes::copy_from_slice(&rejoins.to_be_bytes()))
    }

    /// The step-back probe: `None` to take the answer `fetched` (the common case, and always
    /// off tansu); `Some((offset, step))` to throw it away and fetch again from `offset`, `step`
    /// below the last fetch offset. An answer is taken when its first batch starts at or below
    /// the position, when nothing in it is readable and the log ends at the position, or when
    /// the fetch already went down to the log start.
    pub(crate) fn step_back(
        self,
        probe: Probe,
        fetched: &Fetched,
        high_watermark: i64,
        log_start: i64,
    ) -> Option<(i64, i64)> {
        let settled = match fetched.first_base {
            Some(base) => base <= probe.position,
            // Nothing readable: fine unless the log has records at or beyond the position.
            None => fetched.error.is_some() || high_watermark <= probe.position,
        };
        let floor = log_start.max(0);
        if !self.tansu || settled || probe.fetch_at <= floor {
            return None;
        }
        let step = (probe.last_step * 2).max(1);
        Some((probe.fetch_at.saturating_sub(step).max(floor), step))
    }
}

/// A Fetch that waits for nothing and asks for as few bytes as the broker allows: its answer
/// carries each partition's high watermark (the log end), for [`latest_offset`].
pub(crate) fn high_watermark_request<'a>(
    topics: impl Iterator<Item = (&'a str, &'a [i32])>,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1)
        .with_topics(
            topics
                .map(|(t, ps)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(
                            ps.iter()
                                .map(|p| {
                                    FetchPartition::default()
                                        .with_partition(*p)
                                        .with_fetch_offset(0)
                                        .with_partition_max_bytes(1)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

/// The "latest" position: what ListOffsets said, raised to the high watermark when one is known.
pub(crate) fn latest_offset(listed: i64, high_watermark: Option<i64>) -> i64 {
    high_watermark.map_or(listed, |hw| listed.max(hw))
}

/// tansu 0.6.0's ApiVersions v3 answer: no features, and the finalized-features epoch (tag 1,
/// -1) and ZkMigrationReady (tag 3, false) written at their default values.
fn is_tansu(v3: &ApiVersionsResponse, frame: &[u8]) -> bool {
    let no_features = v3.supported_features.is_empty()
        && v3.finalized_features.is_empty()
        && v3.finalized_features_epoch == -1;
    let written = |tag: u32, value: &[u8]| {
        api_versions_tags(frame).is_some_and(|tags| tags.contains(&(tag, value)))
    };
    no_features && written(1, &(-1i64).to_be_bytes()) && written(3, &[0])
}

/// The top-level tagged fields of an ApiVersions v3+ response frame (correlation id, then the
/// body: ApiVersions answers keep the v0 response header), as (tag, value bytes); `None` when
/// the frame does not parse that far.
fn api_versions_tags(frame: &[u8]) -> Option<Vec<(u32, &[u8])>> {
    let mut r = Wire(frame);
    r.take(4)?; // correlation id
    r.take(2)?; // error code
    let keys = r.uvarint()?.checked_sub(1)?; // compact array: length + 1
    for _ in 0..keys {
        r.take(6)?; // api key, min and max version
        r.tags()?;
    }
    r.take(4)?; // throttle time
    r.tags()
}

/// A reader of the flexible-version wire format over untrusted bytes.
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn uvarint(&mut self) -> Option<u32> {
        let mut v = 0u32;
        for i in 0..5 {
            let b = *self.take(1)?.first()?;
            v |= u32::from(b & 0x7f).checked_shl(7 * i)?;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// A tagged-field section: count, then (tag, size, bytes) each.
    fn tags(&mut self) -> Option<Vec<(u32, &'a [u8])>> {
        let n = self.uvarint()?;
        let mut out = Vec::new();
        for _ in 0..n {
            let tag = self.uvarint()?;
            let size = usize::try_from(self.uvarint()?).ok()?;
            out.push((tag, self.take(size)?));
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use avro_edge_testkit::{Imitate, api_versions_answer};
    use kafka_protocol::messages::api_versions_response::{
        ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
    };
    use kafka_protocol::protocol::{Decodable, Encodable};

    /// A v3 response frame: correlation id 1, then the body.
    fn frame(body: Vec<u8>) -> Vec<u8> {
        let mut out = 1i32.to_be_bytes().to_vec();
        out.extend(body);
        out
    }

    fn detect(setting: BrokerQuirks, frame: &[u8]) -> Quirks {
        let decoded = ApiVersionsResponse::decode(&mut Bytes::copy_from_slice(&frame[4..]), 3)
            .expect("the frame decodes");
        Quirks::detect(setting, Some((&decoded, frame)))
    }

    /// tansu 0.6.0's answer, as the test kit's fake broker writes it from tansu's source.
    fn tansu() -> Vec<u8> {
        frame(api_versions_answer(Imitate::Tansu060, 3))
    }

    /// Apache Kafka 2.6.0's answer: no tagged fields at all (feature flags came with 2.7).
    fn kafka_2_6() -> Vec<u8> {
        frame(api_versions_answer(Imitate::Kafka26, 3))
    }

    /// Apache Kafka 4.x (KRaft): metadata.version supported and finalized, epoch >= 0.
    fn kafka_4() -> Vec<u8> {
        let name = || StrBytes::from_static_str("metadata.version");
        let resp = ApiVersionsResponse::default()
            .with_api_keys(vec![
                ApiVersion::default().with_api_key(18).with_max_version(4),
            ])
            .with_supported_features(vec![
                SupportedFeatureKey::default()
                    .with_name(name())
                    .with_min_version(1)
                    .with_max_version(27),
            ])
            .with_finalized_features_epoch(42)
            .with_finalized_features(vec![
                FinalizedFeatureKey::default()
                    .with_name(name())
                    .with_min_version_level(27)
                    .with_max_version_level(27),
            ]);
        let mut body = Vec::new();
        resp.encode(&mut body, 3).unwrap();
        frame(body)
    }

    /// `frame` with its (empty) tagged-field section replaced by `tags`.
    fn with_tags(mut frame: Vec<u8>, tags: &[u8]) -> Vec<u8> {
        assert_eq!(frame.pop(), Some(0), "no tagged fields written");
        frame.extend_from_slice(tags);
        frame
    }

    #[test]
    fn tansu_is_identified_by_the_tagged_fields_it_writes_at_their_defaults() {
        assert_eq!(api_versions_tags(&tansu()).map(|t| t.len()), Some(4));
        assert!(detect(BrokerQuirks::Auto, &tansu()).any());
        assert!(!detect(BrokerQuirks::Auto, &kafka_4()).any());
    }

    /// Kafka 2.4–2.6 (and ZooKeeper clusters on an old inter-broker protocol) decode to the same
    /// "no features, epoch -1" as tansu: the fields alone cannot tell them apart, the bytes can.
    #[test]
    fn kafka_2_6_decodes_like_tansu_and_gets_no_workaround() {
        let bytes = kafka_2_6();
        let decoded = ApiVersionsResponse::decode(&mut Bytes::copy_from_slice(&bytes[4..]), 3)
            .expect("the frame decodes");
        assert!(decoded.supported_features.is_empty() && decoded.finalized_features.is_empty());
        assert_eq!(decoded.finalized_features_epoch, -1);
        assert!(!detect(BrokerQuirks::Auto, &bytes).any());
        // Only one of the two default-valued tags is not the sign either.
        let only_epoch = with_tags(
            kafka_2_6(),
            &[1, 1, 8, 255, 255, 255, 255, 255, 255, 255, 255],
        );
        assert!(!detect(BrokerQuirks::Auto, &only_epoch).any());
    }

    #[test]
    fn the_setting_forces_or_forbids_the_workarounds() {
        assert!(detect(BrokerQuirks::Tansu, &kafka_2_6()).any());
        assert!(Quirks::detect(BrokerQuirks::Tansu, None).any());
        assert!(!detect(BrokerQuirks::None, &tansu()).any());
        assert!(!Quirks::detect(BrokerQuirks::Auto, None).any());
    }

    #[test]
    fn a_truncated_or_hostile_frame_identifies_nothing() {
        let whole = tansu();
        for cut in 0..whole.len() {
            assert!(api_versions_tags(&whole[..cut]).is_none_or(|t| t.len() < 4));
        }
        // A count of 2^31 tags in a few bytes: no allocation, no panic.
        let hostile = with_tags(kafka_2_6(), &[0x80, 0x80, 0x80, 0x80, 0x08, 0]);
        assert!(api_versions_tags(&hostile).is_none());
    }

    #[test]
    fn the_step_back_probe_runs_only_with_tansu_quirks() {
        let tansu = Quirks { tansu: true };
        // The answer's first batch starts at 5, above the position 3: a compaction gap on Kafka,
        // the "batch holding the offset is missing" quirk on tansu.
        let gap = Fetched {
            first_base: Some(5),
            ..Fetched::default()
        };
        let probe = |fetch_at, last_step| Probe {
            position: 3,
            fetch_at,
            last_step,
        };
        assert_eq!(Quirks::default().step_back(probe(3, 0), &gap, 7, 0), None);
        assert_eq!(tansu.step_back(probe(3, 0), &gap, 7, 0), Some((2, 1)));
        assert_eq!(tansu.step_back(probe(2, 1), &gap, 7, 0), Some((0, 2)));
        // Down at the log start, or an answer that reaches back to the position: taken.
        assert_eq!(tansu.step_back(probe(0, 2), &gap, 7, 0), None);
        let reaches = Fetched {
            first_base: Some(2),
            ..Fetched::default()
        };
        assert_eq!(tansu.step_back(probe(2, 1), &reaches, 7, 0), None);
    }
}
