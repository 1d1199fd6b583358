//! Consumer-group logic that needs no I/O: the `range` and `roundrobin` assignors (Kafka's Java
//! semantics, so a mixed group of Java, librdkafka, kafkajs and avro-edge members agrees on the
//! result), the consumer-protocol subscription/assignment bytes carried inside JoinGroup/SyncGroup,
//! and the member state machine that says what to do after each coordinator answer.
//!
//! Must not do I/O, sleep or hold sockets: [`crate::kafka::consumer`] drives it with real requests.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::consumer_protocol_assignment::{
    ConsumerProtocolAssignment, TopicPartition as AssignedPartitions,
};
use kafka_protocol::messages::consumer_protocol_subscription::ConsumerProtocolSubscription;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::error::{ErrorKind, Kind};

/// The JoinGroup `protocol_type` of every consumer group.
pub const PROTOCOL_TYPE: &str = "consumer";

/// Partitions per topic, sorted: what a member owns or is given.
pub type TopicPartitions = BTreeMap<String, Vec<i32>>;

/// Bytes from another member (through the coordinator) that are not a valid consumer-protocol message.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// A subscription or assignment that does not decode.
    #[error("bad consumer-protocol {what}: {reason}")]
    BadMetadata {
        /// Which message: `subscription` or `assignment`.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl ErrorKind for GroupError {
    fn kind(&self) -> Kind {
        match self {
            GroupError::BadMetadata { .. } => Kind::BadGroupMetadata,
        }
    }
}

fn bad(what: &'static str, reason: impl ToString) -> GroupError {
    GroupError::BadMetadata {
        what,
        reason: reason.to_string(),
    }
}

/// A partition assignment strategy, named as Kafka names it in JoinGroup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Assignor {
    /// Per topic, contiguous ranges of partitions to members sorted by id (Java `RangeAssignor`).
    #[default]
    Range,
    /// All partitions of all topics dealt one by one to members in a circle (Java `RoundRobinAssignor`).
    RoundRobin,
}

impl Assignor {
    /// The protocol name in JoinGroup: `range` or `roundrobin`.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
        }
    }

    /// The assignor with this protocol name, if we implement it.
    pub fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "range" => Some(Assignor::Range),
            "roundrobin" => Some(Assignor::RoundRobin),
            _ => None,
        }
    }

    /// Assign `partitions_per_topic` (topic → partition count) to `members`. Every member gets an
    /// entry, possibly empty; topics no member subscribed to, or missing from the counts, are skipped.
    pub fn assign(
        self,
        members: &[GroupMember],
        partitions_per_topic: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, TopicPartitions> {
        let mut sorted: Vec<&GroupMember> = members.iter().collect();
        sorted.sort_by(|a, b| a.java_order(b));
        let mut out: BTreeMap<String, TopicPartitions> = members
            .iter()
            .map(|m| (m.member_id.clone(), TopicPartitions::new()))
            .collect();
        match self {
            Assignor::Range => {
                let topics: BTreeSet<&String> =
                    members.iter().flat_map(|m| m.topics.iter()).collect();
                for topic in topics {
                    let Some(&count) = partitions_per_topic.get(topic) else {
                        continue;
                    };
                    let consumers: Vec<&&GroupMember> =
                        sorted.iter().filter(|m| m.topics.contains(topic)).collect();
                    let n = consumers.len() as i32;
                    if n == 0 || count <= 0 {
                        continue;
                    }
                    let per = count / n;
                    let extra = count % n;
                    for (i, m) in consumers.iter().enumerate() {
                        let i = i as i32;
                        let start = per * i + i.min(extra);
                        let len = per + if i + 1 > extra { 0 } else { 1 };
                        if len > 0 {
                            out.entry(m.member_id.clone())
                                .or_default()
                                .entry(topic.clone())
                                .or_default()
                                .extend(start..start + len);
                        }
                    }
                }
            }
            Assignor::RoundRobin => {
                let topics: BTreeSet<&String> =
                    members.iter().flat_map(|m| m.topics.iter()).collect();
                if sorted.is_empty() {
                    return out;
                }
                let mut next = 0usize;
                for topic in topics {
                    let Some(&count) = partitions_per_topic.get(topic) else {
                        continue;
                    };
                    for p in 0..count.max(0) {
                        // Java's CircularIterator: skip members not subscribed to this topic.
                        // At least one member is subscribed (the topic came from a subscription).
                        while !sorted[next % sorted.len()].topics.contains(topic) {
                            next += 1;
                        }
                        let m = sorted[next % sorted.len()];
                        next += 1;
                        out.entry(m.member_id.clone())
                            .or_default()
                            .entry(topic.clone())
                            .or_default()
                            .push(p);
                    }
                }
            }
        }
        out
    }
}

/// One member of a group as the leader sees it in the JoinGroup answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub topics: Vec<String>,
}

impl GroupMember {
    /// Java `MemberInfo.compareTo`: static members (with an instance id) first, by instance id;
    /// then dynamic members by member id.
    fn java_order(&self, other: &GroupMember) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (&self.group_instance_id, &other.group_instance_id) {
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => self.member_id.cmp(&other.member_id),
        }
    }
}

/// The highest consumer-protocol version we decode; newer versions are read as this one (their
/// extra fields come last, as Kafka's own forward-compatibility rule requires).
const MAX_PROTOCOL_VERSION: i16 = 3;

/// Split the version header off a consumer-protocol message.
fn split_version<'a>(
    mut bytes: &'a [u8],
    what: &'static str,
) -> Result<(i16, &'a [u8]), GroupError> {
    if bytes.len() < 2 {
        return Err(bad(what, "shorter than its version header"));
    }
    let version = bytes.get_i16();
    if version < 0 {
        return Err(bad(what, format!("negative version {version}")));
    }
    Ok((version, bytes))
}

/// Refuse a top-level count that the remaining bytes cannot possibly hold (each element takes at
/// least 2 bytes), in this module's words. Nested counts (a topic's partitions, user data, owned
/// partitions) are bounded by the protocol library itself (patched: `vendor/README.md`).
fn check_array_len(body: &[u8], what: &'static str) -> Result<(), GroupError> {
    if body.len() < 4 {
        return Err(bad(what, "truncated"));
    }
    let n = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    if n > 0 && (n as usize).saturating_mul(2) > body.len() - 4 {
        return Err(bad(
            what,
            format!("declares {n} entries in {} bytes", body.len()),
        ));
    }
    Ok(())
}

/// Our JoinGroup metadata: consumer-protocol subscription version 0 (topics and opaque user
/// data), which every client and broker version reads.
pub fn encode_subscription(topics: &[String], user_data: Option<Bytes>) -> Bytes {
    let sub = ConsumerProtocolSubscription::default()
        .with_topics(
            topics
                .iter()
                .map(|t| StrBytes::from_string(t.clone()))
                .collect(),
        )
        .with_user_data(user_data);
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    // Encoding a message we built ourselves cannot fail for v0 (no field is version-gated there).
    if sub.encode(&mut buf, 0).is_err() {
        buf.truncate(2);
        buf.put_i32(0);
        buf.put_i32(-1);
    }
    buf.freeze()
}

/// The topics of one member's JoinGroup metadata (any version, decoded leniently: a peer that
/// declares a version but writes only the v0 fields, as some clients do, is still understood).
pub fn decode_subscription(bytes: &[u8]) -> Result<Vec<String>, GroupError> {
    const WHAT: &str = "subscription";
    let (version, body) = split_version(bytes, WHAT)?;
    check_array_len(body, WHAT)?;
    let v = version.min(MAX_PROTOCOL_VERSION);
    let decoded = ConsumerProtocolSubscription::decode(&mut Bytes::copy_from_slice(body), v)
        .or_else(|e| {
            if v > 0 {
                ConsumerProtocolSubscription::decode(&mut Bytes::copy_from_slice(body), 0)
            } else {
                Err(e)
            }
        })
        .map_err(|e| bad(WHAT, e))?;
    Ok(decoded
        .topics
        .iter()
        .map(|t| t.as_str().to_string())
        .collect())
}

/// A member's SyncGroup assignment, consumer-protocol assignment version 0.
pub fn encode_assignment(assignment: &TopicPartitions) -> Bytes {
    let msg = ConsumerProtocolAssignment::default().with_assigned_partitions(
        assignment
            .iter()
            .filter(|(_, ps)| !ps.is_empty())
            .map(|(t, ps)| {
                AssignedPartitions::default()
                    .with_topic(TopicName(StrBytes::from_string(t.clone())))
                    .with_partitions(ps.clone())
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    if msg.encode(&mut buf, 0).is_err() {
        buf.truncate(2);
        buf.put_i32(0);
        buf.put_i32(-1);
    }
    buf.freeze()
}

/// The partitions in a SyncGroup answer. An empty answer means no partitions (the coordinator
/// sends that to members the leader gave nothing).
pub fn decode_assignment(bytes: &[u8]) -> Result<TopicPartitions, GroupError> {
    const WHAT: &str = "assignment";
    if bytes.is_empty() {
        return Ok(TopicPartitions::new());
    }
    let (version, body) = split_version(bytes, WHAT)?;
    check_array_len(body, WHAT)?;
    let v = version.min(MAX_PROTOCOL_VERSION);
    let decoded = ConsumerProtocolAssignment::decode(&mut Bytes::copy_from_slice(body), v)
        .map_err(|e| bad(WHAT, e))?;
    let mut out = TopicPartitions::new();
    for tp in decoded.assigned_partitions {
        let ps = out.entry(tp.topic.0.as_str().to_string()).or_default();
        ps.extend(tp.partitions);
        ps.sort_unstable();
        ps.dedup();
    }
    Ok(out)
}

/// What the consumer does next after a coordinator answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupAction {
    /// All is well: carry on.
    Continue,
    /// Send JoinGroup again (member id and generation were already updated as the error requires).
    Rejoin,
    /// The coordinator moved or is unknown: FindCoordinator, then rejoin if not stable.
    FindCoordinator,
    /// A transient error: retry the same request after a backoff.
    Retry,
    /// An error rejoining cannot fix (authorization, fenced instance, bad config...).
    Fatal(ResponseError),
}

/// Where a member stands in the group protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// Not in the group: the next step is JoinGroup.
    Unjoined,
    /// Joined a generation; the next step is SyncGroup.
    AwaitingSync,
    /// Has an assignment for the current generation; heartbeats keep it.
    Stable,
}

/// One member's view of its group: id, generation, leader and assignment, changed only through
/// the `on_*` methods that read coordinator answers.
#[derive(Clone, Debug)]
pub struct Membership {
    /// Empty until the coordinator gives us one.
    pub member_id: String,
    /// -1 when not in a generation.
    pub generation_id: i32,
    pub leader_id: String,
    /// The assignor the coordinator chose for this generation.
    pub protocol: Option<String>,
    pub assignment: TopicPartitions,
    state: MemberState,
}

impl Default for Membership {
    fn default() -> Self {
        Membership::new()
    }
}

/// Fresh, unjoined member.
impl Membership {
    pub fn new() -> Membership {
        Membership {
            member_id: String::new(),
            generation_id: -1,
            leader_id: String::new(),
            protocol: None,
            assignment: TopicPartitions::new(),
            state: MemberState::Unjoined,
        }
    }

    #[cfg(test)]
    pub fn state(&self) -> MemberState {
        self.state
    }

    pub fn is_stable(&self) -> bool {
        self.state == MemberState::Stable
    }

    /// True when this member must compute the assignment for the whole group.
    pub fn is_leader(&self) -> bool {
        !self.member_id.is_empty() && self.member_id == self.leader_id
    }

    /// Leave the group locally (after LeaveGroup, or when giving up): forget everything.
    pub fn reset(&mut self) {
        *self = Membership::new();
    }

    /// Ask for a new generation ourselves (the leader saw the subscribed topics' partitions
    /// change): like a rebalance notice, the id and generation stay, the assignment goes.
    pub fn request_rejoin(&mut self) {
        self.state = MemberState::Unjoined;
        self.assignment.clear();
    }

    /// The errors every group request shares. `Rejoin` results drop the assignment (eager
    /// rebalancing: everything is revoked, then reassigned).
    fn on_error(&mut self, code: i16) -> GroupAction {
        let Some(err) = ResponseError::try_from_code(code) else {
            return GroupAction::Continue;
        };
        match err {
            ResponseError::CoordinatorLoadInProgress | ResponseError::RequestTimedOut => {
                GroupAction::Retry
            }
            ResponseError::CoordinatorNotAvailable | ResponseError::NotCoordinator => {
                GroupAction::FindCoordinator
            }
            ResponseError::RebalanceInProgress => {
                // The generation stays valid for a last commit; the member id stays.
                self.state = MemberState::Unjoined;
                self.assignment.clear();
                GroupAction::Rejoin
            }
            ResponseError::IllegalGeneration => {
                // Kafka keeps the member id here and only drops the generation.
                self.generation_id = -1;
                self.state = MemberState::Unjoined;
                self.assignment.clear();
                GroupAction::Rejoin
            }
            ResponseError::UnknownMemberId => {
                self.member_id.clear();
                self.generation_id = -1;
                self.state = MemberState::Unjoined;
                self.assignment.clear();
                GroupAction::Rejoin
            }
            // Another consumer joined with our group.instance.id (KIP-345): this one is out
            // for good, as in Java (FencedInstanceIdException), whatever the request.
            ResponseError::FencedInstanceId => GroupAction::Fatal(err),
            other => GroupAction::Fatal(other),
        }
    }

    /// A JoinGroup answer. On success the member moves to `AwaitingSync` (the leader computes
    /// the assignment from the member list before syncing).
    pub fn on_join(
        &mut self,
        code: i16,
        generation_id: i32,
        member_id: &str,
        leader_id: &str,
        protocol: Option<&str>,
    ) -> GroupAction {
        if code == ResponseError::MemberIdRequired.code() {
            // KIP-394: the coordinator hands out an id and wants us back with it at once.
            self.member_id = member_id.to_string();
            self.state = MemberState::Unjoined;
            return GroupAction::Rejoin;
        }
        if code != 0 {
            let action = self.on_error(code);
            if matches!(action, GroupAction::FindCoordinator | GroupAction::Retry) {
                self.state = MemberState::Unjoined;
            }
            return action;
        }
        self.member_id = member_id.to_string();
        self.generation_id = generation_id;
        self.leader_id = leader_id.to_string();
        self.protocol = protocol.map(str::to_string);
        self.assignment.clear();
        self.state = MemberState::AwaitingSync;
        GroupAction::Continue
    }

    /// A SyncGroup answer with this member's assignment bytes.
    pub fn on_sync(&mut self, code: i16, assignment: &[u8]) -> Result<GroupAction, GroupError> {
        if code != 0 {
            let action = self.on_error(code);
            if !matches!(action, GroupAction::Fatal(_)) {
                // Whatever happened, this generation's sync is lost: join again.
                self.state = MemberState::Unjoined;
                if action == GroupAction::Retry {
                    return Ok(GroupAction::Rejoin);
                }
            }
            return Ok(action);
        }
        self.assignment = decode_assignment(assignment)?;
        self.state = MemberState::Stable;
        Ok(GroupAction::Continue)
    }

    /// A Heartbeat answer.
    pub fn on_heartbeat(&mut self, code: i16) -> GroupAction {
        self.on_error(code)
    }

    /// The top-level or a partition error of an OffsetCommit answer.
    pub fn on_commit(&mut self, code: i16) -> GroupAction {
        self.on_error(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, topics: &[&str]) -> GroupMember {
        GroupMember {
            member_id: id.to_string(),
            group_instance_id: None,
            topics: topics.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn counts(c: &[(&str, i32)]) -> BTreeMap<String, i32> {
        c.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn tp(c: &[(&str, &[i32])]) -> TopicPartitions {
        c.iter()
            .map(|(t, ps)| (t.to_string(), ps.to_vec()))
            .collect()
    }

    // Cases below are the ones in Kafka's RangeAssignorTest / RoundRobinAssignorTest.
    #[test]
    fn range_two_consumers_two_topics_three_partitions() {
        let ms = [
            member("consumer1", &["t1", "t2"]),
            member("consumer2", &["t1", "t2"]),
        ];
        let a = Assignor::Range.assign(&ms, &counts(&[("t1", 3), ("t2", 3)]));
        assert_eq!(a["consumer1"], tp(&[("t1", &[0, 1]), ("t2", &[0, 1])]));
        assert_eq!(a["consumer2"], tp(&[("t1", &[2]), ("t2", &[2])]));
    }

    #[test]
    fn range_is_per_topic_and_members_sorted_by_id() {
        // Input order must not matter: members are sorted by member id.
        let ms = [
            member("c", &["t1"]),
            member("a", &["t1", "t2"]),
            member("b", &["t1"]),
        ];
        let a = Assignor::Range.assign(&ms, &counts(&[("t1", 7), ("t2", 2)]));
        assert_eq!(a["a"], tp(&[("t1", &[0, 1, 2]), ("t2", &[0, 1])]));
        assert_eq!(a["b"], tp(&[("t1", &[3, 4])]));
        assert_eq!(a["c"], tp(&[("t1", &[5, 6])]));
    }

    #[test]
    fn range_more_consumers_than_partitions_leaves_some_empty() {
        let ms = [
            member("a", &["t"]),
            member("b", &["t"]),
            member("c", &["t"]),
        ];
        let a = Assignor::Range.assign(&ms, &counts(&[("t", 2)]));
        assert_eq!(a["a"], tp(&[("t", &[0])]));
        assert_eq!(a["b"], tp(&[("t", &[1])]));
        assert!(a["c"].is_empty());
    }

    #[test]
    fn roundrobin_deals_across_topics() {
        let ms = [
            member("consumer2", &["t1", "t2"]),
            member("consumer1", &["t1", "t2"]),
        ];
        let a = Assignor::RoundRobin.assign(&ms, &counts(&[("t1", 3), ("t2", 3)]));
        // Sorted partitions t1-0,t1-1,t1-2,t2-0,t2-1,t2-2 dealt to consumer1, consumer2, ...
        assert_eq!(a["consumer1"], tp(&[("t1", &[0, 2]), ("t2", &[1])]));
        assert_eq!(a["consumer2"], tp(&[("t1", &[1]), ("t2", &[0, 2])]));
    }

    #[test]
    fn roundrobin_skips_members_not_subscribed() {
        // Kafka's testMultipleConsumersMixedTopics: consumer1 on t1, consumer2 on t1+t2, consumer3 on t1.
        let ms = [
            member("consumer1", &["t1"]),
            member("consumer2", &["t1", "t2"]),
            member("consumer3", &["t1"]),
        ];
        let a = Assignor::RoundRobin.assign(&ms, &counts(&[("t1", 3), ("t2", 2)]));
        assert_eq!(a["consumer1"], tp(&[("t1", &[0])]));
        assert_eq!(a["consumer2"], tp(&[("t1", &[1]), ("t2", &[0, 1])]));
        assert_eq!(a["consumer3"], tp(&[("t1", &[2])]));
    }

    #[test]
    fn static_members_sort_before_dynamic_ones() {
        let mut s = member("zzz", &["t"]);
        s.group_instance_id = Some("instance".to_string());
        let ms = [member("aaa", &["t"]), s];
        let a = Assignor::Range.assign(&ms, &counts(&[("t", 3)]));
        assert_eq!(a["zzz"], tp(&[("t", &[0, 1])]));
        assert_eq!(a["aaa"], tp(&[("t", &[2])]));
    }

    #[test]
    fn every_partition_assigned_exactly_once() {
        for assignor in [Assignor::Range, Assignor::RoundRobin] {
            let ms: Vec<GroupMember> = (0..5)
                .map(|i| member(&format!("m{i}"), &["a", "b", "c"]))
                .collect();
            let c = counts(&[("a", 7), ("b", 1), ("c", 12)]);
            let a = assignor.assign(&ms, &c);
            let mut seen = BTreeSet::new();
            for parts in a.values() {
                for (t, ps) in parts {
                    for p in ps {
                        assert!(
                            seen.insert((t.clone(), *p)),
                            "{assignor:?} assigned {t}-{p} twice"
                        );
                    }
                }
            }
            assert_eq!(seen.len(), 20, "{assignor:?}");
        }
    }

    #[test]
    fn subscription_v0_bytes_match_the_protocol_layout() {
        let b = encode_subscription(&["ab".to_string()], None);
        // version 0, array of 1 string "ab", null user data
        assert_eq!(
            &b[..],
            &[0, 0, 0, 0, 0, 1, 0, 2, b'a', b'b', 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(decode_subscription(&b).unwrap(), vec!["ab".to_string()]);
    }

    #[test]
    fn subscription_declaring_v1_with_only_v0_fields_is_read() {
        // Some clients declare a newer version over a v0 body.
        let mut b = vec![0u8, 1];
        b.extend_from_slice(&[0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 0]);
        assert_eq!(decode_subscription(&b).unwrap(), vec!["t".to_string()]);
    }

    #[test]
    fn assignment_round_trip_and_empty_means_nothing() {
        let a = tp(&[("orders", &[0, 2]), ("sensor-data", &[1])]);
        let b = encode_assignment(&a);
        assert_eq!(&b[..2], &[0, 0]);
        assert_eq!(decode_assignment(&b).unwrap(), a);
        assert!(decode_assignment(&[]).unwrap().is_empty());
    }

    fn unhex(h: &str) -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn reads_what_kafkajs_writes() {
        // Bytes from kafkajs 2.2.4 `assignerProtocol` (peers/node): MemberAssignment.encode(
        // {version: 0, assignment: {'sensor-data': [0, 2], orders: [1]}}), MemberMetadata.encode(
        // {version: 0, topics: ['sensor-data', 'orders']}), and a version-1 assignment with user data.
        let a = unhex(
            "000000000002000b73656e736f722d6461746100000002000000000000000200066f7264657273000000010000000100000000",
        );
        assert_eq!(
            decode_assignment(&a).unwrap(),
            tp(&[("orders", &[1]), ("sensor-data", &[0, 2])])
        );
        let m = unhex("000000000002000b73656e736f722d6461746100066f726465727300000000");
        assert_eq!(
            decode_subscription(&m).unwrap(),
            vec!["sensor-data".to_string(), "orders".to_string()]
        );
        let v1 = unhex("0001000000010001740000000100000003000000027564");
        assert_eq!(decode_assignment(&v1).unwrap(), tp(&[("t", &[3])]));
        // Ours has kafkajs's layout (one topic, so order cannot differ): version, topics, and user
        // data last, where kafkajs writes a buffer and we write null (-1).
        let ours = encode_assignment(&tp(&[("t", &[3])]));
        assert_eq!(&ours[2..ours.len() - 4], &v1[2..v1.len() - 6]);
        assert_eq!(&ours[ours.len() - 4..], &[0xff; 4]);
    }

    #[test]
    fn hostile_metadata_is_an_error_not_a_huge_allocation() {
        // version 0, then 2^31-1 topics declared in 4 bytes.
        let b = [0u8, 0, 0x7f, 0xff, 0xff, 0xff];
        assert_eq!(
            decode_subscription(&b).unwrap_err().kind(),
            "bad-group-metadata"
        );
        assert!(decode_assignment(&b).is_err());
        assert!(decode_assignment(&[0]).is_err());
        assert!(decode_subscription(&[0xff, 0xff, 0, 0, 0, 0]).is_err());
        assert!(decode_assignment(&[0, 0, 0, 0, 0, 1, 0, 5, b'x']).is_err());
    }

    #[test]
    fn hostile_nested_counts_are_errors_not_huge_allocations() {
        // Assignment v0: one topic "t" claiming 2^31-1 partitions.
        let b = [0u8, 0, 0, 0, 0, 1, 0, 1, b't', 0x7f, 0xff, 0xff, 0xff];
        let e = decode_assignment(&b).unwrap_err();
        assert_eq!(e.kind(), "bad-group-metadata");
        assert!(e.to_string().contains("exceeds"), "{e}");
        // Assignment v0: no topics, user data claiming 2 GB.
        let b = [0u8, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff];
        assert!(decode_assignment(&b).is_err());
        // Subscription v0: one topic, user data claiming 2 GB.
        let b = [0u8, 0, 0, 0, 0, 1, 0, 1, b't', 0x7f, 0xff, 0xff, 0xff];
        assert!(decode_subscription(&b).is_err());
        // Subscription v1: one topic, no user data, owned partitions: one topic with 2^31-1 partitions.
        let mut b = vec![0u8, 1, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff];
        b.extend([0, 0, 0, 1, 0, 1, b't', 0x7f, 0xff, 0xff, 0xff]);
        // The v1 read fails on that count; the lenient v0 read still finds the topics.
        assert_eq!(decode_subscription(&b).unwrap(), vec!["t".to_string()]);
        // Subscription v0 with a topic name claiming 32767 bytes.
        let b = [0u8, 0, 0, 0, 0, 1, 0x7f, 0xff, b't'];
        assert!(decode_subscription(&b).is_err());
    }

    #[test]
    fn state_machine_follows_kafka_error_rules() {
        let mut m = Membership::new();
        assert_eq!(m.on_join(79, -1, "m-1", "", None), GroupAction::Rejoin);
        assert_eq!(m.member_id, "m-1");
        assert_eq!(
            m.on_join(0, 3, "m-1", "m-1", Some("range")),
            GroupAction::Continue
        );
        assert!(m.is_leader());
        assert_eq!(m.state(), MemberState::AwaitingSync);
        let asg = encode_assignment(&tp(&[("t", &[0, 1])]));
        assert_eq!(m.on_sync(0, &asg).unwrap(), GroupAction::Continue);
        assert!(m.is_stable());
        assert_eq!(m.assignment, tp(&[("t", &[0, 1])]));

        // A rebalance keeps member id and generation (a last commit still counts) but revokes.
        assert_eq!(m.on_heartbeat(27), GroupAction::Rejoin);
        assert_eq!((m.member_id.as_str(), m.generation_id), ("m-1", 3));
        assert!(m.assignment.is_empty());
        assert_eq!(m.state(), MemberState::Unjoined);

        // Illegal generation: keep the id, drop the generation.
        m.on_join(0, 4, "m-1", "other", Some("range"));
        assert!(!m.is_leader());
        assert_eq!(m.on_sync(22, &[]).unwrap(), GroupAction::Rejoin);
        assert_eq!((m.member_id.as_str(), m.generation_id), ("m-1", -1));

        // Unknown member: forget the id too.
        m.on_join(0, 5, "m-1", "other", Some("range"));
        m.on_sync(0, &[]).unwrap();
        assert_eq!(m.on_heartbeat(25), GroupAction::Rejoin);
        assert_eq!((m.member_id.as_str(), m.generation_id), ("", -1));

        // Coordinator moved: find it, keep membership; heartbeat OK: continue.
        m.on_join(0, 6, "m-2", "m-2", Some("range"));
        m.on_sync(0, &asg).unwrap();
        assert_eq!(m.on_heartbeat(16), GroupAction::FindCoordinator);
        assert!(m.is_stable());
        assert_eq!(m.on_heartbeat(0), GroupAction::Continue);
        assert_eq!(
            m.on_heartbeat(30),
            GroupAction::Fatal(ResponseError::GroupAuthorizationFailed)
        );
        assert_eq!(m.on_sync(14, &[]).unwrap(), GroupAction::Rejoin);
        // Fenced static member: fatal from every request, nothing to rejoin.
        m.on_join(0, 7, "m-3", "m-3", Some("range"));
        m.on_sync(0, &asg).unwrap();
        let fenced = GroupAction::Fatal(ResponseError::FencedInstanceId);
        assert_eq!(m.on_heartbeat(82), fenced);
        assert_eq!(m.on_commit(82), fenced);
        assert_eq!(m.on_join(82, -1, "", "", None), fenced);
    }
}
