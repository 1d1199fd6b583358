//! Forwarder configuration: precedence (file < env < flag), every key reachable from env and flags,
//! typed errors, and the sample `forwarder.toml` in the repository.

mod spool_support;

use std::path::Path;
use std::time::Duration;

use avro_edge::ErrorKind;
use avro_edge::forwarder::{Acks, Compression, Config, InputKind, KEYS, StartAt, env_name};
use avro_edge::{FsyncPolicy, WhenFull};
use spool_support::TempDir;

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn flags_beat_env_beat_file_beat_defaults() {
    let dir = TempDir::new("cfg-prec");
    let file = dir.join("f.toml");
    std::fs::write(
        &file,
        r#"
dead_letter = "/file/dl"
drain_timeout_ms = 111
[kafka]
brokers = ["file:9092"]
linger_ms = 7
[spool]
dir = "/file/spool"
max_bytes = "1MiB"
"#,
    )
    .unwrap();
    let env = kv(&[
        ("AVRO_EDGE_SPOOL_DIR", "/env/spool"),
        ("AVRO_EDGE_KAFKA_LINGER_MS", "8"),
        ("AVRO_EDGE_DEAD_LETTER", "/env/dl"),
        ("UNRELATED", "x"),
    ]);
    let flags = kv(&[("spool.dir", "/flag/spool")]);
    let c = Config::load(Some(&file), env.clone(), &flags).unwrap();
    assert_eq!(c.spool_dir, Path::new("/flag/spool"));
    assert_eq!(c.dead_letter, Path::new("/env/dl"));
    assert_eq!(c.kafka.linger, Duration::from_millis(8));
    assert_eq!(c.kafka.brokers, vec!["file:9092"]);
    assert_eq!(c.drain_timeout, Duration::from_millis(111));
    assert_eq!(c.spool.max_bytes, 1 << 20);
    // Defaults where nobody said anything.
    assert_eq!(c.kafka.acks, Acks::All);
    assert_eq!(c.kafka.compression, Compression::None);
    assert_eq!(
        c.spool.fsync,
        FsyncPolicy::Interval(Duration::from_millis(100))
    );
    assert_eq!(c.spool.when_full, WhenFull::Block);
    assert_eq!(c.inputs.len(), 1);
    assert_eq!(c.inputs[0].kind, InputKind::Stdin);
    assert_eq!(
        (c.inputs[0].topic.as_str(), c.inputs[0].subject.as_str()),
        ("sensor-data", "sensor-data-value")
    );
    assert_eq!(c.inputs[0].key_field.as_deref(), Some("sensorId"));
    // Without the flag, env wins over the file; without env, the file wins.
    let c = Config::load(Some(&file), env, &[]).unwrap();
    assert_eq!(c.spool_dir, Path::new("/env/spool"));
    let c = Config::load(Some(&file), Vec::new(), &[]).unwrap();
    assert_eq!(c.spool_dir, Path::new("/file/spool"));
    assert_eq!(c.kafka.linger, Duration::from_millis(7));
}

#[test]
fn every_key_is_settable_from_env_and_flags() {
    for (key, _) in KEYS {
        let value = match *key {
            "input.type" => "udp",
            "input.bind" => "127.0.0.1:5000",
            "input.start_at" => "end",
            "kafka.acks" => "1",
            "kafka.compression" => "gzip",
            "kafka.sasl_mechanism" => "SCRAM-SHA-512",
            "spool.fsync" => "always",
            "spool.when_full" => "drop_oldest",
            "spool.max_bytes" | "max_line_bytes" | "kafka.batch_size" | "dead_letter_max_bytes" => {
                "2MiB"
            }
            "spool.segment_bytes" => "64KiB",
            "kafka.create_partitions" => "3",
            "metrics.listen" => "127.0.0.1:9464",
            k if k.ends_with("_ms") || k.ends_with("_s") || k.ends_with("batch_records") => "42",
            _ => "x",
        };
        let mut base = vec![
            ("input.type".to_string(), "udp".to_string()),
            ("input.bind".to_string(), "127.0.0.1:5000".to_string()),
        ];
        if key.starts_with("kafka.sasl") {
            base.push(("kafka.sasl_username".into(), "u".into()));
            base.push(("kafka.sasl_password".into(), "p".into()));
        }
        let mut flags = base.clone();
        flags.push((key.to_string(), value.to_string()));
        Config::load(None, Vec::new(), &flags)
            .unwrap_or_else(|e| panic!("flag {key}={value}: {e}"));
        let env: Vec<(String, String)> = flags
            .iter()
            .map(|(k, v)| (env_name(k), v.clone()))
            .collect();
        Config::load(None, env, &[])
            .unwrap_or_else(|e| panic!("env {}={value}: {e}", env_name(key)));
    }
    let c = Config::load(None, kv(&[("AVRO_EDGE_BROKERS", "a:1,b:2")]), &[]).unwrap();
    assert_eq!(c.kafka.brokers, vec!["a:1", "b:2"]);
}

#[test]
fn typed_errors() {
    let bad = |flags: &[(&str, &str)]| Config::load(None, Vec::new(), &kv(flags)).unwrap_err();
    assert_eq!(bad(&[("kafka.lingr_ms", "5")]).kind(), "config-unknown-key");
    assert_eq!(bad(&[("kafka.acks", "most")]).kind(), "config-invalid");
    assert_eq!(bad(&[("spool.max_bytes", "lots")]).kind(), "config-invalid");
    assert_eq!(bad(&[("spool.max_bytes", "1KiB")]).kind(), "config-invalid");
    assert_eq!(
        bad(&[("metrics.listen", "0.0.0.0:9464")]).kind(),
        "config-invalid"
    );
    assert_eq!(bad(&[("input.type", "file")]).kind(), "config-missing");
    assert_eq!(
        bad(&[("kafka.sasl_username", "u")]).kind(),
        "config-missing"
    );
    assert_eq!(bad(&[("kafka.linger_ms", "-3")]).kind(), "config-invalid");
    let dir = TempDir::new("cfg-err");
    let f = dir.join("bad.toml");
    std::fs::write(&f, "[spool]\ndri = \"/x\"\n").unwrap();
    let e = Config::load(Some(&f), Vec::new(), &[]).unwrap_err();
    assert_eq!(e.kind(), "config-unknown-key");
    assert!(e.to_string().contains("spool.dri"), "{e}");
    std::fs::write(&f, "[spool\n").unwrap();
    assert_eq!(
        Config::load(Some(&f), Vec::new(), &[]).unwrap_err().kind(),
        "config-parse"
    );
    std::fs::write(&f, "[kafka]\nlinger_ms = \"soon\"\n").unwrap();
    assert_eq!(
        Config::load(Some(&f), Vec::new(), &[]).unwrap_err().kind(),
        "config-invalid"
    );
    assert_eq!(
        Config::load(Some(&dir.join("none.toml")), Vec::new(), &[])
            .unwrap_err()
            .kind(),
        "config-read"
    );
}

#[test]
fn sasl_password_never_shows_in_debug_output() {
    let c = Config::load(
        None,
        kv(&[("AVRO_EDGE_KAFKA_SASL_PASSWORD", "hunter2-secret")]),
        &kv(&[("kafka.sasl_username", "gw")]),
    )
    .unwrap();
    assert_eq!(
        c.kafka.sasl.as_ref().unwrap().password.expose(),
        "hunter2-secret"
    );
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn sample_forwarder_toml_is_valid() {
    let sample = avro_edge_testkit::root().join("forwarder.toml");
    let c = Config::load(Some(&sample), Vec::new(), &[]).unwrap();
    assert_eq!(c.inputs.len(), 2);
    assert_eq!(
        c.inputs[0].kind,
        InputKind::File {
            path: "/var/log/sensors/readings.ndjson".into(),
            start_at: StartAt::End
        }
    );
    assert!(matches!(c.inputs[1].kind, InputKind::Udp { .. }));
    assert_eq!(c.spool.max_bytes, 256 << 20);
    assert!(c.metrics.listen.is_some());
    // input.topic from a flag applies to every input; input.type replaces the list.
    let c = Config::load(Some(&sample), Vec::new(), &kv(&[("input.topic", "t2")])).unwrap();
    assert!(c.inputs.iter().all(|i| i.topic == "t2"));
    let c = Config::load(Some(&sample), Vec::new(), &kv(&[("input.type", "stdin")])).unwrap();
    assert_eq!(c.inputs.len(), 1);
    assert_eq!(c.inputs[0].kind, InputKind::Stdin);
}
