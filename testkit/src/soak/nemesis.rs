//! The nemesis: runs the planned faults at their planned times (later when the resource is still
//! busy with the previous fault's heal, never earlier), each on its own thread: inject, hold, heal,
//! all recorded on the [`Timeline`]. After the last one it heals whatever is left, so the checker
//! sees a whole system.
//!
//! Must not plan (the plan is the seed's) and must not judge.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::gateway::Gateway;
use super::plan::{FaultKind, Planned, RESOURCES};
use super::site::{LONG, Site};
use super::timeline::Timeline;
use crate::net::{Cut, Link, Mode};

/// The slowed uplink: 64 kbit/s each way, 300 ms added each way.
pub const SLOW_BPS: u64 = 64_000;
pub const SLOW_DELAY: Duration = Duration::from_millis(300);
/// The clock jump.
pub const CLOCK_JUMP_MS: i64 = 2 * 3600 * 1000;

/// What the faults act on.
pub struct World<'a> {
    pub site: &'a Site,
    pub gateway: &'a Gateway,
    pub timeline: &'a Arc<Timeline>,
}

/// Run `plan` from the timeline's start until `run_for` has passed (faults planned later, or
/// delayed past it, are not started); returns when every started fault is healed.
pub fn run(w: &World, plan: &[Planned], run_for: Duration) -> usize {
    let busy: [AtomicBool; RESOURCES] = Default::default();
    let t0 = w.timeline.t0;
    let mut started = 0;
    std::thread::scope(|s| {
        for p in plan {
            super::sleep_until(t0 + p.at);
            let slot = &busy[p.kind.resource() as usize];
            while slot.load(Ordering::SeqCst) && t0.elapsed() < run_for {
                std::thread::sleep(Duration::from_millis(100));
            }
            if t0.elapsed() >= run_for {
                break;
            }
            slot.store(true, Ordering::SeqCst);
            started += 1;
            s.spawn(move || {
                fault(w, p);
                slot.store(false, Ordering::SeqCst);
            });
        }
    });
    started
}

/// Inject `p`, hold it, heal it.
fn fault(w: &World, p: &Planned) {
    let tl = w.timeline;
    let at = tl.start(p, String::new());
    eprintln!(
        "[soak {:>7.1}s] #{} {} (hold {} s)",
        tl.elapsed().as_secs_f64(),
        p.id,
        p.kind.name(),
        p.hold.as_secs()
    );
    let res = match p.kind {
        FaultKind::BrokerKill => broker_down(w, at, p, Some(p.node)),
        FaultKind::CoordinatorKill => broker_down(w, at, p, None),
        FaultKind::BrokerPause => broker_pause(w, at, p),
        FaultKind::RollingRestart => rolling_restart(w, at),
        FaultKind::UplinkRefuse => uplink(w, at, p, Mode::Cut(Cut::REFUSE)),
        FaultKind::UplinkBlackhole => uplink(w, at, p, Mode::Cut(Cut::BLACKHOLE)),
        FaultKind::UplinkSlow => {
            let link = Arc::new(Link::new(SLOW_BPS, SLOW_DELAY));
            uplink(w, at, p, Mode::Slow(link))
        }
        FaultKind::UplinkReset => {
            tl.target(at, format!("{} proxies", w.site.nodes()));
            w.site.uplink(|x| x.reset())
        }
        FaultKind::ForwarderKill => forwarder_kill(w, at, p),
        FaultKind::ClockAhead => clock(w, at, p, CLOCK_JUMP_MS),
        FaultKind::ClockBehind => clock(w, at, p, -CLOCK_JUMP_MS),
        FaultKind::DiskFull => {
            let bytes = w.gateway.fill_disk();
            tl.target(at, format!("spool tmpfs, {:.1} MiB written", mib(bytes)));
            std::thread::sleep(p.hold);
            w.gateway.free_disk();
            Ok(())
        }
    };
    if let Err(e) = res {
        tl.note(at, format!("error: {e}"));
        tl.event(format!("#{} {}: {e}", p.id, p.kind.name()), false);
    }
    tl.end(at);
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

/// The coordinator's node now, noted; `None` when it cannot be found.
fn coordinator(w: &World, at: usize) -> Option<usize> {
    match w.site.coordinator() {
        Ok(c) => Some(c),
        Err(e) => {
            w.timeline.note(at, format!("coordinator not found: {e}"));
            None
        }
    }
}

/// SIGKILL `node` (the coordinator's when `None`), hold, start it again.
fn broker_down(w: &World, at: usize, p: &Planned, node: Option<usize>) -> Result<(), String> {
    let coord = coordinator(w, at);
    let node = node.or(coord).ok_or("no coordinator to kill")?;
    let is_coord = coord == Some(node);
    let role = if is_coord { " (coordinator)" } else { "" };
    w.timeline.target(at, format!("node {}{role}", node + 1));
    if is_coord {
        w.timeline.hit_coordinator(at);
    }
    w.site.kill(node)?;
    std::thread::sleep(p.hold);
    let took = w.site.start_node(node)?;
    w.timeline
        .note(at, format!("restart took {:.1} s", took.as_secs_f64()));
    Ok(())
}

fn broker_pause(w: &World, at: usize, p: &Planned) -> Result<(), String> {
    let coord = coordinator(w, at);
    let role = if coord == Some(p.node) {
        w.timeline.hit_coordinator(at);
        " (coordinator)"
    } else {
        ""
    };
    w.timeline.target(at, format!("node {}{role}", p.node + 1));
    w.site.pause(p.node)?;
    std::thread::sleep(p.hold);
    w.site.resume(p.node)
}

/// Controlled shutdown and start of each node in turn, a full ISR before the next.
fn rolling_restart(w: &World, at: usize) -> Result<(), String> {
    w.timeline.target(at, format!("nodes 1-{}", w.site.nodes()));
    let t = Instant::now();
    for i in 0..w.site.nodes() {
        if coordinator(w, at) == Some(i) {
            w.timeline.hit_coordinator(at);
            w.timeline
                .note(at, format!("node {} was the coordinator", i + 1));
        }
        w.site.stop(i)?;
        w.site.start_node(i)?;
        w.site.wait_in_sync(LONG)?;
    }
    w.timeline
        .note(at, format!("took {:.1} s", t.elapsed().as_secs_f64()));
    Ok(())
}

fn uplink(w: &World, at: usize, p: &Planned, mode: Mode) -> Result<(), String> {
    w.timeline.target(at, format!("{} proxies", w.site.nodes()));
    w.site.uplink(|x| x.set(mode.clone()))?;
    std::thread::sleep(p.hold);
    w.site.uplink(|x| x.pass())
}

/// SIGKILL the forwarder, hold, start it again on the same spool.
fn forwarder_kill(w: &World, at: usize, p: &Planned) -> Result<(), String> {
    w.timeline.target(at, "forwarder".into());
    w.gateway.kill();
    std::thread::sleep(p.hold);
    let resent = w.gateway.restart()?;
    w.timeline
        .note(at, format!("restarted: possible_duplicates={resent}"));
    Ok(())
}

fn clock(w: &World, at: usize, p: &Planned, offset_ms: i64) -> Result<(), String> {
    let sign = if offset_ms > 0 { '+' } else { '-' };
    let hours = offset_ms.unsigned_abs() as f64 / 3_600_000.0;
    w.timeline
        .target(at, format!("forwarder clock {sign}{hours} h"));
    w.gateway.set_clock(offset_ms);
    std::thread::sleep(p.hold);
    w.gateway.set_clock(0);
    Ok(())
}

/// After the run: every broker up and unpaused, the uplink passing, the clock right, the disk
/// free; then a full ISR. What had to be done.
pub fn heal_all(w: &World) -> Vec<String> {
    let mut done = w.site.heal_brokers();
    if let Err(e) = w.site.uplink(|x| x.pass()) {
        done.push(e);
    }
    w.gateway.set_clock(0);
    w.gateway.free_disk();
    if let Err(e) = w.site.wait_in_sync(LONG) {
        done.push(format!("ISR not full: {e}"));
    }
    done
}
