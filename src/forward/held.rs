//! Why records stay in the spool, told once per cause instead of once per record: the sender hands
//! each failed round's causes here ([`Telling::note`]); a cause is logged at once the first time
//! (so the operator sees it within seconds), then at most one line per cause per [`REPEAT`] with the
//! count of records refused meanwhile, and one line when sending goes through again. The live state
//! is on the metrics ([`HeldState`]): the cause holding the records now
//! (`avro_edge_forward_held_records{reason}`), and the records refused per kind
//! (`avro_edge_forward_refusals_total{kind}`), for `/metrics`, the summary and `spool status`.
//!
//! A cause is a *refusal* when fixing the setup cures it (a clock the broker finds ahead, a missing
//! ACL, a refused password, a missing topic: `RecordSink::refusal`) and *passing* otherwise (a broker
//! down, a leader moving). Both keep the records; a forwarder whose input ended while a refusal held
//! records exits with its kind.
//!
//! Records the broker refuses for good (dead-lettered by the sender) are told the same way: the first of
//! each rejection at once, then one line per rejection per [`REPEAT`] with the count.
//!
//! Must not decide what happens to a record (the sender does), nor log a record's content.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::Kind;

/// How often a cause that goes on is told again (with its count).
pub const REPEAT: Duration = Duration::from_secs(60);

/// One cause of a failed round: its kind, whether it is a refusal, how many records it left
/// pending, and the first error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub kind: Kind,
    pub refusal: bool,
    pub records: u64,
    pub message: String,
}

/// What holds the records now, as `/metrics`, `stats.json` and `spool status` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The cause's kind, e.g. `clock-ahead-of-broker`, `topic-authorization-failed`, `broker-unreachable`.
    pub reason: String,
    /// Fixing the setup cures it (a refusal), rather than time (a passing failure).
    pub refusal: bool,
    /// Since when (ms since the epoch) this cause holds the records.
    pub since_ms: u64,
    /// The latest error message of the cause (never a secret).
    pub message: String,
}

/// The held state on the metrics: the cause holding records now and the refusals per kind.
#[derive(Debug, Default)]
pub struct HeldState {
    now: Mutex<Option<(Kind, Held)>>,
    refusals: Mutex<BTreeMap<&'static str, u64>>,
    /// Set when the cause changed, so that `stats.json` is written at once (see `forward::run`).
    pub changed: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl HeldState {
    /// `cause` holds the records now (its refused records counted), or nothing does (`None`).
    pub fn set(&self, cause: Option<&Cause>) {
        let mut now = lock(&self.now);
        let before = now.as_ref().map(|(k, _)| *k);
        *now = cause.map(|c| {
            let since_ms = match now.as_ref() {
                Some((k, h)) if *k == c.kind => h.since_ms,
                _ => crate::spool::now_ms(),
            };
            let held = Held {
                reason: c.kind.as_str().to_string(),
                refusal: c.refusal,
                since_ms,
                message: c.message.clone(),
            };
            (c.kind, held)
        });
        if before != now.as_ref().map(|(k, _)| *k) {
            self.changed.store(true, Ordering::Relaxed);
        }
    }

    /// Count records refused for `kind` (a refusal that fixing the setup cures).
    pub fn count_refused(&self, kind: Kind, records: u64) {
        *lock(&self.refusals).entry(kind.as_str()).or_default() += records;
    }

    /// The cause holding records now.
    pub fn held(&self) -> Option<(Kind, Held)> {
        lock(&self.now).clone()
    }

    /// Records refused so far, per kind.
    pub fn refusals(&self) -> BTreeMap<String, u64> {
        (lock(&self.refusals).iter())
            .map(|(k, v)| (k.to_string(), *v))
            .collect()
    }
}

/// The Prometheus lines of the held state: `forward_held_records{reason}` (only while something
/// holds records) and `forward_refusals_total{kind}`.
pub fn prometheus(
    s: &mut String,
    held: Option<&Held>,
    held_records: u64,
    refusals: &BTreeMap<String, u64>,
) {
    let label = |k: &str| -> String {
        k.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect()
    };
    s.push_str(
        "# HELP avro_edge_forward_held_records Unacknowledged records kept in the spool because sends fail, by the cause.\n\
         # TYPE avro_edge_forward_held_records gauge\n",
    );
    if let Some(h) = held {
        let reason = label(&h.reason);
        s.push_str(&format!(
            "avro_edge_forward_held_records{{reason=\"{reason}\"}} {held_records}\n"
        ));
    }
    s.push_str(
        "# HELP avro_edge_forward_refusals_total Records refused for a cause that fixing the setup cures (kept in the spool and sent again), by kind; each attempt counts.\n\
         # TYPE avro_edge_forward_refusals_total counter\n",
    );
    for (kind, v) in refusals {
        let kind = label(kind);
        s.push_str(&format!(
            "avro_edge_forward_refusals_total{{kind=\"{kind}\"}} {v}\n"
        ));
    }
}

/// What the operator can do about a cause, for the log.
fn what_to_do(kind: Kind, refusal: bool) -> &'static str {
    match kind {
        Kind::ClockAheadOfBroker => {
            "the system clock is ahead of the broker's by more than the topic accepts (log.message.timestamp.after.max.ms): set the clock right; the records stay in the spool until then"
        }
        Kind::ClockBehindBroker => {
            "the system clock is behind the broker's by more than the topic accepts (log.message.timestamp.before.max.ms): set the clock right; the records stay in the spool until then"
        }
        Kind::InvalidTimestamp => {
            "the broker refuses the records' timestamps (this gateway's clock when sending): check the clock; the records stay in the spool"
        }
        Kind::TopicAuthorizationFailed
        | Kind::ClusterAuthorizationFailed
        | Kind::GroupAuthorizationFailed
        | Kind::TransactionalIdAuthorizationFailed => {
            "the broker does not allow this client the operation (ACLs): grant it; the records stay in the spool until then"
        }
        Kind::AuthFailed | Kind::SaslUnknownUser | Kind::SaslMechanismRefused => {
            "the broker refuses this client's SASL credentials or mechanism: fix them; the records stay in the spool until then"
        }
        Kind::UnknownTopic => {
            "the topic does not exist and the broker does not create it: create it (or set kafka.create_partitions); the records stay in the spool until then"
        }
        _ if refusal => {
            "the broker refuses the records for a reason in the setup: fix it; the records stay in the spool until then"
        }
        _ => "sending failed; the records stay in the spool and are sent again with backoff",
    }
}

/// A cause being told: when it was first seen and last told, and what came since.
#[derive(Debug)]
struct Told {
    kind: Kind,
    /// Records dead-lettered for this rejection (rather than kept in the spool).
    dead: bool,
    first: Instant,
    last_told: Instant,
    records_since: u64,
    records: u64,
    message: String,
}

/// The sender's teller (see the module doc).
#[derive(Debug, Default)]
pub struct Telling {
    told: Vec<Told>,
}

impl Telling {
    /// A failed round's causes: a new one is told at once, a known one counted for its next line.
    pub fn note(&mut self, causes: &[Cause], held_records: u64, now: Instant) {
        for c in causes {
            if self.count(c, false, now) {
                tracing::warn!(
                    kind = c.kind.as_str(),
                    refusal = c.refusal,
                    records = c.records,
                    held_records,
                    error = %c.message,
                    "records kept in the spool: {}",
                    what_to_do(c.kind, c.refusal)
                );
            }
        }
        self.tick(held_records, now);
    }

    /// Records a round dead-lettered, by rejection: a new rejection is told at once, a known one
    /// counted for its next line.
    pub fn dead_lettered(&mut self, rejections: &[Cause], held_records: u64, now: Instant) {
        for c in rejections {
            if self.count(c, true, now) {
                tracing::warn!(
                    rejection = c.kind.as_str(),
                    records = c.records,
                    error = %c.message,
                    "record refused by the broker for good: dead-lettered"
                );
            }
        }
        self.tick(held_records, now);
    }

    /// Count `c`'s records; true when it is new (to be told at once).
    fn count(&mut self, c: &Cause, dead: bool, now: Instant) -> bool {
        if let Some(t) = (self.told.iter_mut()).find(|t| t.kind == c.kind && t.dead == dead) {
            t.records_since += c.records;
            t.records += c.records;
            t.message.clone_from(&c.message);
            return false;
        }
        self.told.push(Told {
            kind: c.kind,
            dead,
            first: now,
            last_told: now,
            records_since: 0,
            records: c.records,
            message: c.message.clone(),
        });
        true
    }

    /// Tell each cause that went on for [`REPEAT`] since it was last told, with its count.
    pub fn tick(&mut self, held_records: u64, now: Instant) {
        for t in &mut self.told {
            if t.records_since == 0 || now.saturating_duration_since(t.last_told) < REPEAT {
                continue;
            }
            let what = match t.dead {
                true => "records refused by the broker for good: dead-lettered",
                false => "records still kept in the spool",
            };
            tracing::warn!(
                kind = t.kind.as_str(),
                refused = t.records_since,
                over_s = now.saturating_duration_since(t.last_told).as_secs(),
                since_s = now.saturating_duration_since(t.first).as_secs(),
                held_records,
                error = %t.message,
                "{what}"
            );
            t.last_told = now;
            t.records_since = 0;
        }
    }

    /// A round went through: every cause that kept records is over (told once each).
    pub fn clear(&mut self, now: Instant) {
        self.told.retain(|t| {
            if !t.dead {
                tracing::info!(
                    kind = t.kind.as_str(),
                    refused = t.records,
                    for_s = now.saturating_duration_since(t.first).as_secs(),
                    "sending again: the records kept in the spool go out"
                );
            }
            t.dead
        });
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn cause(kind: Kind, records: u64) -> Cause {
        Cause {
            kind,
            refusal: true,
            records,
            message: format!("{kind} for {records}"),
        }
    }

    /// The log lines `f` writes at INFO and above (no colours, no time); `stall`'s tests too.
    pub(in crate::forward) fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                lock(&self.0).extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .with_ansi(false)
            .without_time()
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::with_default(sub, f);
        String::from_utf8_lossy(&lock(&buf.0)).to_string()
    }

    /// A cause repeated for thousands of records is one line at once, then one per interval.
    #[test]
    fn a_repeated_cause_is_told_once_then_once_per_interval_with_its_count() {
        let text = logged(|| {
            let mut t = Telling::default();
            let start = Instant::now();
            // One round of 9 refused records every 50 ms for 50 s (1000 rounds), one more at 61 s.
            for i in 0..1000u64 {
                let at = start + Duration::from_millis(50 * i);
                t.note(&[cause(Kind::TopicAuthorizationFailed, 9)], 9000, at);
            }
            let late = start + Duration::from_secs(61);
            t.note(&[cause(Kind::TopicAuthorizationFailed, 9)], 9000, late);
            t.clear(start + Duration::from_secs(62));
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].contains("records kept in the spool: the broker does not allow")
                && lines[0].contains("kind=\"topic-authorization-failed\""),
            "{text}"
        );
        assert!(
            lines[1].contains("records still kept in the spool")
                && lines[1].contains("refused=9000"),
            "{text}"
        );
        assert!(
            lines[2].contains("sending again") && lines[2].contains("refused=9009"),
            "{text}"
        );
    }

    /// Records dead-lettered one by one: one line for the first, then one per interval; a round
    /// that goes through does not end it (it is not a cause that keeps records).
    #[test]
    fn dead_lettered_records_are_told_once_per_rejection_and_interval() {
        let text = logged(|| {
            let mut t = Telling::default();
            let start = Instant::now();
            for i in 0..500u64 {
                let at = start + Duration::from_millis(20 * i);
                t.dead_lettered(&[cause(Kind::MessageTooLarge, 1)], 0, at);
                t.clear(at);
            }
            let late = start + Duration::from_secs(61);
            t.dead_lettered(&[cause(Kind::MessageTooLarge, 1)], 0, late);
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].contains("dead-lettered") && lines[0].contains("records=1"),
            "{text}"
        );
        assert!(
            lines[1].contains("dead-lettered") && lines[1].contains("refused=500"),
            "{text}"
        );
    }

    #[test]
    fn the_held_state_keeps_its_start_while_the_cause_stays() {
        let s = HeldState::default();
        s.set(Some(&cause(Kind::ClockAheadOfBroker, 3)));
        assert!(s.changed.swap(false, Ordering::Relaxed));
        let (_, first) = s.held().unwrap();
        s.set(Some(&cause(Kind::ClockAheadOfBroker, 5)));
        assert!(!s.changed.load(Ordering::Relaxed), "same cause");
        let (kind, again) = s.held().unwrap();
        assert_eq!(
            (kind, again.since_ms),
            (Kind::ClockAheadOfBroker, first.since_ms)
        );
        assert_eq!(again.message, "clock-ahead-of-broker for 5");
        s.set(None);
        assert!(s.changed.load(Ordering::Relaxed) && s.held().is_none());
        s.count_refused(Kind::ClockAheadOfBroker, 7);
        let mut text = String::new();
        prometheus(&mut text, Some(&again), 12, &s.refusals());
        assert!(
            text.contains("avro_edge_forward_held_records{reason=\"clock-ahead-of-broker\"} 12\n")
                && text.contains(
                    "avro_edge_forward_refusals_total{kind=\"clock-ahead-of-broker\"} 7\n"
                ),
            "{text}"
        );
    }
}
