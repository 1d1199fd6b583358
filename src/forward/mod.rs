//! The edge forwarder: inputs (stdin, file, udp) → encoder → spool → sender → sink, dead-letter file, metrics.
//! The sender holds records in the spool while the system clock is below its lower bound ([`clock_check`]).
//! With `forward.exactly_once` the sender is `exactly_once`'s: every window inside a transaction that
//! also stores the spool position (the sink's [`Transactions`]).
//!
//! Must not lose a record silently: every input line is spooled, dead-lettered or counted as dropped, and a
//! spooled record leaves the spool only after the sink acknowledged it or, refused by the broker for good,
//! it was written to the dead-letter file. Must not encode Avro nor talk to a broker: it drives the codec
//! and the producer through two small traits, [`RecordEncoder`] and [`RecordSink`]. What it does know of
//! them is their data: the codec's [`KeyBytes`](crate::codec::KeyBytes) (a record's key) and the
//! producer's [`OutRecord`] and [`Delivery`] (what a sink is handed and what it answers), so a record
//! crosses into the producer without a copy; and [`ForwardError`] carries the registry's error when
//! `plug` cannot set up the schema source.
//!
//! This file starts and stops the threads (inputs, sender, metrics) and drains at the end; the step from
//! a line to the spool is [`Ingest`] (`ingest.rs`), the sink's contract `sink.rs`, the errors `error.rs`.
//!
//! The real parts are plugged in by [`plug`]: `impl RecordEncoder for crate::codec::Codec` and
//! `impl RecordSink for crate::kafka::producer::Producer`; [`plug::run_configured`] (what `avro-edge
//! forward` calls) runs `forward::run(&config, codec, LazySink::new(move || Producer::new(pcfg.clone())),
//! stdin, stop)`.

pub mod clock_check;
pub mod dead_letter;
mod error;
mod exactly_once;
pub mod held;
mod ingest;
pub mod inputs;
pub mod metrics;
pub mod plug;
mod sender;
mod sink;
pub mod stall;
mod transactional;
mod window;

use exactly_once::Fatal;
pub use transactional::Transactions;

use std::io::BufRead;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::config::{Config, InputConfig, InputKind};
use crate::error::{ErrorKind, Kind};
use crate::spool::Spool;
pub use dead_letter::DeadLetter;
pub use error::ForwardError;
pub use ingest::{Ingest, RecordEncoder};
pub use metrics::{Metrics, Snapshot};
pub use sender::SenderOptions;
pub use sink::{LazySink, RecordSink, Refusal};

pub use crate::kafka::RefusedTimestamp;
pub use crate::kafka::producer::{Delivery, OutRecord};

/// A stop switch for [`run`]: set it (e.g. from SIGINT/SIGTERM) to stop inputs, drain and return.
pub type StopFlag = Arc<AtomicBool>;

/// A stop flag that SIGINT and SIGTERM set (graceful: stop inputs, drain, exit 0). A second signal while
/// the first is being handled exits the process at once with status 1.
pub fn stop_on_signals() -> std::io::Result<StopFlag> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registered first, so it sees the flag as it was before this signal set it.
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(stop)
}

/// Run the forwarder until every input ended (e.g. end of stdin) or `stop` is set, then stop the inputs,
/// drain the spool through the sink for up to `drain_timeout`, flush and return the final counters.
/// What was not acknowledged stays in the spool for the next run; when the inputs ended (not a stop)
/// while a refusal that fixing the setup cures held it, the run fails with [`ForwardError::Held`].
pub fn run<E, S>(
    cfg: &Config,
    encoder: E,
    sink: S,
    stdin: Box<dyn BufRead + Send>,
    stop: StopFlag,
) -> Result<Snapshot, ForwardError>
where
    E: RecordEncoder + 'static,
    S: RecordSink + 'static,
{
    let (spool, _report) = Spool::open(&cfg.spool_dir, cfg.spool_options())?;
    let spool = Arc::new(spool);
    let dead = Arc::new(
        DeadLetter::open(&cfg.dead_letter, cfg.dead_letter_max_bytes).map_err(|source| {
            ForwardError::DeadLetter {
                path: cfg.dead_letter.display().to_string(),
                source,
            }
        })?,
    );
    let metrics = Arc::new(Metrics::default());
    let ingest = Ingest::new(
        Arc::new(encoder),
        spool.clone(),
        dead.clone(),
        metrics.clone(),
    );

    // Bind what can fail before starting threads.
    let mut udp = bind_udp(cfg)?;
    let http_stop = Arc::new(AtomicBool::new(false));
    let http = serve_metrics(cfg, &spool, &metrics, &http_stop)?;
    let sender_stop = Arc::new(AtomicBool::new(false));
    let fatal = Arc::new(Fatal::default());
    let (sender, done_rx) = start_sender(cfg, &spool, &metrics, &dead, sink, &sender_stop, &fatal)?;
    let input_stop = Arc::new(AtomicBool::new(false));
    let input_failed: InputFailed = Arc::default();
    let handles = start_inputs(
        cfg,
        &ingest,
        stdin,
        &mut udp,
        &input_stop,
        &metrics,
        &input_failed,
    )?;
    tracing::info!(inputs = cfg.inputs.len(), spool = %cfg.spool_dir.display(), "forwarder started");

    let why = wait_for_end(cfg, &stop, &handles, &spool, &metrics, &fatal);
    // Stop taking input, then drain.
    input_stop.store(true, Ordering::Relaxed);
    spool.interrupt();
    drain(
        cfg,
        &spool,
        &metrics,
        why,
        &sender_stop,
        sender,
        &done_rx,
        &fatal,
    );
    http_stop.store(true, Ordering::Relaxed);
    if let Some(h) = http {
        let _ = h.join();
    }
    // Inputs that poll (file, udp) notice the stop within a poll period; a blocked stdin read does not
    // and is left behind. Either way `close` releases the spool directory for the next opener.
    let grace = Instant::now() + Duration::from_millis(500);
    while !handles.iter().all(std::thread::JoinHandle::is_finished) && Instant::now() < grace {
        std::thread::sleep(Duration::from_millis(10));
    }
    spool.close()?;
    if let Some((kind, message)) = fatal.get() {
        return Err(ForwardError::Sender { kind, message });
    }
    finish(cfg, &spool, &metrics, &input_failed, why)
}

/// The first input that failed (not one that ended): its name and error.
type InputFailed = Arc<std::sync::Mutex<Option<(String, std::io::Error)>>>;

/// One input's reading loop, run on its own thread.
type InputJob = Box<dyn FnOnce() -> std::io::Result<()> + Send>;

/// Bind every UDP input's socket (before any thread starts, so a bad address fails the run at once).
fn bind_udp(cfg: &Config) -> Result<Vec<(String, UdpSocket)>, ForwardError> {
    let mut udp = Vec::new();
    for inp in &cfg.inputs {
        if let InputKind::Udp { bind } = &inp.kind {
            let s = UdpSocket::bind(bind).map_err(|source| ForwardError::Input {
                input: inp.name.clone(),
                source,
            })?;
            udp.push((inp.name.clone(), s));
        }
    }
    Ok(udp)
}

/// Serve `/metrics` when `metrics.listen` is set.
fn serve_metrics(
    cfg: &Config,
    spool: &Arc<Spool>,
    metrics: &Arc<Metrics>,
    http_stop: &Arc<AtomicBool>,
) -> Result<Option<std::thread::JoinHandle<()>>, ForwardError> {
    let render = {
        let (spool, metrics) = (spool.clone(), metrics.clone());
        Arc::new(move || metrics.snapshot(&spool.status()).prometheus())
            as Arc<dyn Fn() -> String + Send + Sync>
    };
    Ok(match cfg.metrics.listen {
        Some(addr) => {
            let (bound, h) = metrics::serve(addr, render, http_stop.clone()).map_err(|source| {
                ForwardError::Metrics {
                    addr: addr.to_string(),
                    source,
                }
            })?;
            tracing::info!(addr = %bound, "metrics on http://{bound}/metrics");
            Some(h)
        }
        None => None,
    })
}

/// This forwarder's gateway id: `forward.gateway_id`, else the spool's id.
pub fn gateway_id(cfg: &Config, spool: &Spool) -> String {
    (cfg.forward.gateway_id.clone()).unwrap_or_else(|| spool.id().to_string())
}

/// Start the sender thread (spool → sink; the exactly-once one with `forward.exactly_once`); the
/// receiver hears when it returned, `fatal` why it stopped for good.
fn start_sender<S: RecordSink + 'static>(
    cfg: &Config,
    spool: &Arc<Spool>,
    metrics: &Arc<Metrics>,
    dead: &Arc<DeadLetter>,
    sink: S,
    sender_stop: &Arc<AtomicBool>,
    fatal: &Arc<Fatal>,
) -> Result<(std::thread::JoinHandle<()>, std::sync::mpsc::Receiver<()>), ForwardError> {
    let sender_opts = SenderOptions {
        batch_records: cfg.batch_records,
        linger: cfg.kafka.producer.linger,
        clock_check: cfg.clock_check,
        headers: cfg.forward.headers.then(|| gateway_id(cfg, spool)),
        ..SenderOptions::default()
    };
    let eos = cfg
        .forward
        .exactly_once
        .then(|| exactly_once::ExactlyOnceOptions {
            send: sender_opts.clone(),
            commit_interval: cfg.forward.commit_interval,
            gateway: gateway_id(cfg, spool),
            // Before any input runs (they start after the sender).
            next_seq_at_open: spool.status().next_seq,
        });
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let sender = {
        let (spool, metrics, stop) = (spool.clone(), metrics.clone(), sender_stop.clone());
        let (dead, fatal) = (dead.clone(), fatal.clone());
        std::thread::Builder::new()
            .name("sender".into())
            .spawn(move || {
                match eos {
                    Some(o) => exactly_once::run(&spool, sink, &metrics, &dead, &stop, &o, &fatal),
                    None => sender::run(&spool, sink, &metrics, &dead, &stop, &sender_opts),
                }
                let _ = done_tx.send(());
            })
            .map_err(|source| ForwardError::Input {
                input: "sender".into(),
                source,
            })?
    };
    Ok((sender, done_rx))
}

/// Inputs, one thread each.
fn start_inputs<E: RecordEncoder + 'static>(
    cfg: &Config,
    ingest: &Ingest<E>,
    stdin: Box<dyn BufRead + Send>,
    udp: &mut Vec<(String, UdpSocket)>,
    input_stop: &Arc<AtomicBool>,
    metrics: &Arc<Metrics>,
    input_failed: &InputFailed,
) -> Result<Vec<std::thread::JoinHandle<()>>, ForwardError> {
    let mut stdin = Some(stdin);
    let mut handles = Vec::new();
    for inp in cfg.inputs.clone() {
        let name = inp.name.clone();
        let Some(job) = input_job(cfg, inp, ingest, &mut stdin, udp, input_stop)? else {
            continue;
        };
        let metrics = metrics.clone();
        let failed = input_failed.clone();
        let h = std::thread::Builder::new()
            .name(format!("input-{name}"))
            .spawn(move || {
                if let Err(e) = job() {
                    tracing::error!(input = %name, error = %e, "input failed");
                    metrics.set_error(Kind::InputIo, &e.to_string());
                    let mut f = failed
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    f.get_or_insert((name, e));
                }
            })
            .map_err(|source| ForwardError::Input {
                input: "thread".into(),
                source,
            })?;
        handles.push(h);
    }
    Ok(handles)
}

/// The reading loop of one input, feeding [`Ingest::handle`]; `None` when there is nothing to read
/// (stdin already taken, or no bound socket for a UDP input).
fn input_job<E: RecordEncoder + 'static>(
    cfg: &Config,
    inp: InputConfig,
    ingest: &Ingest<E>,
    stdin: &mut Option<Box<dyn BufRead + Send>>,
    udp: &mut Vec<(String, UdpSocket)>,
    input_stop: &Arc<AtomicBool>,
) -> Result<Option<InputJob>, ForwardError> {
    let mut ingest = ingest.clone();
    let stop_in = input_stop.clone();
    let max = cfg.max_line_bytes;
    let job: InputJob = match inp.kind.clone() {
        InputKind::Stdin => {
            let Some(mut r) = stdin.take() else {
                return Ok(None);
            };
            Box::new(move || {
                inputs::read_stream(&mut *r, max, &mut |l| ingest.handle(&inp, l, &stop_in))
            })
        }
        InputKind::File { path, start_at } => {
            let state = input_state_path(&cfg.spool_dir, &inp.name).map_err(|source| {
                ForwardError::Input {
                    input: inp.name.clone(),
                    source,
                }
            })?;
            Box::new(move || {
                let stop2 = stop_in.clone();
                inputs::follow_file(&path, start_at, max, &stop_in, Some(&state), &mut |l| {
                    ingest.handle(&inp, l, &stop2)
                })
            })
        }
        InputKind::Udp { .. } => {
            let Some(pos) = udp.iter().position(|(n, _)| *n == inp.name) else {
                return Ok(None);
            };
            let (_, sock) = udp.swap_remove(pos);
            Box::new(move || {
                inputs::receive_udp(&sock, max, &stop_in, &mut |l| {
                    ingest.handle(&inp, l, &stop_in)
                })
            })
        }
    };
    Ok(Some(job))
}

/// Wait for the inputs to end or a stop request, logging the summary now and then; the reason.
fn wait_for_end(
    cfg: &Config,
    stop: &StopFlag,
    handles: &[std::thread::JoinHandle<()>],
    spool: &Spool,
    metrics: &Metrics,
    fatal: &Fatal,
) -> &'static str {
    let mut last_summary = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            break "stop requested";
        }
        if fatal.get().is_some() {
            break "the sender stopped for good";
        }
        if handles.iter().all(std::thread::JoinHandle::is_finished) {
            break INPUTS_ENDED;
        }
        std::thread::sleep(Duration::from_millis(50));
        // The interval fsync must not wait for the sender, which may sit in a long send.
        if let Err(e) = spool.tick() {
            metrics.set_error(e.kind(), &e.to_string());
        }
        // A new cause holding records shows in `stats.json` at once, not at the next summary.
        let held_changed = metrics.held.changed.swap(false, Ordering::Relaxed);
        if held_changed || last_summary.elapsed() >= cfg.metrics.summary_interval {
            let snap = metrics.snapshot(&spool.status());
            if !held_changed {
                last_summary = Instant::now();
                snap.log();
            }
            let _ = snap.save(&cfg.spool_dir);
        }
        stall::watch(spool, metrics, cfg.kafka.request_timeout);
    }
}

/// Let the sender empty the spool until `drain_timeout` (not when it stopped for good), then stop it
/// (left behind if still busy).
#[allow(clippy::too_many_arguments)]
fn drain(
    cfg: &Config,
    spool: &Spool,
    metrics: &Metrics,
    why: &str,
    sender_stop: &AtomicBool,
    sender: std::thread::JoinHandle<()>,
    done_rx: &std::sync::mpsc::Receiver<()>,
    fatal: &Fatal,
) {
    let deadline = Instant::now() + cfg.drain_timeout;
    tracing::info!(
        reason = why,
        pending = spool.status().records,
        drain_timeout_ms = cfg.drain_timeout.as_millis() as u64,
        "stopping: draining the spool"
    );
    // Records held back by an insane clock stay in the spool for the next run: no point waiting for them.
    while spool.status().records > 0
        && Instant::now() < deadline
        && metrics.clock_insane.load(Ordering::Relaxed) == 0
        && fatal.get().is_none()
    {
        std::thread::sleep(Duration::from_millis(20));
        stall::watch(spool, metrics, cfg.kafka.request_timeout);
    }
    sender_stop.store(true, Ordering::Relaxed);
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(500));
    if done_rx.recv_timeout(left).is_ok() {
        let _ = sender.join();
    } else {
        tracing::warn!("sender still busy at the end of the drain time; leaving it");
    }
}

/// The final counters, logged and saved; an input that failed makes the run fail, after the drain, and
/// so do records a refusal held when the inputs ended (`why`).
fn finish(
    cfg: &Config,
    spool: &Spool,
    metrics: &Metrics,
    input_failed: &InputFailed,
    why: &str,
) -> Result<Snapshot, ForwardError> {
    let snap = metrics.snapshot(&spool.status());
    snap.log();
    if let Err(e) = snap.save(&cfg.spool_dir) {
        tracing::warn!(error = %e, "cannot write stats.json");
    }
    if snap.spool_records > 0 {
        tracing::warn!(
            records = snap.spool_records,
            "records left in the spool; they are sent on the next start"
        );
    }
    // An input that failed (not one that ended) makes the run fail, after the drain.
    let failed = input_failed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some((input, source)) = failed {
        return Err(ForwardError::Input { input, source });
    }
    match metrics.held.held() {
        Some((kind, held)) if held.refusal && snap.spool_records > 0 && why == INPUTS_ENDED => {
            Err(ForwardError::Held {
                kind,
                records: snap.spool_records,
                message: held.message,
            })
        }
        _ => Ok(snap),
    }
}

/// Why [`wait_for_end`] returned when every input ended.
const INPUTS_ENDED: &str = "inputs ended";

/// Where a file input's position is kept: `<spool dir>/inputs/<name>.pos` (the spool's lock covers it).
fn input_state_path(
    spool_dir: &std::path::Path,
    name: &str,
) -> std::io::Result<std::path::PathBuf> {
    let dir = spool_dir.join("inputs");
    std::fs::create_dir_all(&dir)?;
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(dir.join(format!("{safe}.pos")))
}
