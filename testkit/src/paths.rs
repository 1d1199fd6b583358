//! Where things are: the project checkout (fixtures, schemas, peers) and fresh scratch directories.
//!
//! Test-only, so it may locate the checkout from the build (`CARGO_MANIFEST_DIR` of this crate,
//! which lives in `<root>/testkit`); nothing in the shipped `src/` may do that.
//! Must not clean up after tests: scratch directories stay, so a failure can be looked at.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// The project checkout (the directory holding `fixtures/`, `schemas/`, `peers/`).
pub fn root() -> PathBuf {
    let testkit = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    testkit.parent().map(PathBuf::from).unwrap_or(testkit)
}

/// A fresh, empty, created directory under the system temp dir, unique to this process and call:
/// `avro-edge-<tag>-<pid>-<n>-<nanos>`. It is not removed afterwards.
pub fn tmpdir(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let d = std::env::temp_dir().join(format!(
        "avro-edge-{tag}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)
        .unwrap_or_else(|e| panic!("cannot create scratch dir {}: {e}", d.display()));
    d
}
