//! The nemesis's schedule: which faults, in which order, on which broker, for how long, planned from
//! the seed alone (so a run is replayed by its seed), with the rule for which faults may overlap:
//! faults on the same [`Resource`] never overlap; faults on different resources may.
//!
//! Must not inject anything or look at the clock: planned times are offsets from the soak's start
//! (the nemesis may run late when a heal takes longer than planned, never early).

use std::time::Duration;

/// What a fault acts on; at most one fault per resource at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// The brokers (one broker fault at a time: with replication 3 and `min.insync.replicas=2`,
    /// writes stay possible).
    Brokers,
    /// The gateway's uplink: the proxies between the forwarder and the brokers.
    Uplink,
    /// The forwarder process.
    Forwarder,
    /// The forwarder's clock.
    Clock,
    /// The spool's file system.
    Disk,
}

/// The number of [`Resource`]s.
pub const RESOURCES: usize = 5;

/// Every kind of fault the nemesis injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// SIGKILL a broker, restart it after the hold.
    BrokerKill,
    /// SIGSTOP a broker, SIGCONT after the hold.
    BrokerPause,
    /// Controlled shutdown and start of each broker in turn, waiting for a full ISR in between.
    RollingRestart,
    /// SIGKILL the broker that is the consumer group's coordinator (FindCoordinator), restart it.
    CoordinatorKill,
    /// The uplink refuses connects and resets live connections.
    UplinkRefuse,
    /// The uplink black-holes: connects hang, live connections freeze.
    UplinkBlackhole,
    /// The uplink slows to 64 kbit/s each way with 300 ms added each way.
    UplinkSlow,
    /// Every live uplink connection reset (RST).
    UplinkReset,
    /// SIGKILL the forwarder, restart it on the same spool after the hold.
    ForwarderKill,
    /// The forwarder's clock jumps 2 h ahead, back after the hold.
    ClockAhead,
    /// The forwarder's clock jumps 2 h behind, back after the hold.
    ClockBehind,
    /// The spool's file system filled to the last byte, freed after the hold.
    DiskFull,
}

impl FaultKind {
    pub const ALL: [FaultKind; 12] = [
        FaultKind::BrokerKill,
        FaultKind::BrokerPause,
        FaultKind::RollingRestart,
        FaultKind::CoordinatorKill,
        FaultKind::UplinkRefuse,
        FaultKind::UplinkBlackhole,
        FaultKind::UplinkSlow,
        FaultKind::UplinkReset,
        FaultKind::ForwarderKill,
        FaultKind::ClockAhead,
        FaultKind::ClockBehind,
        FaultKind::DiskFull,
    ];

    /// The name used by `--without`, the timeline and the tables.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::BrokerKill => "broker-kill",
            FaultKind::BrokerPause => "broker-pause",
            FaultKind::RollingRestart => "rolling-restart",
            FaultKind::CoordinatorKill => "coordinator-kill",
            FaultKind::UplinkRefuse => "uplink-refuse",
            FaultKind::UplinkBlackhole => "uplink-blackhole",
            FaultKind::UplinkSlow => "uplink-slow",
            FaultKind::UplinkReset => "uplink-reset",
            FaultKind::ForwarderKill => "forwarder-kill",
            FaultKind::ClockAhead => "clock-ahead",
            FaultKind::ClockBehind => "clock-behind",
            FaultKind::DiskFull => "disk-full",
        }
    }

    /// The kind named `name` (as [`name`](Self::name) spells it).
    pub fn parse(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == name.trim())
    }

    pub fn resource(self) -> Resource {
        match self {
            FaultKind::BrokerKill
            | FaultKind::BrokerPause
            | FaultKind::RollingRestart
            | FaultKind::CoordinatorKill => Resource::Brokers,
            FaultKind::UplinkRefuse
            | FaultKind::UplinkBlackhole
            | FaultKind::UplinkSlow
            | FaultKind::UplinkReset => Resource::Uplink,
            FaultKind::ForwarderKill => Resource::Forwarder,
            FaultKind::ClockAhead | FaultKind::ClockBehind => Resource::Clock,
            FaultKind::DiskFull => Resource::Disk,
        }
    }

    /// How long the fault holds before its heal, in seconds (drawn uniformly).
    fn hold_secs(self) -> (u64, u64) {
        match self {
            FaultKind::BrokerKill => (5, 30),
            FaultKind::BrokerPause => (3, 20),
            FaultKind::RollingRestart | FaultKind::UplinkReset => (0, 0),
            FaultKind::CoordinatorKill => (10, 25),
            FaultKind::UplinkRefuse | FaultKind::UplinkBlackhole => (5, 40),
            FaultKind::UplinkSlow => (15, 60),
            FaultKind::ForwarderKill => (0, 5),
            FaultKind::ClockAhead | FaultKind::ClockBehind => (10, 40),
            FaultKind::DiskFull => (5, 30),
        }
    }

    /// What the planner expects the heal to take beyond the hold (a broker start, a rolling
    /// restart); the nemesis waits for the real heal anyway.
    fn heal_estimate(self) -> Duration {
        Duration::from_secs(match self {
            FaultKind::BrokerKill | FaultKind::CoordinatorKill => 25,
            FaultKind::RollingRestart => 120,
            FaultKind::ForwarderKill | FaultKind::BrokerPause | FaultKind::UplinkReset => 5,
            _ => 2,
        })
    }
}

/// One planned fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// 1-based, in start order.
    pub id: usize,
    pub kind: FaultKind,
    /// Planned start, from the soak's start.
    pub at: Duration,
    /// How long it holds before its heal.
    pub hold: Duration,
    /// The broker (index) a broker kill or pause acts on; drawn for every fault, used by those.
    pub node: usize,
}

/// No fault in the first seconds: the forwarder and the group settle first.
const WARM_UP: Duration = Duration::from_secs(15);
/// Gap between two fault starts, in ms (drawn uniformly).
const GAP_MS: (u64, u64) = (3_000, 15_000);

/// The schedule for a soak of `run` (faults start before it ends) from `seed`, without the
/// kinds in `without`, on a cluster of `nodes` brokers.
pub fn plan(seed: u64, run: Duration, without: &[FaultKind], nodes: usize) -> Vec<Planned> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let kinds: Vec<FaultKind> = (FaultKind::ALL.into_iter())
        .filter(|k| !without.contains(k))
        .collect();
    let mut free_at = [Duration::ZERO; RESOURCES];
    let mut out = Vec::new();
    let mut t = WARM_UP;
    while !kinds.is_empty() {
        t += Duration::from_millis(rng.u64(GAP_MS.0..=GAP_MS.1));
        let free: Vec<FaultKind> = (kinds.iter().copied())
            .filter(|k| free_at[k.resource() as usize] <= t)
            .collect();
        if free.is_empty() {
            // Everything busy: start again when the first resource is free.
            let first = kinds.iter().map(|k| free_at[k.resource() as usize]).min();
            t = first.unwrap_or(t).max(t);
        }
        if t >= run {
            break;
        }
        if free.is_empty() {
            continue;
        }
        let kind = free[rng.usize(..free.len())];
        let (lo, hi) = kind.hold_secs();
        let hold = Duration::from_secs(rng.u64(lo..=hi));
        let node = rng.usize(..nodes.max(1));
        free_at[kind.resource() as usize] = t + hold + kind.heal_estimate();
        out.push(Planned {
            id: out.len() + 1,
            kind,
            at: t,
            hold,
            node,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_schedule_and_another_seed_another() {
        let run = Duration::from_secs(1800);
        let a = plan(7, run, &[], 3);
        assert_eq!(a, plan(7, run, &[], 3));
        assert_ne!(a, plan(8, run, &[], 3));
        assert!(a.len() > 100, "{} faults in 30 minutes", a.len());
    }

    #[test]
    fn faults_on_one_resource_never_overlap_and_excluded_kinds_never_come() {
        let p = plan(42, Duration::from_secs(3600), &[FaultKind::ClockAhead], 3);
        assert!(p.iter().all(|f| f.kind != FaultKind::ClockAhead));
        for (i, a) in p.iter().enumerate() {
            let end = a.at + a.hold + a.kind.heal_estimate();
            let next = p[i + 1..]
                .iter()
                .find(|b| b.kind.resource() == a.kind.resource());
            if let Some(b) = next {
                assert!(b.at >= end, "#{} starts before #{} is healed", b.id, a.id);
            }
        }
        for k in FaultKind::ALL
            .iter()
            .filter(|k| **k != FaultKind::ClockAhead)
        {
            assert!(p.iter().any(|f| f.kind == *k), "{} never planned", k.name());
        }
    }

    #[test]
    fn kinds_parse_from_their_names() {
        for k in FaultKind::ALL {
            assert_eq!(FaultKind::parse(k.name()), Some(k));
        }
        assert_eq!(FaultKind::parse("nonsense"), None);
    }
}
