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
//! How they are switched on: [`Quirks::detect`] reads the connection's ApiVersions v3 answer.
//! The broker is taken for tansu when it lists no supported and no finalized features with a
//! finalized-features epoch of -1, which is what tansu 0.6.0 sends (tansu-service `api.rs`).
//! Apache Kafka in KRaft mode (3.3+, and every 4.x) always lists `metadata.version` among both,
//! with an epoch of 0 or more, so it never matches.
//!
//! Must not do I/O: callers apply what it decides.

use bytes::Bytes;
use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::protocol::StrBytes;

use crate::kafka::record::Fetched;

/// Highest Fetch version sent to tansu: tansu 0.6.0 puts a v16+ tag into flexible v12 answers.
const TANSU_MAX_FETCH_VERSION: i16 = 11;

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
    /// The workarounds for the broker that sent this ApiVersions v3 answer (rule in the module doc).
    pub fn detect(v3: &ApiVersionsResponse) -> Quirks {
        Quirks {
            tansu: v3.supported_features.is_empty()
                && v3.finalized_features.is_empty()
                && v3.finalized_features_epoch == -1,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::{
        FinalizedFeatureKey, SupportedFeatureKey,
    };

    #[test]
    fn tansu_is_told_from_kafka_by_its_api_versions_features() {
        // tansu 0.6.0: no features, epoch -1.
        let tansu = ApiVersionsResponse::default()
            .with_finalized_features_epoch(-1)
            .with_supported_features(vec![])
            .with_finalized_features(vec![]);
        assert!(Quirks::detect(&tansu).any());
        // Apache Kafka (KRaft): metadata.version supported and finalized, epoch >= 0.
        let name = || StrBytes::from_static_str("metadata.version");
        let kafka = ApiVersionsResponse::default()
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
        assert!(!Quirks::detect(&kafka).any());
    }
}
