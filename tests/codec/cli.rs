//! `avro-edge encode` / `avro-edge decode` through the real binary, with an offline schema cache
//! built in a temp dir: every valid wire fixture decodes and re-encodes to its bytes, every invalid
//! one exits 2 with exactly one `error[<kind>]: ...` line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::wire_support::*;
use serde_json::{Value, json};

/// A fresh offline cache: `ids/<id>.avsc` and `subjects/<subject>.json` for the fixture ids.
fn cache_dir(tag: &str) -> PathBuf {
    let dir = avro_edge_testkit::tmpdir(&format!("codec-cli-{tag}"));
    std::fs::create_dir_all(dir.join("ids")).unwrap();
    std::fs::create_dir_all(dir.join("subjects")).unwrap();
    for (id, _) in IDS {
        std::fs::write(
            dir.join("ids").join(format!("{id}.avsc")),
            schema_text(id).unwrap(),
        )
        .unwrap();
    }
    for (subject, id) in SUBJECTS {
        let body =
            json!({"subject": subject, "version": 1, "id": id, "schema": schema_text(id).unwrap()});
        std::fs::write(
            dir.join("subjects").join(format!("{subject}.json")),
            body.to_string(),
        )
        .unwrap();
    }
    dir
}

fn run(args: &[&str], cache: &Path, stdin: &[u8]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_avro-edge"));
    cmd.args(args)
        .arg("--schema-cache")
        .arg(cache)
        .stderr(Stdio::piped());
    avro_edge_testkit::run_with_input(&mut cmd, stdin).unwrap()
}

fn stderr_kind(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "stderr must be exactly one line: {err:?}");
    let l = lines[0];
    assert!(l.starts_with("error[") && l.contains("]: "), "{l}");
    l["error[".len()..l.find("]: ").unwrap()].to_string()
}

#[test]
fn cli_decodes_and_encodes_every_valid_fixture() {
    let cache = cache_dir("valid");
    for dir in VALID_DIRS {
        for c in cases(dir) {
            let o = run(&["decode"], &cache, &c.bin);
            assert!(
                o.status.success(),
                "{dir}/{}: {}",
                c.name,
                String::from_utf8_lossy(&o.stderr)
            );
            let text = String::from_utf8(o.stdout).unwrap();
            assert_eq!(text.lines().count(), 1, "{text}");
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_json_eq(&v, c.expected(), &format!("{dir}/{}", c.name));

            let subject = if c.id() == 4 {
                "sensor-data-v2-value"
            } else {
                c.subject()
            };
            let rec = c.meta["record"].to_string();
            let o = run(
                &["encode", "--subject", subject, "--json", &rec],
                &cache,
                b"",
            );
            assert!(
                o.status.success(),
                "{dir}/{}: {}",
                c.name,
                String::from_utf8_lossy(&o.stderr)
            );
            assert_eq!(o.stdout, c.bin, "{dir}/{}: encode", c.name);
        }
    }
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn cli_rejects_every_invalid_fixture_with_its_kind() {
    let cache = cache_dir("invalid");
    for c in cases("invalid") {
        let expect = c.meta["expect"].as_str().unwrap();
        let o = run(&["decode"], &cache, &c.bin);
        if expect == "valid" {
            assert!(
                o.status.success(),
                "invalid/{}: {}",
                c.name,
                String::from_utf8_lossy(&o.stderr)
            );
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_json_eq(&v, &c.meta["record"], &c.name);
        } else {
            assert_eq!(o.status.code(), Some(2), "invalid/{}", c.name);
            assert!(o.stdout.is_empty(), "invalid/{}: stdout not empty", c.name);
            assert_eq!(stderr_kind(&o), expect, "invalid/{}", c.name);
        }
    }
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn cli_encode_reads_stdin_and_reports_bad_records() {
    let cache = cache_dir("stdin");
    let c = cases("sensor-data")
        .into_iter()
        .find(|c| c.name == "all-present")
        .unwrap();
    let line = format!("{}\n", c.meta["record"]);
    let o = run(
        &["encode", "--subject", "sensor-data-value"],
        &cache,
        line.as_bytes(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout, c.bin);

    for (rec, kind) in [
        ("{\"sensorId\": \"s\"", "not-json"),
        ("{\"sensorId\": \"s\", \"timestamp\": 1}", "missing-field"),
        (
            "{\"sensorId\": \"s\", \"timestamp\": 1, \"status\": \"OFF\"}",
            "unknown-enum-symbol",
        ),
        (
            "{\"sensorId\": 5, \"timestamp\": 1, \"status\": \"NORMAL\"}",
            "wrong-type",
        ),
    ] {
        let o = run(
            &["encode", "--subject", "sensor-data-value", "--json", rec],
            &cache,
            b"",
        );
        assert_eq!(o.status.code(), Some(2), "{rec}");
        assert_eq!(stderr_kind(&o), kind, "{rec}");
    }
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn cli_decode_with_reader_schema_resolves_v2_to_v1() {
    let cache = cache_dir("reader");
    let v1 = root().join("schemas/sensor-data.avsc");
    for c in cases("sensor-data-v2") {
        let o = run(
            &["decode", "--reader-schema", v1.to_str().unwrap()],
            &cache,
            &c.bin,
        );
        assert!(
            o.status.success(),
            "{}: {}",
            c.name,
            String::from_utf8_lossy(&o.stderr)
        );
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let mut want = c.expected().clone();
        want.as_object_mut().unwrap().remove("location");
        assert_json_eq(&v, &want, &c.name);
    }
    let _ = std::fs::remove_dir_all(&cache);
}
