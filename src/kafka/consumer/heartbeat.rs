//! The heartbeat thread: one Heartbeat per interval while the member is stable; answers that
//! call for a rejoin are recorded for the polling thread (which stops fetching and rejoins).
//! A lost coordinator (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, disconnect) is looked up
//! again here (FindCoordinator), so a stable member keeps heartbeating across a coordinator
//! move; a member that could not heartbeat for a whole session timeout has been evicted by
//! now and is flagged to rejoin, so it no longer reads partitions that are someone else's.
//!
//! Must not join, sync or fetch: it only keeps the membership alive and flags what the polling
//! thread must do (through [`GroupShared`]); the member state machine in
//! [`crate::kafka::group`] reads each answer.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kafka_protocol::messages::GroupId;
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::heartbeat_response::HeartbeatResponse;

use super::membership::{GroupShared, find_coordinator};
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
        last_ok: Instant::now(),
        failures: 0,
        last_found: None,
    };
    while hb.wait() {
        let Some((generation, member_id, coordinator)) = hb.stable_member() else {
            continue;
        };
        if hb.rejoin_if_session_expired(generation) {
            continue;
        }
        let Some(coordinator) = hb.coordinator(coordinator) else {
            continue;
        };
        let result = hb.send(generation, &member_id, coordinator);
        hb.on_answer(generation, &member_id, result);
    }
}

/// The heartbeat thread's state between beats.
struct Heartbeat {
    client: Client,
    shared: Arc<GroupShared>,
    interval: Duration,
    session_timeout: Duration,
    /// When the coordinator last answered (or the member was last seen not stable): the session
    /// clock.
    last_ok: Instant,
    /// Failed beats in a row (they shorten the pause).
    failures: u32,
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

    /// The member to heartbeat for, if it is stable; a member that is not (joining, or flagged
    /// to rejoin) restarts the session clock and the failure count instead.
    fn stable_member(&mut self) -> Option<Beat> {
        let st = lock(&self.shared.state);
        if !st.member.is_stable() {
            self.last_ok = Instant::now();
            self.failures = 0;
            return None;
        }
        Some((
            st.member.generation_id,
            st.member.member_id.clone(),
            st.coordinator.clone(),
        ))
    }

    /// No answer for a whole session timeout: the coordinator has evicted us by now, so flag a
    /// rejoin (for `generation`, if it is still the stable one). True when the session ran out.
    fn rejoin_if_session_expired(&self, generation: i32) -> bool {
        if self.last_ok.elapsed() < self.session_timeout {
            return false;
        }
        let mut st = lock(&self.shared.state);
        if st.member.generation_id == generation && st.member.is_stable() {
            tracing::warn!(group = %self.shared.group_id, "no heartbeat answer for a session timeout; rejoining");
            st.member.request_rejoin();
        }
        true
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

    /// One Heartbeat to `coordinator`. A heartbeat later than the session timeout is worthless:
    /// it is bounded by it (and so is `close`). One connect round: a dead coordinator is looked
    /// up again instead of redialled.
    fn send(
        &self,
        generation: i32,
        member_id: &str,
        coordinator: String,
    ) -> Result<HeartbeatResponse, KafkaError> {
        let target = Target::Addr(coordinator);
        block_on(with_timeout(self.session_timeout, async {
            let conn = self
                .client
                .conn_once(&target, Instant::now() + self.session_timeout)
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
                after: self.session_timeout,
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
                    self.last_ok = Instant::now();
                    self.failures = 0;
                }
                GroupAction::Retry => self.failures += 1,
                GroupAction::Rejoin => {
                    // The coordinator answered: the session clock starts again after the rejoin.
                    self.last_ok = Instant::now();
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
                st.coordinator = None;
                self.failures += 1;
            }
        }
    }
}
