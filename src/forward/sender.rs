//! The sender: drains the spool in order through the sink, one window (a batch read from the spool) at a
//! time, with an acknowledgement per record ([`super::window`]):
//! - a round sends the window's pending records, one `send_batch` per topic, each topic's in spool order;
//! - a record the sink acknowledged is settled; so is a record the broker refused for good
//!   ([`RecordSink::permanent`]: too large on its own, invalid, corrupt), once it is in the dead-letter
//!   file with the broker's reason and counted (`forward_dead_lettered{kind}`). The broker refuses whole
//!   batches, so a record refused together with others is first sent again alone (its topic then goes
//!   one record per call, in spool order, until that is done): only a record refused on its own is
//!   dead-lettered, and its batch neighbours are delivered;
//! - the spool's acknowledged cursor moves over the settled prefix only; records settled out of order are
//!   remembered in the window, so after a failure the retry (after a backoff that doubles up to its
//!   maximum) sends only the records whose send failed, and nothing new is read until the window is
//!   settled. Records of one partition never overtake each other: the retry sends a topic's failed
//!   records in spool order before anything read later, and the sink fails the records behind a failed
//!   one in its partition (the producer does, see `kafka::producer::sender`). Not yet closed: the
//!   producer fails the batches queued behind a failed one only on a retriable error, so when one call
//!   puts two batches into a partition and the first is refused for good, the second can land before the
//!   first one's good records, which are sent again alone.
//!
//! - a record that failed otherwise stays pending, whatever the cause: a passing failure (a broker
//!   down) or a refusal that fixing the setup cures ([`RecordSink::refusal`]: our clock, an ACL, the
//!   credentials, a missing topic). The causes are told once each and then once a minute with a
//!   count (`held`), not per record; a timestamp refused as ahead or behind tells the clock gate.
//!
//! A crash or a stop with a window partly settled: the spool still holds everything from the first
//! pending record on, so the next run sends those again, the ones acknowledged out of order included: at
//! most one window (`batch_records`) of duplicates, which the spool counts as possible duplicates.
//!
//! Must never release a record the sink did not acknowledge unless it is in the dead-letter file (when
//! that file cannot be written the record stays pending), never dead-letter for an error that fixing the
//! setup cures (our clock, authorization, authentication, an unknown topic, ...: those are retried),
//! and never reorder. Holds records back (in the spool) while the system clock is below its lower
//! bound (`clock_check`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::clock_check::{self, ClockGate, Distrust};
use super::dead_letter::{DeadLetter, Refused};
use super::held::{Cause, Telling};
use super::metrics::{Metrics, add};
use super::window::{Taken, Window};
use super::{OutRecord, RecordSink, Refusal, RefusedTimestamp};
use crate::error::{ErrorKind, Kind};
use crate::spool::{Spool, SpoolError};

/// Exponential backoff between failed sends.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

/// How the sender drains the spool.
#[derive(Debug, Clone)]
pub struct SenderOptions {
    pub batch_records: usize,
    pub batch_bytes: usize,
    pub backoff: Backoff,
    /// How long one wait for new records lasts (also the fsync tick).
    pub poll: Duration,
    /// A partial batch waits this long for more records before it is sent, so that a steady trickle
    /// goes out in full batches (one cursor write per batch) instead of one record per send.
    pub linger: Duration,
    /// Hold records while the system clock is below its lower bound (`clock_check`).
    pub clock_check: bool,
    /// The gateway named in every record's headers with its sequence number
    /// (`crate::dedupe::headers`); `None`: no headers (`forward.headers = false`).
    pub headers: Option<String>,
}

impl Default for SenderOptions {
    fn default() -> Self {
        SenderOptions {
            batch_records: 500,
            batch_bytes: 1 << 20,
            backoff: Backoff {
                min: Duration::from_millis(100),
                max: Duration::from_secs(5),
            },
            clock_check: true,
            poll: Duration::from_millis(50),
            linger: Duration::from_millis(5),
            headers: None,
        }
    }
}

pub(super) fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let end = std::time::Instant::now() + d;
    while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20).min(d));
    }
}

/// Run until `stop` is set.
pub fn run<S: RecordSink>(
    spool: &Spool,
    mut sink: S,
    metrics: &Metrics,
    dead: &DeadLetter,
    stop: &AtomicBool,
    opts: &SenderOptions,
) {
    let mut backoff = opts.backoff.min;
    let mut first_ack = true;
    let mut clock = clock_gate(spool);
    let mut telling = Telling::default();
    let mut window = Window::default();
    // A read failed after handing out part of its records: read again from the acknowledged cursor
    // once the window is released.
    let mut reread = false;
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = spool.tick() {
            tracing::error!(error = %e, "spool fsync failed");
            metrics.set_error(e.kind(), &e.to_string());
        }
        // The bound only grows: while the clock is below the known one, there is no need to read.
        if opts.clock_check && clock.held(crate::clock::now_ms(), metrics) {
            sleep_unless(stop, clock_check::RECHECK);
            continue;
        }
        if window.is_empty() {
            match next_window(spool, metrics, stop, opts, &mut clock, &mut reread) {
                Ok(Some(w)) => window = w,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "spool read failed");
                    metrics.set_error(e.kind(), &e.to_string());
                    spool.rewind();
                    sleep_unless(stop, backoff);
                    backoff = (backoff * 2).min(opts.backoff.max);
                    continue;
                }
            }
        }
        let mut round = send_round(&mut sink, &mut window, dead, metrics);
        if let Some(last) = window.release()
            && let Err(e) = spool.ack_through(&last)
        {
            tracing::error!(error = %e, "spool ack failed");
            metrics.set_error(e.kind(), &e.to_string());
        }
        if reread && window.is_empty() {
            reread = false;
            spool.rewind();
        }
        if first_ack && round.acked > 0 {
            first_ack = false;
            // Start-to-first-send is measured from this line (benches/forward.rs).
            tracing::info!(records = round.acked, "first records acknowledged");
        }
        if opts.clock_check {
            learn_clock(spool, &mut clock, round.clock, round.acked > 0);
        }
        // Whatever is still pending is sent again (after a failure, or alone after a refusal).
        let resend = window.pending() as u64;
        add(&metrics.retried, resend);
        let dead = std::mem::take(&mut round.dead);
        if tell(&round.causes(), &dead, resend, spool, metrics, &mut telling) {
            tracing::debug!(
                resend,
                backoff_ms = backoff.as_millis() as u64,
                "send failed; will resend the records that were not acknowledged"
            );
            sleep_unless(stop, backoff);
            backoff = (backoff * 2).min(opts.backoff.max);
            // `drop_oldest` may have released some of them meanwhile: those are not sent again.
            window.forget_below(spool.acked_seq());
        } else {
            backoff = opts.backoff.min;
        }
    }
}

/// A sender's clock gate at its start: from the spool's oldest unacknowledged record and the spool
/// times the broker proved ahead (kept in the spool directory).
pub(super) fn clock_gate(spool: &Spool) -> ClockGate {
    let status = spool.status();
    ClockGate::new(
        crate::clock::BUILD_TIME_MS,
        (status.oldest_unacked_ms).map(|ms| (status.acked_seq, ms)),
        Distrust::load(spool.dir()),
    )
}

/// Tell why records stay pending after a round or a step (see `held`; both senders): the records
/// dead-lettered by rejection (`dead`), the refused records counted per kind
/// (`forward_refusals_total`), the cause holding them on the metrics and as the last error, each
/// cause in the log at once and then once a minute. No cause: sending went through (a cause that
/// held records is told over). True when something failed (the caller backs off).
pub(super) fn tell(
    causes: &[Cause],
    dead: &[Cause],
    resend: u64,
    spool: &Spool,
    metrics: &Metrics,
    telling: &mut Telling,
) -> bool {
    let now = Instant::now();
    if !dead.is_empty() {
        telling.dead_lettered(dead, spool.status().records, now);
    }
    let Some(holding) = causes.iter().find(|c| c.refusal).or(causes.first()) else {
        telling.clear(now);
        metrics.held.set(None);
        return false;
    };
    for c in causes.iter().filter(|c| c.refusal) {
        metrics.held.count_refused(c.kind, c.records);
    }
    metrics.set_error(holding.kind, &holding.message);
    metrics.held.set(Some(holding));
    let held = spool.status().records.max(resend);
    telling.note(causes, held, now);
    true
}

/// The clock gate's part of a refusal: a timestamp refused as ahead or behind (with its kind).
pub(super) fn clock_refusal(r: &Refusal) -> Option<(Kind, RefusedTimestamp)> {
    (r.timestamp)
        .filter(|_| r.kind != Kind::InvalidTimestamp)
        .map(|t| (r.kind, t))
}

/// What the broker said about our clock in a round or a step (both senders): a timestamp refused as
/// ahead (those spool times stop raising the lower bound) or behind, or timestamps taken
/// (`acked`); kept in the spool directory when the spool times that count change.
pub(super) fn learn_clock(
    spool: &Spool,
    clock: &mut ClockGate,
    refused: Option<(Kind, RefusedTimestamp)>,
    acked: bool,
) {
    let changed = match refused {
        Some((Kind::ClockAheadOfBroker, t)) => {
            clock.refused_ahead(u64::try_from(t.accepted_until_ms).unwrap_or(0))
        }
        Some((Kind::ClockBehindBroker, t)) => {
            clock.refused_behind(u64::try_from(t.accepted_from_ms).unwrap_or(0));
            false
        }
        _ if acked => clock.accepted(spool.next_seq()),
        _ => false,
    };
    if (changed | clock.settled(spool.acked_seq()))
        && let Err(e) = Distrust::save(spool.dir(), clock.distrust())
    {
        tracing::warn!(error = %e, dir = %spool.dir().display(), "cannot keep the clock's distrusted spool times in the spool directory");
    }
}

/// Read the next window from the spool (waiting up to `poll`, then `linger` for a fuller batch); `None`
/// when there is nothing to send yet or the clock holds the records back (they are read again later).
pub(super) fn next_window(
    spool: &Spool,
    metrics: &Metrics,
    stop: &AtomicBool,
    opts: &SenderOptions,
    clock: &mut ClockGate,
    reread: &mut bool,
) -> Result<Option<Window>, SpoolError> {
    let mut batch = spool.read_batch(opts.batch_records, opts.batch_bytes, opts.poll)?;
    if batch.is_empty() {
        return Ok(None);
    }
    if batch.len() < opts.batch_records && !opts.linger.is_zero() {
        sleep_unless(stop, opts.linger);
        match spool.read_batch(
            opts.batch_records - batch.len(),
            opts.batch_bytes,
            Duration::ZERO,
        ) {
            Ok(more) => batch.extend(more),
            Err(e) => {
                // Send what was read; the failed read may have moved the read position past records
                // it did not hand out, so read again from the cursor once this window is released.
                *reread = true;
                tracing::error!(error = %e, "spool read failed");
                metrics.set_error(e.kind(), &e.to_string());
            }
        }
    }
    // Records spooled by a later clock than the current one: hold them (read again after the rewind).
    if opts.clock_check
        && clock.hold_batch(
            batch.iter().map(|r| (r.seq, r.timestamp_ms)),
            crate::clock::now_ms(),
            metrics,
        )
    {
        spool.rewind();
        sleep_unless(stop, clock_check::RECHECK);
        return Ok(None);
    }
    Ok(Some(Window::new(batch, opts.headers.as_deref())))
}

/// One more record in `list` for `kind`.
fn add_to(list: &mut Vec<Cause>, kind: Kind, refusal: bool, message: impl FnOnce() -> String) {
    match list.iter_mut().find(|c| c.kind == kind) {
        Some(c) => c.records += 1,
        None => list.push(Cause {
            kind,
            refusal,
            records: 1,
            message: message(),
        }),
    }
}

/// What one round of sends did.
#[derive(Default)]
struct Round {
    /// Records the sink acknowledged.
    acked: u64,
    /// Why records were left pending: each cause with its count, in the order first met.
    causes: Vec<Cause>,
    /// Records dead-lettered, by rejection (told like the causes, not once per record).
    dead: Vec<Cause>,
    /// A timestamp the broker refused as ahead or behind (its kind), for the clock gate.
    clock: Option<(Kind, RefusedTimestamp)>,
}

impl Round {
    /// One more record left pending for `kind` (a refusal that fixing the setup cures, or not).
    fn fail(&mut self, kind: Kind, refusal: bool, message: impl FnOnce() -> String) {
        add_to(&mut self.causes, kind, refusal, message);
    }

    /// The causes as told: records failed only because an earlier batch of their partition failed
    /// (`behind-refused`) count with the round's first other cause.
    fn causes(mut self) -> Vec<Cause> {
        let behind = self
            .causes
            .iter()
            .position(|c| c.kind == Kind::BehindRefused);
        if let Some(i) = behind
            && self.causes.len() > 1
        {
            let b = self.causes.remove(i);
            if let Some(first) = self.causes.first_mut() {
                first.records += b.records;
            }
        }
        self.causes
    }
}

/// Send every pending record of the window, one `send_batch` per topic (one per record for a topic
/// with a record to send alone), and settle what was acknowledged or refused for good (dead-lettered);
/// what failed otherwise stays pending.
fn send_round<S: RecordSink>(
    sink: &mut S,
    window: &mut Window,
    dead: &DeadLetter,
    metrics: &Metrics,
) -> Round {
    let mut round = Round::default();
    for topic in window.topics() {
        if window.one_by_one(&topic) {
            // In spool order, and no further after a failure: a later record of the failed one's
            // partition must not overtake it.
            for i in window.pending_of(&topic) {
                let taken = window.take_at(i);
                if !send_taken(sink, window, taken, dead, metrics, &mut round) {
                    break;
                }
            }
        } else {
            let taken = window.take(&topic);
            send_taken(sink, window, taken, dead, metrics, &mut round);
        }
    }
    add(&metrics.acked, round.acked);
    if round.acked > 0 {
        metrics.stall.acked();
    }
    round
}

/// Send records taken from the window in one call and settle them (see [`send_round`]). A record
/// refused for good in a call with others is not dead-lettered yet: the broker refuses whole batches
/// (INVALID_RECORD, CORRUPT_MESSAGE, a MESSAGE_TOO_LARGE the producer did not split), so it is sent
/// again alone, which tells the refused record from its neighbours. A record that failed otherwise
/// stays pending, counted for its cause (a refusal that fixing the setup cures, or a passing failure).
/// False when a record failed for a reason that is not permanent.
fn send_taken<S: RecordSink>(
    sink: &mut S,
    window: &mut Window,
    taken: Taken,
    dead: &DeadLetter,
    metrics: &Metrics,
    round: &mut Round,
) -> bool {
    let n = taken.records.len();
    if n == 0 {
        return true;
    }
    add(&metrics.sent, n as u64);
    metrics.stall.sending(sink.retry_note());
    let mut results = sink.send_batch(&taken.topic, &taken.records).into_iter();
    let mut settled = true;
    for (i, out) in taken.at.into_iter().zip(taken.records) {
        let e = match results.next() {
            Some(Ok(_)) => {
                round.acked += 1;
                continue;
            }
            Some(Err(e)) => e,
            None => {
                round.fail(Kind::NotAcknowledged, false, || {
                    "the sink returned no result for a record".into()
                });
                window.put_back(i, out);
                settled = false;
                continue;
            }
        };
        if let Some(rejection) = S::permanent(&e) {
            if n > 1 {
                window.send_alone(i, out);
                continue;
            }
            let spooled_ms = window.record(i).map_or(0, |r| r.timestamp_ms);
            if dead_letter(dead, metrics, &taken.topic, &out, spooled_ms, rejection, &e) {
                add_to(&mut round.dead, rejection, false, || e.to_string());
                continue;
            }
            round.fail(e.kind(), false, || e.to_string());
        } else if let Some(r) = S::refusal(&e) {
            if let Some(c) = clock_refusal(&r) {
                round.clock.get_or_insert(c);
            }
            round.fail(r.kind, true, || e.to_string());
        } else {
            round.fail(e.kind(), false, || e.to_string());
        }
        window.put_back(i, out);
        settled = false;
    }
    settled
}

/// Write a record the broker refused for good to the dead-letter file and count it; false when the file
/// cannot be written (the record then stays pending, and is retried).
pub(super) fn dead_letter<E: ErrorKind>(
    dead: &DeadLetter,
    metrics: &Metrics,
    topic: &str,
    out: &OutRecord,
    spooled_ms: u64,
    rejection: Kind,
    e: &E,
) -> bool {
    let message = e.to_string();
    let refused = Refused {
        topic,
        key: out.key.as_deref(),
        value: &out.value,
        spooled_ms,
        kind: e.kind(),
        rejection,
        message: &message,
    };
    if let Err(io) = dead.write_record(&refused) {
        tracing::error!(error = %io, path = %dead.path().display(), "cannot write the dead-letter file; the refused record stays in the spool");
        metrics.set_error(Kind::DeadLetterIo, &io.to_string());
        return false;
    }
    metrics.count_refused(rejection);
    // Told once per rejection and interval by the caller (`held::Telling::dead_lettered`).
    tracing::debug!(topic, kind = e.kind().as_str(), rejection = rejection.as_str(), error = %message, "record refused by the broker for good: dead-lettered");
    metrics.set_error(e.kind(), &message);
    true
}

#[cfg(test)]
#[path = "sender_tests.rs"]
mod tests;
