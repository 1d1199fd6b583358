//! A seeded fault soak with an exact checker (issue 15): a 3-broker Apache Kafka cluster, the real
//! `avro-edge forward` fed SensorData readings with unique ids at a steady rate through an uplink of
//! [`Proxy`](crate::net::Proxy)s, two `avro-edge consume` members of one group, and a nemesis that
//! for the soak's duration injects faults drawn from the seed ([`plan`]): broker SIGKILL, SIGSTOP,
//! rolling restart, coordinator kill, uplink cut / black hole / slow / reset, forwarder SIGKILL,
//! clock ±2 h, full disk. Then everything is healed, the forwarder drains, and the [`checker`]
//! reads every partition independently and decides the rules; the [`report`] prints the seed, the
//! timeline and the result table.
//!
//! Deterministic from the seed: the schedule (kinds, order, planned times, holds, broker targets).
//! Not deterministic: real timings (a heal that takes longer delays the next fault on that
//! resource), which broker leads or coordinates when a fault hits, and how the stream interleaves
//! with the faults.
//!
//! Must not be used by the library or the binary (test kit only), and must not fix or mask what
//! it finds: every violation is reported with its evidence and fails the run.

pub mod checker;
pub mod gateway;
pub mod members;
pub mod nemesis;
pub mod plan;
pub mod reads;
pub mod report;
pub mod site;
pub mod timeline;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use checker::{CheckInputs, Findings};
use gateway::{Gateway, GatewaySpec};
use members::{Members, MembersSpec};
use plan::FaultKind;
use site::Site;
use timeline::Timeline;

const NODES: usize = 3;
const PARTITIONS: i32 = 3;
const SENSORS: u64 = 10;
const MEMBERS: usize = 2;
/// The spool's tmpfs.
const DISK_BYTES: u64 = 64 << 20;
/// How long the members get to read everything after the forwarder drained.
const CONSUME_LIMIT: Duration = Duration::from_secs(240);

/// A soak's settings.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    pub seed: u64,
    pub minutes: f64,
    /// Readings fed per second.
    pub rate: u32,
    /// Fault kinds left out of the schedule.
    pub without: Vec<FaultKind>,
    /// The `avro-edge` binary (a test build, which honours `AVRO_EDGE_FAKE_NOW_FILE`).
    pub bin: PathBuf,
    /// Logs, outputs, dead letters, the report.
    pub dir: PathBuf,
}

impl SoakConfig {
    /// From `SOAK_SEED` (default: from the time), `SOAK_MINUTES` (default 2), `SOAK_RATE`
    /// (default 300) and `SOAK_WITHOUT` (kind names, comma-separated).
    pub fn from_env(bin: impl Into<PathBuf>) -> Result<SoakConfig, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let bad = |k: &str, v: &str| format!("{k}={v:?} is not a number");
        let seed = match var("SOAK_SEED") {
            Some(v) => v.trim().parse().map_err(|_| bad("SOAK_SEED", &v))?,
            None => timeline::unix_ms() ^ u64::from(std::process::id()) << 32,
        };
        let minutes = match var("SOAK_MINUTES") {
            Some(v) => v.trim().parse().map_err(|_| bad("SOAK_MINUTES", &v))?,
            None => 2.0,
        };
        let rate = match var("SOAK_RATE") {
            Some(v) => v.trim().parse().map_err(|_| bad("SOAK_RATE", &v))?,
            None => 300,
        };
        let mut without = Vec::new();
        for name in var("SOAK_WITHOUT").unwrap_or_default().split(',') {
            if name.trim().is_empty() {
                continue;
            }
            let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
            let k = FaultKind::parse(name)
                .ok_or_else(|| format!("unknown fault kind {name:?}; kinds: {names:?}"))?;
            without.push(k);
        }
        Ok(SoakConfig {
            seed,
            minutes,
            rate,
            without,
            bin: bin.into(),
            dir: crate::tmpdir(&format!("soak-{seed}")),
        })
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.minutes.max(0.0) * 60.0)
    }
}

/// What a soak ended with.
pub struct SoakOutcome {
    pub findings: Findings,
    pub report: String,
}

/// Sleep until `t` (no sleep when it has passed).
pub(crate) fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// Stops the gateway and the members however the soak ends.
struct Running {
    gateway: Arc<Gateway>,
    members: Arc<Members>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.members.stop();
        self.gateway.shutdown();
    }
}

/// Run a soak: set up, let the nemesis loose, heal, drain, check, report.
pub fn run(cfg: &SoakConfig) -> Result<SoakOutcome, String> {
    let plan = plan::plan(cfg.seed, cfg.duration(), &cfg.without, NODES);
    eprintln!(
        "soak: seed {}, {} min, {} faults planned, {} readings/s, directory {}",
        cfg.seed,
        cfg.minutes,
        plan.len(),
        cfg.rate,
        cfg.dir.display()
    );
    let site = Site::start(NODES, PARTITIONS, &cfg.seed.to_string())?;
    let timeline = Arc::new(Timeline::new());
    let running = start_clients(cfg, &site, &timeline)?;
    let w = nemesis::World {
        site: &site,
        gateway: &running.gateway,
        timeline: &timeline,
    };
    let done = AtomicBool::new(false);
    let (injected, healed) = std::thread::scope(|s| {
        s.spawn(|| progress(&w, &done));
        let injected = nemesis::run(&w, &plan, cfg.duration());
        eprintln!("soak: {injected} faults injected; healing everything");
        let healed = nemesis::heal_all(&w);
        done.store(true, Ordering::SeqCst);
        (injected, healed)
    });
    let inputs = gather(cfg, &site, &running, &timeline)?;
    let findings = checker::check(&inputs);
    let report = report::render(
        &report::ReportInputs {
            cfg,
            timeline: &timeline,
            planned: plan.len(),
            injected,
            uplink: site.traffic(),
            healed: &healed,
        },
        &findings,
    );
    let _ = std::fs::write(cfg.dir.join("report.md"), &report);
    Ok(SoakOutcome { findings, report })
}

/// The forwarder (through the proxies) and the group members.
fn start_clients(cfg: &SoakConfig, site: &Site, tl: &Arc<Timeline>) -> Result<Running, String> {
    let schema_cache = crate::root().join("fixtures/schema-cache");
    let gateway = Gateway::start(
        GatewaySpec {
            bin: cfg.bin.clone(),
            schema_cache: schema_cache.clone(),
            dir: cfg.dir.clone(),
            bootstrap: site.gateway_bootstrap(),
            topic: site.topic.clone(),
            rate: cfg.rate,
            sensors: SENSORS,
            disk_bytes: DISK_BYTES,
        },
        tl.clone(),
    )?;
    let members = Members::start(
        MembersSpec {
            bin: cfg.bin.clone(),
            schema_cache,
            dir: cfg.dir.clone(),
            bootstrap: site.direct.clone(),
            topic: site.topic.clone(),
            group: site.group.clone(),
            count: MEMBERS,
        },
        tl.clone(),
    );
    match members {
        Ok(members) => Ok(Running { gateway, members }),
        Err(e) => {
            gateway.shutdown();
            Err(e)
        }
    }
}

/// Drain the forwarder, read the topic, let the members catch up, and gather what the checker
/// needs.
fn gather<'a>(
    cfg: &SoakConfig,
    site: &Site,
    running: &Running,
    timeline: &'a Timeline,
) -> Result<CheckInputs<'a>, String> {
    let (gateway, members) = (&running.gateway, &running.members);
    let (accepted, left) = gateway.finish();
    eprintln!("soak: forwarder drained: {accepted} readings accepted, {left} left in the spool");
    let (stored, alien) = reads::read_stored(site, accepted)?;
    await_members(members, accepted, distinct_ids(&stored, accepted));
    members.stop();
    let sessions = gateway.sessions();
    Ok(CheckInputs {
        accepted,
        left_in_spool: left,
        stored,
        alien,
        dead: reads::read_dead_letters(&gateway.dead_letter),
        consumed: reads::read_consumed(&members.outputs(), accepted),
        joins: (members.logs().iter())
            .map(|l| reads::read_joins(l))
            .collect(),
        producer_ids: reads::producer_ids(&sessions),
        sessions,
        feed_marks: gateway.feed_marks(),
        chunk: u64::from(cfg.rate / 10).max(1),
        timeline,
    })
}

fn distinct_ids(stored: &[reads::Stored], accepted: u64) -> u64 {
    let mut seen = vec![false; accepted as usize];
    for s in stored {
        seen[s.id as usize] = true;
    }
    seen.iter().filter(|&&b| b).count() as u64
}

/// Wait until the members' union covers `distinct` readings, or nothing new came for 60 s, or
/// [`CONSUME_LIMIT`] passed.
fn await_members(members: &Members, accepted: u64, distinct: u64) {
    let started = Instant::now();
    let (mut last, mut last_change) = (0, Instant::now());
    loop {
        let seen = reads::consumed_distinct(&members.outputs(), accepted);
        if seen >= distinct {
            return;
        }
        if seen != last {
            (last, last_change) = (seen, Instant::now());
        }
        if started.elapsed() > CONSUME_LIMIT || last_change.elapsed() > Duration::from_secs(60) {
            eprintln!("soak: members saw {seen} of {distinct} stored readings; giving up waiting");
            return;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// A progress line every 30 s until `done`.
fn progress(w: &nemesis::World, done: &AtomicBool) {
    let mut next = Instant::now() + Duration::from_secs(30);
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
        if Instant::now() < next {
            continue;
        }
        next += Duration::from_secs(30);
        let t = w.site.traffic();
        eprintln!(
            "[soak {:>7.1}s] {}; uplink {} B up, {} B down, {} connections",
            w.timeline.elapsed().as_secs_f64(),
            w.gateway.progress(),
            t.up,
            t.down,
            t.connections
        );
    }
}
