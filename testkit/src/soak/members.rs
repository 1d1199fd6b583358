//! The consumer side: two `avro-edge consume` members of one group on the brokers' direct
//! listeners, reading the topic from the beginning, each writing its JSON lines to its own file
//! (appended across restarts) and its log to one file per process. A member that exits by itself is
//! a violation and is started again.
//!
//! Must not read or judge the outputs (the checker does).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::timeline::Timeline;

/// What the members run and where.
#[derive(Debug, Clone)]
pub struct MembersSpec {
    pub bin: PathBuf,
    pub schema_cache: PathBuf,
    pub dir: PathBuf,
    /// The brokers' direct listeners.
    pub bootstrap: String,
    pub topic: String,
    pub group: String,
    pub count: usize,
}

struct Member {
    child: Option<Child>,
    out: PathBuf,
    logs: Vec<PathBuf>,
}

/// The running members; killed on [`stop`](Members::stop).
pub struct Members {
    spec: MembersSpec,
    members: Vec<Mutex<Member>>,
    stop: AtomicBool,
    watcher: Mutex<Option<JoinHandle<()>>>,
    timeline: Arc<Timeline>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Members {
    pub fn start(spec: MembersSpec, timeline: Arc<Timeline>) -> Result<Arc<Members>, String> {
        let members = (0..spec.count)
            .map(|i| {
                Mutex::new(Member {
                    child: None,
                    out: spec.dir.join(format!("member-{}.ndjson", i + 1)),
                    logs: Vec::new(),
                })
            })
            .collect();
        let m = Arc::new(Members {
            spec,
            members,
            stop: AtomicBool::new(false),
            watcher: Mutex::new(None),
            timeline,
        });
        for i in 0..m.members.len() {
            m.spawn(i)?;
        }
        let me = m.clone();
        *lock(&m.watcher) = Some(std::thread::spawn(move || me.supervise()));
        Ok(m)
    }

    fn spawn(&self, i: usize) -> Result<(), String> {
        let s = &self.spec;
        let mut m = lock(&self.members[i]);
        let log = s.dir.join(format!("member-{}-{}.log", i + 1, m.logs.len()));
        let open = |p: &PathBuf, append: bool| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(append)
                .write(true)
                .open(p)
                .map_err(|e| format!("{}: {e}", p.display()))
        };
        let child = Command::new(&s.bin)
            .args(["consume", "--brokers", &s.bootstrap, "--topic", &s.topic])
            .args(["--group", &s.group, "--from-beginning", "--schema-cache"])
            .arg(&s.schema_cache)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(open(&m.out, true)?)
            .stderr(open(&log, false)?)
            .spawn()
            .map_err(|e| format!("{}: {e}", s.bin.display()))?;
        m.child = Some(child);
        m.logs.push(log);
        Ok(())
    }

    fn supervise(&self) {
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(500));
            for i in 0..self.members.len() {
                let exited = {
                    let mut m = lock(&self.members[i]);
                    match m.child.as_mut().map(Child::try_wait) {
                        Some(Ok(Some(st))) => m.child.take().map(|_| (st, m.logs.clone())),
                        _ => None,
                    }
                };
                let Some((st, logs)) = exited else { continue };
                if self.stop.load(Ordering::SeqCst) {
                    return;
                }
                let tail = logs.last().map(|l| super::gateway::tail(l, 5));
                let what = format!(
                    "member {} exited by itself ({st}); last lines:\n{}",
                    i + 1,
                    tail.unwrap_or_default()
                );
                self.timeline.event(what, true);
                if let Err(e) = self.spawn(i) {
                    self.timeline
                        .event(format!("member {} restart: {e}", i + 1), true);
                }
            }
        }
    }

    /// Each member's output file.
    pub fn outputs(&self) -> Vec<PathBuf> {
        self.members.iter().map(|m| lock(m).out.clone()).collect()
    }

    /// Each member's log files, one per process.
    pub fn logs(&self) -> Vec<Vec<PathBuf>> {
        self.members.iter().map(|m| lock(m).logs.clone()).collect()
    }

    /// Kill every member and stop watching.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(w) = lock(&self.watcher).take() {
            let _ = w.join();
        }
        for m in &self.members {
            if let Some(mut c) = lock(m).child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Drop for Members {
    fn drop(&mut self) {
        self.stop();
    }
}
