//! What happened when during a soak: every injected fault with its start and end (heal done), its
//! target and notes, and the unplanned events (a process that exited by itself, a restart that
//! failed), each with wall-clock times so that log lines and fed records can be matched to them.
//!
//! Must not judge anything (the checker does) and must not act on the system.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::plan::{FaultKind, Planned};

/// Milliseconds since the Unix epoch (the real clock: the fake one is the forwarder's only).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How long after its heal a fault is still named as a record's surrounding.
pub const AFTERMATH: Duration = Duration::from_secs(5);

/// One injected fault.
#[derive(Debug, Clone)]
pub struct Entry {
    pub planned: Planned,
    /// What it acted on (`node 2`, `node 3 (coordinator)`, `3 proxies`, …).
    pub target: String,
    /// Real start and end (heal done), ms since the Unix epoch; `end_ms` 0 while it holds.
    pub start_ms: u64,
    pub end_ms: u64,
    /// Times the fault stopped the broker that coordinated the consumer group.
    pub coordinator_hits: u32,
    pub notes: Vec<String>,
}

/// An unplanned event, kept for the report; `violation` events fail the run.
#[derive(Debug, Clone)]
pub struct Event {
    pub at_ms: u64,
    pub what: String,
    pub violation: bool,
}

/// The soak's timeline, shared by the nemesis threads and the supervisors.
#[derive(Debug)]
pub struct Timeline {
    pub t0: Instant,
    pub t0_ms: u64,
    entries: Mutex<Vec<Entry>>,
    events: Mutex<Vec<Event>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline::new()
    }
}

impl Timeline {
    /// A timeline whose zero is now.
    pub fn new() -> Timeline {
        Timeline {
            t0: Instant::now(),
            t0_ms: unix_ms(),
            entries: Mutex::default(),
            events: Mutex::default(),
        }
    }

    /// Seconds since the start for a wall-clock time.
    pub fn secs(&self, ms: u64) -> f64 {
        ms.saturating_sub(self.t0_ms) as f64 / 1000.0
    }

    /// How long the soak has run.
    pub fn elapsed(&self) -> Duration {
        self.t0.elapsed()
    }

    /// Record the start of `p`; returns its index for [`note`](Self::note) and [`end`](Self::end).
    pub fn start(&self, p: &Planned, target: String) -> usize {
        let mut g = lock(&self.entries);
        g.push(Entry {
            planned: p.clone(),
            target,
            start_ms: unix_ms(),
            end_ms: 0,
            coordinator_hits: 0,
            notes: Vec::new(),
        });
        g.len() - 1
    }

    pub fn note(&self, at: usize, note: impl Into<String>) {
        if let Some(e) = lock(&self.entries).get_mut(at) {
            e.notes.push(note.into());
        }
    }

    /// Set the entry's target (known only once the fault ran, e.g. the coordinator's node).
    pub fn target(&self, at: usize, target: String) {
        if let Some(e) = lock(&self.entries).get_mut(at) {
            e.target = target;
        }
    }

    pub fn hit_coordinator(&self, at: usize) {
        if let Some(e) = lock(&self.entries).get_mut(at) {
            e.coordinator_hits += 1;
        }
    }

    pub fn end(&self, at: usize) {
        if let Some(e) = lock(&self.entries).get_mut(at) {
            e.end_ms = unix_ms();
        }
    }

    /// Record an unplanned event; `violation` makes the run fail.
    pub fn event(&self, what: impl Into<String>, violation: bool) {
        let what = what.into();
        eprintln!(
            "[soak {:>7.1}s] {}{what}",
            self.elapsed().as_secs_f64(),
            if violation { "VIOLATION: " } else { "" }
        );
        lock(&self.events).push(Event {
            at_ms: unix_ms(),
            what,
            violation,
        });
    }

    /// Every fault so far, in start order.
    pub fn entries(&self) -> Vec<Entry> {
        let mut v = lock(&self.entries).clone();
        v.sort_by_key(|e| e.start_ms);
        v
    }

    pub fn events(&self) -> Vec<Event> {
        lock(&self.events).clone()
    }

    /// The faults that held at wall-clock time `ms` (started, not yet healed then), as
    /// `#id kind` items, and those healed less than [`AFTERMATH`] before it (`healed 1.2 s
    /// before`: what was in flight when a fault ended still carries it).
    pub fn active_at(&self, ms: u64) -> Vec<String> {
        let grace = AFTERMATH.as_millis() as u64;
        (lock(&self.entries).iter())
            .filter(|e| e.start_ms <= ms && (e.end_ms == 0 || ms <= e.end_ms + grace))
            .map(|e| {
                let name = format!("#{} {}", e.planned.id, e.planned.kind.name());
                if e.end_ms != 0 && ms > e.end_ms {
                    let ago = (ms - e.end_ms) as f64 / 1000.0;
                    format!("{name} (healed {ago:.1} s before)")
                } else {
                    name
                }
            })
            .collect()
    }

    /// Faults injected per kind.
    pub fn per_kind(&self) -> Vec<(FaultKind, usize)> {
        let g = lock(&self.entries);
        (FaultKind::ALL.into_iter())
            .map(|k| (k, g.iter().filter(|e| e.planned.kind == k).count()))
            .collect()
    }

    /// Times the faults stopped the group coordinator's broker.
    pub fn coordinator_hits(&self) -> u32 {
        lock(&self.entries).iter().map(|e| e.coordinator_hits).sum()
    }
}
