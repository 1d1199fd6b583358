//! Shared helpers for the spool and forwarder tests: a temporary directory (from
//! `avro_edge_testkit::tmpdir`) removed on drop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        TempDir(avro_edge_testkit::tmpdir(tag))
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, s: &str) -> PathBuf {
        self.0.join(s)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The segment files of a spool directory, oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// The name libtest knows the test `f` of module `module_path` by (`module_path!()` of the caller):
/// the path without the binary's own crate name, as `--exact` wants it (`crash::child_abort` in the
/// `spool` binary).
pub fn libtest_name(module_path: &str, f: &str) -> String {
    match module_path.split_once("::") {
        Some((_, inner)) => format!("{inner}::{f}"),
        None => f.to_string(),
    }
}
