//! Where the interop peers live: the Python interpreter (the scripts' venv), the Node.js peers in
//! `peers/node`, and the scripts' cache directory.
//!
//! Must not panic or decide what a missing peer means (that is [`crate::require`]); these only
//! locate and check.

use std::path::PathBuf;
use std::process::{Command, Stdio};

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
