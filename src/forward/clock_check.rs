//! Clock sanity: the sender holds records back while the system clock is below a known lower bound
//! for "now", instead of sending them with 1970 timestamps (a gateway without a real-time clock boots
//! at 1970, or at its last shutdown, until NTP answers).
//!
//! Must never block input: records keep going into the spool; only the spool → Kafka step waits, and
//! resumes by itself once the clock is sane.
//!
//! # Lower bound
//! The largest of
//! - the binary's build time ([`crate::clock::BUILD_TIME_MS`], embedded by `build.rs`);
//! - the newest spool time seen: the oldest unacknowledged record's at start, then every record the
//!   sender reads (the spool stamps each record with the system clock when it is appended, so a record
//!   spooled before a reboot proves the clock once stood there).
//!
//! The broker's clock is not a source: the producer does not read `log_append_time_ms` from Produce
//! responses (it is set only for LogAppendTime topics anyway), and no other Kafka API carries the time.
//!
//! The clock is insane while `now + SLACK_MS < lower bound`; the slack absorbs small NTP steps
//! backwards. A record spooled while the clock was far ahead (then corrected backwards) holds sending
//! until the clock passes its spool time again.
//!
//! # Timestamps of held records
//! The Kafka record timestamp (CreateTime) is the time the producer puts the record into a batch, as for
//! every record: a held record is stamped when it is finally sent, with the sane clock. Its spool time
//! (wrong while the clock was insane) is not sent, and the Avro payload, with the sensor's own
//! `timestamp` field, is sent exactly as it was spooled.
//!
//! # Telling
//! A warning when holding starts (and every 10 minutes while it lasts), with the clock, the lower bound
//! and its source; an info line when it ends. Metrics: `clock_insane` (0/1), `clock_held_records`
//! (unacknowledged records while insane), `clock_lower_bound_seconds`; the summary line shows the first two.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::dead_letter::rfc3339_ms;
use super::metrics::Metrics;

/// How far the clock may lag behind the lower bound before it counts as insane.
pub const SLACK_MS: u64 = 5 * 60 * 1000;
/// How often the sender looks at the clock again while it holds.
pub const RECHECK: Duration = Duration::from_millis(250);
/// How often the warning repeats while the clock stays insane.
const REPEAT_WARNING: Duration = Duration::from_secs(600);

/// Where a lower bound comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundSource {
    Build,
    Spool,
}

impl BoundSource {
    pub fn as_str(self) -> &'static str {
        match self {
            BoundSource::Build => "build-time",
            BoundSource::Spool => "spool",
        }
    }
}

/// A lower bound for "now" (ms since the epoch) and its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowerBound {
    pub ms: u64,
    pub source: BoundSource,
}

/// The lower-bound sources; the bound only grows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowerBounds {
    build_ms: u64,
    spool_ms: u64,
}

impl LowerBounds {
    pub fn new(build_ms: u64) -> Self {
        LowerBounds {
            build_ms,
            spool_ms: 0,
        }
    }

    /// A spool time (ms) the clock once showed.
    pub fn observe_spool(&mut self, ms: u64) {
        self.spool_ms = self.spool_ms.max(ms);
    }

    /// The largest bound (the build time on a tie).
    pub fn bound(&self) -> LowerBound {
        if self.spool_ms > self.build_ms {
            LowerBound {
                ms: self.spool_ms,
                source: BoundSource::Spool,
            }
        } else {
            LowerBound {
                ms: self.build_ms,
                source: BoundSource::Build,
            }
        }
    }

    /// Whether `now_ms` is plausible: not more than [`SLACK_MS`] below the bound.
    pub fn is_sane(&self, now_ms: u64) -> bool {
        now_ms.saturating_add(SLACK_MS) >= self.bound().ms
    }
}

/// The sender's gate: says when to hold, and logs and counts the changes.
#[derive(Debug)]
pub struct ClockGate {
    bounds: LowerBounds,
    /// Since when (and from which clock reading) records are held; `None` while the clock is sane.
    held_since: Option<(Instant, u64)>,
    last_warning: Option<Instant>,
}

impl ClockGate {
    /// A gate over the build time and the spool's oldest unacknowledged record time, if any.
    pub fn new(build_ms: u64, oldest_unacked_ms: Option<u64>) -> Self {
        let mut bounds = LowerBounds::new(build_ms);
        if let Some(ms) = oldest_unacked_ms {
            bounds.observe_spool(ms);
        }
        ClockGate {
            bounds,
            held_since: None,
            last_warning: None,
        }
    }

    #[cfg(test)]
    fn bounds(&self) -> &LowerBounds {
        &self.bounds
    }

    /// Before reading from the spool: true while the clock is still below the known bound.
    pub fn held(&mut self, now_ms: u64, metrics: &Metrics) -> bool {
        self.update(now_ms, metrics)
    }

    /// After reading a batch: its records' spool times ([`crate::spool::SpoolRecord::timestamp_ms`]) join the bound; true when the batch must be held back
    /// (the caller rewinds the spool so that it is read again later).
    pub fn hold_batch(
        &mut self,
        spool_times: impl IntoIterator<Item = u64>,
        now_ms: u64,
        metrics: &Metrics,
    ) -> bool {
        for ms in spool_times {
            self.bounds.observe_spool(ms);
        }
        self.update(now_ms, metrics)
    }

    fn update(&mut self, now_ms: u64, metrics: &Metrics) -> bool {
        let bound = self.bounds.bound();
        metrics
            .clock_lower_bound_ms
            .store(bound.ms, Ordering::Relaxed);
        if self.bounds.is_sane(now_ms) {
            if let Some((since, clock_then)) = self.held_since.take() {
                metrics.clock_insane.store(0, Ordering::Relaxed);
                tracing::info!(
                    clock = %rfc3339_ms(now_ms),
                    clock_ms = now_ms,
                    lower_bound = %rfc3339_ms(bound.ms),
                    lower_bound_ms = bound.ms,
                    source = bound.source.as_str(),
                    held_s = since.elapsed().as_secs(),
                    clock_when_held_ms = clock_then,
                    "system clock is sane again; sending the held records"
                );
            }
            return false;
        }
        metrics.clock_insane.store(1, Ordering::Relaxed);
        let starting = self.held_since.is_none();
        if starting {
            self.held_since = Some((Instant::now(), now_ms));
        }
        if starting
            || self
                .last_warning
                .is_none_or(|t| t.elapsed() >= REPEAT_WARNING)
        {
            self.last_warning = Some(Instant::now());
            tracing::warn!(
                clock = %rfc3339_ms(now_ms),
                clock_ms = now_ms,
                lower_bound = %rfc3339_ms(bound.ms),
                lower_bound_ms = bound.ms,
                source = bound.source.as_str(),
                "system clock is below its lower bound: records stay in the spool (input goes on) until it is sane"
            );
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILD: u64 = 1_764_028_800_000; // 2025-11-25
    const HOUR: u64 = 3_600_000;

    #[test]
    fn the_bound_is_the_largest_source_and_only_grows() {
        let mut b = LowerBounds::new(BUILD);
        assert_eq!(
            b.bound(),
            LowerBound {
                ms: BUILD,
                source: BoundSource::Build
            }
        );
        b.observe_spool(BUILD - HOUR);
        assert_eq!(b.bound().source, BoundSource::Build);
        b.observe_spool(BUILD + HOUR);
        assert_eq!(
            b.bound(),
            LowerBound {
                ms: BUILD + HOUR,
                source: BoundSource::Spool
            }
        );
        b.observe_spool(BUILD);
        assert_eq!(b.bound().ms, BUILD + HOUR);
    }

    #[test]
    fn the_epoch_is_insane_and_slack_absorbs_small_steps_back() {
        let mut b = LowerBounds::new(BUILD);
        assert!(!b.is_sane(0));
        assert!(!b.is_sane(1_000));
        assert!(b.is_sane(BUILD));
        assert!(b.is_sane(BUILD + 10 * HOUR));
        b.observe_spool(BUILD + HOUR);
        // The clock stepped back a little after the last record: still sane.
        assert!(b.is_sane(BUILD + HOUR - SLACK_MS));
        assert!(!b.is_sane(BUILD + HOUR - SLACK_MS - 1));
        // Booted at the last shutdown, an hour before the newest record: insane.
        assert!(!b.is_sane(BUILD));
    }

    #[test]
    fn the_gate_holds_while_insane_and_releases_by_itself() {
        let m = Metrics::default();
        let mut g = ClockGate::new(BUILD, None);
        assert!(g.held(1_000, &m));
        assert_eq!(m.clock_insane.load(Ordering::Relaxed), 1);
        assert_eq!(m.clock_lower_bound_ms.load(Ordering::Relaxed), BUILD);
        assert!(g.held(2_000, &m));
        assert!(!g.held(BUILD + 1, &m));
        assert_eq!(m.clock_insane.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_batch_spooled_by_a_later_clock_raises_the_bound() {
        let m = Metrics::default();
        let mut g = ClockGate::new(BUILD, Some(BUILD - HOUR));
        let now = BUILD + HOUR;
        assert!(!g.held(now, &m));
        let batch = [now + 2 * HOUR, now + 3 * HOUR];
        assert!(g.hold_batch(batch, now, &m));
        assert_eq!(g.bounds().bound().ms, now + 3 * HOUR);
        assert_eq!(m.clock_insane.load(Ordering::Relaxed), 1);
        assert!(!g.hold_batch(batch, now + 3 * HOUR, &m));
    }

    #[test]
    fn the_oldest_unacked_spool_time_counts_from_the_start() {
        let m = Metrics::default();
        let mut g = ClockGate::new(BUILD, Some(BUILD + 5 * HOUR));
        assert!(g.held(BUILD + HOUR, &m));
        assert_eq!(g.bounds().bound().source, BoundSource::Spool);
    }
}
