//! The stall watch: says when records went to the sink and no acknowledgement came for longer
//! than a limit (the forwarder's: the request timeout, at least [`MIN_LIMIT`]). A black-holed or
//! refused uplink makes the producer retry quietly (DEBUG lines) while the readings wait in the
//! spool; this makes that one WARN line, "no acknowledgement for N s", with the oldest
//! unacknowledged record's age, the records waiting and the producer's last retried error
//! (from its [`RetryNote`], when it came during the stall), repeated at most once per
//! [`REPEAT`] while the stall lasts, and one INFO line with how long it lasted when
//! acknowledgements come again.
//!
//! The senders mark what they do ([`Stall::sending`], [`Stall::acked`]); the forwarder's main
//! loop looks ([`watch`]), since a sender sits inside a blocking send while the uplink is down.
//! Quiet while a refusal that fixing the setup cures holds the records: the broker answers, and
//! `held` tells that cause.
//!
//! Must not decide what is sent or kept (the senders do), nor log a record's content.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Metrics;
use super::held::REPEAT;
use crate::error::ErrorKind;
use crate::kafka::producer::RetryNote;
use crate::spool::Spool;

/// The shortest stall that is told.
pub const MIN_LIMIT: Duration = Duration::from_secs(5);

/// What the senders mark and the watch reads (on the [`Metrics`]).
#[derive(Debug, Default)]
pub struct Stall(Mutex<State>);

#[derive(Debug, Default)]
struct State {
    /// Records went to the sink since the last acknowledgement, the first of them then.
    since: Option<Instant>,
    /// The stall was told (last at this time).
    warned: Option<Instant>,
    /// The sink's note of its last retried error, if it keeps one.
    note: Option<RetryNote>,
}

impl Stall {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records go to the sink now (with the sink's retry note, if it keeps one): a stall counts
    /// from the first send after the last acknowledgement.
    pub fn sending(&self, note: Option<RetryNote>) {
        let mut st = self.lock();
        st.since.get_or_insert_with(Instant::now);
        if note.is_some() {
            st.note = note;
        }
    }

    /// The broker acknowledged records: no stall. One told is over (an INFO line with how long
    /// it lasted).
    pub fn acked(&self) {
        let mut st = self.lock();
        let since = st.since.take();
        if let (Some(_), Some(since)) = (st.warned.take(), since) {
            let lasted = since.elapsed().as_secs();
            tracing::info!(
                stalled_s = lasted,
                "acknowledgements again after {lasted} s without; the readings in the spool go out"
            );
        }
    }

    /// Tell a stall longer than `limit` (at once, then once per [`REPEAT`]), unless `quiet`.
    pub fn check(&self, limit: Duration, waiting: u64, oldest_age_ms: Option<u64>, quiet: bool) {
        let mut st = self.lock();
        let now = Instant::now();
        let Some(since) = st
            .since
            .filter(|s| now.saturating_duration_since(*s) > limit)
        else {
            return;
        };
        if quiet
            || st
                .warned
                .is_some_and(|w| now.saturating_duration_since(w) < REPEAT)
        {
            return;
        }
        st.warned = Some(now);
        let stalled = now.saturating_duration_since(since).as_secs();
        let retried = (st.note.as_ref().and_then(RetryNote::last)).filter(|(at, _)| *at >= since);
        let (kind, error) = match &retried {
            Some((_, e)) => (e.kind().as_str(), e.to_string()),
            None => ("", String::new()),
        };
        tracing::warn!(
            stalled_s = stalled,
            oldest_unacked_age_s = oldest_age_ms.map_or(0, |ms| ms / 1000),
            waiting,
            last_retry_kind = kind,
            last_retry_error = %error,
            "no acknowledgement for {stalled} s; readings wait in the spool"
        );
    }
}

/// Look at the senders' marks from the forwarder's main loop: tell a stall longer than the request
/// timeout (at least [`MIN_LIMIT`]).
pub fn watch(spool: &Spool, metrics: &Metrics, request_timeout: Duration) {
    let st = spool.status();
    let quiet = (metrics.held.held()).is_some_and(|(_, h)| h.refusal);
    let limit = request_timeout.max(MIN_LIMIT);
    (metrics.stall).check(limit, st.records, st.oldest_unacked_age_ms, quiet);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::held::tests::logged;
    use crate::kafka::KafkaError;

    /// Sent, no acknowledgement past the limit: one WARN (with the producer's retried error),
    /// not again within the minute, one INFO when acknowledgements come again; nothing while a
    /// refusal holds the records, nothing without a send.
    #[test]
    fn a_stall_is_told_once_then_its_end() {
        let note = RetryNote::default();
        let text = logged(|| {
            let s = Stall::default();
            s.check(Duration::ZERO, 5, None, false);
            s.sending(Some(note.clone()));
            note.note(&KafkaError::Timeout {
                what: "produce to node 1".into(),
                after: Duration::from_secs(10),
            });
            std::thread::sleep(Duration::from_millis(20));
            s.check(Duration::from_secs(60), 5, Some(21_000), false);
            s.check(Duration::from_millis(10), 5, Some(21_000), true);
            s.check(Duration::from_millis(10), 5, Some(21_000), false);
            s.check(Duration::from_millis(10), 5, Some(21_000), false);
            s.sending(None);
            s.acked();
            s.check(Duration::ZERO, 0, None, false);
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with(" WARN")
                && lines[0].contains("s; readings wait in the spool")
                && lines[0].contains("oldest_unacked_age_s=21")
                && lines[0].contains("waiting=5")
                && lines[0].contains("last_retry_kind=\"timeout\""),
            "{text}"
        );
        assert!(
            lines[1].starts_with(" INFO") && lines[1].contains("acknowledgements again after"),
            "{text}"
        );
    }
}
