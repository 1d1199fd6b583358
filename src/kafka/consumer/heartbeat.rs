//! The heartbeat thread: one Heartbeat per interval while the member is stable; answers that
//! call for a rejoin are recorded for the polling thread (which stops fetching and rejoins).
//! A lost coordinator (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, disconnect, a timeout) is
//! looked up again here (FindCoordinator), so a stable member keeps heartbeating across a
//! coordinator move.
//!
//! The session clock (`SessionClock` in `group_state.rs`, as Java's `Heartbeat` timers) restarts
//! on every answer that keeps the membership and on every completed join, so a rejoin never
//! starts with a clock that already ran out. When it runs out (no answer for a whole session timeout) the member
//! does what Java's `AbstractCoordinator` does: it marks the coordinator unknown, drops its
//! connection (a hung coordinator is not asked again on the same socket) and looks it up again;
//! meanwhile the polling thread hands out no records (the coordinator may have given our
//! partitions to someone else). The next answer decides: still a member (carry on, no
//! rebalance), or evicted (rejoin). It does not rejoin by itself: a rejoin needs the coordinator
//! that a heartbeat needs, and costs the whole group a rebalance.
//!
//! Must not join, sync or fetch: it only keeps the membership alive and flags what the polling
//! thread must do (through `GroupShared`, `group_state.rs`); the member state machine in
//! [`crate::kafka::group`] reads each answer.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kafka_protocol::messages::GroupId;
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::heartbeat_response::HeartbeatResponse;

use super::group_state::{GroupShared, find_coordinator};
use super::{lock, name};
use crate::kafka::conn::with_timeout;
use crate::kafka::group::GroupAction;
use crate::kafka::{Client, KafkaError, Target, block_on};

/// The member a heartbeat is for: generation, member id, and the coordinator if known.
type Beat = (i32, String, Option<String>);

/// Run the heartbeat thread until `shared.stop` is set (see the module doc).
pub(super) fn heartbeat_loop(
    client: Client,
    shared: Arc<GroupShared>,
    interval: Duration,
    session_timeout: Duration,
) {
    let mut hb = Heartbeat {
        client,
        shared,
        interval,
        session_timeout,
        failures: 0,
        joins: 0,
        last_found: None,
    };
    while hb.wait() {
        let Some((generation, member_id, coordinator)) = hb.stable_member() else {
            continue;
        };
        let Some(coordinator) = hb.coordinator(coordinator) else {
            continue;
        };
        let result = hb.send(generation, &member_id, &coordinator);
        hb.on_answer(generation, &member_id, &coordinator, result);
    }
}

/// The heartbeat thread's state between beats.
struct Heartbeat {
    client: Client,
    shared: Arc<GroupShared>,
    interval: Duration,
    session_timeout: Duration,
    /// Failed beats in a row (they shorten the pause).
    failures: u32,
    /// The completed joins seen: a new one restarts the failure count.
    joins: u64,
    /// The coordinator last found, to log a new one once.
    last_found: Option<String>,
}

impl Heartbeat {
    /// Wait for the next beat: an interval, or after a failure a shorter backoff (still at most
    /// once per interval). False once the consumer is closing.
    fn wait(&self) -> bool {
        let pause = if self.failures == 0 {
            self.interval
        } else {
            crate::kafka::client::backoff(
                Duration::from_millis(200),
                self.interval,
                self.failures - 1,
            )
        };
        // Parked, not polling: `Consumer::close` sets `stop` and unparks this thread, so closing
        // does not wait out a sleep step (it used to wait up to 50 ms).
        let wake = Instant::now() + pause;
        loop {
            if self.shared.stop.load(Ordering::SeqCst) {
                return false;
            }
            let now = Instant::now();
            if now >= wake {
                return true;
            }
            std::thread::park_timeout(wake - now);
        }
    }

    /// The member to heartbeat for, if it is stable (a member joining or flagged to rejoin has
    /// nothing to keep alive). A new join restarts the failure count; a session that ran out
    /// marks the coordinator unknown (see the module doc).
    fn stable_member(&mut self) -> Option<Beat> {
        let mut st = lock(&self.shared.state);
        if !st.member.is_stable() {
            self.failures = 0;
            return None;
        }
        if st.session.joins != self.joins {
            self.joins = st.session.joins;
            self.failures = 0;
        }
        if st.session.expire_if_due(self.session_timeout) {
            tracing::warn!(
                group = %self.shared.group_id,
                "no heartbeat answer for a session timeout; holding records back and looking the coordinator up again"
            );
            if let Some(c) = st.coordinator.take() {
                let e = KafkaError::Timeout {
                    what: "Heartbeat (the session)".into(),
                    after: self.session_timeout,
                };
                self.client.drop_timed_out(&c, &e);
            }
        }
        Some((
            st.member.generation_id,
            st.member.member_id.clone(),
            st.coordinator.clone(),
        ))
    }

    /// The coordinator to send to: the known one, else FindCoordinator (bounded by the session
    /// timeout). `None` when none was found (counted as a failure).
    fn coordinator(&mut self, known: Option<String>) -> Option<String> {
        if let Some(c) = known {
            self.last_found = Some(c.clone());
            return Some(c);
        }
        let group = &self.shared.group_id;
        let found = block_on(with_timeout(
            self.session_timeout,
            find_coordinator(&self.client, group),
        ))
        .unwrap_or_else(|| {
            Err(KafkaError::Timeout {
                what: "FindCoordinator".into(),
                after: self.session_timeout,
            })
        });
        match found {
            Ok(c) => {
                if self.last_found.as_ref() != Some(&c) {
                    tracing::info!(group = %group, coordinator = %c, "heartbeat: found coordinator");
                    self.last_found = Some(c.clone());
                }
                lock(&self.shared.state).coordinator = Some(c.clone());
                Some(c)
            }
            Err(e) => {
                tracing::debug!(group = %group, error = %e, "heartbeat: no coordinator yet");
                self.failures += 1;
                None
            }
        }
    }

    /// One Heartbeat to `coordinator`, bounded by what is left of the session (an answer later
    /// than that is worthless), and by at least an interval once it ran out. One connect round:
    /// a dead coordinator is looked up again instead of redialled.
    fn send(
        &self,
        generation: i32,
        member_id: &str,
        coordinator: &str,
    ) -> Result<HeartbeatResponse, KafkaError> {
        let left = lock(&self.shared.state).session.left(self.session_timeout);
        let bound = left.max(self.interval);
        let target = Target::Addr(coordinator.to_string());
        block_on(with_timeout(bound, async {
            let conn = self
                .client
                .conn_once(&target, Instant::now() + bound)
                .await?;
            let v = conn.version_for::<HeartbeatRequest>()?;
            let req = HeartbeatRequest::default()
                .with_group_id(GroupId(name(&self.shared.group_id)))
                .with_generation_id(generation)
                .with_member_id(name(member_id))
                .with_group_instance_id(self.shared.instance_id_at(v, 3));
            conn.request_at(&req, v).await
        }))
        .unwrap_or_else(|| {
            Err(KafkaError::Timeout {
                what: "Heartbeat".into(),
                after: bound,
            })
        })
    }

    /// Read the answer (or failure) of the beat for `generation` and `member_id` into the member
    /// state, the session clock and the failure count. A late answer for a generation already
    /// left is ignored.
    fn on_answer(
        &mut self,
        generation: i32,
        member_id: &str,
        coordinator: &str,
        result: Result<HeartbeatResponse, KafkaError>,
    ) {
        let group = &self.shared.group_id;
        let mut st = lock(&self.shared.state);
        if st.member.generation_id != generation
            || st.member.member_id != member_id
            || !st.member.is_stable()
        {
            return;
        }
        match result {
            Ok(resp) => match st.member.on_heartbeat(resp.error_code) {
                GroupAction::Continue => {
                    if st.session.expired() {
                        tracing::info!(group = %group, coordinator, "heartbeat answered again: still a member; reading on");
                    }
                    st.session.answered();
                    self.failures = 0;
                }
                GroupAction::Retry => self.failures += 1,
                GroupAction::Rejoin => {
                    // The coordinator answered (as Java, REBALANCE_IN_PROGRESS counts): the clock
                    // starts again, and again when the rejoin completes.
                    st.session.answered();
                    self.failures = 0;
                    tracing::info!(group = %group, code = resp.error_code, "rebalance: rejoining");
                }
                GroupAction::FindCoordinator => {
                    tracing::info!(group = %group, code = resp.error_code, "heartbeat: coordinator moved");
                    st.coordinator = None;
                    self.failures += 1;
                }
                GroupAction::Fatal(e) => st.fatal = Some(self.shared.fatal(e, "Heartbeat")),
            },
            Err(e) => {
                if self.failures == 0 {
                    tracing::warn!(group = %group, error = %e, "heartbeat failed; looking up the coordinator");
                } else {
                    tracing::debug!(group = %group, error = %e, "heartbeat failed");
                }
                // A coordinator that let the beat time out is hung: its connection goes.
                self.client.drop_timed_out(coordinator, &e);
                st.coordinator = None;
                self.failures += 1;
            }
        }
    }
}
