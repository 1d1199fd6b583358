//! What a test needs from outside (a Kafka broker, the Node.js, Python or Java peers,
//! openssl/socat): it is there, or the test fails with `needs <what>: <why>`. A test that needs any
//! of these is also marked `#[ignore = "needs <what>"]`, so a plain `cargo test` lists it as ignored
//! instead of passing it, and `cargo test -- --include-ignored` (scripts/test) runs it.
//!
//! Must not return "skip": no function here lets a test end early and report "ok". The `CI`
//! variable plays no part for tests; [`in_ci`] is for the benches only.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::peers::{JavaPeer, java_peer, node_peers_dir, python, python_has};
use crate::pki::make_test_certs;
use crate::test_broker::{BrokerKind, BrokerSetup, TestBroker, TestBrokerError};

/// Fail the calling test: it needs `what`, which is not usable here because of `why`.
/// (The functions here are `#[track_caller]` and call this outside closures, so the panic points at
/// the test.)
#[track_caller]
pub fn needs(what: &str, why: impl Display) -> ! {
    panic!("needs {what}: {why}")
}

/// The shared test broker ([`TestBroker::shared`]: Apache Kafka unless `AVRO_EDGE_TEST_BROKER=tansu`),
/// or the test fails (`needs a Kafka broker: …`). For tests that kill nothing.
#[track_caller]
pub fn require_broker() -> TestBroker {
    broker_or_needs(TestBroker::shared())
}

/// A broker of the test's own ([`TestBroker::own`]), to kill and restart with its data kept, or
/// the test fails (`needs a Kafka broker: …`).
#[track_caller]
pub fn require_own_broker() -> TestBroker {
    broker_or_needs(TestBroker::own())
}

/// [`require_own_broker`] with another advertised port and/or SASL users ([`TestBroker::own_with`]).
#[track_caller]
pub fn require_broker_with(setup: &BrokerSetup) -> TestBroker {
    broker_or_needs(TestBroker::own_with(setup))
}

#[track_caller]
fn broker_or_needs(got: Result<TestBroker, TestBrokerError>) -> TestBroker {
    match got {
        Ok(b) => b,
        Err(e) => needs(
            BrokerKind::from_env().map_or("a Kafka broker", BrokerKind::needs),
            e,
        ),
    }
}

/// `peers/node` with kafkajs and @kafkajs/confluent-schema-registry installed and `node` on
/// `PATH`, or the test fails (`needs the Node.js peers: …`).
#[track_caller]
pub fn require_node_peers() -> PathBuf {
    match node_peers_dir() {
        Ok(dir) => dir,
        Err(e) => needs("the Node.js peers", e),
    }
}

/// The Java peer (`peers/java/Peer.java` with `java` 11+ and the Kafka client jars), or the test
/// fails (`needs the Java peer: …`).
#[track_caller]
pub fn require_java_peer() -> JavaPeer {
    match java_peer() {
        Ok(peer) => peer,
        Err(e) => needs("the Java peer", e),
    }
}

/// The Python interpreter ([`python`]) when it can import `modules` (comma-separated), or the test
/// fails (`needs the Python peers: …`).
#[track_caller]
pub fn require_python(modules: &str) -> PathBuf {
    let py = python();
    if !python_has(modules) {
        needs(
            "the Python peers",
            format!(
                "{} cannot `import {modules}` (scripts/setup installs peers/python/requirements.txt \
                 into the venv; AVRO_EDGE_PYTHON picks another interpreter)",
                py.display()
            ),
        );
    }
    py
}

/// Each of `tools` runs (`<tool> -V`), or the test fails (`needs <tools>: …`).
#[track_caller]
pub fn require_tools(tools: &[&str]) {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            Command::new(t)
                .arg("-V")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_err()
        })
        .collect();
    if !missing.is_empty() {
        needs(
            &tools.join(" and "),
            format!(
                "{} not found (apt-get install {})",
                missing.join(", "),
                missing.join(" ")
            ),
        );
    }
}

/// [`make_test_certs`] in `dir`, or the test fails (`needs openssl: …`).
#[track_caller]
pub fn require_test_certs(dir: &Path) {
    if let Err(e) = make_test_certs(dir) {
        needs(
            "openssl",
            format!("the test certificates could not be made: {e}"),
        );
    }
}

/// Whether the benches run under CI (`CI=true` or `CI=1`), where a bench that cannot measure
/// exits non-zero. Benches only: tests never consult it.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}
