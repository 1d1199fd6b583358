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
//!   spooled before a reboot proves the clock once stood there);
//! - the start of the range the broker accepted when it refused our timestamps as too far behind
//!   (`clock-behind-broker`): its clock less `log.message.timestamp.before.max.ms`.
//!
//! Otherwise the broker's clock is not a source: the producer does not read `log_append_time_ms` from
//! Produce responses (it is set only for LogAppendTime topics anyway), and no other Kafka API carries
//! the time.
//!
//! The clock is insane while `now + SLACK_MS < lower bound`; the slack absorbs small NTP steps
//! backwards.
//!
//! # A clock that ran ahead
//! A spool time proves the clock once stood there only if the clock was right. When the broker refuses
//! our timestamps as too far ahead (`clock-ahead-of-broker`), no true time was above the end of the
//! range it accepted then (its clock plus `log.message.timestamp.after.max.ms`): spool times above it
//! came from the clock that ran ahead, and they must not hold the records once the clock is set right
//! (a clock 2 h ahead, corrected, would hold them 2 h). So from that refusal on, spool times above that
//! end ([`Distrust`]) do not count, for the records spooled until the broker takes our timestamps
//! again; the lower bound forgets a spool time above it that it had already taken. The distrust is
//! kept in the spool directory (`clock-refused.json`), so a forwarder restarted with the right clock on
//! the same spool sends at once, and it ends when those records are acknowledged. Without such a
//! refusal (the broker never saw the records), a record spooled while the clock was far ahead still
//! holds sending until the clock passes its spool time again.
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

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

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
    /// The broker's accepted range, when it refused our timestamps as too far behind.
    Broker,
}

impl BoundSource {
    pub fn as_str(self) -> &'static str {
        match self {
            BoundSource::Build => "build-time",
            BoundSource::Spool => "spool",
            BoundSource::Broker => "broker",
        }
    }
}

/// Spool times that came from a clock the broker found ahead (see the module doc): above
/// `spool_times_above_ms`, of records before `until_seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distrust {
    /// The end of the range the broker accepted at the first refusal (its clock plus
    /// `log.message.timestamp.after.max.ms`), ms since the epoch.
    pub spool_times_above_ms: u64,
    /// The spool's next sequence number when the broker took our timestamps again: later records
    /// were spooled by the corrected clock. `None` while it refuses them.
    pub until_seq: Option<u64>,
}

/// Where a [`Distrust`] is kept: `<spool dir>/clock-refused.json` (the spool's lock covers it).
const DISTRUST_FILE: &str = "clock-refused.json";

impl Distrust {
    fn covers(&self, seq: u64, spool_ms: u64) -> bool {
        spool_ms > self.spool_times_above_ms && self.until_seq.is_none_or(|until| seq < until)
    }

    /// The distrust a forwarder left in `spool_dir`, if any (an unreadable file counts as none).
    pub fn load(spool_dir: &Path) -> Option<Distrust> {
        let text = std::fs::read(spool_dir.join(DISTRUST_FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Keep `d` in `spool_dir` (atomically), or remove the file for `None`.
    pub fn save(spool_dir: &Path, d: Option<&Distrust>) -> std::io::Result<()> {
        let path = spool_dir.join(DISTRUST_FILE);
        let Some(d) = d else {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        };
        let tmp = spool_dir.join("clock-refused.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(d).map_err(std::io::Error::other)?)?;
        std::fs::rename(&tmp, path)
    }
}

/// A lower bound for "now" (ms since the epoch) and its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowerBound {
    pub ms: u64,
    pub source: BoundSource,
}

/// The lower-bound sources; the bound only grows, but for spool times the broker proved wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowerBounds {
    build_ms: u64,
    spool_ms: u64,
    broker_ms: u64,
    distrust: Option<Distrust>,
}

impl LowerBounds {
    pub fn new(build_ms: u64) -> Self {
        LowerBounds {
            build_ms,
            spool_ms: 0,
            broker_ms: 0,
            distrust: None,
        }
    }

    /// The spool time (ms) of record `seq`: the clock once showed it, unless the broker proved that
    /// clock ahead ([`Distrust`]).
    pub fn observe_spool(&mut self, seq: u64, ms: u64) {
        if !self.distrust.is_some_and(|d| d.covers(seq, ms)) {
            self.spool_ms = self.spool_ms.max(ms);
        }
    }

    /// A time (ms) the broker's clock was past: the start of the range it accepted.
    pub fn observe_broker(&mut self, ms: u64) {
        self.broker_ms = self.broker_ms.max(ms);
    }

    /// The largest bound (the build time on a tie, then the spool).
    pub fn bound(&self) -> LowerBound {
        let mut b = LowerBound {
            ms: self.build_ms,
            source: BoundSource::Build,
        };
        for (ms, source) in [
            (self.spool_ms, BoundSource::Spool),
            (self.broker_ms, BoundSource::Broker),
        ] {
            if ms > b.ms {
                b = LowerBound { ms, source };
            }
        }
        b
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
    /// A gate over the build time and the spool's oldest unacknowledged record (sequence number,
    /// spool time), if any, but for the spool times the broker proved wrong (`distrust`, as kept in
    /// the spool directory).
    pub fn new(
        build_ms: u64,
        oldest_unacked: Option<(u64, u64)>,
        distrust: Option<Distrust>,
    ) -> Self {
        let mut bounds = LowerBounds::new(build_ms);
        bounds.distrust = distrust;
        if let Some((seq, ms)) = oldest_unacked {
            bounds.observe_spool(seq, ms);
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

    /// After reading a batch: its records' sequence numbers and spool times
    /// ([`crate::spool::SpoolRecord::timestamp_ms`]) join the bound; true when the batch must be
    /// held back (the caller rewinds the spool so that it is read again later).
    pub fn hold_batch(
        &mut self,
        spool_times: impl IntoIterator<Item = (u64, u64)>,
        now_ms: u64,
        metrics: &Metrics,
    ) -> bool {
        for (seq, ms) in spool_times {
            self.bounds.observe_spool(seq, ms);
        }
        self.update(now_ms, metrics)
    }

    /// The broker refused our timestamps as too far ahead; it accepted up to `accepted_until_ms`.
    /// Spool times above it stop counting (see the module doc). True when the distrust changed (the
    /// caller keeps it in the spool directory).
    pub fn refused_ahead(&mut self, accepted_until_ms: u64) -> bool {
        let before = self.bounds.distrust;
        let above = match before {
            Some(d) => d.spool_times_above_ms.min(accepted_until_ms),
            None => accepted_until_ms,
        };
        let d = Distrust {
            spool_times_above_ms: above,
            until_seq: None,
        };
        self.bounds.distrust = Some(d);
        if self.bounds.spool_ms > above {
            // Taken from a clock that ran ahead: the bound falls back to its other sources.
            self.bounds.spool_ms = 0;
        }
        if before.is_none() {
            tracing::info!(
                accepted_until = %rfc3339_ms(above),
                accepted_until_ms = above,
                "the broker found this clock ahead: spool times above the end of the range it accepted do not count toward the clock's lower bound"
            );
        }
        before != Some(d)
    }

    /// The broker refused our timestamps as too far behind; it accepted from `accepted_from_ms`,
    /// which is past, so a lower bound for now.
    pub fn refused_behind(&mut self, accepted_from_ms: u64) {
        self.bounds.observe_broker(accepted_from_ms);
    }

    /// The broker took our timestamps (records acknowledged, none refused as ahead) while the spool's
    /// next sequence number is `next_seq`: records spooled from now on count again. True when the
    /// distrust changed.
    pub fn accepted(&mut self, next_seq: u64) -> bool {
        match &mut self.bounds.distrust {
            Some(d) if d.until_seq.is_none() => {
                d.until_seq = Some(next_seq);
                true
            }
            _ => false,
        }
    }

    /// The spool acknowledged every record below `acked_seq`: a distrust whose records are all gone
    /// ends. True when it did.
    pub fn settled(&mut self, acked_seq: u64) -> bool {
        let done = (self.bounds.distrust)
            .is_some_and(|d| d.until_seq.is_some_and(|until| acked_seq >= until));
        if done {
            self.bounds.distrust = None;
        }
        done
    }

    /// The spool times that do not count now, to keep in the spool directory.
    pub fn distrust(&self) -> Option<&Distrust> {
        self.bounds.distrust.as_ref()
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
        b.observe_spool(1, BUILD - HOUR);
        assert_eq!(b.bound().source, BoundSource::Build);
        b.observe_spool(2, BUILD + HOUR);
        assert_eq!(
            b.bound(),
            LowerBound {
                ms: BUILD + HOUR,
                source: BoundSource::Spool
            }
        );
        b.observe_spool(3, BUILD);
        assert_eq!(b.bound().ms, BUILD + HOUR);
        b.observe_broker(BUILD + 2 * HOUR);
        assert_eq!(
            b.bound(),
            LowerBound {
                ms: BUILD + 2 * HOUR,
                source: BoundSource::Broker
            }
        );
    }

    #[test]
    fn the_epoch_is_insane_and_slack_absorbs_small_steps_back() {
        let mut b = LowerBounds::new(BUILD);
        assert!(!b.is_sane(0));
        assert!(!b.is_sane(1_000));
        assert!(b.is_sane(BUILD));
        assert!(b.is_sane(BUILD + 10 * HOUR));
        b.observe_spool(1, BUILD + HOUR);
        // The clock stepped back a little after the last record: still sane.
        assert!(b.is_sane(BUILD + HOUR - SLACK_MS));
        assert!(!b.is_sane(BUILD + HOUR - SLACK_MS - 1));
        // Booted at the last shutdown, an hour before the newest record: insane.
        assert!(!b.is_sane(BUILD));
    }

    #[test]
    fn the_gate_holds_while_insane_and_releases_by_itself() {
        let m = Metrics::default();
        let mut g = ClockGate::new(BUILD, None, None);
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
        let mut g = ClockGate::new(BUILD, Some((0, BUILD - HOUR)), None);
        let now = BUILD + HOUR;
        assert!(!g.held(now, &m));
        let batch = [(1, now + 2 * HOUR), (2, now + 3 * HOUR)];
        assert!(g.hold_batch(batch, now, &m));
        assert_eq!(g.bounds().bound().ms, now + 3 * HOUR);
        assert_eq!(m.clock_insane.load(Ordering::Relaxed), 1);
        assert!(!g.hold_batch(batch, now + 3 * HOUR, &m));
    }

    #[test]
    fn the_oldest_unacked_spool_time_counts_from_the_start() {
        let m = Metrics::default();
        let mut g = ClockGate::new(BUILD, Some((0, BUILD + 5 * HOUR)), None);
        assert!(g.held(BUILD + HOUR, &m));
        assert_eq!(g.bounds().bound().source, BoundSource::Spool);
    }

    /// A clock 2 h ahead spools records, the broker refuses them as ahead, the clock is set right:
    /// the records go at once, in the same process and after a restart on the same spool.
    #[test]
    fn spool_times_the_broker_refused_as_ahead_do_not_hold_the_corrected_clock() {
        let m = Metrics::default();
        let right = BUILD + 10 * HOUR;
        let ahead = right + 2 * HOUR;
        let mut g = ClockGate::new(BUILD, None, None);
        // Records 0..10 spooled by the clock that is ahead: sane by that clock.
        let batch: Vec<(u64, u64)> = (0..10).map(|i| (i, ahead + i)).collect();
        assert!(!g.hold_batch(batch.iter().copied(), ahead, &m));
        // Refused: the broker took timestamps up to its clock plus 1 h.
        assert!(g.refused_ahead(right + HOUR));
        assert!(
            !g.refused_ahead(right + HOUR + 5),
            "the first refusal's end stays"
        );
        // The clock is set right: not held, and the held records read again do not raise the bound.
        assert!(!g.held(right, &m));
        assert!(!g.hold_batch(batch.iter().copied(), right, &m));
        // A restart on the same spool (records 0.. still there) with the distrust kept.
        let kept = *g.distrust().unwrap();
        let mut again = ClockGate::new(BUILD, Some((0, ahead)), Some(kept));
        assert!(!again.held(right, &m));
        // Without it, the restart would hold the records until the clock passes their spool time.
        assert!(ClockGate::new(BUILD, Some((0, ahead)), None).held(right, &m));
        // Taken again from record 10 on: later records count; once 0..10 are acknowledged it ends.
        assert!(again.accepted(10) && !again.accepted(12));
        assert!(!again.hold_batch([(9, ahead + 9)], right, &m));
        assert!(
            again.hold_batch([(10, right + HOUR + 1)], right, &m),
            "counts again"
        );
        assert!(!again.settled(9) && again.settled(10));
        assert!(again.distrust().is_none());
    }

    #[test]
    fn the_distrust_is_kept_in_the_spool_directory_and_removed() {
        let dir = std::env::temp_dir().join(format!("avro-edge-distrust-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(Distrust::load(&dir), None);
        let d = Distrust {
            spool_times_above_ms: BUILD,
            until_seq: Some(7),
        };
        Distrust::save(&dir, Some(&d)).unwrap();
        assert_eq!(Distrust::load(&dir), Some(d));
        Distrust::save(&dir, None).unwrap();
        Distrust::save(&dir, None).unwrap();
        assert_eq!(Distrust::load(&dir), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
