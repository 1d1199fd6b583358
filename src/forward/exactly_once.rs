//! The exactly-once sender (`forward.exactly_once`), Kafka Connect's exactly-once source (KIP-618)
//! on a spool: the records go out inside transactions ([`Transactions`]), and each transaction
//! also writes this gateway's spool position (the last sequence number it covers) to the
//! positions topic, so a record is in Kafka, for read_committed consumers, exactly when the
//! position saying so is.
//! - Start: [`Transactions::start`] fences the gateway's previous instance (its open transaction
//!   is aborted) and reads the committed position; the spool records at or below it were
//!   delivered before a crash (or a power cut) and are released without being sent again.
//! - A transaction gathers send windows for `commit_interval`, then commits with the position of
//!   its last record; only then does the spool release them. Once the inputs have ended
//!   ([`Spool::interrupt`], the forwarder's drain) and every spooled record was sent, it commits
//!   at once: nothing more can join it, and the drain waits for the release. Before each window goes out the
//!   spool's sent mark is made durable ([`Spool::sync_cursor`]), so after a power cut the spool
//!   numbers new records above every one ever sent: a new reading is never taken for one
//!   already committed.
//! - Any record that fails aborts the transaction; the spool is read again from its first
//!   unreleased record and everything is sent again in a new transaction (after a backoff unless
//!   the record was refused for good). A failure is told and counted as the plain sender tells a
//!   round's (`sender::tell`): a refusal that fixing the setup cures, in a send or in the
//!   producer's start or commit (the credentials, an ACL on the transactional id), holds the
//!   records under its kind (`forward_refusals_total`, the held state, the exit code), and a
//!   timestamp refused as ahead or behind goes to the clock gate (`sender::learn_clock`).
//!   A record the broker refuses for good in a send with others is
//!   sent alone the next time; refused alone, it is dead-lettered (as the plain sender does),
//!   then the transaction without it goes again. Another forwarder that took over the gateway's
//!   transactional id (`producer-fenced`) stops this one: the forwarder exits with that kind.
//!
//! Must not release a record from the spool before the transaction holding it committed, and
//! must not send a record at or below the committed position.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::clock_check::{self, ClockGate};
use super::dead_letter::DeadLetter;
use super::held::{Cause, Telling};
use super::metrics::{Metrics, add};
use super::sender::{
    SenderOptions, clock_gate, clock_refusal, dead_letter, learn_clock, next_window, sleep_unless,
    tell,
};
use super::window::Window;
use super::{RecordSink, RefusedTimestamp, Transactions};
use crate::error::{ErrorKind, Kind};
use crate::spool::{Spool, SpoolRecord};

/// Why the sender stopped for good (set once, by the sender thread; read by the forwarder's `run`).
#[derive(Default)]
pub(crate) struct Fatal(std::sync::Mutex<Option<(Kind, String)>>);

impl Fatal {
    pub(crate) fn set(&self, kind: Kind, message: String) {
        let mut g = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.get_or_insert((kind, message));
    }
    pub(super) fn get(&self) -> Option<(Kind, String)> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// How the exactly-once sender runs.
#[derive(Debug, Clone)]
pub struct ExactlyOnceOptions {
    /// Windows, backoff, clock check and headers, as the plain sender's.
    pub send: SenderOptions,
    /// How long a transaction gathers windows before it commits.
    pub commit_interval: Duration,
    /// The gateway whose position the transactions store.
    pub gateway: String,
    /// The spool's next sequence number when it was opened (before any input ran): a committed
    /// position at or above it was not written from this spool.
    pub next_seq_at_open: u64,
}

/// Why a transaction cannot go on.
struct Failure {
    kind: Kind,
    message: String,
    /// Wait before the next attempt (not after a redo: the next attempt sends differently).
    back_off: bool,
    /// A refusal that fixing the setup cures ([`RecordSink::refusal`]: our clock, an ACL, the
    /// credentials, a missing topic), in a send or in a step of the producer's (its start, a
    /// commit): the records are held in the spool under its kind, as the plain sender does.
    refusal: bool,
    /// Records the failure held back (counted as refused for a refusal, each attempt).
    records: u64,
    /// Told as a cause that keeps records (`held`); not for a redo, which is no failure: a record
    /// refused for good goes alone the next time, or was dead-lettered.
    told: bool,
    /// A timestamp refused as ahead or behind, for the clock gate.
    clock: Option<(Kind, RefusedTimestamp)>,
}

impl Failure {
    /// A failure that is not a refusal.
    fn of<E: ErrorKind>(e: &E, back_off: bool) -> Failure {
        Failure {
            kind: e.kind(),
            message: e.to_string(),
            back_off,
            refusal: false,
            records: 0,
            told: true,
            clock: None,
        }
    }

    /// The sink's failure that is not permanent, holding `records`: a refusal (with its kind, as
    /// the plain sender tells it) or a passing one.
    fn of_sink<S: RecordSink>(e: &S::Error, records: u64) -> Failure {
        let refusal = S::refusal(e);
        Failure {
            kind: refusal.map_or(e.kind(), |r| r.kind),
            refusal: refusal.is_some(),
            records,
            clock: refusal.as_ref().and_then(clock_refusal),
            ..Failure::of(e, true)
        }
    }

    /// The transaction goes again at once without being a failure (see [`Failure::told`]).
    fn redo<E: ErrorKind>(e: &E) -> Failure {
        Failure {
            told: false,
            ..Failure::of(e, false)
        }
    }

    /// The sender cannot run (no transactional sink).
    fn config(message: &str) -> Failure {
        Failure {
            kind: Kind::InvalidConfig,
            message: message.into(),
            back_off: false,
            refusal: false,
            records: 0,
            told: true,
            clock: None,
        }
    }
}

/// The open transaction.
struct Open {
    began: Instant,
    /// The last read found nothing left to send.
    caught_up: bool,
    /// The last record of its last window: its sequence number is the position to commit.
    last: Option<SpoolRecord>,
    /// Records sent in it (dead-lettered ones not counted).
    records: u64,
}

/// The exactly-once sender's state.
struct Eos {
    /// `Transactions::start` succeeded (after a failure that ends the producer, it runs again).
    started: bool,
    /// The last committed position.
    position: Option<u64>,
    /// The highest sequence number this run has sent in a transaction: a committed position up to
    /// it may be this run's own (a commit whose answer was lost), read back when the producer
    /// starts again.
    sent_through: Option<u64>,
    open: Option<Open>,
    /// Records refused for good in a send with others: sent alone from now on.
    alone: BTreeSet<u64>,
    /// Records dead-lettered (refused alone): settled, never sent again.
    dead: BTreeSet<u64>,
    backoff: Duration,
    committed: u64,
    aborted: u64,
    /// The clock gate, told what the broker says of our timestamps as the plain sender's is.
    clock: ClockGate,
    clock_check: bool,
    /// Tells why records stay in the spool, as the plain sender does.
    telling: Telling,
}

/// Run until `stop` is set; on a fatal error (the producer fenced), say why in `fatal` and return.
pub fn run<S: RecordSink>(
    spool: &Spool,
    mut sink: S,
    metrics: &Metrics,
    dead: &DeadLetter,
    stop: &AtomicBool,
    opts: &ExactlyOnceOptions,
    fatal: &Fatal,
) {
    let send = &opts.send;
    let mut eos = Eos {
        started: false,
        position: None,
        sent_through: None,
        open: None,
        alone: BTreeSet::new(),
        dead: BTreeSet::new(),
        backoff: send.backoff.min,
        committed: 0,
        aborted: 0,
        clock: clock_gate(spool),
        clock_check: send.clock_check,
        telling: Telling::default(),
    };
    let mut reread = false;
    let ended = loop {
        if stop.load(Ordering::Relaxed) {
            break None;
        }
        if let Err(e) = spool.tick() {
            metrics.set_error(e.kind(), &e.to_string());
        }
        let step = match sink.transactions() {
            None => Err(Failure::config("exactly_once needs a transactional sink")),
            Some(t) if !eos.started => eos.start::<S>(t, spool, opts),
            Some(t) if eos.commit_due(opts.commit_interval, spool) => {
                eos.commit::<S>(t, spool, metrics)
            }
            Some(_) => Ok(()),
        };
        if let Some(e) = eos.handle(step, &mut sink, spool, metrics, stop) {
            break Some(e);
        }
        if !eos.started {
            continue;
        }
        if send.clock_check && eos.clock.held(crate::clock::now_ms(), metrics) {
            sleep_unless(stop, clock_check::RECHECK);
            continue;
        }
        let mut wait = send.clone();
        if let Some(o) = &eos.open {
            let left = opts.commit_interval.saturating_sub(o.began.elapsed());
            wait.poll = wait.poll.min(left.max(Duration::from_millis(1)));
        }
        let window = match next_window(spool, metrics, stop, &wait, &mut eos.clock, &mut reread) {
            Ok(Some(w)) => w,
            Ok(None) => {
                if let Some(o) = eos.open.as_mut() {
                    o.caught_up = true;
                }
                continue;
            }
            Err(e) => {
                metrics.set_error(e.kind(), &e.to_string());
                spool.rewind();
                sleep_unless(stop, eos.backoff);
                continue;
            }
        };
        let step = eos.window(&mut sink, window, spool, dead, metrics);
        if let Some(e) = eos.handle(step, &mut sink, spool, metrics, stop) {
            break Some(e);
        }
        if reread && eos.open.is_none() {
            reread = false;
            spool.rewind();
        }
    };
    eos.finish(&mut sink, spool, metrics, ended, fatal);
}

impl Eos {
    /// Fence the previous instance, read the committed position, release what it covers. A
    /// position at or above the spool's sequence numbers when it was opened was written from
    /// another spool, unless this run sent that far: a commit whose answer was lost (the coordinator
    /// killed during EndTxn) completes when the producer starts again. A refusal (an ACL on the
    /// transactional id, the credentials, ...) holds the records as one in a send does: counted as
    /// one window of them.
    fn start<S: RecordSink>(
        &mut self,
        t: &mut dyn Transactions<Error = S::Error>,
        spool: &Spool,
        opts: &ExactlyOnceOptions,
    ) -> Result<(), Failure> {
        let window = (spool.status().records).min(opts.send.batch_records as u64);
        let position = (t.start(&opts.gateway)).map_err(|e| Failure::of_sink::<S>(&e, window))?;
        let foreign =
            |p: &u64| *p >= opts.next_seq_at_open && self.sent_through.is_none_or(|s| *p > s);
        if let Some(p) = position.filter(foreign) {
            // Releasing "committed" records would drop this spool's own new ones: stop instead.
            return Err(Failure {
                kind: Kind::SpoolBehindPosition,
                message: format!(
                    "gateway {}: committed position {p} is at or above this spool's sequence numbers \
                     (next {} when opened): the position was written from another spool (a new or \
                     wiped spool under a reused forward.gateway_id?); nothing is sent, the records \
                     stay in the spool: give this spool its own gateway id",
                    opts.gateway, opts.next_seq_at_open
                ),
                ..Failure::config("")
            });
        }
        let skipped =
            release_committed(spool, position, &opts.send).map_err(|e| Failure::of(&e, true))?;
        tracing::info!(position = ?position, skipped, next_seq = spool.status().next_seq,
            "exactly-once: previous instance fenced; records at or below the committed position released without sending");
        self.started = true;
        self.position = position;
        Ok(())
    }

    /// The interval is over, or the inputs ended and everything spooled was sent: waiting longer
    /// would only hold the drain (and the forwarder's exit) for up to an interval.
    fn commit_due(&self, interval: Duration, spool: &Spool) -> bool {
        self.open
            .as_ref()
            .is_some_and(|o| o.began.elapsed() >= interval || (o.caught_up && spool.interrupted()))
    }

    /// Commit the open transaction with its last record's position, then release its records
    /// (sending went through: a cause that held records is told over).
    fn commit<S: RecordSink>(
        &mut self,
        t: &mut dyn Transactions<Error = S::Error>,
        spool: &Spool,
        metrics: &Metrics,
    ) -> Result<(), Failure> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let Some(last) = open.last else {
            // Nothing was sent: nothing to commit (an empty transaction has no partition).
            return t.commit(None).map_err(|e| Failure::of_sink::<S>(&e, 0));
        };
        let records = open.records;
        metrics.stall.sending(None);
        if let Err(e) = t.commit(Some(last.seq)) {
            self.open = Some(Open {
                last: Some(last),
                ..open
            });
            return Err(Failure::of_sink::<S>(&e, records));
        }
        metrics.stall.acked();
        self.committed += 1;
        if self.committed == 1 {
            // Start-to-first-send is measured from this line (benches/forward.rs).
            tracing::info!(records, "first records acknowledged");
        }
        self.position = Some(last.seq);
        self.alone = self.alone.split_off(&(last.seq + 1));
        self.dead = self.dead.split_off(&(last.seq + 1));
        add(&metrics.acked, records);
        tell(&[], &[], 0, spool, metrics, &mut self.telling);
        if let Err(e) = spool.ack_through(&last) {
            tracing::error!(error = %e, "spool ack failed");
            metrics.set_error(e.kind(), &e.to_string());
        }
        if self.clock_check {
            // The records whose spool times were distrusted may all be released now.
            learn_clock(spool, &mut self.clock, None, false);
        }
        self.backoff = Duration::from_millis(100).min(self.backoff);
        Ok(())
    }

    /// Send one window inside the open transaction (opening one if needed).
    fn window<S: RecordSink>(
        &mut self,
        sink: &mut S,
        mut window: Window,
        spool: &Spool,
        dead: &DeadLetter,
        metrics: &Metrics,
    ) -> Result<(), Failure> {
        // The sent mark on disk first: after a power cut no new record gets one of these numbers.
        spool.sync_cursor().map_err(|e| Failure::of(&e, true))?;
        if self.open.is_none() {
            let t =
                (sink.transactions()).ok_or_else(|| Failure::config("no transactional sink"))?;
            t.begin().map_err(|e| Failure::of_sink::<S>(&e, 0))?;
            self.open = Some(Open {
                began: Instant::now(),
                caught_up: false,
                last: None,
                records: 0,
            });
        }
        let last = last_record(&window);
        if let Some(l) = &last {
            self.sent_through = self.sent_through.max(Some(l.seq));
        }
        let sent = send_window(sink, &mut window, self, spool, dead, metrics)?;
        if self.clock_check && sent > 0 {
            // The broker took our timestamps.
            learn_clock(spool, &mut self.clock, None, true);
        }
        if let Some(o) = self.open.as_mut() {
            o.records += sent;
            o.caught_up = false;
            if last.is_some() {
                o.last = last;
            }
        }
        Ok(())
    }

    /// After a step: a failure aborts the open transaction and sends everything again from the
    /// spool's first unreleased record; a fenced producer is the end (returned).
    fn handle<S: RecordSink>(
        &mut self,
        step: Result<(), Failure>,
        sink: &mut S,
        spool: &Spool,
        metrics: &Metrics,
        stop: &AtomicBool,
    ) -> Option<Failure> {
        let f = step.err()?;
        if matches!(
            f.kind,
            Kind::ProducerFenced | Kind::InvalidConfig | Kind::SpoolBehindPosition
        ) {
            metrics.set_error(f.kind, &f.message);
            return Some(f);
        }
        if self.clock_check {
            learn_clock(spool, &mut self.clock, f.clock, false);
        }
        let resend = self.open.as_ref().map_or(0, |o| o.records);
        if f.told {
            // As the plain sender tells a failed round: at once, then once a minute with a count.
            let cause = Cause {
                kind: f.kind,
                refusal: f.refusal,
                records: f.records,
                message: f.message.clone(),
            };
            tell(&[cause], &[], resend, spool, metrics, &mut self.telling);
        }
        tracing::debug!(kind = %f.kind, error = %f.message, resend, "exactly-once: step failed; the open transaction (if any) is aborted and its records sent again");
        if let Some(e) = self.abort(sink) {
            return Some(e);
        }
        add(&metrics.retried, resend);
        spool.rewind();
        if f.back_off {
            sleep_unless(stop, self.backoff);
            self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
        }
        None
    }

    /// Abort the open transaction, if any. A producer that cannot abort (timed out, or ended) is
    /// started again; a fenced one is the end.
    fn abort<S: RecordSink>(&mut self, sink: &mut S) -> Option<Failure> {
        self.open.take()?;
        let t = sink.transactions()?;
        self.aborted += 1;
        match t.abort() {
            Ok(()) => None,
            Err(e) if e.kind() == Kind::ProducerFenced => Some(Failure::of(&e, false)),
            Err(e) => {
                tracing::warn!(error = %e, kind = %e.kind(), "exactly-once: abort failed; starting the producer again");
                self.started = false;
                None
            }
        }
    }

    /// On stop: commit what is open; on a fatal error: say why.
    fn finish<S: RecordSink>(
        mut self,
        sink: &mut S,
        spool: &Spool,
        metrics: &Metrics,
        ended: Option<Failure>,
        fatal: &Fatal,
    ) {
        if ended.is_none()
            && self.open.is_some()
            && let Some(t) = sink.transactions()
            && let Err(f) = self.commit::<S>(t, spool, metrics)
        {
            tracing::warn!(kind = %f.kind, error = %f.message, "exactly-once: last commit failed; its records stay in the spool");
            let _ = self.abort(sink);
        }
        tracing::info!(committed = self.committed, aborted = self.aborted, position = ?self.position, "exactly-once sender stopped");
        if let Some(f) = ended {
            tracing::error!(kind = %f.kind, error = %f.message, "exactly-once sender stopped for good");
            fatal.set(f.kind, f.message);
        }
    }
}

/// Read the spool from its first unreleased record and release every record at or below
/// `position` (delivered by an earlier run); the reader is left at the first record above it.
fn release_committed(
    spool: &Spool,
    position: Option<u64>,
    send: &SenderOptions,
) -> Result<u64, crate::spool::SpoolError> {
    spool.rewind();
    let Some(position) = position else {
        return Ok(0);
    };
    let mut skipped = 0;
    loop {
        let batch = spool.read_batch(send.batch_records, send.batch_bytes, Duration::ZERO)?;
        let done = batch.is_empty() || batch.last().is_some_and(|r| r.seq > position);
        let covered: Vec<SpoolRecord> = batch.into_iter().filter(|r| r.seq <= position).collect();
        skipped += covered.len() as u64;
        if let Some(last) = covered.last() {
            spool.ack_through(last)?;
        }
        if done {
            break;
        }
    }
    spool.rewind();
    Ok(skipped)
}

fn last_record(window: &Window) -> Option<SpoolRecord> {
    (0..window.len())
        .rev()
        .find_map(|i| window.record(i))
        .cloned()
}

/// Send the window's records (one send per topic; one per record for a topic with a record to
/// send alone), skipping the dead-lettered ones. The first failure ends the window: a refusal
/// for good marks its record to go alone, or (alone already) dead-letters it.
fn send_window<S: RecordSink>(
    sink: &mut S,
    window: &mut Window,
    eos: &mut Eos,
    spool: &Spool,
    dead: &DeadLetter,
    metrics: &Metrics,
) -> Result<u64, Failure> {
    let seq = |w: &Window, i: usize| w.record(i).map_or(0, |r| r.seq);
    for i in 0..window.len() {
        if eos.dead.contains(&seq(window, i)) || eos.position.is_some_and(|p| seq(window, i) <= p) {
            drop(window.take_at(i));
        }
    }
    let mut sent = 0;
    for topic in window.topics() {
        let alone = window
            .pending_of(&topic)
            .into_iter()
            .any(|i| eos.alone.contains(&seq(window, i)));
        let calls = match alone {
            true => window
                .pending_of(&topic)
                .into_iter()
                .map(|i| window.take_at(i))
                .collect(),
            false => vec![window.take(&topic)],
        };
        for taken in calls {
            let n = taken.records.len();
            add(&metrics.sent, n as u64);
            metrics.stall.sending(sink.retry_note());
            let results = sink.send_batch(&taken.topic, &taken.records);
            if results.iter().any(Result::is_ok) {
                metrics.stall.acked();
            }
            for (k, (i, out)) in taken.at.iter().zip(&taken.records).enumerate() {
                let e = match results.get(k) {
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => e,
                    None => {
                        return Err(Failure {
                            kind: Kind::NotAcknowledged,
                            message: "the sink returned no result for a record".into(),
                            back_off: true,
                            ..Failure::config("")
                        });
                    }
                };
                let s = seq(window, *i);
                let Some(rejection) = S::permanent(e) else {
                    let failed = results.iter().filter(|r| r.is_err()).count();
                    return Err(Failure::of_sink::<S>(e, failed as u64));
                };
                if n > 1 {
                    eos.alone.insert(s);
                } else {
                    let spooled_ms = window.record(*i).map_or(0, |r| r.timestamp_ms);
                    if !dead_letter(dead, metrics, &taken.topic, out, spooled_ms, rejection, e) {
                        return Err(Failure::of(e, true));
                    }
                    eos.dead.insert(s);
                    let told = Cause {
                        kind: rejection,
                        refusal: false,
                        records: 1,
                        message: e.to_string(),
                    };
                    (eos.telling).dead_lettered(&[told], spool.status().records, Instant::now());
                }
                return Err(Failure::redo(e));
            }
            sent += n as u64;
        }
    }
    Ok(sent)
}

#[cfg(test)]
#[path = "exactly_once_tests.rs"]
mod tests;
