//! The sender: drains the spool in order, in batches, through the sink; advances the acknowledged cursor
//! only over the contiguous acknowledged prefix; on failure rewinds to the first unacknowledged record and
//! retries with exponential backoff.
//!
//! Must never acknowledge a record the sink did not acknowledge, and never reorder: a failure anywhere in a
//! batch resends from the first failed record on. Holds records back (in the spool) while the system
//! clock is below its lower bound (`clock_check`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::clock_check::{self, ClockGate};
use super::metrics::{Metrics, add};
use super::{OutRecord, RecordSink};
use crate::error::ErrorKind;
use crate::spool::Spool;

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
        }
    }
}

fn sleep_unless(stop: &AtomicBool, d: Duration) {
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
    stop: &AtomicBool,
    opts: &SenderOptions,
) {
    let mut backoff = opts.backoff.min;
    let mut first_ack = true;
    let mut clock = ClockGate::new(
        crate::clock::BUILD_TIME_MS,
        spool.status().oldest_unacked_ms,
    );
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
        let mut batch = match spool.read_batch(opts.batch_records, opts.batch_bytes, opts.poll) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "spool read failed");
                metrics.set_error(e.kind(), &e.to_string());
                spool.rewind();
                sleep_unless(stop, backoff);
                backoff = (backoff * 2).min(opts.backoff.max);
                continue;
            }
        };
        if batch.is_empty() {
            continue;
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
                    // Send what was read; the rest is read again after the rewind that follows a failure.
                    tracing::error!(error = %e, "spool read failed");
                    metrics.set_error(e.kind(), &e.to_string());
                }
            }
        }
        // Records spooled by a later clock than the current one: hold them (read again after the rewind).
        if opts.clock_check
            && clock.hold_batch(
                batch.iter().map(|r| r.timestamp_ms),
                crate::clock::now_ms(),
                metrics,
            )
        {
            spool.rewind();
            sleep_unless(stop, clock_check::RECHECK);
            continue;
        }
        add(&metrics.sent, batch.len() as u64);
        let mut acked = 0usize;
        let mut failure: Option<(String, String)> = None;
        // Send runs of one topic, in order.
        while acked < batch.len() && failure.is_none() {
            let Some(topic) = batch.get(acked).map(|r| r.topic.clone()) else {
                break;
            };
            let run_len = batch
                .iter()
                .skip(acked)
                .take_while(|r| r.topic == topic)
                .count();
            let out: Vec<OutRecord> = batch
                .iter_mut()
                .skip(acked)
                .take(run_len)
                .map(|r| OutRecord {
                    key: r.key.take(),
                    value: std::mem::take(&mut r.value),
                    headers: Vec::new(),
                })
                .collect();
            let results = sink.send_batch(&topic, &out);
            let ok = results
                .iter()
                .take(run_len)
                .take_while(|r| r.is_ok())
                .count();
            if ok > 0
                && let Some(last) = batch.get(acked + ok - 1)
            {
                if let Err(e) = spool.ack_through(last) {
                    tracing::error!(error = %e, "spool ack failed");
                    metrics.set_error(e.kind(), &e.to_string());
                }
                add(&metrics.acked, ok as u64);
                if first_ack {
                    first_ack = false;
                    // Start-to-first-send is measured from this line (benches/forward.rs).
                    tracing::info!(records = ok, "first records acknowledged");
                }
            }
            acked += ok;
            if ok < run_len {
                failure = Some(match results.into_iter().nth(ok) {
                    Some(Err(e)) => (e.kind().to_string(), e.to_string()),
                    _ => (
                        "not-acknowledged".into(),
                        "the sink returned no result for a record".into(),
                    ),
                });
            }
        }
        match failure {
            None => backoff = opts.backoff.min,
            Some((kind, message)) => {
                let resend = (batch.len() - acked) as u64;
                add(&metrics.retried, resend);
                tracing::warn!(kind = %kind, error = %message, resend, backoff_ms = backoff.as_millis() as u64, "send failed; will resend from the first unacknowledged record");
                metrics.set_error(&kind, &message);
                spool.rewind();
                sleep_unless(stop, backoff);
                backoff = (backoff * 2).min(opts.backoff.max);
            }
        }
    }
}
