//! Where the interop peers live: the Python interpreter (the scripts' venv), the Node.js peers in
//! `peers/node`, the Java peer `peers/java/Peer.java` (with `java` and the Kafka jars), and the
//! scripts' cache directory.
//!
//! Must not panic or decide what a missing peer means (that is [`crate::require`]); these only
//! locate and check.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::kafka::{KAFKA_VERSION, java_bin, kafka_libs};
use crate::paths::root;

/// Where the project's scripts cache what is slow to build or download (tansu, the Python venv):
/// `$AVRO_EDGE_CACHE`, else `$HOME/.cache/avro-edge`, as in `scripts/env.sh`.
pub fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("AVRO_EDGE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/avro-edge")))
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

/// Whether [`python`] runs and can `import` each of `modules` (comma-separated, as in Python).
pub fn python_has(modules: &str) -> bool {
    Command::new(python())
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `peers/node`, when `node` runs and the peers' modules (kafkajs and
/// @kafkajs/confluent-schema-registry, installed by `scripts/setup`) are there; else why not.
pub fn node_peers_dir() -> Result<PathBuf, String> {
    let dir = root().join("peers/node");
    for module in ["kafkajs", "@kafkajs/confluent-schema-registry"] {
        if !dir.join("node_modules").join(module).is_dir() {
            return Err(format!(
                "{} is missing (run scripts/setup, or: cd peers/node && npm ci)",
                dir.join("node_modules").join(module).display()
            ));
        }
    }
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    match node {
        Ok(s) if s.success() => Ok(dir),
        Ok(s) => Err(format!("`node --version` exited with {s}")),
        Err(e) => Err(format!("`node` cannot run: {e}")),
    }
}

/// The Java peer: `peers/java/Peer.java`, run by `java` (Java 11+, for the single-file source
/// launcher) against Apache Kafka's own client jars (`kafka-clients` and its dependencies in
/// [`kafka_libs`]).
#[derive(Debug, Clone)]
pub struct JavaPeer {
    /// `$JAVA_HOME/bin/java`, else `java` on `PATH`.
    pub java: PathBuf,
    /// The directory of the Kafka jars (`$KAFKA_LIBS`, as `scripts/install-kafka` caches them).
    pub libs: PathBuf,
    /// `peers/java/Peer.java`.
    pub source: PathBuf,
}

impl JavaPeer {
    /// `java -cp <libs>/* peers/java/Peer.java <args>` (compiled in memory on each run: ~2-4 s),
    /// with stderr inherited (the client's logs); the caller adds stdin/stdout and runs it.
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, args: impl IntoIterator<Item = S>) -> Command {
        let mut cmd = Command::new(&self.java);
        cmd.args(["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp"])
            .arg(format!("{}/*", self.libs.display()))
            .arg(&self.source)
            .args(args)
            .stderr(Stdio::inherit());
        cmd
    }
}

/// The [`JavaPeer`] when `peers/java/Peer.java`, the `kafka-clients` jar and a Java 11+ `java` are
/// all there; else why not.
pub fn java_peer() -> Result<JavaPeer, String> {
    let source = root().join("peers/java/Peer.java");
    if !source.is_file() {
        return Err(format!("{} is missing", source.display()));
    }
    let libs = kafka_libs().map_err(|e| e.to_string())?;
    let clients = libs.join(format!("kafka-clients-{KAFKA_VERSION}.jar"));
    if !clients.is_file() {
        return Err(format!(
            "{} is missing (run scripts/install-kafka)",
            clients.display()
        ));
    }
    let java = java_bin();
    let out = Command::new(&java)
        .arg("-version")
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("`{} -version` cannot run: {e}", java.display()))?;
    if !out.status.success() {
        return Err(format!(
            "`{} -version` exited with {}",
            java.display(),
            out.status
        ));
    }
    // `openjdk version "17.0.15" ...` or `java version "1.8.0_..."`.
    let text = String::from_utf8_lossy(&out.stderr);
    let major = text
        .split('"')
        .nth(1)
        .and_then(|v| v.split(['.', '-', '+']).next())
        .and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(m) if m >= 11 => Ok(JavaPeer { java, libs, source }),
        _ => Err(format!(
            "{} is not Java 11+ (the single-file source launcher): {}",
            java.display(),
            text.lines().next().unwrap_or("")
        )),
    }
}
