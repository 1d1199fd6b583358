//! Committing: OffsetCommit of what `poll` has handed out (by hand, on a timer, before a
//! rebalance and on close), and OffsetFetch of the group's committed offsets for partitions
//! that have no position yet.
//!
//! Must not commit past what `poll` returned: records fetched but still buffered are not
//! committed.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequest, OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{GroupId, TopicName};

use super::group_state::GroupShared;
use super::{Consumer, call_coordinator, lock, name};
use crate::kafka::KafkaError;
use crate::kafka::group::GroupAction;

impl Consumer {
    pub(super) async fn commit_async(&mut self) -> Result<(), KafkaError> {
        // What poll handed out: for a partition with records still buffered, the first of them.
        let mut first: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for r in &self.buffered {
            first.entry((&*r.topic, r.partition)).or_insert(r.offset);
        }
        let mut pending = self
            .positions
            .uncommitted_with(|t, p| first.get(&(t, p)).copied());
        drop(first);
        // A stalled topic (deleted, refused) would fail the whole commit: it waits too.
        pending.retain(|((t, _), _)| !self.stalled.contains(t));
        if pending.is_empty() {
            return Ok(());
        }
        let Some((g, member, _)) = self.group_state() else {
            return Err(KafkaError::Config("commit needs a group_id".into()));
        };
        // In assign mode there is no membership: generation -1 and an empty member id.
        let (generation, member_id) = if self.subscribed() {
            if member.generation_id < 0 {
                return Err(KafkaError::from_response(
                    ResponseError::IllegalGeneration,
                    format!("commit to {}: not in a generation", g.group_id),
                ));
            }
            (member.generation_id, member.member_id.clone())
        } else {
            (-1, String::new())
        };
        let coordinator = self.coordinator(&g).await?;
        let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
        for ((t, p), o) in &pending {
            by_topic.entry(t.as_str()).or_default().push((*p, *o));
        }
        // One connect round: a dead coordinator is looked up again, not redialled for the
        // whole connect deadline while the poll waits.
        let resp = call_coordinator(&self.client, &g, &coordinator, |v| {
            Ok(commit_request(&g, generation, &member_id, &by_topic)
                .with_group_instance_id(g.instance_id_at(v, 7)))
        })
        .await?;
        let mut first_err = None;
        for t in &resp.topics {
            for p in &t.partitions {
                let topic = t.name.0.as_str();
                if p.error_code == 0 {
                    if let Some(&(_, o)) = by_topic
                        .get(topic)
                        .and_then(|ps| ps.iter().find(|(q, _)| *q == p.partition_index))
                    {
                        self.positions.set_committed(topic, p.partition_index, o);
                    }
                } else if first_err.is_none() {
                    let mut st = lock(&g.state);
                    let action = (self.subscribed() && st.member.generation_id == generation)
                        .then(|| st.member.on_commit(p.error_code));
                    first_err = match action {
                        Some(GroupAction::FindCoordinator) => {
                            st.coordinator = None;
                            None
                        }
                        // Java: fenced while still in the generation it committed for is fatal.
                        Some(GroupAction::Fatal(ResponseError::FencedInstanceId)) => {
                            let e = g.fatal(ResponseError::FencedInstanceId, "OffsetCommit");
                            st.fatal = Some(e.clone());
                            Some(e)
                        }
                        _ => None,
                    }
                    .or_else(|| {
                        KafkaError::from_code(
                            p.error_code,
                            format!("OffsetCommit {topic}-{}", p.partition_index),
                        )
                    });
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => {
                tracing::debug!(group = %g.group_id, partitions = pending.len(), "committed offsets");
                Ok(())
            }
        }
    }

    /// OffsetFetch: the group's committed offsets for `missing` become their positions.
    pub(super) async fn fetch_committed(
        &mut self,
        g: &GroupShared,
        missing: &[(String, i32)],
    ) -> Result<(), KafkaError> {
        let coordinator = self.coordinator(g).await?;
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in missing {
            by_topic.entry(t.as_str()).or_default().push(*p);
        }
        let resp = call_coordinator(&self.client, g, &coordinator, |v| {
            Ok(if v >= 8 {
                OffsetFetchRequest::default().with_groups(vec![
                    OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(name(&g.group_id)))
                        .with_topics(Some(
                            by_topic
                                .iter()
                                .map(|(t, ps)| {
                                    OffsetFetchRequestTopics::default()
                                        .with_name(TopicName(name(t)))
                                        .with_partition_indexes(ps.clone())
                                })
                                .collect(),
                        )),
                ])
            } else {
                OffsetFetchRequest::default()
                    .with_group_id(GroupId(name(&g.group_id)))
                    .with_topics(Some(
                        by_topic
                            .iter()
                            .map(|(t, ps)| {
                                OffsetFetchRequestTopic::default()
                                    .with_name(TopicName(name(t)))
                                    .with_partition_indexes(ps.clone())
                            })
                            .collect(),
                    ))
            })
        })
        .await?;
        let mut found: Vec<(String, i32, i64, i16)> = Vec::new();
        let mut top_code = resp.error_code;
        for t in &resp.topics {
            for p in &t.partitions {
                found.push((
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.error_code,
                ));
            }
        }
        for grp in &resp.groups {
            if grp.error_code != 0 {
                top_code = grp.error_code;
            }
            for t in &grp.topics {
                for p in &t.partitions {
                    found.push((
                        t.name.0.to_string(),
                        p.partition_index,
                        p.committed_offset,
                        p.error_code,
                    ));
                }
            }
        }
        if top_code != 0 {
            let action = lock(&g.state).member.on_commit(top_code);
            if action == GroupAction::FindCoordinator {
                lock(&g.state).coordinator = None;
            }
            return Err(
                KafkaError::from_code(top_code, format!("OffsetFetch {}", g.group_id))
                    .unwrap_or(KafkaError::Protocol("OffsetFetch".into())),
            );
        }
        for (t, p, offset, code) in found {
            if code == 0 && offset >= 0 {
                self.positions.set_committed(&t, p, offset);
            }
        }
        Ok(())
    }
}

/// An OffsetCommit of these (partition, offset) pairs per topic, for `generation` and
/// `member_id` (-1 and empty in assign mode).
fn commit_request(
    g: &GroupShared,
    generation: i32,
    member_id: &str,
    by_topic: &BTreeMap<&str, Vec<(i32, i64)>>,
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(name(&g.group_id)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(name(member_id))
        .with_topics(
            by_topic
                .iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(name(t)))
                        .with_partitions(
                            ps.iter()
                                .map(|(p, o)| {
                                    OffsetCommitRequestPartition::default()
                                        .with_partition_index(*p)
                                        .with_committed_offset(*o)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}
