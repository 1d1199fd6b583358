//! The gateway under test: the real `avro-edge forward` binary (a test build: it honours
//! `AVRO_EDGE_FAKE_NOW_FILE`) with its spool on a tmpfs of its own, fed SensorData readings at a
//! steady rate on stdin by a feeder thread (reading `i` has sensor `s-{i % sensors}` and timestamp
//! [`ID_BASE`]` + i`: its unique id), supervised like a service (a forwarder that exits by itself is
//! a violation and is started again), plus the knobs the nemesis turns: SIGKILL and restart on the
//! same spool, the forwarder's clock, the spool's free space.
//!
//! What was accepted is exact: every fed line is valid, so the spool's next sequence number is the
//! number of lines accepted (a fresh spool starts at 0); after a SIGKILL the lines written to the dead
//! process's pipe but not spooled are fed again to the next one.
//!
//! Must not check deliveries (the checker does) and must not change the forwarder's behaviour
//! beyond its command line, environment, clock file and disk.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use avro_edge::Spool;

use super::timeline::{Timeline, unix_ms};

/// Reading `i` carries the timestamp `ID_BASE + i` (2025-11-25T00:00:00Z + i ms).
pub const ID_BASE: i64 = 1_764_028_800_000;
/// How long a forwarder gets to drain and exit once its input ends.
const DRAIN: Duration = Duration::from_secs(120);

/// Reading `i` as an NDJSON line (with its newline).
pub fn reading(i: u64, sensors: u64, out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        r#"{{"sensorId":"s-{}","timestamp":{},"temperature":{}.5,"humidity":40.25,"status":"NORMAL"}}"#,
        i % sensors,
        ID_BASE + i as i64,
        i % 40
    );
}

/// What the gateway is and where it lives.
#[derive(Debug, Clone)]
pub struct GatewaySpec {
    /// The `avro-edge` binary (a test build).
    pub bin: PathBuf,
    pub schema_cache: PathBuf,
    /// The soak's directory: logs, dead letters, the clock file, the tmpfs mount point.
    pub dir: PathBuf,
    /// Bootstrap brokers (the uplink proxies).
    pub bootstrap: String,
    pub topic: String,
    /// Readings per second.
    pub rate: u32,
    pub sensors: u64,
    /// Size of the spool's tmpfs.
    pub disk_bytes: u64,
}

/// One forwarder process.
#[derive(Debug, Clone)]
pub struct Session {
    pub log: PathBuf,
    pub started_ms: u64,
    /// From its "spool opened" line: records resent because they were sent and not acknowledged.
    pub possible_duplicates: Option<u64>,
}

struct Feed {
    stdin: Option<ChildStdin>,
    /// The next reading to feed (= lines accepted so far, after a restart).
    next: u64,
    /// (first id of a chunk, when it was written), for mapping ids to the timeline.
    marks: Vec<(u64, u64)>,
}

/// The running gateway; unmounts its tmpfs on drop.
pub struct Gateway {
    spec: GatewaySpec,
    mnt: PathBuf,
    spool: PathBuf,
    pub dead_letter: PathBuf,
    clock_file: PathBuf,
    pub metrics: String,
    child: Mutex<Option<Child>>,
    sessions: Mutex<Vec<Session>>,
    feed: Mutex<Feed>,
    /// `feed.next`, readable while the feeder blocks on a forwarder that does not read.
    fed_now: AtomicU64,
    clock_offset_ms: AtomicI64,
    clock_write: Mutex<()>,
    stop: AtomicBool,
    feeding: AtomicBool,
    finishing: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    timeline: Arc<Timeline>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    crate::kafka::log_tail(path, n)
}

impl Gateway {
    /// Mount the tmpfs, start the forwarder, the feeder, the clock writer and the supervisor.
    pub fn start(spec: GatewaySpec, timeline: Arc<Timeline>) -> Result<Arc<Gateway>, String> {
        let mnt = spec.dir.join("disk");
        std::fs::create_dir_all(&mnt).map_err(|e| format!("{}: {e}", mnt.display()))?;
        mount_tmpfs(&mnt, spec.disk_bytes)?;
        let g = Arc::new(Gateway {
            spool: mnt.join("spool"),
            dead_letter: spec.dir.join("dead-letter.ndjson"),
            clock_file: spec.dir.join("fake-now-ms"),
            metrics: crate::free_addr().map_err(|e| e.to_string())?,
            mnt,
            spec,
            child: Mutex::new(None),
            sessions: Mutex::default(),
            feed: Mutex::new(Feed {
                stdin: None,
                next: 0,
                marks: Vec::new(),
            }),
            fed_now: AtomicU64::new(0),
            clock_offset_ms: AtomicI64::new(0),
            clock_write: Mutex::new(()),
            stop: AtomicBool::new(false),
            feeding: AtomicBool::new(true),
            finishing: AtomicBool::new(false),
            threads: Mutex::default(),
            timeline,
        });
        g.restart()?;
        let jobs: [fn(&Gateway); 3] = [Gateway::feed_loop, Gateway::clock_loop, Gateway::supervise];
        for job in jobs {
            let me = g.clone();
            lock(&g.threads).push(std::thread::spawn(move || job(&me)));
        }
        Ok(g)
    }

    fn command(&self, log: &Path, stdin: Stdio) -> Result<Command, String> {
        let s = &self.spec;
        let err = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = Command::new(&s.bin);
        cmd.args(["forward", "--brokers", &s.bootstrap, "--topic", &s.topic])
            .args(["--subject", "sensor-data-value", "--schema-cache"])
            .arg(&s.schema_cache)
            .arg("--spool")
            .arg(&self.spool)
            .arg("--dead-letter")
            .arg(&self.dead_letter)
            .args([
                "--metrics-listen",
                &self.metrics,
                "--drain-timeout-ms",
                "60000",
            ])
            .args(["--set", "kafka.request_timeout_ms=10000"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env("AVRO_EDGE_FAKE_NOW_FILE", &self.clock_file)
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(err);
        Ok(cmd)
    }

    /// Start a forwarder on the spool (none may be running): the feed goes on from the lines the
    /// spool accepted. `piped`: fed by the feeder; else no input (it drains and exits).
    fn spawn(&self, feed: &mut Feed, piped: bool) -> Result<(), String> {
        feed.stdin = None;
        match Spool::inspect(&self.spool) {
            Ok((st, _)) => {
                if st.next_seq > feed.next {
                    let what = format!("spool accepted {} lines, {} fed", st.next_seq, feed.next);
                    self.timeline.event(what, true);
                }
                feed.next = st.next_seq;
                self.fed_now.store(feed.next, Ordering::SeqCst);
            }
            Err(_) if !self.spool.exists() => {}
            Err(e) => self
                .timeline
                .event(format!("spool inspect failed: {e}"), true),
        }
        let n = lock(&self.sessions).len();
        let log = self.spec.dir.join(format!("forward-{n}.log"));
        let stdin = if piped { Stdio::piped() } else { Stdio::null() };
        let mut child = (self.command(&log, stdin)?.spawn())
            .map_err(|e| format!("{}: {e}", self.spec.bin.display()))?;
        feed.stdin = child.stdin.take();
        *lock(&self.child) = Some(child);
        lock(&self.sessions).push(Session {
            log,
            started_ms: unix_ms(),
            possible_duplicates: None,
        });
        Ok(())
    }

    /// Start a forwarder fed by the feeder; returns its "spool opened" `possible_duplicates`.
    pub fn restart(&self) -> Result<u64, String> {
        self.spawn(&mut lock(&self.feed), true)?;
        self.await_opened()
    }

    /// Wait for the newest session's "spool opened" line; record its `possible_duplicates`.
    fn await_opened(&self) -> Result<u64, String> {
        let log = lock(&self.sessions).last().map(|s| s.log.clone());
        let log = log.ok_or("no session")?;
        let end = Instant::now() + Duration::from_secs(60);
        while Instant::now() < end {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let line = text.lines().find(|l| l.contains("spool opened"));
            if let Some(n) = line.and_then(|l| field(l, "possible_duplicates=")) {
                if let Some(s) = lock(&self.sessions).last_mut() {
                    s.possible_duplicates = Some(n);
                }
                return Ok(n);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("no 'spool opened' line in {}", log.display()))
    }

    /// SIGKILL the forwarder (the supervisor does not restart it; [`restart`](Self::restart) does).
    pub fn kill(&self) {
        if let Some(mut c) = lock(&self.child).take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Jump the forwarder's clock by `offset_ms` from the real one (0: the real clock).
    pub fn set_clock(&self, offset_ms: i64) {
        self.clock_offset_ms.store(offset_ms, Ordering::SeqCst);
        self.write_clock();
    }

    fn write_clock(&self) {
        let _g = lock(&self.clock_write);
        let off = self.clock_offset_ms.load(Ordering::SeqCst);
        if off == 0 {
            let _ = std::fs::remove_file(&self.clock_file);
            return;
        }
        let now = (unix_ms() as i64 + off).max(0);
        let tmp = self.clock_file.with_extension("tmp");
        if std::fs::write(&tmp, now.to_string()).is_ok() {
            let _ = std::fs::rename(&tmp, &self.clock_file);
        }
    }

    /// Fill the spool's file system to the last byte; bytes written.
    pub fn fill_disk(&self) -> u64 {
        let path = self.mnt.join("filler");
        let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        else {
            return 0;
        };
        let mut written = 0u64;
        for size in [1 << 20, 64 << 10, 4 << 10, 512, 1] {
            let block = vec![0u8; size];
            while f.write_all(&block).is_ok() {
                written += size as u64;
            }
        }
        written
    }

    /// Free what [`fill_disk`](Self::fill_disk) took.
    pub fn free_disk(&self) {
        let _ = std::fs::remove_file(self.mnt.join("filler"));
    }

    /// Every forwarder process so far.
    pub fn sessions(&self) -> Vec<Session> {
        lock(&self.sessions).clone()
    }

    /// (first id of a fed chunk, when it was written), in feed order.
    pub fn feed_marks(&self) -> Vec<(u64, u64)> {
        lock(&self.feed).marks.clone()
    }

    /// Lines fed so far (less the ones a killed forwarder had not accepted).
    pub fn fed(&self) -> u64 {
        self.fed_now.load(Ordering::SeqCst)
    }

    /// A one-line progress report from the forwarder's metrics and the dead-letter file.
    pub fn progress(&self) -> String {
        let m = |n: &str| crate::metric(&self.metrics, n).map_or("-".into(), |v| v.to_string());
        let dead =
            std::fs::read(&self.dead_letter).map_or(0, |b| b.split(|&c| c == b'\n').count() - 1);
        format!(
            "fed {}, forwarder: spooled {} acked {} in spool {}; {dead} dead-lettered",
            self.fed(),
            m("spooled_total"),
            m("acked_total"),
            m("spool_records"),
        )
    }

    fn feed_loop(&self) {
        const TICK: Duration = Duration::from_millis(100);
        let per_tick = u64::from(self.spec.rate / 10).max(1);
        let mut next_tick = Instant::now();
        let mut buf = String::new();
        while self.feeding.load(Ordering::SeqCst) && !self.stop.load(Ordering::SeqCst) {
            next_tick = (next_tick + TICK).max(Instant::now() - TICK);
            {
                let mut f = lock(&self.feed);
                let first = f.next;
                buf.clear();
                for i in first..first + per_tick {
                    reading(i, self.spec.sensors, &mut buf);
                }
                if let Some(w) = f.stdin.as_mut() {
                    if w.write_all(buf.as_bytes()).is_ok() {
                        f.marks.push((first, unix_ms()));
                        f.next += per_tick;
                        self.fed_now.store(f.next, Ordering::SeqCst);
                    } else {
                        f.stdin = None;
                    }
                }
            }
            super::sleep_until(next_tick);
        }
    }

    fn clock_loop(&self) {
        while !self.stop.load(Ordering::SeqCst) {
            if self.clock_offset_ms.load(Ordering::SeqCst) != 0 {
                self.write_clock();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A forwarder that exits by itself is a violation; it is started again (as a service manager
    /// would), after a second.
    fn supervise(&self) {
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
            if self.finishing.load(Ordering::SeqCst) {
                continue;
            }
            let exited = {
                let mut g = lock(&self.child);
                match g.as_mut().map(Child::try_wait) {
                    Some(Ok(Some(st))) => g.take().map(|_| st),
                    _ => None,
                }
            };
            let Some(st) = exited else { continue };
            let log = lock(&self.sessions).last().map(|s| s.log.clone());
            let tail = log.map(|l| tail(&l, 5)).unwrap_or_default();
            let what = format!("forwarder exited by itself ({st}); last lines:\n{tail}");
            self.timeline.event(what, true);
            std::thread::sleep(Duration::from_secs(1));
            if let Err(e) = self.restart() {
                self.timeline
                    .event(format!("forwarder restart failed: {e}"), true);
            }
        }
    }

    /// Stop feeding, close the input and let the forwarder drain and exit; start it again (no
    /// input) while the spool still holds records, up to 4 times. (Lines accepted, records left.)
    pub fn finish(&self) -> (u64, u64) {
        self.feeding.store(false, Ordering::SeqCst);
        self.finishing.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        lock(&self.feed).stdin = None;
        self.await_exit();
        for _ in 0..4 {
            let left = Spool::inspect(&self.spool).map_or(0, |(st, _)| st.records);
            if left == 0 {
                break;
            }
            eprintln!("soak: {left} records still in the spool; forwarder started again to drain");
            let started = self.spawn(&mut lock(&self.feed), false);
            if let Err(e) = started {
                self.timeline
                    .event(format!("drain restart failed: {e}"), true);
                break;
            }
            self.await_exit();
        }
        let (accepted, left) = match Spool::inspect(&self.spool) {
            Ok((st, _)) => (st.next_seq, st.records),
            Err(e) => {
                self.timeline
                    .event(format!("spool inspect failed: {e}"), true);
                (self.fed(), 0)
            }
        };
        (accepted, left)
    }

    /// Wait for the forwarder to exit on its own (SIGKILL after [`DRAIN`]); a failure exit or
    /// a forced kill is a violation.
    fn await_exit(&self) {
        let end = Instant::now() + DRAIN;
        loop {
            let mut g = lock(&self.child);
            let Some(c) = g.as_mut() else { return };
            match c.try_wait() {
                Ok(Some(st)) => {
                    g.take();
                    if !st.success() {
                        self.timeline
                            .event(format!("forwarder drain exit: {st}"), true);
                    }
                    return;
                }
                _ if Instant::now() > end => {
                    let _ = c.kill();
                    let _ = c.wait();
                    g.take();
                    let what = format!("forwarder still running {DRAIN:?} after its input ended");
                    self.timeline.event(what, true);
                    return;
                }
                _ => {}
            }
            drop(g);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Gateway {
    /// Stop the gateway's threads and its forwarder (the tmpfs stays until drop).
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.kill();
        for t in lock(&self.threads).drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown();
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
    }
}

/// The number after `key` (e.g. `possible_duplicates=`) in a log line.
pub fn field(line: &str, key: &str) -> Option<u64> {
    let at = line.find(key)? + key.len();
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Mount a tmpfs of `bytes` on `dir` (needs root).
fn mount_tmpfs(dir: &Path, bytes: u64) -> Result<(), String> {
    let st = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={bytes}"),
            "avro-edge-soak",
        ])
        .arg(dir)
        .status()
        .map_err(|e| format!("mount: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!(
            "mount -t tmpfs on {} failed ({st}): the soak needs root",
            dir.display()
        ))
    }
}
