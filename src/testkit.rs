//! Test and demo support: start and stop a local `tansu` broker on a free loopback port.
//!
//! Must not be used by the forwarder itself; it exists for tests, benchmarks and the demo.
//! It finds tansu at `$TANSU_BIN`, else in the scripts' cache ([`cache_dir`]`/tansu-0.6.0/bin/tansu`), else
//! `tansu` on `PATH`. When tansu is missing, [`Broker::start`] returns [`TestkitError::TansuMissing`];
//! tests call [`require_broker`], which panics under `CI=true` and prints a skip reason otherwise.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::ErrorKind;

/// Where the broker keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// `memory://tansu/`: fast, lost on kill.
    Memory,
    /// `sqlite://FILE`: survives a kill and restart.
    Sqlite(PathBuf),
}

impl Storage {
    fn url(&self) -> String {
        match self {
            Storage::Memory => "memory://tansu/".to_string(),
            // tansu reads `sqlite://a/b` as the relative path `a/b`: an absolute path needs `sqlite:////abs`.
            Storage::Sqlite(p) if p.is_absolute() => format!("sqlite:///{}", p.display()),
            Storage::Sqlite(p) => format!("sqlite://{}", p.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    #[error("tansu binary not found (set TANSU_BIN, or run scripts/install-tansu)")]
    TansuMissing,
    #[error("could not start tansu: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("tansu did not answer on {addr} within {secs}s (log: {log})")]
    NotReady {
        addr: String,
        secs: u64,
        log: String,
    },
    #[error("tansu exited early with {status} (log: {log})")]
    Exited { status: String, log: String },
    #[error("no free loopback port: {0}")]
    Port(#[source] std::io::Error),
}

impl ErrorKind for TestkitError {
    fn kind(&self) -> &'static str {
        match self {
            TestkitError::TansuMissing => "tansu-missing",
            TestkitError::Spawn(_) => "tansu-spawn",
            TestkitError::NotReady { .. } => "tansu-not-ready",
            TestkitError::Exited { .. } => "tansu-exited",
            TestkitError::Port(_) => "no-free-port",
        }
    }
}

/// Locate the tansu binary, in the documented order.
pub fn tansu_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TANSU_BIN") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    if let Some(cached) = cache_dir().map(|d| d.join("tansu-0.6.0/bin/tansu"))
        && cached.is_file()
    {
        return Some(cached);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("tansu"))
        .find(|p| p.is_file())
}

/// A running tansu broker; killed on drop.
#[derive(Debug)]
pub struct Broker {
    bin: PathBuf,
    storage: Storage,
    port: u16,
    child: Option<Child>,
    log: PathBuf,
    extra_args: Vec<String>,
}

const READY_TIMEOUT: Duration = Duration::from_secs(30);

impl Broker {
    /// Start tansu on a free loopback port and wait until it accepts connections.
    pub fn start(storage: Storage) -> Result<Broker, TestkitError> {
        Broker::start_with_args(storage, &[])
    }

    /// [`Broker::start`] with extra `tansu broker` flags (e.g. `--authentication`).
    pub fn start_with_args(storage: Storage, extra_args: &[&str]) -> Result<Broker, TestkitError> {
        let bin = tansu_bin().ok_or(TestkitError::TansuMissing)?;
        let port = free_port()?;
        let log =
            std::env::temp_dir().join(format!("avro-edge-tansu-{}-{port}.log", std::process::id()));
        let extra_args = extra_args.iter().map(|s| s.to_string()).collect();
        let mut broker = Broker {
            bin,
            storage,
            port,
            child: None,
            log,
            extra_args,
        };
        broker.spawn_and_wait()?;
        Ok(broker)
    }

    /// `"127.0.0.1:PORT"`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Path of the broker's combined stdout/stderr log.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Stop the broker at once (SIGKILL) and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the broker process is running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Replace the extra `tansu broker` flags used by the next [`Broker::restart`].
    pub fn set_extra_args(&mut self, extra_args: &[&str]) {
        self.extra_args = extra_args.iter().map(|s| s.to_string()).collect();
    }

    /// Create a SCRAM user with `tansu user create` (`scram256` or `scram512`). tansu refuses
    /// this once `--authentication` is on, so create users first (on sqlite storage), then
    /// restart with `--authentication`.
    pub fn create_scram_user(
        &self,
        mechanism: &str,
        user: &str,
        password: &str,
    ) -> Result<(), TestkitError> {
        let out = Command::new(&self.bin)
            .args([
                "user",
                "create",
                "--broker",
                &format!("tcp://127.0.0.1:{}", self.port),
                "--mechanism",
                mechanism,
                user,
                password,
            ])
            .output()
            .map_err(TestkitError::Spawn)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(TestkitError::Exited {
                status: out.status.to_string(),
                log: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    }

    /// Start the broker again on the same port and storage; retries while the port is still held.
    pub fn restart(&mut self) -> Result<(), TestkitError> {
        self.kill();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return Ok(()),
                Err(TestkitError::Exited { .. }) if Instant::now() < deadline => {
                    // Most likely AddrInUse for a moment after the kill: try again.
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), TestkitError> {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(TestkitError::Spawn)?;
        let log2 = log.try_clone().map_err(TestkitError::Spawn)?;
        // tansu refuses a flag given twice: extra args may advertise another address (e.g. a TLS
        // terminator in front of the broker), which then replaces the default.
        let advertised = if self
            .extra_args
            .iter()
            .any(|a| a.starts_with("--kafka-advertised-listener-url"))
        {
            Vec::new()
        } else {
            vec!["--kafka-advertised-listener-url".to_string(), url.clone()]
        };
        let child = Command::new(&self.bin)
            .arg("broker")
            .arg("--kafka-listener-url")
            .arg(&url)
            .args(&advertised)
            .arg("--storage-engine")
            .arg(self.storage.url())
            .args(&self.extra_args)
            .env_remove("CLUSTER_ID")
            .env(
                "RUST_LOG",
                std::env::var("TANSU_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(TestkitError::Spawn)?;
        self.child = Some(child);
        let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let start = Instant::now();
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                self.child = None;
                return Err(TestkitError::Exited {
                    status: status.to_string(),
                    log: self.log.display().to_string(),
                });
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if start.elapsed() > READY_TIMEOUT {
                self.kill();
                return Err(TestkitError::NotReady {
                    addr: addr.to_string(),
                    secs: READY_TIMEOUT.as_secs(),
                    log: self.log.display().to_string(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Run `cmd` with `input` on its stdin (closed afterwards, so the child sees its end) and collect its
/// output. Stdout is captured; stderr stays as the caller set it (inherited by default). The input is
/// written from a thread, so a child that writes a lot before reading all its input cannot deadlock.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> std::io::Result<std::process::Output> {
    use std::io::Write;
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    let writer = child.stdin.take().map(|mut stdin| {
        let input = input.to_vec();
        std::thread::spawn(move || stdin.write_all(&input))
    });
    let out = child.wait_with_output()?;
    if let Some(w) = writer {
        w.join()
            .map_err(|_| std::io::Error::other("stdin writer panicked"))??;
    }
    Ok(out)
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<u16, TestkitError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(TestkitError::Port)?;
    Ok(l.local_addr().map_err(TestkitError::Port)?.port())
}

/// Whether tests run under CI (`CI=true`), where a missing broker or peer is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Start a broker for a test. Under `CI=true` a failure panics; otherwise it prints why the test
/// is skipped and returns `None`.
pub fn require_broker(storage: Storage) -> Option<Broker> {
    require_broker_with_args(storage, &[])
}

/// [`require_broker`] with extra `tansu broker` flags.
pub fn require_broker_with_args(storage: Storage, extra_args: &[&str]) -> Option<Broker> {
    match Broker::start_with_args(storage, extra_args) {
        Ok(b) => Some(b),
        Err(e) if in_ci() => panic!("CI=true and the tansu broker is unavailable: {e}"),
        Err(e) => {
            eprintln!("SKIP: tansu broker unavailable ({e}); set CI=true to make this a failure");
            None
        }
    }
}

/// The Python interpreter for peer scripts: `$AVRO_EDGE_PYTHON`, else the cached venv, else `python3`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("AVRO_EDGE_PYTHON") {
        return PathBuf::from(p);
    }
    if let Some(venv) = cache_dir().map(|d| d.join("venv/bin/python3"))
        && venv.is_file()
    {
        return venv;
    }
    PathBuf::from("python3")
}

/// Where the project's scripts cache what is slow to build or download (tansu, the Python venv):
/// `$AVRO_EDGE_CACHE`, else `$HOME/.cache/avro-edge`, as in `scripts/env.sh`.
pub fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("AVRO_EDGE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/avro-edge")))
}

/// Make a test PKI with the `openssl` CLI in `dir`: `ca.pem` (+ `ca.key`), `srv.pem`/`srv.key` signed by
/// it for `localhost` and `127.0.0.1`, and an unrelated `other-ca.pem` (+ `other-ca.key`). The error says
/// which step failed (e.g. openssl missing); callers decide whether that is a skip or a failure.
pub fn make_test_certs(dir: &Path) -> Result<(), String> {
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .map_err(|e| e.to_string())?;
    let ca = |key: &'static str, pem: &'static str, cn: &'static str| -> Vec<&'static str> {
        vec![
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", pem, "-subj",
            cn, "-days", "1",
        ]
    };
    let steps: Vec<Vec<&str>> = vec![
        ca("ca.key", "ca.pem", "/CN=avro-edge test CA"),
        ca("other-ca.key", "other-ca.pem", "/CN=avro-edge other CA"),
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=localhost",
        ],
        vec![
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "1",
            "-extfile",
            "san.cnf",
        ],
    ];
    for step in steps {
        let out = Command::new("openssl")
            .args(&step)
            .current_dir(dir)
            .output()
            .map_err(|e| format!("openssl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "openssl {step:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(())
}

/// The Node.js peers (`peers/node`: kafkajs and @kafkajs/confluent-schema-registry, installed by
/// `scripts/setup`), or `None` after a printed skip. Under `CI=true` a missing peer is a failure (panic).
pub fn node_peers() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/node");
    let ok = dir.join("node_modules/kafkajs").is_dir()
        && dir
            .join("node_modules/@kafkajs/confluent-schema-registry")
            .is_dir()
        && Command::new("node")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if ok {
        return Some(dir);
    }
    let why = "the kafkajs peer is missing (run scripts/setup, or: cd peers/node && npm ci)";
    if in_ci() {
        panic!("CI=true and {why}");
    }
    eprintln!("SKIP: {why}");
    None
}

/// A unique topic name for a test.
pub fn unique_topic(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Peak resident set size of this process in KiB (`VmHWM` from `/proc/self/status`); -1 if unknown.
pub fn peak_rss_kb() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(-1)
}

/// Decode record batches with kafka-protocol's own decoder (an implementation independent of
/// ours), for tests that check what we wrote. Trusted input only: it preallocates from counts.
pub fn decode_batches(
    mut bytes: bytes::Bytes,
) -> Result<Vec<kafka_protocol::records::Record>, String> {
    use kafka_protocol::compression::{Decompressor, Gzip, Snappy};
    use kafka_protocol::records::{Compression, RecordBatchDecoder};
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let set = RecordBatchDecoder::decode_with_custom_compression(
            &mut bytes,
            Some(|b: &mut bytes::Bytes, c: Compression| match c {
                Compression::None => Ok(b.clone()),
                Compression::Gzip => Gzip::decompress(b, |x| Ok(x.clone())),
                Compression::Snappy => Snappy::decompress(b, |x| Ok(x.clone())),
                other => Err(std::io::Error::other(format!("unsupported codec {other:?}")).into()),
            }),
        )
        .map_err(|e| e.to_string())?;
        out.extend(set.records);
    }
    Ok(out)
}
