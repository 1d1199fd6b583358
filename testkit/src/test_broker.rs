//! The broker every broker test talks to: Apache Kafka by default, tansu when
//! `AVRO_EDGE_TEST_BROKER=tansu` ([`BrokerKind::from_env`]).
//!
//! | want | call | Kafka | tansu |
//! | --- | --- | --- | --- |
//! | a broker, nothing killed | [`TestBroker::shared`] | `$AVRO_EDGE_KAFKA_BROKERS` (scripts/test starts one), else ONE node per test binary, started on first use | a new broker, memory storage |
//! | kill and restart, data kept | [`TestBroker::own`] | an own node; its log dirs survive a kill | an own broker on sqlite storage |
//! | another advertised port, SASL users | [`TestBroker::own_with`] | an own node with an extra `CLIENT` listener | `--kafka-advertised-listener-url`, `--authentication` |
//!
//! The per-binary Kafka node is started from a thread that never ends, with the JVM set to die
//! with that thread (`PR_SET_PDEATHSIG`): statics are never dropped, so an `atexit` hook stops it
//! (and removes its directory) at a normal exit, and the kernel kills it when the test binary dies
//! any other way. An own node's JVM likewise dies with the test thread that started it (on top of
//! the drop at the end of the test). No JVM outlives `cargo test`.
//!
//! Tests share a broker, so they use their own topics and groups ([`crate::unique_topic`]).
//! Must not decide whether a missing broker is a skip or a failure (that is [`crate::require`]).

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use crate::broker::{Broker, Storage, TestkitError};
use crate::kafka::{
    KafkaCluster, KafkaListener, KafkaOpts, KafkaTestError, SHARED_BROKERS_ENV, SaslUser,
};

/// Env var choosing the broker kind: unset, empty or `kafka` → Apache Kafka; `tansu` → tansu.
pub const TEST_BROKER_ENV: &str = "AVRO_EDGE_TEST_BROKER";

/// Which broker the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    Kafka,
    Tansu,
}

impl BrokerKind {
    /// From `$AVRO_EDGE_TEST_BROKER` (see [`TEST_BROKER_ENV`]).
    pub fn from_env() -> Result<BrokerKind, TestBrokerError> {
        match std::env::var(TEST_BROKER_ENV) {
            Err(_) => Ok(BrokerKind::Kafka),
            Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
                "" | "kafka" => Ok(BrokerKind::Kafka),
                "tansu" => Ok(BrokerKind::Tansu),
                _ => Err(TestBrokerError::UnknownKind(v)),
            },
        }
    }

    /// What a test needs, as `needs …` messages say it.
    pub fn needs(self) -> &'static str {
        match self {
            BrokerKind::Kafka => "a Kafka broker",
            BrokerKind::Tansu => "a Kafka broker (tansu, AVRO_EDGE_TEST_BROKER=tansu)",
        }
    }
}

/// Why no test broker could be had.
#[derive(Debug, thiserror::Error)]
pub enum TestBrokerError {
    #[error("AVRO_EDGE_TEST_BROKER={0:?}: expected `kafka` (the default) or `tansu`")]
    UnknownKind(String),
    #[error(
        "{0} (or name a running broker in AVRO_EDGE_KAFKA_BROKERS, or run against tansu with AVRO_EDGE_TEST_BROKER=tansu)"
    )]
    Kafka(#[from] KafkaTestError),
    #[error("{0}")]
    Tansu(#[from] TestkitError),
    #[error(
        "this test binary's shared Kafka node did not start: {0} (or name a running broker in AVRO_EDGE_KAFKA_BROKERS)"
    )]
    SharedNode(String),
    #[error("{0}")]
    Unsupported(String),
}

/// What [`TestBroker::own_with`] sets up besides a plain listener.
#[derive(Debug, Clone, Default)]
pub struct BrokerSetup {
    /// Advertise this loopback port instead of the listener's own (a TLS terminator in front
    /// forwards to [`TestBroker::port`]).
    pub advertised_port: Option<u16>,
    /// SCRAM users (`SCRAM-SHA-256` / `SCRAM-SHA-512`): the client listener then authenticates
    /// with SASL (Kafka: a `SASL_PLAINTEXT` listener; tansu: `--authentication`).
    pub scram_users: Vec<SaslUser>,
    /// SASL/PLAIN users (Kafka only: tansu 0.6.0 lists PLAIN but refuses it).
    pub plain_users: Vec<SaslUser>,
}

impl BrokerSetup {
    fn sasl(&self) -> bool {
        !self.scram_users.is_empty() || !self.plain_users.is_empty()
    }
}

/// The extra Kafka listener [`TestBroker::own_with`] adds.
const CLIENT_LISTENER: &str = "CLIENT";

#[derive(Debug)]
enum Inner {
    /// The shared Kafka node (not ours to kill).
    Shared(String),
    Kafka {
        cluster: KafkaCluster,
        client_listener: bool,
    },
    Tansu {
        broker: Broker,
        scratch: Option<PathBuf>,
    },
}

/// A broker for one test (see the module doc); an own one is stopped on drop.
#[derive(Debug)]
pub struct TestBroker {
    kind: BrokerKind,
    inner: Inner,
}

impl TestBroker {
    /// A broker for a test that kills nothing: with Kafka, the shared node.
    pub fn shared() -> Result<TestBroker, TestBrokerError> {
        TestBroker::shared_jit(Jit::C1)
    }

    /// [`TestBroker::shared`] for a bench that measures throughput against the broker: a Kafka
    /// node started for the run gets the JVM's full JIT (C2) instead of the tests' quicker-starting
    /// C1-only one, as the yardsticks are measured (`$AVRO_EDGE_KAFKA_BROKERS` still wins).
    pub fn shared_full_jit() -> Result<TestBroker, TestBrokerError> {
        TestBroker::shared_jit(Jit::Full)
    }

    fn shared_jit(jit: Jit) -> Result<TestBroker, TestBrokerError> {
        let kind = BrokerKind::from_env()?;
        let inner = match kind {
            BrokerKind::Kafka => Inner::Shared(shared_kafka(jit)?),
            BrokerKind::Tansu => Inner::Tansu {
                broker: Broker::start(Storage::Memory)?,
                scratch: None,
            },
        };
        Ok(TestBroker { kind, inner })
    }

    /// A broker of the test's own, which [`kill`](Self::kill) and [`restart`](Self::restart)
    /// stop and start with its data kept. With Kafka, the node's JVM is SIGKILLed when the thread
    /// that started (or last restarted) it ends, so keep those calls on the test's own thread.
    pub fn own() -> Result<TestBroker, TestBrokerError> {
        TestBroker::own_with(&BrokerSetup::default())
    }

    /// [`TestBroker::own`] with another advertised port and/or SASL users.
    pub fn own_with(setup: &BrokerSetup) -> Result<TestBroker, TestBrokerError> {
        let kind = BrokerKind::from_env()?;
        let inner = match kind {
            BrokerKind::Kafka => own_kafka(setup)?,
            BrokerKind::Tansu => own_tansu(setup)?,
        };
        Ok(TestBroker { kind, inner })
    }

    pub fn kind(&self) -> BrokerKind {
        self.kind
    }

    /// Bootstrap list for clients (the SASL listener when users were set up).
    pub fn bootstrap(&self) -> String {
        match &self.inner {
            Inner::Shared(b) => b.clone(),
            Inner::Kafka {
                cluster,
                client_listener,
            } => match client_listener {
                true => cluster
                    .listener_addr(0, CLIENT_LISTENER)
                    .unwrap_or_default(),
                false => cluster.bootstrap(),
            },
            Inner::Tansu { broker, .. } => broker.bootstrap(),
        }
    }

    /// The port [`bootstrap`](Self::bootstrap) names: where the client listener accepts
    /// (whatever it advertises).
    pub fn port(&self) -> u16 {
        let b = self.bootstrap();
        let first = b.split(',').next().unwrap_or_default();
        first
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// SIGKILL the broker (a crash). Panics for the shared broker: use [`TestBroker::own`].
    pub fn kill(&mut self) {
        match &mut self.inner {
            Inner::Shared(_) => {
                panic!("the shared test broker cannot be killed: use TestBroker::own")
            }
            Inner::Kafka { cluster, .. } => {
                let _ = cluster.kill(0);
            }
            Inner::Tansu { broker, .. } => broker.kill(),
        }
    }

    /// Stop the broker cleanly (Kafka: SIGTERM, a controlled shutdown that flushes and marks its
    /// logs clean; tansu: as [`kill`](Self::kill)). Panics for the shared broker.
    pub fn stop(&mut self) {
        match &mut self.inner {
            Inner::Shared(_) => {
                panic!("the shared test broker cannot be stopped: use TestBroker::own")
            }
            Inner::Kafka { cluster, .. } => {
                let _ = cluster.stop(0);
            }
            Inner::Tansu { broker, .. } => broker.kill(),
        }
    }

    /// The directory holding `topic`/`partition` on disk: an own Kafka node's `<log.dirs>/topic-partition`
    /// (segments `*.log`), to be changed while the broker is [stopped](Self::stop). `None` for
    /// tansu and the shared broker.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> Option<PathBuf> {
        match &self.inner {
            Inner::Kafka { cluster, .. } => {
                Some(cluster.data_dir(0).join(format!("{topic}-{partition}")))
            }
            _ => None,
        }
    }

    /// Start the broker again on the same port(s) with the data it had, and wait until it serves.
    pub fn restart(&mut self) -> Result<(), TestBrokerError> {
        match &mut self.inner {
            Inner::Shared(_) => Err(TestBrokerError::Unsupported(
                "the shared test broker cannot be restarted: use TestBroker::own".into(),
            )),
            Inner::Kafka { cluster, .. } => {
                let _ = cluster.kill(0);
                Ok(cluster.start_node(0)?)
            }
            Inner::Tansu { broker, .. } => Ok(broker.restart()?),
        }
    }

    /// The broker's log, when it is ours.
    pub fn log_path(&self) -> Option<PathBuf> {
        match &self.inner {
            Inner::Shared(_) => None,
            Inner::Kafka { cluster, .. } => Some(cluster.log(0).to_path_buf()),
            Inner::Tansu { broker, .. } => Some(broker.log_path().to_path_buf()),
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Inner::Tansu {
            broker,
            scratch: Some(dir),
        } = &mut self.inner
        {
            broker.kill();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn own_kafka(setup: &BrokerSetup) -> Result<Inner, TestBrokerError> {
    // Its JVM dies with the test's thread (which restarts it, too), so with the test binary.
    let mut opts = KafkaOpts {
        die_with_starting_thread: true,
        ..KafkaOpts::default()
    };
    let client_listener = setup.advertised_port.is_some() || setup.sasl();
    if client_listener {
        opts.listeners.push(KafkaListener {
            name: CLIENT_LISTENER.into(),
            sasl: setup.sasl(),
            tls: None,
            advertised_ports: setup.advertised_port.into_iter().collect(),
        });
        opts.scram_users = setup.scram_users.clone();
        opts.plain_users = setup.plain_users.clone();
    }
    Ok(Inner::Kafka {
        cluster: KafkaCluster::start(1, opts)?,
        client_listener,
    })
}

fn own_tansu(setup: &BrokerSetup) -> Result<Inner, TestBrokerError> {
    if !setup.plain_users.is_empty() {
        return Err(TestBrokerError::Unsupported(
            "tansu 0.6.0 lists SASL/PLAIN but refuses it: run this test against Kafka".into(),
        ));
    }
    let dir = crate::tmpdir("tansu-own");
    let mut args: Vec<String> = Vec::new();
    if let Some(port) = setup.advertised_port {
        args.push("--kafka-advertised-listener-url".into());
        args.push(format!("tcp://127.0.0.1:{port}"));
    }
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut broker = Broker::start_with_args(Storage::Sqlite(dir.join("tansu.db")), &arg_refs)?;
    if !setup.scram_users.is_empty() {
        // tansu refuses `user create` once --authentication is on: users first, then restart.
        for u in &setup.scram_users {
            let mechanism = match u.mechanism.as_str() {
                "SCRAM-SHA-256" => "scram256",
                "SCRAM-SHA-512" => "scram512",
                other => {
                    return Err(TestBrokerError::Unsupported(format!(
                        "SASL mechanism {other} on tansu"
                    )));
                }
            };
            broker.create_scram_user(mechanism, &u.name, &u.password)?;
        }
        args.push("--authentication".into());
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        broker.set_extra_args(&arg_refs);
        broker.restart()?;
    }
    Ok(Inner::Tansu {
        broker,
        scratch: Some(dir),
    })
}

/// This binary's process-lifetime clusters: the shared node and any [`process_cluster`] (kept
/// here so the exit hook can stop them).
static PROCESS_CLUSTERS: Mutex<Vec<KafkaCluster>> = Mutex::new(Vec::new());

/// Which JIT the shared node's JVM runs: C1 only (the tests': it starts in half the time) or full.
#[derive(Clone, Copy)]
enum Jit {
    C1,
    Full,
}

/// `$AVRO_EDGE_KAFKA_BROKERS`, else this test binary's one node, started on first use.
fn shared_kafka(jit: Jit) -> Result<String, TestBrokerError> {
    if let Ok(b) = std::env::var(SHARED_BROKERS_ENV)
        && !b.trim().is_empty()
    {
        return Ok(b.trim().to_string());
    }
    static C1: OnceLock<Result<String, String>> = OnceLock::new();
    static FULL: OnceLock<Result<String, String>> = OnceLock::new();
    let slot = match jit {
        Jit::C1 => &C1,
        Jit::Full => &FULL,
    };
    slot.get_or_init(|| start_shared_node(jit))
        .clone()
        .map_err(TestBrokerError::SharedNode)
}

/// Start the shared node (see [`process_cluster`]).
fn start_shared_node(jit: Jit) -> Result<String, String> {
    let mut opts = KafkaOpts::default();
    if let Jit::Full = jit {
        opts.jvm_args.clear();
    }
    process_cluster(1, opts, |c| c.bootstrap())
}

/// Start a Kafka cluster that lives as long as the test process (for the tests of one binary to
/// share, e.g. behind a `OnceLock`): from a thread that parks forever, with its JVMs set to die
/// with that thread (so with the process), and stopped (its directory removed) by an `atexit` hook
/// at a normal exit. `describe` reads what the tests need (addresses) before the thread parks.
pub fn process_cluster<T: Send + 'static>(
    n_brokers: usize,
    opts: KafkaOpts,
    describe: impl FnOnce(&KafkaCluster) -> T + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("testkit-process-kafka".into())
        .spawn(move || {
            let opts = KafkaOpts {
                die_with_starting_thread: true,
                ..opts
            };
            match KafkaCluster::start(n_brokers, opts) {
                Ok(cluster) => {
                    let described = describe(&cluster);
                    if let Ok(mut all) = PROCESS_CLUSTERS.lock() {
                        if all.is_empty() {
                            on_exit(stop_process_clusters);
                        }
                        all.push(cluster);
                    }
                    let _ = tx.send(Ok(described));
                    loop {
                        std::thread::park();
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            }
        });
    if let Err(e) = spawned {
        return Err(format!("spawning its thread: {e}"));
    }
    rx.recv()
        .unwrap_or_else(|_| Err("its thread ended without an answer".into()))
}

extern "C" fn stop_process_clusters() {
    let all = PROCESS_CLUSTERS
        .lock()
        .map(|mut all| std::mem::take(&mut *all))
        .unwrap_or_default();
    drop(all);
}

/// Run `f` when the process exits normally (C `atexit`: `main` returning or `process::exit`).
fn on_exit(f: extern "C" fn()) {
    unsafe extern "C" {
        fn atexit(f: extern "C" fn()) -> i32;
    }
    // SAFETY: registers a plain function without captured state; libc runs it at exit.
    unsafe {
        atexit(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_is_kafka_unless_tansu_is_asked_for() {
        // Only reads the variable as this process has it (tests must not set env vars in parallel).
        let got = BrokerKind::from_env();
        match std::env::var(TEST_BROKER_ENV)
            .ok()
            .as_deref()
            .map(str::trim)
        {
            None | Some("") | Some("kafka") => assert_eq!(got.unwrap(), BrokerKind::Kafka),
            Some("tansu") => assert_eq!(got.unwrap(), BrokerKind::Tansu),
            Some(_) => assert!(got.is_err()),
        }
    }
}
