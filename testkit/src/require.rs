//! What a test needs from outside (a tansu broker, the Node.js or Python peers, openssl/socat): it is
//! there, or the test fails with `needs <what>: <why>`. A test that needs any of these is also marked
//! `#[ignore = "needs <what>"]`, so a plain `cargo test` lists it as ignored instead of passing it,
//! and `cargo test -- --include-ignored` (scripts/test) runs it.
//!
//! Must not return "skip": no function here lets a test end early and report "ok". The `CI`
//! variable plays no part for tests; [`in_ci`] is for the benches only.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::broker::{Broker, Storage};
use crate::peers::{node_peers_dir, python, python_has};
use crate::pki::make_test_certs;

/// Fail the calling test: it needs `what`, which is not usable here because of `why`.
/// (The functions here are `#[track_caller]` and call this outside closures, so the panic points at
/// the test.)
#[track_caller]
pub fn needs(what: &str, why: impl Display) -> ! {
    panic!("needs {what}: {why}")
}

/// A running tansu broker, or the test fails (`needs tansu: …`).
#[track_caller]
pub fn require_broker(storage: Storage) -> Broker {
    require_broker_with_args(storage, &[])
}

/// [`require_broker`] with extra `tansu broker` flags.
#[track_caller]
pub fn require_broker_with_args(storage: Storage, extra_args: &[&str]) -> Broker {
    match Broker::start_with_args(storage, extra_args) {
        Ok(b) => b,
        Err(e) => needs("tansu", e),
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
