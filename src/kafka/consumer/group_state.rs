//! The group state both consumer threads share: the member (its state machine), the coordinator
//! once found, a fatal error, the leader's partition counts, and the session clock; and the
//! FindCoordinator lookup both threads use when the coordinator is unknown.
//!
//! The polling thread (`membership.rs`: join, sync, leave) and the heartbeat thread
//! (`heartbeat.rs`) each read and change this state under its lock; it lives here so that neither
//! of them depends on the other.
//!
//! Must not send group requests other than FindCoordinator, nor decide group protocol questions
//! ([`crate::kafka::group`] does, without I/O).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::protocol::StrBytes;

use super::{call, name};
use crate::kafka::coordinator::{self, KeyType};
use crate::kafka::group::Membership;
use crate::kafka::{Client, KafkaError, Target};

/// Group state shared between the polling thread and the heartbeat thread.
pub(super) struct GroupShared {
    pub(super) group_id: String,
    /// A static member's `group.instance.id` (KIP-345).
    pub(super) group_instance_id: Option<String>,
    pub(super) state: Mutex<GroupState>,
    pub(super) stop: AtomicBool,
}

impl GroupShared {
    /// A group not joined yet: no member id, no coordinator known.
    pub(super) fn new(group_id: String, group_instance_id: Option<String>) -> GroupShared {
        GroupShared {
            group_id,
            group_instance_id,
            state: Mutex::new(GroupState {
                member: Membership::new(),
                coordinator: None,
                fatal: None,
                assigned_counts: BTreeMap::new(),
                session: SessionClock::new(),
            }),
            stop: AtomicBool::new(false),
        }
    }

    /// The `group_instance_id` field of a group request at version `v`: the static member's id
    /// from version `since` on (the first to have the field), else none.
    pub(super) fn instance_id_at(&self, v: i16, since: i16) -> Option<StrBytes> {
        (self.group_instance_id.as_deref())
            .filter(|_| v >= since)
            .map(name)
    }

    /// The error of a group answer that rejoining cannot fix; FENCED_INSTANCE_ID (another
    /// consumer joined with our `group.instance.id`) names the id.
    pub(super) fn fatal(&self, e: ResponseError, what: &str) -> KafkaError {
        let context = match (&self.group_instance_id, e) {
            (Some(id), ResponseError::FencedInstanceId) => format!(
                "{what} {}: group.instance.id {id} was taken over by another consumer",
                self.group_id
            ),
            _ => format!("{what} {}", self.group_id),
        };
        KafkaError::from_response(e, context)
    }
}

pub(super) struct GroupState {
    pub(super) member: Membership,
    /// The coordinator's address, once found.
    pub(super) coordinator: Option<String>,
    /// An error that rejoining cannot fix, seen by the heartbeat thread.
    pub(super) fatal: Option<KafkaError>,
    /// As leader: the partition count of every subscribed topic the assignment was made from
    /// (0 for a topic that did not exist); a change calls for a new assignment.
    pub(super) assigned_counts: BTreeMap<String, i32>,
    /// When the coordinator last vouched for the membership (`heartbeat.rs`).
    pub(super) session: SessionClock,
}

/// Ask any broker which one coordinates `group_id` (FindCoordinator); its `host:port`.
pub(super) async fn find_coordinator(
    client: &Client,
    group_id: &str,
) -> Result<String, KafkaError> {
    let resp = call(client, &Target::Any, |v| {
        Ok(coordinator::request(KeyType::Group, group_id, v))
    })
    .await?;
    coordinator::address(&resp, &format!("FindCoordinator {group_id}"))
}

/// When the coordinator last vouched for this membership: an answer that keeps it, or a completed
/// join. Shared by the heartbeat thread (which restarts and expires it) and the polling thread
/// (which restarts it on a join and holds records back while it is expired).
#[derive(Debug)]
pub(super) struct SessionClock {
    since: Instant,
    expired: bool,
    /// Completed joins: the heartbeat thread starts afresh (failure count) on a new one.
    pub(super) joins: u64,
}

impl SessionClock {
    pub(super) fn new() -> SessionClock {
        SessionClock {
            since: Instant::now(),
            expired: false,
            joins: 0,
        }
    }

    /// The coordinator answered for the membership: the session starts again.
    pub(super) fn answered(&mut self) {
        self.since = Instant::now();
        self.expired = false;
    }

    /// A join completed (the member is stable in a generation): the session starts again.
    pub(super) fn joined(&mut self) {
        self.answered();
        self.joins += 1;
    }

    /// Whether no answer came for a whole session timeout (until the next answer or join).
    pub(super) fn expired(&self) -> bool {
        self.expired
    }

    /// What is left of the session (zero once it ran out).
    pub(super) fn left(&self, session_timeout: Duration) -> Duration {
        session_timeout.saturating_sub(self.since.elapsed())
    }

    /// Mark the session expired if `session_timeout` passed without an answer; true only the
    /// first time (the moment it runs out).
    pub(super) fn expire_if_due(&mut self, session_timeout: Duration) -> bool {
        if self.expired || self.since.elapsed() < session_timeout {
            return false;
        }
        self.expired = true;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The churn of issue 15: a session that ran out must not stay run out after the member
    /// rejoined, or every later check counts it out again.
    #[test]
    fn a_join_restarts_the_session_clock() {
        let timeout = Duration::from_millis(300);
        let mut clock = SessionClock::new();
        assert!(!clock.expire_if_due(timeout));
        std::thread::sleep(timeout);
        assert!(clock.expire_if_due(timeout), "ran out");
        assert!(clock.expired());
        assert!(!clock.expire_if_due(timeout), "reported once");
        clock.joined();
        assert!(!clock.expired());
        assert!(!clock.expire_if_due(timeout), "restarted by the join");
        assert!(clock.left(timeout) > Duration::ZERO);
        std::thread::sleep(timeout);
        assert!(clock.expire_if_due(timeout));
        clock.answered();
        assert!(!clock.expired() && !clock.expire_if_due(timeout));
    }
}
