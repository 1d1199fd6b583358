//! Test support: real Apache Kafka (KRaft combined mode) clusters of 1..n nodes, run from the jars
//! that `scripts/install-kafka` caches, on free loopback ports, with per-node fault control
//! (kill, stop, start, pause, resume) for failover tests.
//!
//! Must not be used by the forwarder itself: it exists for tests, benchmarks and the demo. It is
//! in the dev-only test kit: it depends on `std`, `thiserror`
//! and avro-edge's raw Kafka client (`avro_edge::__test`) only. It never uses a fixed port or a
//! fixed directory: each cluster lives in its own process-unique temp dir, removed on drop (the
//! logs are kept when the cluster failed to start or the test is panicking, so the paths in the
//! errors stay readable).
//!
//! Jars: `$KAFKA_LIBS`, else `$AVRO_EDGE_CACHE/kafka-<KAFKA_VERSION>/libs`, else
//! `$HOME/.cache/avro-edge/kafka-<KAFKA_VERSION>/libs`, as `scripts/env.sh` sets them.
//! Java: `$JAVA_HOME/bin/java`, else `java` on `PATH`.
//!
//! Node `i` (0-based index, as every method here takes) has Kafka `node.id` `i + 1`.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use self::node_env::*;
pub use self::node_env::{LogTail, kafka_libs, log_tail};
pub(crate) use self::node_env::{java_bin, probe_client};

mod behind;
mod node_env;

/// The Apache Kafka release the project tests against; equal to `KAFKA_VERSION` in `scripts/env.sh`
/// and `kafka.version` in `scripts/kafka/pom.xml`.
pub const KAFKA_VERSION: &str = "4.1.1";

/// Env var naming an already running broker that [`crate::TestBroker::shared`] hands out instead of
/// starting one (scripts/test sets it).
pub const SHARED_BROKERS_ENV: &str = "AVRO_EDGE_KAFKA_BROKERS";

/// Why a Kafka cluster could not be started or controlled.
#[derive(Debug, thiserror::Error)]
pub enum KafkaTestError {
    /// The message names the version and the places looked in.
    #[error("Apache Kafka {0} jars not found (looked in: {1}): run scripts/install-kafka")]
    JarsMissing(&'static str, String),
    #[error("java not found ({java}): Kafka needs Java 17+ on PATH or in JAVA_HOME")]
    JavaMissing { java: String },
    #[error("could not start {what}: {source}")]
    Spawn {
        what: String,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("Kafka not ready within {secs} s ({why}); {log}")]
    NotReady {
        secs: u64,
        why: String,
        log: LogTail,
    },
    /// A node, or its storage format run, exited before it was ready.
    #[error("{what} exited early ({status}); {log}")]
    Exited {
        what: String,
        status: String,
        log: LogTail,
    },
    #[error("no node {node} in a cluster of {size}")]
    NoSuchNode { node: usize, size: usize },
    #[error("metadata request failed: {0}")]
    Metadata(String),
}

/// Knobs for [`KafkaCluster::start`]. The defaults suit tests on a small shared machine.
#[derive(Debug, Clone)]
pub struct KafkaOpts {
    /// How long [`KafkaCluster::start`] (and [`KafkaCluster::start_node`]) wait for readiness.
    pub ready_timeout: Duration,
    /// JVM heap (`-Xmx`; `-Xms` is half).
    pub heap_mb: u32,
    /// `broker.session.timeout.ms`: how long the controller waits before fencing a silent broker
    /// (and so moving its partition leaderships). Kafka's default is 9 s.
    pub broker_session_timeout: Duration,
    /// Extra `server.properties` lines (`key`, `value`); they override the defaults.
    pub extra_props: Vec<(String, String)>,
    /// Extra JVM flags. Default `-XX:TieredStopAtLevel=1` (C1 only): it halves start-up on a busy
    /// 2-core machine (10 s → 4.4 s for one node) at some cost in peak throughput.
    pub jvm_args: Vec<String>,
    /// Client listeners besides `PLAINTEXT` (which the nodes and the test kit's probes use), each
    /// on its own free port per node ([`KafkaCluster::listener_addr`]).
    pub listeners: Vec<KafkaListener>,
    /// SCRAM users written into the storage at format time (`kafka-storage format --add-scram`);
    /// they authenticate on the [`KafkaListener::sasl`] listeners.
    pub scram_users: Vec<SaslUser>,
    /// SASL/PLAIN users (in the listeners' JAAS config), for the [`KafkaListener::sasl`] listeners.
    pub plain_users: Vec<SaslUser>,
    /// SIGKILL the node JVMs when the *thread* that started them ends (`PR_SET_PDEATHSIG`, Linux;
    /// a no-op elsewhere): set it only for a cluster started from a thread that lives as long as
    /// the process (as the per-binary shared node is), so no JVM outlives its test binary.
    pub die_with_starting_thread: bool,
    /// Directories the cluster's configuration uses (e.g. a [`ListenerTls::dir`]), removed with
    /// the cluster's own directory.
    pub owned_dirs: Vec<PathBuf>,
}

/// An extra client listener ([`KafkaOpts::listeners`]). Its security protocol follows from
/// `sasl` and `tls`: `PLAINTEXT`, `SASL_PLAINTEXT`, `SSL` or `SASL_SSL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaListener {
    /// Listener name, upper case (`EXTERNAL`, `SASL`, …); not `PLAINTEXT` or `CONTROLLER`.
    pub name: String,
    /// SASL with SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN enabled ([`KafkaOpts::scram_users`],
    /// [`KafkaOpts::plain_users`]).
    pub sasl: bool,
    /// TLS with PEM files (Kafka's `ssl.keystore.type=PEM`); `None`: plain TCP.
    pub tls: Option<ListenerTls>,
    /// Port advertised for node `i` (e.g. a TLS terminator's in front of it); a node without an
    /// entry advertises the listener's own port.
    pub advertised_ports: Vec<u16>,
}

/// The TLS of a [`KafkaListener`]: the files [`crate::make_test_certs`] writes in `dir`
/// (`srv-keystore.pem` as the key store; `ca.pem` as the trust store for client certificates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// The directory [`crate::make_test_certs`] filled.
    pub dir: PathBuf,
    /// `ssl.client.auth=required` (mutual TLS: clients must present a certificate signed by
    /// `ca.pem`), else `none`.
    pub client_auth: bool,
}

impl KafkaListener {
    /// The listener's `security.protocol`.
    pub fn protocol(&self) -> &'static str {
        match (self.sasl, self.tls.is_some()) {
            (false, false) => "PLAINTEXT",
            (true, false) => "SASL_PLAINTEXT",
            (false, true) => "SSL",
            (true, true) => "SASL_SSL",
        }
    }
}

/// A SASL user: `mechanism` is `SCRAM-SHA-256` or `SCRAM-SHA-512` for [`KafkaOpts::scram_users`]
/// (ignored for PLAIN). Names and passwords must not contain `,`, `]`, `"` or `=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslUser {
    pub mechanism: String,
    pub name: String,
    pub password: String,
}

impl Default for KafkaOpts {
    fn default() -> Self {
        KafkaOpts {
            ready_timeout: Duration::from_secs(60),
            heap_mb: 512,
            broker_session_timeout: Duration::from_secs(6),
            extra_props: Vec::new(),
            jvm_args: vec!["-XX:TieredStopAtLevel=1".into()],
            listeners: Vec::new(),
            scram_users: Vec::new(),
            plain_users: Vec::new(),
            die_with_starting_thread: false,
            owned_dirs: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Paused,
    Down,
}

#[derive(Debug)]
struct Node {
    broker_port: u16,
    controller_port: u16,
    /// One per [`KafkaOpts::listeners`] entry, in that order.
    listener_ports: Vec<u16>,
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    state: State,
}

/// A running Apache Kafka cluster: every JVM is SIGKILLed and the data dirs removed on drop.
#[derive(Debug)]
pub struct KafkaCluster {
    dir: PathBuf,
    java: PathBuf,
    libs: PathBuf,
    opts: KafkaOpts,
    nodes: Vec<Node>,
    keep_dir: bool,
}

impl KafkaCluster {
    /// One node with the default options.
    pub fn single() -> Result<KafkaCluster, KafkaTestError> {
        KafkaCluster::start(1, KafkaOpts::default())
    }

    /// Start `n_brokers` combined broker+controller nodes (one KRaft quorum of all of them), and
    /// wait until Metadata lists all of them. With 3 or more nodes, topics default to replication
    /// factor 3 and `min.insync.replicas=2`.
    pub fn start(n_brokers: usize, opts: KafkaOpts) -> Result<KafkaCluster, KafkaTestError> {
        let n = n_brokers.max(1);
        let libs = kafka_libs()?;
        let java = java_bin();
        let per_node = 2 + opts.listeners.len();
        let mut attempt = 1;
        loop {
            let ports = free_ports(per_node * n)?;
            let mut cluster = KafkaCluster::layout(
                unique_dir()?,
                java.clone(),
                libs.clone(),
                opts.clone(),
                &ports,
            );
            match cluster.setup_and_start() {
                Ok(()) => return Ok(cluster),
                // A port picked free was taken before the node bound it: new ports, new dirs.
                Err(e) if attempt < 3 && e.is_port_taken() => {
                    eprintln!(
                        "testkit: Kafka start attempt {attempt} lost a port race ({e}); again"
                    );
                    attempt += 1;
                }
                Err(e) => {
                    cluster.keep_dir = true;
                    return Err(e);
                }
            }
        }
    }

    /// The cluster's nodes in `dir`, nothing started; `ports` holds 2 per node (broker,
    /// controller), then one per extra listener.
    fn layout(dir: PathBuf, java: PathBuf, libs: PathBuf, opts: KafkaOpts, ports: &[u16]) -> Self {
        let per_node = 2 + opts.listeners.len();
        let nodes = (0..ports.len() / per_node)
            .map(|i| Node {
                broker_port: ports[per_node * i],
                controller_port: ports[per_node * i + 1],
                listener_ports: ports[per_node * i + 2..per_node * (i + 1)].to_vec(),
                log: dir.join(format!("node-{}.log", i + 1)),
                dir: dir.join(format!("node-{}", i + 1)),
                child: None,
                state: State::Down,
            })
            .collect();
        KafkaCluster {
            dir,
            java,
            libs,
            opts,
            nodes,
            keep_dir: false,
        }
    }

    fn setup_and_start(&mut self) -> Result<(), KafkaTestError> {
        write_file(&self.dir.join("log4j2.properties"), LOG4J2)?;
        let cluster_id = random_cluster_id();
        for i in 0..self.nodes.len() {
            let data = self.nodes[i].dir.join("data");
            std::fs::create_dir_all(&data)
                .map_err(io_err(format!("creating {}", data.display())))?;
            write_file(&self.props_path(i), &self.server_properties(i))?;
        }
        // Format every node's storage at once (one JVM each, in parallel), with one cluster id.
        let mut formats = Vec::new();
        for i in 0..self.nodes.len() {
            let log = self.nodes[i].dir.join("format.log");
            let child = self
                .java_cmd(&log)?
                .args(["kafka.tools.StorageTool", "format", "-t", &cluster_id, "-c"])
                .arg(self.props_path(i))
                .args(self.opts.scram_users.iter().flat_map(|u| {
                    let spec = format!("{}=[name={},password={}]", u.mechanism, u.name, u.password);
                    ["--add-scram".to_string(), spec]
                }))
                .spawn()
                .map_err(|e| self.spawn_error("kafka storage format", e))?;
            formats.push((i, child, log));
        }
        for (i, mut child, log) in formats {
            let status = child
                .wait()
                .map_err(io_err("waiting for kafka storage format".to_string()))?;
            if !status.success() {
                return Err(KafkaTestError::Exited {
                    what: format!("kafka storage format of node {i}"),
                    status: status.to_string(),
                    log: tail_of(&log, 30),
                });
            }
        }
        for i in 0..self.nodes.len() {
            self.spawn_node(i)?;
        }
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        self.wait_ready(&all)
    }

    fn props_path(&self, i: usize) -> PathBuf {
        self.nodes[i].dir.join("server.properties")
    }

    fn server_properties(&self, i: usize) -> String {
        let n = self.nodes.len();
        let node = &self.nodes[i];
        let voters = self
            .nodes
            .iter()
            .enumerate()
            .map(|(j, nd)| format!("{}@127.0.0.1:{}", j + 1, nd.controller_port))
            .collect::<Vec<_>>()
            .join(",");
        let rf = n.min(3);
        let min_isr = if n >= 3 { 2 } else { 1 };
        let session_ms = self.opts.broker_session_timeout.as_millis().max(1000);
        let (b, c) = (node.broker_port, node.controller_port);
        let (mut listeners, mut advertised) = (String::new(), String::new());
        let mut protocols = String::new();
        for (l, port) in self.opts.listeners.iter().zip(&node.listener_ports) {
            let adv = l.advertised_ports.get(i).unwrap_or(port);
            listeners.push_str(&format!(",{}://127.0.0.1:{port}", l.name));
            advertised.push_str(&format!(",{}://127.0.0.1:{adv}", l.name));
            protocols.push_str(&format!(",{}:{}", l.name, l.protocol()));
        }
        // replica.lag.time.max.ms: shorter than the 30 s default, so a restarted node leaves and
        // rejoins the ISR quickly. Extra properties come last: java.util.Properties keeps the last.
        let mut props = format!(
            "process.roles=broker,controller\nnode.id={id}\ncontroller.quorum.voters={voters}\n\
             listeners=PLAINTEXT://127.0.0.1:{b},CONTROLLER://127.0.0.1:{c}{listeners}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{b}{advertised}\n\
             controller.listener.names=CONTROLLER\ninter.broker.listener.name=PLAINTEXT\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT{protocols}\n\
             log.dirs={data}\nnum.partitions=1\nauto.create.topics.enable=true\n\
             default.replication.factor={rf}\nmin.insync.replicas={isr}\n\
             offsets.topic.replication.factor={rf}\noffsets.topic.num.partitions=1\n\
             transaction.state.log.replication.factor={rf}\ntransaction.state.log.min.isr={isr}\n\
             share.coordinator.state.topic.replication.factor={rf}\n\
             share.coordinator.state.topic.min.isr={isr}\ngroup.initial.rebalance.delay.ms=0\n\
             broker.session.timeout.ms={session_ms}\nbroker.heartbeat.interval.ms={hb}\n\
             replica.lag.time.max.ms=10000\n",
            id = i + 1,
            data = node.dir.join("data").display(),
            isr = min_isr,
            hb = (session_ms / 6).max(250),
        );
        for l in self.opts.listeners.iter().filter(|l| l.sasl) {
            props.push_str(&self.sasl_properties(&l.name.to_lowercase()));
        }
        for l in &self.opts.listeners {
            if let Some(tls) = &l.tls {
                props.push_str(&tls_properties(&l.name.to_lowercase(), tls));
            }
        }
        for (k, v) in &self.opts.extra_props {
            props.push_str(&format!("{k}={v}\n"));
        }
        props
    }

    /// The JAAS settings of SASL listener `name` (lower case): SCRAM users live in the metadata
    /// (added at format time), PLAIN users in the JAAS line.
    fn sasl_properties(&self, name: &str) -> String {
        let scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
        let plain_users: String = (self.opts.plain_users.iter())
            .map(|u| format!(" user_{}=\"{}\"", u.name, u.password))
            .collect();
        format!(
            "listener.name.{name}.sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN\n\
             listener.name.{name}.scram-sha-256.sasl.jaas.config={scram}\n\
             listener.name.{name}.scram-sha-512.sasl.jaas.config={scram}\n\
             listener.name.{name}.plain.sasl.jaas.config=\
             org.apache.kafka.common.security.plain.PlainLoginModule required{plain_users};\n"
        )
    }

    /// `java <small JVM flags> -cp libs/* ` with stdout and stderr appended to `log`.
    fn java_cmd(&self, log: &Path) -> Result<Command, KafkaTestError> {
        let what = || format!("opening {}", log.display());
        let mut open = std::fs::OpenOptions::new();
        let out = open
            .create(true)
            .append(true)
            .open(log)
            .map_err(io_err(what()))?;
        let err = out.try_clone().map_err(io_err(what()))?;
        let mut cmd = Command::new(&self.java);
        let heap = self.opts.heap_mb;
        let log4j = self.dir.join("log4j2.properties");
        cmd.args([
            format!("-Xmx{heap}m"),
            format!("-Xms{}m", (heap / 2).max(64)),
            "-XX:+UseSerialGC".into(),
            "-Djava.awt.headless=true".into(),
            format!("-Dlog4j2.configurationFile={}", log4j.display()),
            "-cp".into(),
            format!("{}/*", self.libs.display()),
        ])
        .args(&self.opts.jvm_args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
        Ok(cmd)
    }

    fn spawn_error(&self, what: &str, e: std::io::Error) -> KafkaTestError {
        let java = self.java.display().to_string();
        if e.kind() == std::io::ErrorKind::NotFound {
            return KafkaTestError::JavaMissing { java };
        }
        let what = format!("{what} ({java})");
        KafkaTestError::Spawn { what, source: e }
    }

    fn spawn_node(&mut self, i: usize) -> Result<(), KafkaTestError> {
        let log = self.nodes[i].log.clone();
        let mut cmd = self.java_cmd(&log)?;
        cmd.arg("kafka.Kafka").arg(self.props_path(i));
        if self.opts.die_with_starting_thread {
            die_with_parent(&mut cmd);
        }
        let child = cmd
            .spawn()
            .map_err(|e| self.spawn_error(&format!("kafka node {i}"), e))?;
        self.nodes[i].child = Some(child);
        self.nodes[i].state = State::Running;
        Ok(())
    }

    /// Wait until Metadata (asked of the running nodes) lists every node in `want` as a broker.
    fn wait_ready(&mut self, want: &[usize]) -> Result<(), KafkaTestError> {
        let started = Instant::now();
        loop {
            for &i in want {
                let exited = self.nodes[i]
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                if let Some(status) = exited {
                    reap(self.nodes[i].child.take());
                    self.nodes[i].state = State::Down;
                    return Err(KafkaTestError::Exited {
                        what: format!("Kafka node {i}"),
                        status: status.to_string(),
                        log: tail_of(&self.nodes[i].log, 40),
                    });
                }
            }
            // Metadata only once every listener accepts: our client retries refused connections
            // for seconds, which would only slow the probe down.
            let listening = want.iter().all(|&i| {
                let addr = SocketAddr::from(([127, 0, 0, 1], self.nodes[i].broker_port));
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            });
            let why = if listening {
                // Ask the nodes being waited for first: their own view must include themselves.
                let mut addrs: Vec<String> = want.iter().map(|&i| self.node_addr(i)).collect();
                addrs.extend(self.live_addrs());
                match metadata(addrs, None) {
                    Ok((ids, _)) => {
                        let ids_wanted = want.iter().map(|&i| self.node_id(i));
                        let missing: Vec<i32> = ids_wanted.filter(|id| !ids.contains(id)).collect();
                        if missing.is_empty() {
                            return Ok(());
                        }
                        format!("metadata lists brokers {ids:?}, missing {missing:?}")
                    }
                    Err(e) => e.to_string(),
                }
            } else {
                "broker listener not accepting yet".to_string()
            };
            if started.elapsed() > self.opts.ready_timeout {
                let logs: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|n| n.log.display().to_string())
                    .collect();
                return Err(KafkaTestError::NotReady {
                    secs: self.opts.ready_timeout.as_secs(),
                    why: format!("{why}; all node logs: {}", logs.join(", ")),
                    log: tail_of(&self.nodes[want[0]].log, 40),
                });
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn live_addrs(&self) -> Vec<String> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].state == State::Running)
            .map(|i| self.node_addr(i))
            .collect()
    }

    fn check(&self, node: usize) -> Result<(), KafkaTestError> {
        let size = self.nodes.len();
        (node < size)
            .then_some(())
            .ok_or(KafkaTestError::NoSuchNode { node, size })
    }

    /// `kill -SIG` node `i`'s JVM (nothing if it is not running), then mark it `then`.
    fn signal(&mut self, node: usize, sig: &str, then: State) -> Result<(), KafkaTestError> {
        self.check(node)?;
        let Some(pid) = self.nodes[node].child.as_ref().map(Child::id) else {
            return Ok(());
        };
        self.nodes[node].state = then;
        let what = format!("kill -{sig} {pid} (node {node})");
        let status = Command::new("kill")
            .args([format!("-{sig}"), pid.to_string()])
            .status();
        match status {
            Ok(st) if st.success() => Ok(()),
            Ok(st) => Err(io_err(what)(std::io::Error::other(st.to_string()))),
            Err(e) => Err(io_err(what)(e)),
        }
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// `"127.0.0.1:p1,127.0.0.1:p2,..."`: every node's broker listener.
    pub fn bootstrap(&self) -> String {
        (0..self.nodes.len())
            .map(|i| self.node_addr(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `i`'s broker listener, `"127.0.0.1:PORT"` (panics on an index out of range).
    pub fn node_addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.nodes[i].broker_port)
    }

    /// Node `i`'s listener `name` (one of [`KafkaOpts::listeners`]) as `"127.0.0.1:PORT"`:
    /// where it accepts, whatever it advertises. `None` for an unknown name or node.
    pub fn listener_addr(&self, i: usize, name: &str) -> Option<String> {
        let at = self.opts.listeners.iter().position(|l| l.name == name)?;
        let port = self.nodes.get(i)?.listener_ports.get(at)?;
        Some(format!("127.0.0.1:{port}"))
    }

    /// Node `i`'s `log.dirs` (partition `t`/`p` lives in `<data_dir>/t-p`; panics on an index out
    /// of range).
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.nodes[i].dir.join("data")
    }

    /// Node `i`'s Kafka `node.id` (`i + 1`).
    pub fn node_id(&self, i: usize) -> i32 {
        i as i32 + 1
    }

    /// The index of the node with Kafka `node.id` `id`.
    pub fn index_of(&self, id: i32) -> Option<usize> {
        usize::try_from(id - 1)
            .ok()
            .filter(|&i| i < self.nodes.len())
    }

    /// Path of node `i`'s combined stdout/stderr log (panics on an index out of range).
    pub fn log(&self, i: usize) -> &Path {
        &self.nodes[i].log
    }

    /// Whether node `i` was started and has not exited, been killed or stopped (paused counts).
    pub fn is_running(&mut self, i: usize) -> bool {
        let Some(node) = self.nodes.get_mut(i) else {
            return false;
        };
        let alive = matches!(node.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)));
        if !alive {
            reap(node.child.take());
            node.state = State::Down;
        }
        alive
    }

    /// SIGKILL node `i` and reap it (a crash: no controlled shutdown).
    pub fn kill(&mut self, node: usize) -> Result<(), KafkaTestError> {
        self.check(node)?;
        reap(self.nodes[node].child.take());
        self.nodes[node].state = State::Down;
        Ok(())
    }

    /// SIGTERM node `i` (controlled shutdown: leaderships move first) and wait for it to exit;
    /// SIGKILL after 60 s.
    pub fn stop(&mut self, node: usize) -> Result<(), KafkaTestError> {
        // SIGCONT too, so a paused node gets the SIGTERM (harmless on a running one).
        self.signal(node, "TERM", State::Down)?;
        self.signal(node, "CONT", State::Down)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        if let Some(mut child) = self.nodes[node].child.take() {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            reap(Some(child));
        }
        self.nodes[node].state = State::Down;
        Ok(())
    }

    /// Start node `i` again (same ports, same data dir) after [`kill`](Self::kill) or
    /// [`stop`](Self::stop), and wait until it serves metadata that lists itself.
    pub fn start_node(&mut self, node: usize) -> Result<(), KafkaTestError> {
        self.check(node)?;
        if self.is_running(node) {
            return Ok(());
        }
        self.spawn_node(node)?;
        self.wait_ready(&[node])
    }

    /// SIGSTOP node `i`: it keeps its sockets but answers nothing (a hung broker).
    pub fn pause(&mut self, node: usize) -> Result<(), KafkaTestError> {
        self.signal(node, "STOP", State::Paused)
    }

    /// SIGCONT node `i` after [`pause`](Self::pause).
    pub fn resume(&mut self, node: usize) -> Result<(), KafkaTestError> {
        self.signal(node, "CONT", State::Running)
    }

    /// Broker node ids in a Metadata answer from the running, unpaused nodes.
    pub fn broker_ids(&self) -> Result<Vec<i32>, KafkaTestError> {
        Ok(metadata(self.live_addrs(), None)?.0)
    }

    /// The Kafka node id leading `topic`/`partition` per the running nodes' metadata (`None`: no
    /// leader right now, or no such partition). Map it to an index with [`index_of`](Self::index_of).
    pub fn leader(&self, topic: &str, partition: i32) -> Result<Option<i32>, KafkaTestError> {
        let part = metadata(self.live_addrs(), Some((topic, partition)))?.1;
        Ok(part.and_then(|p| p.leader))
    }

    /// The Kafka node ids in `topic`/`partition`'s in-sync replica set per the running nodes'
    /// metadata (empty: no such partition).
    pub fn in_sync(&self, topic: &str, partition: i32) -> Result<Vec<i32>, KafkaTestError> {
        let part = metadata(self.live_addrs(), Some((topic, partition)))?.1;
        let mut isr = part.map(|p| p.isr).unwrap_or_default();
        isr.sort_unstable();
        Ok(isr)
    }

    /// Poll [`in_sync`](Self::in_sync) until every partition in `0..partitions` of `topic` has
    /// all `replicas` in sync (e.g. after a restarted node caught up), or `within` passes.
    pub fn wait_in_sync(
        &self,
        topic: &str,
        partitions: i32,
        replicas: usize,
        within: Duration,
    ) -> Result<(), KafkaTestError> {
        let started = Instant::now();
        loop {
            let mut short = Vec::new();
            for p in 0..partitions {
                match self.in_sync(topic, p) {
                    Ok(isr) if isr.len() >= replicas => {}
                    Ok(isr) => short.push(format!("{topic}-{p} isr {isr:?}")),
                    Err(e) => short.push(e.to_string()),
                }
            }
            if short.is_empty() {
                return Ok(());
            }
            if started.elapsed() > within {
                return Err(KafkaTestError::NotReady {
                    secs: within.as_secs(),
                    why: format!("replicas not in sync: {}", short.join("; ")),
                    log: tail_of(&self.nodes[0].log, 20),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Poll [`leader`](Self::leader) until it names a node other than `not` (e.g. the old
    /// leader after killing it), or `within` passes.
    pub fn wait_new_leader(
        &self,
        topic: &str,
        partition: i32,
        not: i32,
        within: Duration,
    ) -> Result<i32, KafkaTestError> {
        let started = Instant::now();
        loop {
            let last = match self.leader(topic, partition) {
                Ok(Some(l)) if l != not => return Ok(l),
                Ok(other) => format!("leader {other:?}"),
                Err(e) => e.to_string(),
            };
            if started.elapsed() > within {
                let log = &self.nodes[0].log;
                return Err(KafkaTestError::NotReady {
                    secs: within.as_secs(),
                    why: format!("no new leader for {topic}/{partition} (not {not}); {last}"),
                    log: tail_of(log, 20),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The TLS settings of listener `name` (lower case): PEM key store and trust store files.
fn tls_properties(name: &str, tls: &ListenerTls) -> String {
    let p = format!("listener.name.{name}.ssl");
    let file = |f: &str| tls.dir.join(f).display().to_string();
    let auth = if tls.client_auth { "required" } else { "none" };
    format!(
        "{p}.keystore.type=PEM\n{p}.keystore.location={ks}\n\
         {p}.truststore.type=PEM\n{p}.truststore.location={ts}\n\
         {p}.client.auth={auth}\n",
        ks = file("srv-keystore.pem"),
        ts = file("ca.pem"),
    )
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            reap(node.child.take());
            let _ = std::fs::remove_dir_all(node.dir.join("data"));
        }
        if !self.keep_dir && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
            for d in &self.opts.owned_dirs {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_are_22_url_safe_chars_and_differ() {
        let (a, b) = (random_cluster_id(), random_cluster_id());
        let url_safe = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        assert!(
            a.len() == 22 && !a.starts_with('-') && a.chars().all(url_safe),
            "{a}"
        );
        assert_ne!(a, b);
    }

    #[test]
    fn three_node_properties_replicate() {
        let none = || PathBuf::from("/nonexistent");
        let ports = [1000, 2000, 1001, 2001, 1002, 2002];
        let mut c = KafkaCluster::layout(none(), none(), none(), KafkaOpts::default(), &ports);
        c.opts
            .extra_props
            .push(("num.partitions".into(), "4".into()));
        let p = c.server_properties(1);
        for line in [
            "node.id=2",
            "controller.quorum.voters=1@127.0.0.1:2000,2@127.0.0.1:2001,3@127.0.0.1:2002",
            "default.replication.factor=3",
            "min.insync.replicas=2",
            "offsets.topic.replication.factor=3",
        ] {
            assert!(p.contains(&format!("\n{line}\n")), "{line} in:\n{p}");
        }
        assert!(p.ends_with("num.partitions=4\n"), "extra props come last");
    }
}
