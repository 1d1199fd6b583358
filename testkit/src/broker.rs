//! A local tansu broker for tests and benchmarks: start on a free loopback port, kill, restart on
//! the same port and storage, SCRAM users; and unique topic names so tests can share nothing.
//! Broker tests do not start it themselves: they use [`crate::test_broker`], which picks tansu
//! only with `AVRO_EDGE_TEST_BROKER=tansu` (Apache Kafka otherwise).
//!
//! Must not decide whether a missing broker is a skip or a failure (that is [`crate::require`]),
//! and must not be used by the forwarder itself.
//! tansu is found at `$TANSU_BIN`, else in the scripts' cache ([`cache_dir`]`/tansu-0.6.0/bin/tansu`),
//! else `tansu` on `PATH`; when it is missing, [`Broker::start`] returns [`TestkitError::TansuMissing`].

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::peers::cache_dir;
use crate::process::free_port;

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

/// Why a tansu broker cannot be had. Test support only: it has no [`avro_edge::Kind`], as nothing
/// the crate reports comes from here.
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
        let port = free_port().map_err(TestkitError::Port)?;
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

/// A unique topic name for a test.
pub fn unique_topic(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}
