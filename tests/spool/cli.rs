//! `avro-edge spool status` and the `forward` command's configuration errors, through the real binary.

use std::process::Command;
use std::time::Duration;

use crate::spool_support::{TempDir, segments};
use avro_edge::{Spool, SpoolOptions};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_avro-edge"))
}

#[test]
fn spool_status_reports_a_stopped_spool_in_text_and_json() {
    let dir = TempDir::new("cli-status");
    {
        let (spool, _) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
        for i in 0..120u64 {
            spool
                .append("sensor-data", Some(b"k"), format!("reading-{i}").as_bytes())
                .unwrap();
        }
        let b = spool.read_batch(50, 1 << 20, Duration::ZERO).unwrap();
        spool.ack_through(&b[39]).unwrap();
    }
    let out = bin()
        .args(["spool", "status", "--json"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["spool"]["records"], 80);
    assert_eq!(v["spool"]["acked_seq"], 40);
    assert_eq!(v["spool"]["next_seq"], 120);
    assert_eq!(v["spool"]["possible_duplicates"], 10);
    assert!(v["spool"]["oldest_unacked_age_ms"].as_u64().is_some());
    assert!(v["last_run"].is_null());

    // A torn tail is reported, and left for the next start to repair.
    let last = segments(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 4)
        .unwrap();
    let out = bin()
        .args(["spool", "status"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("records (unacked)     79"), "{text}");
    assert!(text.contains("1 corrupt records"), "{text}");
    assert_eq!(std::fs::metadata(&last).unwrap().len(), len - 4);

    // While a forwarder holds it, status refuses with a kind.
    let (_held, _) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    let out = bin()
        .args(["spool", "status"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error[spool-locked]"));
}

#[test]
fn spool_status_of_a_missing_directory_fails_cleanly() {
    let dir = TempDir::new("cli-missing");
    let out = bin()
        .args(["spool", "status"])
        .arg(dir.join("nope"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error[spool-io]"));
    assert!(!dir.join("nope").exists(), "status must not create a spool");
}

#[test]
fn forward_rejects_bad_configuration_with_exit_2() {
    let out = bin()
        .args(["forward", "--brokers", "b:9092", "--when-full", "sometimes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("error[config-invalid]: config key 'spool.when_full'")
    );
    let out = bin()
        .args(["forward", "--set", "kafka.nope=1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error[config-unknown-key]"));
    let out = bin()
        .args(["forward", "--spool", "/tmp/x"])
        .env_remove("AVRO_EDGE_BROKERS")
        .env_remove("AVRO_EDGE_KAFKA_BROKERS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("error[config-missing]: config key 'kafka.brokers'")
    );
}
