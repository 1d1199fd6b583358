//! Embeds the build time as `AVRO_EDGE_BUILD_TIME_S` (seconds since the epoch): the forwarder's
//! first lower bound for "now" (`src/clock.rs`). A gateway without a real-time clock boots at 1970;
//! a binary cannot have been built after the moment it runs.
//!
//! `SOURCE_DATE_EPOCH` (reproducible builds) wins over the current time. The script reruns only
//! when it or that variable changes, so an incremental build keeps an older time: still a valid
//! lower bound. Pure std, no C toolchain.

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    println!("cargo::rustc-env=AVRO_EDGE_BUILD_TIME_S={secs}");
}
