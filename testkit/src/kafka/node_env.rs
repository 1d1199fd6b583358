//! The machine side of a test Kafka node: where the jars and java are, free ports, unique data
//! directories, cluster ids, log tails, and a one-shot Metadata probe through our own client.
//!
//! Must not start or stop brokers (that is `super::KafkaCluster`).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use avro_edge::__test::{self as kafka, Client, ClientConfig, ConnConfig};

use super::{KAFKA_VERSION, KafkaTestError};
use crate::process::random_u64;

/// Where the jars are, or why not (the places looked in).
pub fn kafka_libs() -> Result<PathBuf, KafkaTestError> {
    let sub = format!("kafka-{KAFKA_VERSION}/libs");
    let env = |k| std::env::var_os(k).map(PathBuf::from);
    let candidates: Vec<PathBuf> = [env("KAFKA_LIBS"), crate::cache_dir().map(|c| c.join(&sub))]
        .into_iter()
        .flatten()
        .collect();
    let marker = format!("kafka_2.13-{KAFKA_VERSION}.jar");
    if let Some(found) = candidates.iter().find(|c| c.join(&marker).is_file()) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    Err(KafkaTestError::JarsMissing(
        KAFKA_VERSION,
        looked.join(", "),
    ))
}

pub(crate) fn java_bin() -> PathBuf {
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        let j = PathBuf::from(home).join("bin/java");
        if j.is_file() {
            return j;
        }
    }
    PathBuf::from("java")
}

/// The last `n` lines of a log file (at most the last 64 KiB are read).
pub fn log_tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return format!("(cannot read {})", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[derive(Debug)]
pub struct LogTail {
    pub path: PathBuf,
    /// The log's first ERROR lines (why a node exited is often far above its last lines).
    pub errors: String,
    pub tail: String,
}

pub(super) fn tail_of(path: &Path, lines: usize) -> LogTail {
    let tail = log_tail(path, lines);
    let errors = std::fs::read_to_string(path)
        .map(|text| {
            let errors: Vec<&str> = text
                .lines()
                .filter(|l| l.contains(" ERROR "))
                .take(5)
                .collect();
            errors.join("\n")
        })
        .unwrap_or_default();
    LogTail {
        path: path.to_path_buf(),
        errors,
        tail,
    }
}

impl std::fmt::Display for LogTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "log {}", self.path.display())?;
        if !self.errors.is_empty() {
            write!(f, ", first errors:\n{}\n", self.errors)?;
        }
        write!(f, ", last lines:\n{}", self.tail)
    }
}

impl KafkaTestError {
    /// A node exited because a port it was given was already taken.
    pub(super) fn is_port_taken(&self) -> bool {
        match self {
            KafkaTestError::Exited { log, .. } => {
                log.errors.contains("Unable to start acceptor")
                    || log.errors.contains("Address already in use")
                    || log.tail.contains("Address already in use")
            }
            _ => false,
        }
    }
}

/// `count` distinct loopback ports that were free a moment ago ([`crate::free_ports`]).
pub(super) fn free_ports(count: usize) -> Result<Vec<u16>, KafkaTestError> {
    crate::process::free_ports(count).map_err(io_err("picking free loopback ports".to_string()))
}

/// A random Kafka cluster id: 16 bytes as URL-safe base64 without padding (as `kafka-storage
/// random-uuid`): 21 free characters and a last one carrying 2 bits; never a leading `-`.
pub(super) fn random_cluster_id() -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (mut a, mut b) = (random_u64(1), random_u64(2));
    let mut out: String = (0..21)
        .map(|i| {
            let c = B64[(a & 63) as usize] as char;
            (a, b) = ((a >> 6) | (b << 58), b >> 6);
            if i == 0 && c == '-' { 'A' } else { c }
        })
        .collect();
    out.push(b"AQgw"[(a & 3) as usize] as char);
    out
}

pub(super) fn unique_dir() -> Result<PathBuf, KafkaTestError> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "avro-edge-kafka-{}-{n}-{:x}",
            std::process::id(),
            random_u64(n as u64) & 0xffff_ffff
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(format!("creating {}", dir.display()))(e)),
        }
    }
}

/// Make the child get SIGKILL when the thread that spawns it ends (`PR_SET_PDEATHSIG`; the
/// parent "dies" per thread on Linux), and exit at once when that already happened. Linux only.
#[cfg(target_os = "linux")]
pub(super) fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    unsafe extern "C" {
        fn prctl(option: i32, ...) -> i32;
        fn getppid() -> i32;
    }
    const PR_SET_PDEATHSIG: i32 = 1;
    const SIGKILL: u64 = 9;
    let parent = std::process::id() as i32;
    // SAFETY: between fork and exec only async-signal-safe calls (prctl, getppid, _exit) run.
    unsafe {
        cmd.pre_exec(move || {
            if prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if getppid() != parent {
                return Err(std::io::Error::other("parent already gone"));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn die_with_parent(_cmd: &mut std::process::Command) {}

/// SIGKILL and reap (nothing when there is no process).
pub(super) fn reap(child: Option<Child>) {
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
}

pub(super) fn io_err(what: String) -> impl FnOnce(std::io::Error) -> KafkaTestError {
    move |source| KafkaTestError::Io { what, source }
}

pub(super) fn write_file(path: &Path, text: &str) -> Result<(), KafkaTestError> {
    std::fs::write(path, text).map_err(io_err(format!("writing {}", path.display())))
}

pub(super) const LOG4J2: &str = "\
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
logger.state.name = state.change.logger
logger.state.level = WARN
";

/// A client for one-shot probes of a test cluster (Metadata, FindCoordinator): short timeouts, so
/// a dead or hung node costs seconds, not the defaults' half minute.
pub(crate) fn probe_client(bootstrap: Vec<String>) -> Result<Client, avro_edge::KafkaError> {
    Client::new(ClientConfig {
        bootstrap,
        conn: ConnConfig {
            client_id: "avro-edge-testkit".into(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            ..ConnConfig::default()
        },
        connect_deadline: Duration::from_secs(3),
        ..ClientConfig::default()
    })
}

/// One Metadata request through our own client, with short timeouts: the broker ids (sorted)
/// and, for `leader_of = Some((topic, partition))`, that partition's leader.
/// One partition in a Metadata answer: its leader (`None`: none right now) and in-sync replicas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct PartitionMeta {
    pub leader: Option<i32>,
    pub isr: Vec<i32>,
}

pub(super) fn metadata(
    bootstrap: Vec<String>,
    leader_of: Option<(&str, i32)>,
) -> Result<(Vec<i32>, Option<PartitionMeta>), KafkaTestError> {
    let err = |e: avro_edge::KafkaError| KafkaTestError::Metadata(e.to_string());
    if bootstrap.is_empty() {
        return Err(KafkaTestError::Metadata("no running node".into()));
    }
    let client = probe_client(bootstrap).map_err(err)?;
    let topics: Vec<&str> = leader_of.iter().map(|(t, _)| *t).collect();
    let resp = kafka::block_on(client.fetch_metadata(&topics)).map_err(err);
    client.close();
    let resp = resp?;
    let mut ids: Vec<i32> = resp.brokers.iter().map(|b| b.node_id.0).collect();
    ids.sort_unstable();
    let part = leader_of.and_then(|(topic, partition)| {
        resp.topics
            .iter()
            .filter(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .map(|p| PartitionMeta {
                leader: Some(p.leader_id.0).filter(|&l| l >= 0),
                isr: p.isr_nodes.iter().map(|b| b.0).collect(),
            })
    });
    Ok((ids, part))
}
