//! Group membership: finding the coordinator, JoinGroup and SyncGroup (the leader assigns),
//! and LeaveGroup on close (the heartbeat thread that keeps the membership alive between polls
//! is `heartbeat.rs`; the state both threads share, and the FindCoordinator lookup, are
//! `group_state.rs`). Rebalancing is eager (everything revoked, then reassigned), like
//! Kafka's classic protocol.
//!
//! Must not decide group protocol questions itself: [`crate::kafka::group`] (no I/O) does;
//! this module only carries its requests and answers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::GroupId;
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::join_group_response::{JoinGroupResponse, JoinGroupResponseMember};
use kafka_protocol::messages::leave_group_request::{LeaveGroupRequest, MemberIdentity};
use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
use kafka_protocol::protocol::{Request, StrBytes};

use super::group_state::{GroupShared, find_coordinator};
use super::{Consumer, call_coordinator, lock, millis, name};
use crate::kafka::conn::with_timeout;
use crate::kafka::group::{
    Assignor, GroupAction, GroupMember, Membership, PROTOCOL_TYPE, TopicPartitions,
    decode_subscription, encode_assignment, encode_subscription,
};
use crate::kafka::{KafkaError, Target, block_on};

impl Consumer {
    /// As leader, look at the subscribed topics' partition counts; if one appeared, vanished or
    /// grew since the assignment, rejoin so every member gets a new one (Java does the same).
    pub(super) async fn check_subscribed_topics(&mut self) {
        let Some((g, member, _)) = self.group_state() else {
            return;
        };
        if !member.is_leader() || !member.is_stable() {
            return;
        }
        let before = lock(&g.state).assigned_counts.clone();
        if before.is_empty() {
            return;
        }
        let topics: Vec<&str> = before.keys().map(String::as_str).collect();
        let resp = match self.client.fetch_metadata(&topics).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "metadata check failed");
                return;
            }
        };
        for t in &resp.topics {
            let Some(name) = t.name.as_ref().map(|n| n.0.as_str()) else {
                continue;
            };
            let now = if t.error_code == 0 {
                t.partitions.len() as i32
            } else {
                0
            };
            if before.get(name).is_some_and(|b| *b != now) {
                tracing::info!(group = %g.group_id, topic = name, before = before.get(name).copied(), now, "partitions changed; rebalancing");
                self.rejoin_requests.fetch_add(1, Ordering::SeqCst);
                lock(&g.state).member.request_rejoin();
                return;
            }
        }
    }

    pub(super) fn group_state(&self) -> Option<(Arc<GroupShared>, Membership, Option<String>)> {
        let g = self.group.as_ref()?.clone();
        let (m, c) = {
            let st = lock(&g.state);
            (st.member.clone(), st.coordinator.clone())
        };
        Some((g, m, c))
    }

    pub(super) async fn coordinator(&self, g: &GroupShared) -> Result<String, KafkaError> {
        if let Some(c) = lock(&g.state).coordinator.clone() {
            return Ok(c);
        }
        let c = find_coordinator(&self.client, &g.group_id).await?;
        tracing::debug!(group = %g.group_id, coordinator = %c, "found coordinator");
        lock(&g.state).coordinator = Some(c.clone());
        Ok(c)
    }

    /// Join and sync until stable (or a fatal error). Commits what was read before giving up
    /// partitions when the old generation still allows it.
    pub(super) async fn ensure_group(&mut self) -> Result<(), KafkaError> {
        let Some((g, _, _)) = self.group_state() else {
            return Ok(());
        };
        let started = Instant::now();
        let give_up = started + self.cfg.rebalance_timeout * 2 + self.cfg.session_timeout * 2;
        let mut backoff = Duration::from_millis(100);
        let mut rejoined = false;
        loop {
            if let Some(e) = lock(&g.state).fatal.clone() {
                return Err(e);
            }
            let member = lock(&g.state).member.clone();
            if member.is_stable() {
                if rejoined {
                    self.positions.set_assignment(&member.assignment);
                    // As Java's onJoinComplete: the auto-commit timer starts from the join.
                    self.last_commit = Instant::now();
                    self.stalled.retain(|t| member.assignment.contains_key(t));
                    let parts: Vec<String> = member
                        .assignment
                        .iter()
                        .map(|(t, ps)| format!("{t}{ps:?}"))
                        .collect();
                    tracing::info!(
                        group = %g.group_id,
                        generation = member.generation_id,
                        member = %member.member_id,
                        leader = member.is_leader(),
                        assignment = %parts.join(","),
                        took_ms = started.elapsed().as_millis() as u64,
                        "joined group"
                    );
                }
                return Ok(());
            }
            if Instant::now() >= give_up {
                return Err(KafkaError::Timeout {
                    what: format!("joining group {}", g.group_id),
                    after: started.elapsed(),
                });
            }
            if !rejoined && !self.positions.is_empty() {
                // Revoking (eager protocol): commit what we handed out while the generation is
                // still valid, then drop every partition.
                if self.cfg.enable_auto_commit
                    && member.generation_id >= 0
                    && let Err(e) = self.commit_async().await
                {
                    tracing::warn!(error = %e, "commit before rebalance failed");
                }
                self.positions.set_assignment(&TopicPartitions::new());
                self.buffered.clear();
                self.probes.clear();
                self.read_replicas.clear();
                self.retry_at.clear();
            }
            rejoined = true;
            let action = match self.join_and_sync(&g).await {
                Ok(a) => a,
                Err(e) if e.is_retriable() => {
                    tracing::debug!(error = %e, "join failed, retrying");
                    lock(&g.state).coordinator = None;
                    GroupAction::Retry
                }
                Err(e) => return Err(e),
            };
            match action {
                GroupAction::Continue | GroupAction::Rejoin => {}
                GroupAction::FindCoordinator => lock(&g.state).coordinator = None,
                GroupAction::Retry => {
                    smol::Timer::after(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                GroupAction::Fatal(e) => {
                    let err = g.fatal(e, "group");
                    if e == ResponseError::FencedInstanceId {
                        // Another consumer holds our group.instance.id: every later poll fails too.
                        lock(&g.state).fatal = Some(err.clone());
                    }
                    return Err(err);
                }
            }
        }
    }

    /// One JoinGroup (+ SyncGroup when it succeeds). Membership is updated through the state machine.
    async fn join_and_sync(&self, g: &GroupShared) -> Result<GroupAction, KafkaError> {
        let addr = self.coordinator(g).await?;
        let t0 = Instant::now();
        let join = self.join(g, &addr).await?;
        let protocol = join.protocol_name.as_ref().map(|p| p.to_string());
        let action = lock(&g.state).member.on_join(
            join.error_code,
            join.generation_id,
            join.member_id.as_str(),
            join.leader.as_str(),
            protocol.as_deref(),
        );
        tracing::debug!(
            group = %g.group_id, code = join.error_code, generation = join.generation_id, members = join.members.len(),
            skip_assignment = join.skip_assignment, took_ms = t0.elapsed().as_millis() as u64, "JoinGroup answered"
        );
        if action != GroupAction::Continue {
            return Ok(action);
        }
        let member = lock(&g.state).member.clone();
        let assignments = if member.is_leader() {
            let assignor = protocol
                .as_deref()
                .and_then(Assignor::from_name)
                .ok_or_else(|| {
                    KafkaError::Protocol(format!(
                        "coordinator chose assignor {protocol:?}, which we do not offer"
                    ))
                })?;
            let plan = self.leader_assign(g, assignor, &join.members).await?;
            // A static leader back in a stable group (KIP-345, JoinGroup v9+): the group keeps
            // its assignment, so send none (as Java does); the leader still watches the topics.
            if join.skip_assignment {
                Vec::new()
            } else {
                plan
            }
        } else {
            Vec::new()
        };
        let sync = call_coordinator(&self.client, g, &addr, |v| {
            let r = SyncGroupRequest::default()
                .with_group_id(GroupId(name(&g.group_id)))
                .with_generation_id(member.generation_id)
                .with_member_id(name(&member.member_id))
                .with_group_instance_id(g.instance_id_at(v, 3))
                .with_assignments(assignments);
            Ok(if v >= 5 {
                r.with_protocol_type(Some(StrBytes::from_static_str(PROTOCOL_TYPE)))
                    .with_protocol_name(protocol.as_deref().map(name))
            } else {
                r
            })
        })
        .await?;
        let mut st = lock(&g.state);
        if st.member.generation_id != member.generation_id {
            return Ok(GroupAction::Rejoin);
        }
        let action = st.member.on_sync(sync.error_code, &sync.assignment)?;
        if st.member.is_stable() {
            // Under the same lock as the state change: the heartbeat thread never sees the new
            // generation with the old session clock (issue 15: it counted it out at once).
            st.session.joined();
        }
        Ok(action)
    }

    /// One JoinGroup with our subscription, as a static member when `group_instance_id` is set
    /// (JoinGroup v5+, Kafka 2.3; an older coordinator is refused rather than joined as a
    /// dynamic member).
    async fn join(&self, g: &GroupShared, addr: &str) -> Result<JoinGroupResponse, KafkaError> {
        let member_id = lock(&g.state).member.member_id.clone();
        // A broker workaround may want the rejoin count as user data (`Quirks::rejoin_user_data`).
        // One connect round, as every group request: a dead coordinator is looked up again.
        let deadline = Instant::now() + self.cfg.connect_deadline;
        let target = Target::Addr(addr.to_string());
        let quirks = self.client.conn_once(&target, deadline).await?.quirks();
        let user_data = quirks.rejoin_user_data(self.rejoin_requests.load(Ordering::SeqCst));
        let metadata = encode_subscription(&self.cfg.topics, user_data);
        let other = match self.cfg.assignor {
            Assignor::Range => Assignor::RoundRobin,
            Assignor::RoundRobin => Assignor::Range,
        };
        let protocols: Vec<JoinGroupRequestProtocol> = [self.cfg.assignor, other]
            .iter()
            .map(|a| {
                JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str(a.name()))
                    .with_metadata(metadata.clone())
            })
            .collect();
        call_coordinator(&self.client, g, addr, |v| {
            if v < 5 && g.group_instance_id.is_some() {
                return Err(KafkaError::UnsupportedVersion {
                    api_key: JoinGroupRequest::KEY,
                    broker: addr.to_string(),
                });
            }
            Ok(JoinGroupRequest::default()
                .with_group_id(GroupId(name(&g.group_id)))
                .with_session_timeout_ms(millis(self.cfg.session_timeout))
                .with_rebalance_timeout_ms(millis(self.cfg.rebalance_timeout))
                .with_member_id(name(&member_id))
                .with_group_instance_id(g.instance_id_at(v, 5))
                .with_protocol_type(StrBytes::from_static_str(PROTOCOL_TYPE))
                .with_protocols(protocols))
        })
        .await
    }

    /// The leader's job: decode every member's subscription, look up partition counts, assign.
    async fn leader_assign(
        &self,
        g: &GroupShared,
        assignor: Assignor,
        members: &[JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>, KafkaError> {
        let mut group_members = Vec::with_capacity(members.len());
        for m in members {
            let topics = match decode_subscription(&m.metadata) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(member = %m.member_id.as_str(), error = %e, "member subscription unreadable; it gets nothing");
                    Vec::new()
                }
            };
            group_members.push(GroupMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
                topics,
            });
        }
        let mut counts = BTreeMap::new();
        let all: BTreeSet<&String> = group_members.iter().flat_map(|m| m.topics.iter()).collect();
        let deadline = Instant::now() + self.cfg.connect_deadline;
        for t in all {
            self.client.invalidate(t); // assign from fresh metadata
            match self.client.topic(t, deadline).await {
                Ok(meta) => {
                    counts.insert(t.clone(), meta.partitions.len() as i32);
                }
                Err(e) => {
                    tracing::warn!(topic = %t, error = %e, "subscribed topic not available; not assigned")
                }
            }
        }
        let plan = assignor.assign(&group_members, &counts);
        let mut seen = counts.clone();
        for m in &group_members {
            for t in &m.topics {
                seen.entry(t.clone()).or_insert(0);
            }
        }
        lock(&g.state).assigned_counts = seen;
        Ok(plan
            .iter()
            .map(|(member, parts)| {
                SyncGroupRequestAssignment::default()
                    .with_member_id(name(member))
                    .with_assignment(encode_assignment(parts))
            })
            .collect())
    }

    /// LeaveGroup (bounded by `bound`): the other members take over at once. A static member
    /// does not leave (as Java's consumer): its partitions wait for it until its session times
    /// out, so a restart within the session timeout gets them back without a rebalance.
    pub(super) fn leave_group(&self, bound: Duration) {
        if let Some((g, member, _)) = self.group_state()
            && let Some(id) = &g.group_instance_id
            && self.subscribed()
        {
            tracing::info!(group = %g.group_id, member = %member.member_id, group_instance_id = %id, "static member: not leaving the group");
            lock(&g.state).member.reset();
            return;
        }
        if let Some((g, member, coordinator)) = self.group_state()
            && self.subscribed()
            && !member.member_id.is_empty()
            && let Some(coordinator) = coordinator
        {
            let leave = block_on(with_timeout(
                bound,
                call_coordinator(&self.client, &g, &coordinator, |v| {
                    let r = LeaveGroupRequest::default().with_group_id(GroupId(name(&g.group_id)));
                    Ok(if v >= 3 {
                        r.with_members(vec![
                            MemberIdentity::default().with_member_id(name(&member.member_id)),
                        ])
                    } else {
                        r.with_member_id(name(&member.member_id))
                    })
                }),
            ))
            .unwrap_or_else(|| {
                Err(KafkaError::Timeout {
                    what: "LeaveGroup".into(),
                    after: bound,
                })
            });
            match leave {
                Ok(r) if r.error_code == 0 => {
                    tracing::info!(group = %g.group_id, member = %member.member_id, "left group")
                }
                Ok(r) => {
                    tracing::warn!(group = %g.group_id, code = r.error_code, "LeaveGroup refused")
                }
                Err(e) => tracing::warn!(group = %g.group_id, error = %e, "LeaveGroup failed"),
            }
            lock(&g.state).member.reset();
        }
    }
}
