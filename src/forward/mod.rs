//! The edge forwarder: inputs (stdin, file, udp) → encoder → spool → sender → sink, dead-letter file, metrics.
//! The sender holds records in the spool while the system clock is below its lower bound ([`clock_check`]).
//! With `forward.exactly_once` the sender is `exactly_once`'s: every window inside a transaction that
//! also stores the spool position (the sink's [`Transactions`]).
//!
//! Must not lose a record silently: every input line is spooled, dead-lettered or counted as dropped, and a
//! spooled record leaves the spool only after the sink acknowledged it or, refused by the broker for good,
//! it was written to the dead-letter file. Must not encode Avro nor talk to a broker: it drives the codec
//! and the producer through two small traits, [`RecordEncoder`] and [`RecordSink`]. What it does know of
//! them is their data: the codec's [`KeyBytes`] (a record's key) and the producer's [`OutRecord`] and
//! [`Delivery`] (what a sink is handed and what it answers), so a record crosses into the producer
//! without a copy; and [`ForwardError`] carries the registry's error when `plug` cannot set up the
//! schema source.
//!
//! The real parts are plugged in by [`plug`]: `impl RecordEncoder for crate::codec::Codec` and
//! `impl RecordSink for crate::kafka::producer::Producer`; [`plug::run_configured`] (what `avro-edge
//! forward` calls) runs `forward::run(&config, codec, LazySink::new(move || Producer::new(pcfg.clone())),
//! stdin, stop)`.

pub mod clock_check;
pub mod dead_letter;
mod exactly_once;
pub mod held;
pub mod inputs;
pub mod metrics;
pub mod plug;
mod sender;
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

use crate::codec::KeyBytes;
use crate::config::{Config, InputConfig, InputKind};
use crate::error::{ErrorKind, Kind};
use crate::spool::{Spool, SpoolError};
pub use dead_letter::DeadLetter;
use inputs::{Flow, Line};
pub use metrics::{Metrics, Snapshot};
pub use sender::SenderOptions;

/// Turns one NDJSON line into the bytes of a Kafka message value (Confluent framing) and its key.
/// The real one is `crate::codec::Codec::encode_json_line_into`.
pub trait RecordEncoder: Send + Sync {
    /// Why a line cannot be encoded; its kind and message go to the dead-letter file (a line that is
    /// not JSON: kind `not-json` and serde_json's message, before any schema error).
    type Error: ErrorKind + Send + Sync + 'static;
    /// Append the framed message value for the record on `line` under `subject`'s writer schema to
    /// `out` (the caller clears it between records, so one buffer serves them all), and return the
    /// Kafka key from the top-level field `key_field` (see [`crate::record_key`]).
    fn encode_line_into<'l>(
        &self,
        subject: &str,
        line: &'l [u8],
        key_field: Option<&str>,
        out: &mut Vec<u8>,
    ) -> Result<Option<KeyBytes<'l>>, Self::Error>;
}

pub use crate::kafka::RefusedTimestamp;
pub use crate::kafka::producer::{Delivery, OutRecord};

/// A refusal that fixing the setup cures ([`RecordSink::refusal`]): its kind and, for a refused
/// timestamp, what the broker said about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// E.g. `clock-ahead-of-broker`, `topic-authorization-failed`, `auth-failed`, `unknown-topic`.
    pub kind: Kind,
    /// For a refused timestamp (our clock at the send): the timestamp and the range the broker
    /// accepted, when it named them.
    pub timestamp: Option<RefusedTimestamp>,
}

/// Sends records to a topic and says, per record and in input order, whether the broker acknowledged it.
/// The real one is `crate::kafka::producer::Producer::send_batch`. A result vector shorter than `records` means
/// the records without a result were not acknowledged. A record that fails (for a reason that is not
/// [permanent](RecordSink::permanent)) must fail every later record of its partition in the same call,
/// as the producer does, or a retry would put it behind them.
pub trait RecordSink: Send {
    /// Why a record was not acknowledged; its kind goes to the metrics and the log.
    type Error: ErrorKind + Send + 'static;
    /// Send `records` to `topic` and return one result per record, in order (possibly fewer).
    fn send_batch(
        &mut self,
        topic: &str,
        records: &[OutRecord],
    ) -> Vec<Result<Delivery, Self::Error>>;

    /// Why the broker refuses the record `error` was returned for for good (sending it again fails the
    /// same way, whatever the setup), such as [`Kind::MessageTooLarge`]; the sender then dead-letters
    /// it. `None` (the default) for an error that a retry, or a fix of the setup, can get past: the
    /// record stays in the spool.
    fn permanent(_error: &Self::Error) -> Option<Kind> {
        None
    }

    /// Why the setup refuses the record `error` was returned for, when a fix of the setup cures it
    /// (our clock, an ACL, the credentials, a missing topic): the record stays in the spool like any
    /// record that is not [permanent](RecordSink::permanent), and the refusal is told with its
    /// kind. `None` (the default) for a passing failure (a broker down, a leader moving).
    fn refusal(_error: &Self::Error) -> Option<Refusal> {
        None
    }

    /// The sink's last retried error, read while a send blocks (`stall`); `None` (default): none.
    fn retry_note(&mut self) -> Option<crate::kafka::producer::RetryNote> {
        None
    }

    /// The sink's transactions, for the exactly-once sender; `None` (the default): it has none.
    fn transactions(&mut self) -> Option<&mut dyn Transactions<Error = Self::Error>> {
        None
    }
}

/// A sink that connects on first use and again after a failed connect, so the forwarder starts and
/// spools while the broker is down. `connect` is e.g. `move || Producer::connect(cfg.clone())`.
pub struct LazySink<S: RecordSink, F: FnMut() -> Result<S, S::Error> + Send> {
    sink: Option<S>,
    connect: F,
}

impl<S: RecordSink, F: FnMut() -> Result<S, S::Error> + Send> LazySink<S, F> {
    /// A sink that calls `connect` on its first send (nothing is connected yet).
    pub fn new(connect: F) -> Self {
        LazySink {
            sink: None,
            connect,
        }
    }
}

impl<S: RecordSink, F: FnMut() -> Result<S, S::Error> + Send> RecordSink for LazySink<S, F> {
    type Error = S::Error;
    fn send_batch(
        &mut self,
        topic: &str,
        records: &[OutRecord],
    ) -> Vec<Result<Delivery, S::Error>> {
        if self.sink.is_none() {
            match (self.connect)() {
                Ok(s) => self.sink = Some(s),
                Err(e) => return vec![Err(e)],
            }
        }
        match self.sink.as_mut() {
            Some(s) => s.send_batch(topic, records),
            None => Vec::new(),
        }
    }

    fn permanent(error: &S::Error) -> Option<Kind> {
        S::permanent(error)
    }

    fn refusal(error: &S::Error) -> Option<Refusal> {
        S::refusal(error)
    }

    /// Connects first, as a send would (so the note is there before the first send blocks).
    fn retry_note(&mut self) -> Option<crate::kafka::producer::RetryNote> {
        self.sink = self.sink.take().or_else(|| (self.connect)().ok());
        self.sink.as_mut()?.retry_note()
    }
}

/// What can stop the forwarder from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// The spool cannot be opened (I/O, locked by another process, bad options).
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The schema source (registry URLs / offline cache) could not be set up.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// The dead-letter file cannot be opened for appending.
    #[error("dead-letter file {path}: {source}")]
    DeadLetter {
        /// The file.
        path: String,
        /// Why it cannot be opened.
        source: std::io::Error,
    },
    /// An input cannot be started (file not openable, UDP address not bindable).
    #[error("input '{input}': {source}")]
    Input {
        /// The input's name.
        input: String,
        /// Why it cannot start.
        source: std::io::Error,
    },
    /// The sender stopped for good: with exactly-once, another forwarder took over this gateway
    /// (`producer-fenced`), or the sink cannot do transactions. Kind: the cause's.
    #[error("sender stopped: {message}")]
    Sender {
        /// The cause's kind.
        kind: Kind,
        /// The cause.
        message: String,
    },
    /// The Prometheus listener cannot bind its address.
    #[error("metrics listener {addr}: {source}")]
    Metrics {
        /// The `metrics.listen` address.
        addr: String,
        /// Why it cannot bind.
        source: std::io::Error,
    },
    /// The input ended while a refusal that fixing the setup cures held records (our clock, an
    /// ACL, the credentials, a missing topic): they stay in the spool for the next start. Kind: the
    /// refusal's.
    #[error("{records} records kept in the spool, refused: {message}")]
    Held {
        /// The refusal's kind, e.g. `clock-ahead-of-broker`.
        kind: Kind,
        /// Unacknowledged records left in the spool.
        records: u64,
        /// The refusal's latest error message.
        message: String,
    },
}

impl ErrorKind for ForwardError {
    fn kind(&self) -> Kind {
        match self {
            ForwardError::Spool(e) => e.kind(),
            ForwardError::Registry(e) => e.kind(),
            ForwardError::DeadLetter { .. } => Kind::DeadLetterIo,
            ForwardError::Input { .. } => Kind::InputIo,
            ForwardError::Metrics { .. } => Kind::MetricsListen,
            ForwardError::Sender { kind, .. } => *kind,
            ForwardError::Held { kind, .. } => *kind,
        }
    }
}

/// The step between an input and the spool: parse, encode, key, append; or dead-letter with a reason.
pub struct Ingest<E: RecordEncoder> {
    encoder: Arc<E>,
    spool: Arc<Spool>,
    dead: Arc<DeadLetter>,
    metrics: Arc<Metrics>,
    /// The encoded value of the record at hand, reused from record to record.
    value: Vec<u8>,
}

impl<E: RecordEncoder> Clone for Ingest<E> {
    fn clone(&self) -> Self {
        Ingest {
            encoder: self.encoder.clone(),
            spool: self.spool.clone(),
            dead: self.dead.clone(),
            metrics: self.metrics.clone(),
            value: Vec::new(),
        }
    }
}

impl<E: RecordEncoder> Ingest<E> {
    pub fn new(
        encoder: Arc<E>,
        spool: Arc<Spool>,
        dead: Arc<DeadLetter>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Ingest {
            encoder,
            spool,
            dead,
            metrics,
            value: Vec::new(),
        }
    }

    fn reject(&self, input: &InputConfig, line: &[u8], truncated: bool, kind: Kind, message: &str) {
        metrics::add(&self.metrics.dead_lettered, 1);
        tracing::debug!(input = %input.name, kind = kind.as_str(), "input line dead-lettered");
        if let Err(e) = self.dead.write(&input.name, line, truncated, kind, message) {
            tracing::error!(error = %e, path = %self.dead.path().display(), "cannot write the dead-letter file");
            self.metrics.set_error(Kind::DeadLetterIo, &e.to_string());
        }
    }

    /// Handle one input line. `Flow::Stop` when the spool no longer accepts records (shutting down).
    pub fn handle(&mut self, input: &InputConfig, line: Line, stop: &AtomicBool) -> Flow {
        metrics::add(&self.metrics.received, 1);
        let bytes = match line {
            Line::Ok(b) => b,
            Line::TooLong { prefix, len } => {
                self.reject(
                    input,
                    prefix,
                    true,
                    Kind::LineTooLong,
                    &format!("line of {len} bytes is longer than max_line_bytes"),
                );
                return Flow::Continue;
            }
        };
        let mut value = std::mem::take(&mut self.value);
        value.clear();
        let encoded = self.encoder.encode_line_into(
            &input.subject,
            bytes,
            input.key_field.as_deref(),
            &mut value,
        );
        let flow = match encoded {
            Ok(key) => self.append(input, bytes, key.as_deref(), &value, stop),
            Err(e) => {
                self.reject(input, bytes, false, e.kind(), &e.to_string());
                Flow::Continue
            }
        };
        self.value = value;
        flow
    }

    /// Append an encoded record to the spool, waiting out disk trouble (back-pressure).
    fn append(
        &self,
        input: &InputConfig,
        bytes: &[u8],
        key: Option<&[u8]>,
        value: &[u8],
        stop: &AtomicBool,
    ) -> Flow {
        loop {
            match self.spool.append(&input.topic, key, value) {
                Ok(_) => {
                    metrics::add(&self.metrics.spooled, 1);
                    return Flow::Continue;
                }
                Err(SpoolError::Interrupted) => {
                    metrics::add(&self.metrics.dropped_input, 1);
                    tracing::warn!(input = %input.name, "record read after stop was not accepted (counted as dropped)");
                    return Flow::Stop;
                }
                Err(e @ SpoolError::RecordTooLarge { .. }) => {
                    self.reject(input, bytes, false, e.kind(), &e.to_string());
                    return Flow::Continue;
                }
                Err(e) => {
                    // Disk trouble: keep the record and stop reading until the spool takes it (back-pressure).
                    tracing::error!(error = %e, input = %input.name, "spool append failed; retrying in 1 s");
                    self.metrics.set_error(e.kind(), &e.to_string());
                    if stop.load(Ordering::Relaxed) {
                        metrics::add(&self.metrics.dropped_input, 1);
                        return Flow::Stop;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }
}

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
