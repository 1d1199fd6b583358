//! The soak's checker: from what [`reads`](super::reads) gathered, after everything was healed and
//! the forwarder drained, decide every rule and keep the evidence of each violation.
//!
//! Rules: every accepted reading stored exactly once (copies sent again by a restarted forwarder,
//! whose producer id is a later process's, are counted apart and bounded: at most one send window,
//! 500, per restart, and no more than the restarts said they would resend); nothing stored that was
//! not fed; each sensor's readings on one partition, keyed by the sensor, first copies in feed order;
//! nothing valid dead-lettered (every fed line is valid); nothing left in the spool; every stored
//! reading seen by the consumer members (their union; repeats counted, not failed); group rejoins per
//! member at most 2 at the start, 2 per fault that stopped the coordinator's broker and 2 per member
//! restart; no process exiting by itself.
//!
//! Must not read anything itself (it is given what was read) and must not act on the system.

use std::collections::BTreeMap;

use super::gateway::Session;
use super::reads::{Consumed, DeadLettered, Joins, Stored};
use super::timeline::Timeline;

/// One send window of the forwarder (`kafka.batch_records`): the most a restart may resend.
pub const SEND_WINDOW: u64 = 500;
/// Examples kept per violation.
const EXAMPLES: usize = 6;
/// Join times listed for a member over the rejoin bound.
const JOINS_SHOWN: usize = 40;

/// Everything the checker looks at.
pub struct CheckInputs<'a> {
    /// Readings the spool accepted (ids `0..accepted`).
    pub accepted: u64,
    pub left_in_spool: u64,
    pub stored: Vec<Stored>,
    /// Records that are not one of the accepted readings.
    pub alien: Vec<String>,
    pub dead: Vec<DeadLettered>,
    pub consumed: Consumed,
    pub joins: Vec<Joins>,
    pub sessions: Vec<Session>,
    /// Producer ids logged by each forwarder process.
    pub producer_ids: Vec<Vec<i64>>,
    /// (first id of a fed chunk, when), and the chunk size.
    pub feed_marks: Vec<(u64, u64)>,
    pub chunk: u64,
    pub timeline: &'a Timeline,
}

/// A broken rule: how often, and examples with the faults around them.
#[derive(Debug, Clone)]
pub struct Violation {
    pub rule: &'static str,
    pub count: u64,
    pub evidence: Vec<String>,
}

/// The checker's numbers and violations.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    pub accepted: u64,
    /// Records in the topic (copies included).
    pub stored: u64,
    pub distinct: u64,
    /// Extra copies from a later forwarder process (resent after a restart).
    pub restart_resends: u64,
    /// Extra copies from the same forwarder process.
    pub producer_duplicates: u64,
    /// … of which the copies carry different epochs of one producer id.
    pub mixed_epoch: u64,
    pub lost: u64,
    pub out_of_order: u64,
    pub dead_lettered: u64,
    pub left_in_spool: u64,
    pub consumed_lines: u64,
    pub consumed_distinct: u64,
    pub not_consumed: u64,
    pub rejoins: Vec<u64>,
    pub heartbeat_timeouts: Vec<u64>,
    pub rejoin_bound: u64,
    pub restarts: u64,
    pub possible_duplicates: u64,
    pub violations: Vec<Violation>,
}

struct Check<'a> {
    i: &'a CheckInputs<'a>,
    f: Findings,
    /// Per id: found in the dead-letter file.
    dead: Vec<bool>,
}

impl Check<'_> {
    fn violate(&mut self, rule: &'static str, count: u64, evidence: Vec<String>) {
        if count > 0 {
            self.f.violations.push(Violation {
                rule,
                count,
                evidence,
            });
        }
    }

    /// `+12.3 s [#4 uplink-slow, #5 broker-kill]` for a wall-clock time.
    fn when(&self, ms: u64) -> String {
        let tl = self.i.timeline;
        let active = tl.active_at(ms);
        let during = if active.is_empty() {
            "no fault active".to_string()
        } else {
            format!("during {}", active.join(", "))
        };
        format!("+{:.1} s, {during}", tl.secs(ms))
    }

    /// When reading `id` was fed (its last feed: lines lost with a killed forwarder are fed again).
    fn fed_at(&self, id: u64) -> Option<u64> {
        let c = self.i.chunk.max(1);
        (self.i.feed_marks.iter().rev())
            .find(|(first, _)| *first <= id && id < first + c)
            .map(|(_, ms)| *ms)
    }

    fn id_evidence(&self, id: u64, extra: &str) -> String {
        let fed = self.fed_at(id).map_or("feed time unknown".into(), |ms| {
            format!("fed at {}", self.when(ms))
        });
        format!("reading {id}{extra}: {fed}")
    }

    /// How a record was stored: `(producer 7 epoch 1 seq 30, record time +7321.5 s)`, the record
    /// time being its Kafka timestamp (the forwarder's clock, faked or not) from the soak's start.
    fn stamp(&self, s: &Stored) -> String {
        let t = (s.timestamp - self.i.timeline.t0_ms as i64) as f64 / 1000.0;
        format!(
            "(producer {} epoch {} seq {}, record time {t:+.1} s)",
            s.producer_id, s.epoch, s.sequence
        )
    }

    fn session_of(&self, pid: i64) -> Option<usize> {
        (self.i.producer_ids.iter()).position(|ids| ids.contains(&pid))
    }
}

/// Decide every rule.
pub fn check(i: &CheckInputs) -> Findings {
    let mut dead = vec![false; i.accepted as usize];
    for id in i
        .dead
        .iter()
        .filter_map(|d| d.id)
        .filter(|&id| id < i.accepted)
    {
        dead[id as usize] = true;
    }
    let mut c = Check {
        i,
        dead,
        f: Findings {
            accepted: i.accepted,
            stored: i.stored.len() as u64,
            left_in_spool: i.left_in_spool,
            ..Findings::default()
        },
    };
    let copies = copies_per_id(&mut c);
    lost_and_dead(&mut c, &copies);
    order(&mut c, &copies);
    consumers(&mut c, &copies);
    rejoins(&mut c);
    restarts(&mut c);
    let alien: Vec<String> = i.alien.iter().take(EXAMPLES).cloned().collect();
    c.violate("stored but never fed", i.alien.len() as u64, alien);
    let left = vec![format!("{} records left in the spool", i.left_in_spool)];
    c.violate("not delivered: left in the spool", i.left_in_spool, left);
    let events: Vec<String> = (i.timeline.events().into_iter())
        .filter(|e| e.violation)
        .map(|e| format!("{}: {}", c.when(e.at_ms), e.what))
        .collect();
    c.violate("process failure", events.len() as u64, events);
    c.f
}

/// Per id: its copies, first the one at the lowest offset. Counts duplicates by kind.
fn copies_per_id(c: &mut Check) -> Vec<Vec<Stored>> {
    let mut copies: Vec<Vec<Stored>> = vec![Vec::new(); c.i.accepted as usize];
    for s in &c.i.stored {
        copies[s.id as usize].push(*s);
    }
    let (mut same, mut mixed, mut keys, mut split) = (vec![], vec![], vec![], vec![]);
    for (id, cs) in copies.iter_mut().enumerate() {
        cs.sort_by_key(|s| (s.partition, s.offset));
        let Some(first) = cs.first().copied() else {
            continue;
        };
        c.f.distinct += 1;
        if cs.iter().any(|s| !s.key_ok) {
            keys.push(c.id_evidence(id as u64, " stored with a key that is not its sensor"));
        }
        if cs.iter().any(|s| s.partition != first.partition) {
            split.push(c.id_evidence(id as u64, " stored on two partitions"));
        }
        for extra in &cs[1..] {
            let later = match (
                c.session_of(first.producer_id),
                c.session_of(extra.producer_id),
            ) {
                (Some(a), Some(b)) => b > a,
                _ => false,
            };
            if later {
                c.f.restart_resends += 1;
                continue;
            }
            c.f.producer_duplicates += 1;
            let how = format!(
                " stored twice by one producer: partition {} offset {} {} and offset {} {}",
                first.partition,
                first.offset,
                c.stamp(&first),
                extra.offset,
                c.stamp(extra)
            );
            if extra.producer_id == first.producer_id && extra.epoch != first.epoch {
                c.f.mixed_epoch += 1;
                mixed.push(c.id_evidence(id as u64, &how));
            } else {
                same.push(c.id_evidence(id as u64, &how));
            }
        }
    }
    let n = |v: &Vec<String>| v.len() as u64;
    c.violate(
        "duplicate from one producer (same epoch)",
        n(&same),
        cut(same),
    );
    c.violate(
        "duplicate from one producer (mixed epochs)",
        n(&mixed),
        cut(mixed),
    );
    c.violate("key is not the sensor", n(&keys), cut(keys));
    c.violate("one sensor on two partitions", n(&split), cut(split));
    copies
}

fn cut(mut v: Vec<String>) -> Vec<String> {
    v.truncate(EXAMPLES);
    v
}

/// Accepted readings neither stored nor dead-lettered are lost; every dead letter is a violation
/// (every fed line is valid), grouped by reason.
fn lost_and_dead(c: &mut Check, copies: &[Vec<Stored>]) {
    let mut by_reason: BTreeMap<String, Vec<&DeadLettered>> = BTreeMap::new();
    for d in &c.i.dead {
        by_reason.entry(d.reason.clone()).or_default().push(d);
    }
    c.f.dead_lettered = c.i.dead.len() as u64;
    for (reason, ds) in by_reason {
        let (first, last) = (ds[0], ds[ds.len() - 1]);
        let mut ids: Vec<u64> = ds.iter().filter_map(|d| d.id).collect();
        ids.sort_unstable();
        ids.dedup();
        let stored_too = (ids.iter())
            .filter(|&&id| copies.get(id as usize).is_some_and(|c| !c.is_empty()))
            .count();
        let span = match (ids.iter().min(), ids.iter().max()) {
            (Some(a), Some(b)) => format!("readings {a}..={b}"),
            _ => "not our readings".into(),
        };
        let ev = vec![format!(
            "{} × {reason} ({} readings, {span}; {stored_too} of them stored as well); first \
             dead-lettered at {}, last at {}",
            ds.len(),
            ids.len(),
            c.when(first.at_ms),
            c.when(last.at_ms)
        )];
        let rule = "valid reading dead-lettered";
        c.violate(rule, ds.len() as u64, ev);
    }
    let lost: Vec<u64> = (0..c.i.accepted)
        .filter(|&id| copies[id as usize].is_empty() && !c.dead[id as usize])
        .collect();
    c.f.lost = lost.len() as u64;
    let ev = lost
        .iter()
        .take(EXAMPLES)
        .map(|&id| c.id_evidence(id, " lost"))
        .collect();
    c.violate("accepted reading lost", c.f.lost, ev);
}

/// Per sensor, first copies in offset order must come in feed (id) order.
fn order(c: &mut Check, copies: &[Vec<Stored>]) {
    let mut firsts: Vec<Stored> = copies.iter().filter_map(|cs| cs.first().copied()).collect();
    firsts.sort_by_key(|s| (s.partition, s.offset));
    let mut newest: BTreeMap<u32, Stored> = BTreeMap::new();
    let mut ev = Vec::new();
    for s in firsts {
        match newest.get(&s.sensor) {
            Some(n) if n.id > s.id => {
                c.f.out_of_order += 1;
                let was_dead = if c.dead[s.id as usize] {
                    ", dead-lettered before"
                } else {
                    ""
                };
                let how = format!(
                    " (s-{}{was_dead}) at partition {} offset {} {}, after reading {} at offset {} {}",
                    s.sensor,
                    s.partition,
                    s.offset,
                    c.stamp(&s),
                    n.id,
                    n.offset,
                    c.stamp(n)
                );
                ev.push(c.id_evidence(s.id, &how));
            }
            _ => {
                newest.insert(s.sensor, s);
            }
        }
    }
    c.violate("sensor order broken", c.f.out_of_order, cut(ev));
}

/// Every stored reading seen by a member; nothing seen that is not stored.
fn consumers(c: &mut Check, copies: &[Vec<Stored>]) {
    let counts = &c.i.consumed.counts;
    c.f.consumed_lines = c.i.consumed.lines;
    c.f.consumed_distinct = counts.iter().filter(|&&k| k > 0).count() as u64;
    let mut missing = Vec::new();
    let mut phantom = c.i.consumed.alien;
    for (id, cs) in copies.iter().enumerate() {
        let seen = counts.get(id).copied().unwrap_or(0);
        if !cs.is_empty() && seen == 0 {
            missing.push(id as u64);
        } else if cs.is_empty() && seen > 0 {
            phantom += 1;
        }
    }
    c.f.not_consumed = missing.len() as u64;
    let ev = (missing.iter().take(EXAMPLES))
        .map(|&id| c.id_evidence(id, " stored, never consumed"))
        .collect();
    c.violate("stored reading not consumed", c.f.not_consumed, ev);
    let ev = vec![format!("{phantom} consumed lines are not stored readings")];
    c.violate("consumed but not stored", phantom, ev);
}

/// Rejoins per member within the bound.
fn rejoins(c: &mut Check) {
    let member_restarts: u64 =
        c.i.joins
            .iter()
            .map(|j| j.processes.saturating_sub(1))
            .sum();
    let hits = u64::from(c.i.timeline.coordinator_hits());
    c.f.rejoin_bound = 2 + 2 * hits + 2 * member_restarts;
    for (m, j) in c.i.joins.iter().enumerate() {
        c.f.rejoins.push(j.rejoins());
        c.f.heartbeat_timeouts.push(j.heartbeat_timeouts);
        if j.rejoins() > c.f.rejoin_bound {
            let mut ev = vec![format!(
                "member {}: {} rejoins ({} after a heartbeat session timeout), bound {} \
                 ({hits} coordinator stops); joins at:",
                m + 1,
                j.rejoins(),
                j.heartbeat_timeouts,
                c.f.rejoin_bound
            )];
            let shown = j.joined_ms.iter().take(JOINS_SHOWN);
            ev.extend(shown.map(|&ms| format!("  {}", c.when(ms))));
            if j.joined_ms.len() > JOINS_SHOWN {
                ev.push(format!("  … {} more", j.joined_ms.len() - JOINS_SHOWN));
            }
            c.violate("group rejoins over the bound", j.rejoins(), ev);
        }
    }
}

/// Each restart resends at most one window, and no more was stored again than they resent.
fn restarts(c: &mut Check) {
    let later = c.i.sessions.iter().skip(1);
    c.f.restarts = later.len() as u64;
    let mut over = Vec::new();
    for (n, s) in c.i.sessions.iter().enumerate().skip(1) {
        let p = s.possible_duplicates.unwrap_or(0);
        c.f.possible_duplicates += p;
        if p > SEND_WINDOW {
            over.push(format!(
                "forwarder process {n} started at {} resent {p}",
                c.when(s.started_ms)
            ));
        }
    }
    c.violate(
        "restart resent more than one window",
        over.len() as u64,
        over,
    );
    if c.f.restart_resends > c.f.possible_duplicates {
        let ev = vec![format!(
            "{} copies stored again by later processes, {} announced as possible duplicates",
            c.f.restart_resends, c.f.possible_duplicates
        )];
        c.violate("more resent copies than announced", c.f.restart_resends, ev);
    }
}
