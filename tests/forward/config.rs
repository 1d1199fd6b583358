//! Forwarder configuration: precedence (file < env < flag), every key reachable from env and flags,
//! typed errors, and the sample `forwarder.toml` in the repository.

mod every_key;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::spool_support::TempDir;
use avro_edge::forwarder::{
    Command, Config, ConfigError, InputKind, KafkaSettings, SETTINGS, SecurityProtocol, StartAt,
    env_name, kafka_settings, parse_property, resolve_key, setting,
};
use avro_edge::{Acks, Compression, ErrorKind, FsyncPolicy, SaslMechanism as Mechanism, WhenFull};

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
    assert_eq!(c.kafka.producer.linger, Duration::from_millis(8));
    assert_eq!(c.kafka.brokers, vec!["file:9092"]);
    assert_eq!(c.drain_timeout, Duration::from_millis(111));
    assert_eq!(c.spool.max_bytes, 1 << 20);
    // Defaults where nobody said anything.
    assert_eq!(c.kafka.producer.acks, Acks::All);
    // The forwarder's own default (its gateways send over slow links), not Kafka's none.
    assert_eq!(c.kafka.producer.compression, Compression::Gzip);
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
    assert_eq!(c.kafka.producer.linger, Duration::from_millis(7));
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
    // A delivery deadline shorter than linger + one request is refused, naming both.
    let e = bad(&[
        ("kafka.delivery_timeout_ms", "4000"),
        ("kafka.request_timeout_ms", "10000"),
    ]);
    assert_eq!(e.kind(), "config-invalid");
    assert!(e.to_string().contains("10005 ms"), "{e}");
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

/// The sample documents every key the forwarder uses, each set or as a commented-out line under its
/// section (so uncommenting it works), names no other, and its list of librdkafka names holds only
/// names the forwarder takes.
#[test]
fn sample_forwarder_toml_names_every_forward_key_and_no_other() {
    let text = std::fs::read_to_string(avro_edge_testkit::root().join("forwarder.toml")).unwrap();
    let mut section = String::new();
    let mut named = Vec::new();
    for line in text.lines() {
        let l = line.trim_start_matches('#').trim();
        if let Some(s) = l.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            section = s.to_string();
        } else if let Some(s) = l.strip_prefix('[').and_then(|l| l.split_once(']')) {
            section = s.0.to_string();
        } else if let Some((name, _)) = l.split_once(" = ") {
            let name = name.trim();
            if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || "._".contains(c))
            {
                let full = match section.as_str() {
                    "" => name.to_string(),
                    s => format!("{s}.{name}"),
                };
                let key = resolve_key(&full).unwrap_or_else(|| panic!("{line:?}: no key {full}"));
                let used = setting(key).is_some_and(|s| s.used_by(Command::Forward));
                assert!(used, "{line:?}: {key} is not the forwarder's");
                named.push(key);
            }
        }
    }
    for s in SETTINGS.iter().filter(|s| s.used_by(Command::Forward)) {
        assert!(
            named.contains(&s.key),
            "forwarder.toml does not show {}",
            s.key
        );
    }
    // The header's librdkafka names: each one the forwarder takes.
    let header: String = text
        .lines()
        .skip_while(|l| !l.contains("also answer to librdkafka's property names"))
        .take_while(|l| l.starts_with('#') && l.len() > 1)
        .collect::<Vec<_>>()
        .join(" ");
    let listed = header
        .split(|c: char| !(c.is_ascii_lowercase() || c == '.'))
        .filter(|w| w.contains('.') && !w.starts_with('.') && !w.ends_with('.'));
    let mut n = 0;
    for name in listed {
        let key = resolve_key(&format!("kafka.{name}")).unwrap_or_else(|| panic!("{name}"));
        assert!(
            setting(key).is_some_and(|s| s.used_by(Command::Forward)),
            "{name}"
        );
        n += 1;
    }
    assert!(n >= 20, "the header lists the librdkafka names ({n} found)");
}

#[test]
fn acks_all_in_capitals_works_in_the_file_as_on_the_cli() {
    let dir = TempDir::new("cfg-acks");
    let f = dir.join("f.toml");
    std::fs::write(&f, "[kafka]\nacks = \"ALL\"\ncompression = \"GZIP\"\n").unwrap();
    let c = Config::load(Some(&f), Vec::new(), &[]).unwrap();
    assert_eq!(c.kafka.producer.acks, Acks::All);
    assert_eq!(c.kafka.producer.compression, Compression::Gzip);
    // acks as a TOML integer, as librdkafka users write it.
    std::fs::write(&f, "[kafka]\nacks = -1\n").unwrap();
    assert_eq!(
        Config::load(Some(&f), Vec::new(), &[])
            .unwrap()
            .kafka
            .producer
            .acks,
        Acks::All
    );
    std::fs::write(&f, "[kafka]\nacks = 1\n").unwrap();
    assert_eq!(
        Config::load(Some(&f), Vec::new(), &[])
            .unwrap()
            .kafka
            .producer
            .acks,
        Acks::Leader
    );
    // The same parser, the same message, from every layer.
    let e = Config::load(None, Vec::new(), &kv(&[("kafka.acks", "most")])).unwrap_err();
    assert!(
        e.to_string().contains("'most': expected all, 1 or 0"),
        "{e}"
    );
    std::fs::write(&f, "[kafka]\nacks = \"most\"\n").unwrap();
    let e = Config::load(Some(&f), Vec::new(), &[]).unwrap_err();
    assert!(
        e.to_string().contains("'most': expected all, 1 or 0"),
        "{e}"
    );
    for (name, want) in [
        ("zstd", Compression::Zstd),
        ("LZ4", Compression::Lz4),
        ("none", Compression::None),
    ] {
        let c = Config::load(None, Vec::new(), &kv(&[("kafka.compression", name)])).unwrap();
        assert_eq!(c.kafka.producer.compression, want);
    }
    // Unset: gzip for the forwarder, none for produce (as Kafka's clients).
    let c = Config::load(None, Vec::new(), &[]).unwrap();
    assert_eq!(c.kafka.producer.compression, Compression::Gzip);
    let k = kafka_settings(&[], Command::Produce).unwrap();
    assert_eq!(k.producer.compression, Compression::None);
    let e = Config::load(None, Vec::new(), &kv(&[("kafka.compression", "brotli")])).unwrap_err();
    assert_eq!(e.kind(), "config-invalid");
    assert!(
        e.to_string()
            .contains("'brotli': expected none, gzip, snappy, lz4 or zstd"),
        "{e}"
    );
}

/// A value valid for the key an alias stands for.
fn sample_value(key: &str) -> &'static str {
    match key {
        "kafka.brokers" => "a:1,b:2",
        "kafka.acks" => "1",
        "kafka.compression" => "snappy",
        "kafka.security_protocol" => "SASL_PLAINTEXT",
        "kafka.sasl_mechanism" => "SCRAM-SHA-256",
        "kafka.ssl_ca_location" => "/etc/ssl/ca.pem",
        "kafka.ssl_certificate_location" | "kafka.ssl_key_location" => "/etc/ssl/me.pem",
        "kafka.ssl_endpoint_identification_algorithm" => "https",
        "kafka.sasl_password_file" => password_file(),
        "kafka.enable_idempotence" => "false",
        "kafka.batch_size" | "kafka.fetch_max_bytes" | "kafka.max_partition_fetch_bytes" => "4096",
        "kafka.client_id" | "kafka.sasl_username" | "kafka.sasl_password" => "x",
        "kafka.delivery_timeout_ms" | "kafka.session_timeout_ms" => "42000",
        "kafka.auto_offset_reset" => "earliest",
        "kafka.enable_auto_commit" => "false",
        "kafka.isolation_level" => "read_uncommitted",
        "kafka.group_instance_id" => "gateway-17",
        "kafka.client_rack" => "rack-a",
        _ => "42",
    }
}

/// The base every alias check needs: SASL credentials (for the SASL keys and protocol), for the
/// CA file a TLS protocol, and for the transactional id exactly-once.
fn alias_base(key: &str) -> Vec<(String, String)> {
    let mut base = kv(&[("kafka.sasl_username", "u"), ("kafka.sasl_password", "p")]);
    if key == "kafka.transactional_id" {
        base.push(("forward.exactly_once".into(), "true".into()));
    }
    if key.starts_with("kafka.ssl") {
        base.push(("kafka.security_protocol".into(), "SASL_SSL".into()));
    }
    base.extend(tls_pair_of(key));
    base.retain(|(k, _)| {
        k != key && (key != "kafka.sasl_password_file" || k != "kafka.sasl_password")
    });
    base
}

/// The client certificate and its key go together: the other one of the pair, for either.
fn tls_pair_of(key: &str) -> Option<(String, String)> {
    let other = match key {
        "kafka.ssl_certificate_location" => "kafka.ssl_key_location",
        "kafka.ssl_key_location" => "kafka.ssl_certificate_location",
        _ => return None,
    };
    Some((other.to_string(), "/etc/ssl/other.pem".to_string()))
}

/// A file holding a SASL password (for `kafka.sasl_password_file`), made once per test process.
fn password_file() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let p = std::env::temp_dir().join(format!("avro-edge-cfg-pw-{}", std::process::id()));
        std::fs::write(&p, "pw-from-file\n").unwrap();
        p.display().to_string()
    })
}

/// The `[kafka]` settings from flag pairs as `command` reads them: the forwarder's whole
/// configuration, or `produce`/`consume`'s settings alone.
fn kafka_for(command: Command, pairs: &[(String, String)]) -> Result<KafkaSettings, ConfigError> {
    match command {
        Command::Forward => Config::load(None, Vec::new(), pairs).map(|c| c.kafka),
        other => kafka_settings(pairs, other),
    }
}

#[test]
fn every_alias_maps_to_its_key_from_file_env_set_and_x() {
    let dir = TempDir::new("cfg-alias");
    let f = dir.join("f.toml");
    let aliases = SETTINGS
        .iter()
        .flat_map(|s| s.full_aliases().map(move |a| (a, s)));
    for (alias, setting) in aliases {
        let (alias, key) = (alias.as_str(), setting.key);
        // The first command that uses it; the file and the environment are the forwarder's.
        let command = setting.used_by[0];
        let value = sample_value(key);
        let base = alias_base(key);
        let tls_needed = key.contains("ssl") && !cfg!(feature = "tls");
        let via_key = kafka_for(command, &[base.clone(), kv(&[(key, value)])].concat());
        let short = alias.strip_prefix("kafka.").unwrap();
        // --set kafka.<alias>=, -X <alias>=, AVRO_EDGE_KAFKA_<ALIAS>, and the file's [kafka] table.
        let set = [base.clone(), kv(&[(alias, value)])].concat();
        let x = [
            base.clone(),
            vec![parse_property(&format!("{short}={value}")).unwrap()],
        ]
        .concat();
        let mut loads = vec![
            ("--set", kafka_for(command, &set)),
            ("-X", kafka_for(command, &x)),
        ];
        if command == Command::Forward {
            let env: Vec<(String, String)> =
                set.iter().map(|(k, v)| (env_name(k), v.clone())).collect();
            // Keys of other sections first, as dotted keys of the root table.
            let mut toml = String::new();
            for (k, v) in set.iter().filter(|(k, _)| !k.starts_with("kafka.")) {
                toml.push_str(&format!("{k} = \"{v}\"\n"));
            }
            toml.push_str("[kafka]\n");
            for (k, v) in &set {
                if let Some(k) = k.strip_prefix("kafka.") {
                    toml.push_str(&format!("{k} = \"{v}\"\n"));
                }
            }
            std::fs::write(&f, toml).unwrap();
            loads.push(("env", Config::load(None, env, &[]).map(|c| c.kafka)));
            loads.push((
                "file",
                Config::load(Some(&f), Vec::new(), &[]).map(|c| c.kafka),
            ));
        }
        for (how, got) in loads {
            if tls_needed {
                let e = got.unwrap_err();
                assert!(e.to_string().contains("tls"), "{alias} by {how}: {e}");
                continue;
            }
            let got = got.unwrap_or_else(|e| panic!("{alias}={value} by {how}: {e}"));
            let want = via_key.as_ref().unwrap();
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "{alias} by {how}");
            assert_eq!(
                got.sasl.as_ref().map(|s| s.password.expose()),
                want.sasl.as_ref().map(|s| s.password.expose()),
                "{alias} by {how}"
            );
        }
    }
}

#[test]
fn an_alias_and_its_key_with_two_values_is_an_error_naming_both() {
    let dir = TempDir::new("cfg-conflict");
    let f = dir.join("f.toml");
    let e = Config::load(
        None,
        Vec::new(),
        &kv(&[("kafka.brokers", "a:1"), ("kafka.bootstrap.servers", "b:2")]),
    )
    .unwrap_err();
    assert_eq!(e.kind(), "config-invalid");
    let msg = e.to_string();
    assert!(
        msg.contains("'kafka.brokers'") && msg.contains("'kafka.bootstrap.servers'"),
        "{msg}"
    );
    // The same value twice is fine (a list and its comma-separated string too); so is a later layer
    // overriding an earlier one.
    std::fs::write(
        &f,
        "[kafka]\nbrokers = [\"a:1\", \"b:2\"]\nbootstrap.servers = \"a:1,b:2\"\nacks = 1\nrequest.required.acks = \"1\"\n",
    )
    .unwrap();
    Config::load(Some(&f), Vec::new(), &[]).unwrap();
    Config::load(
        None,
        Vec::new(),
        &kv(&[("kafka.linger_ms", "9"), ("kafka.linger.ms", "9")]),
    )
    .unwrap();
    let c = Config::load(
        None,
        kv(&[("AVRO_EDGE_KAFKA_BOOTSTRAP_SERVERS", "env:1")]),
        &kv(&[("kafka.brokers", "flag:1")]),
    )
    .unwrap();
    assert_eq!(c.kafka.brokers, vec!["flag:1"]);
    // In the file, and between two librdkafka names.
    std::fs::write(&f, "[kafka]\nlinger_ms = 5\nqueue.buffering.max.ms = 50\n").unwrap();
    let e = Config::load(Some(&f), Vec::new(), &[]).unwrap_err();
    assert!(
        e.to_string().contains("'kafka.linger_ms'")
            && e.to_string().contains("'kafka.queue.buffering.max.ms'"),
        "{e}"
    );
    let e = Config::load(
        None,
        kv(&[
            ("AVRO_EDGE_KAFKA_SASL_MECHANISM", "PLAIN"),
            ("AVRO_EDGE_KAFKA_SASL_MECHANISMS", "SCRAM-SHA-256"),
        ]),
        &[],
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("AVRO_EDGE_KAFKA_SASL_MECHANISMS"),
        "{e}"
    );
}

#[test]
fn unknown_keys_suggest_the_closest_known_name() {
    let e = Config::load(None, Vec::new(), &kv(&[("kafka.linger", "5")])).unwrap_err();
    assert_eq!(e.kind(), "config-unknown-key");
    assert!(
        e.to_string().contains(
            "unknown config key 'kafka.linger' (from flags) — did you mean 'kafka.linger_ms'?"
        ),
        "{e}"
    );
    let e = Config::load(None, Vec::new(), &kv(&[("kafka.bootstrap.server", "a:1")])).unwrap_err();
    assert!(
        e.to_string()
            .contains("did you mean 'kafka.bootstrap.servers'"),
        "{e}"
    );
    // From the environment: under a section's prefix, an unknown variable is an error too.
    let e = Config::load(None, kv(&[("AVRO_EDGE_KAFKA_LINGER", "5")]), &[]).unwrap_err();
    assert_eq!(e.kind(), "config-unknown-key");
    assert!(
        e.to_string()
            .contains("did you mean 'AVRO_EDGE_KAFKA_LINGER_MS'"),
        "{e}"
    );
    // ... but not the variables that are not configuration keys.
    Config::load(
        None,
        kv(&[
            ("AVRO_EDGE_REGISTRY_TOKEN", "t"),
            ("AVRO_EDGE_LOG", "debug"),
            ("AVRO_EDGE_REGISTRY", "http://r"),
        ]),
        &[],
    )
    .unwrap();
    // From the file, librdkafka names outside [kafka] point into it.
    let dir = TempDir::new("cfg-unknown");
    let f = dir.join("f.toml");
    std::fs::write(&f, "linger.ms = 5\n").unwrap();
    let e = Config::load(Some(&f), Vec::new(), &[]).unwrap_err();
    assert!(
        e.to_string().contains("did you mean 'kafka.linger.ms'"),
        "{e}"
    );
    std::fs::write(&f, "[spool]\nmax_byte = \"1MiB\"\n").unwrap();
    let e = Config::load(Some(&f), Vec::new(), &[]).unwrap_err();
    assert!(
        e.to_string().contains("did you mean 'spool.max_bytes'"),
        "{e}"
    );
    std::fs::write(&f, "[[input]]\ntype = \"stdin\"\ntopik = \"t\"\n").unwrap();
    let e = Config::load(Some(&f), Vec::new(), &[]).unwrap_err();
    assert!(e.to_string().contains("did you mean 'input.topic'"), "{e}");
}

#[test]
fn a_librdkafka_properties_block_pasted_under_kafka_loads() {
    let dir = TempDir::new("cfg-paste");
    let f = dir.join("f.toml");
    std::fs::write(
        &f,
        r#"
[kafka]
bootstrap.servers = "k1:9092,k2:9092"
client.id = "gateway-17"
acks = "all"
compression.type = "snappy"
linger.ms = 20
batch.size = 65536
request.timeout.ms = 15000
message.timeout.ms = 120000
enable.idempotence = false
security.protocol = "SASL_PLAINTEXT"
sasl.mechanisms = "SCRAM-SHA-512"
sasl.username = "gw"
sasl.password = "pasted-secret"
"#,
    )
    .unwrap();
    let c = Config::load(Some(&f), Vec::new(), &[]).unwrap();
    let k = &c.kafka;
    assert_eq!(k.brokers, vec!["k1:9092", "k2:9092"]);
    assert_eq!(k.client_id, "gateway-17");
    assert_eq!(k.producer.acks, Acks::All);
    assert_eq!(k.producer.compression, Compression::Snappy);
    assert_eq!(k.producer.linger, Duration::from_millis(20));
    assert_eq!(k.producer.batch_size, 65536);
    assert_eq!(k.request_timeout, Duration::from_millis(15_000));
    assert_eq!(k.producer.delivery_timeout, Duration::from_millis(120_000));
    assert!(!k.producer.enable_idempotence);
    assert_eq!(k.security_protocol, SecurityProtocol::SaslPlaintext);
    let sasl = k.sasl.as_ref().unwrap();
    assert_eq!(sasl.mechanism, Mechanism::ScramSha512);
    assert_eq!(
        (sasl.username.as_str(), sasl.password.expose()),
        ("gw", "pasted-secret")
    );
    assert!(!format!("{c:?}").contains("pasted-secret"));
    // Defaults: idempotence on, protocol from the credentials.
    let c = Config::load(None, Vec::new(), &[]).unwrap();
    assert!(c.kafka.producer.enable_idempotence);
    assert_eq!(c.kafka.security_protocol, SecurityProtocol::Plaintext);
}

#[test]
fn security_protocol_checks() {
    let load = |flags: &[(&str, &str)]| Config::load(None, Vec::new(), &kv(flags));
    let e = load(&[("kafka.security.protocol", "SASL_PLAINTEXT")]).unwrap_err();
    assert_eq!(e.kind(), "config-missing");
    let e = load(&[
        ("kafka.security.protocol", "PLAINTEXT"),
        ("kafka.sasl.username", "u"),
        ("kafka.sasl.password", "p"),
    ])
    .unwrap_err();
    assert_eq!(e.kind(), "config-invalid");
    let ssl = load(&[("kafka.security.protocol", "ssl")]);
    if cfg!(feature = "tls") {
        assert_eq!(ssl.unwrap().kafka.security_protocol, SecurityProtocol::Ssl);
    } else {
        let e = ssl.unwrap_err();
        assert_eq!(e.kind(), "config-invalid");
        assert!(e.to_string().contains("`tls` feature"), "{e}");
    }
}

/// The client certificate needs its key, the broker's name cannot be left unverified, and the
/// password comes from a file (one trailing newline dropped), never together with the password key.
#[test]
fn client_certificate_name_check_and_password_file() {
    let dir = TempDir::new("cfg-sec");
    let load = |flags: &[(&str, &str)]| Config::load(None, Vec::new(), &kv(flags));
    if cfg!(feature = "tls") {
        let ssl = ("kafka.security.protocol", "SSL");
        let e = load(&[ssl, ("kafka.ssl.certificate.location", "me.pem")]).unwrap_err();
        assert_eq!(e.kind(), "config-missing");
        assert!(e.to_string().contains("ssl_key_location"), "{e}");
        let e = load(&[ssl, ("kafka.ssl.endpoint.identification.algorithm", "none")]).unwrap_err();
        assert_eq!(e.kind(), "config-invalid");
        assert!(e.to_string().contains("only https"), "{e}");
        let c = load(&[
            ssl,
            ("kafka.ssl.certificate.location", "me.pem"),
            ("kafka.ssl.key.location", "me.key"),
            ("kafka.ssl.endpoint.identification.algorithm", "HTTPS"),
        ])
        .unwrap();
        let pair = (PathBuf::from("me.pem"), PathBuf::from("me.key"));
        assert_eq!(c.kafka.ssl_client_cert, Some(pair));
    }
    let pw = dir.join("pw");
    std::fs::write(&pw, "s3cret\r\n").unwrap();
    let pw = pw.display().to_string();
    let user = ("kafka.sasl.username", "u");
    let c = load(&[user, ("kafka.sasl.password.file", &pw)]).unwrap();
    assert_eq!(c.kafka.sasl.unwrap().password.expose(), "s3cret");
    let e = load(&[
        user,
        ("kafka.sasl.password.file", &pw),
        ("kafka.sasl.password", "p"),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("give one of them"), "{e}");
    let e = load(&[user, ("kafka.sasl_password_file", "/nonexistent/pw")]).unwrap_err();
    assert_eq!(e.kind(), "config-invalid");
    assert!(e.to_string().contains("/nonexistent/pw"), "{e}");
}

#[test]
fn kafka_settings_alone_for_produce_and_consume() {
    let k = kafka_settings(
        &[
            parse_property("bootstrap.servers=a:1").unwrap(),
            parse_property("compression.codec=gzip").unwrap(),
            parse_property("kafka.acks=0").unwrap(),
        ],
        Command::Produce,
    )
    .unwrap();
    assert_eq!(k.brokers, vec!["a:1"]);
    assert_eq!(k.producer.compression, Compression::Gzip);
    assert_eq!(k.producer.acks, Acks::None);
    let e = kafka_settings(&kv(&[("spool.dir", "/x")]), Command::Produce).unwrap_err();
    assert_eq!(e.kind(), "config-invalid");
    let e = kafka_settings(&[parse_property("linger=5").unwrap()], Command::Produce).unwrap_err();
    assert!(
        e.to_string().contains("did you mean 'kafka.linger_ms'"),
        "{e}"
    );
}

#[test]
fn sasl_password_from_any_name_never_shows_in_debug_output() {
    for (k, v) in [
        ("kafka.sasl_password", "hunter2-a"),
        ("kafka.sasl.password", "hunter2-b"),
    ] {
        let c = Config::load(
            None,
            Vec::new(),
            &kv(&[("kafka.sasl.username", "gw"), (k, v)]),
        )
        .unwrap();
        assert_eq!(c.kafka.sasl.as_ref().unwrap().password.expose(), v);
        assert!(!format!("{c:?}").contains("hunter2"), "{k}");
        assert!(!format!("{:?}", c.kafka).contains("hunter2"), "{k}");
    }
}

#[test]
fn clock_check_is_on_by_default_and_can_be_turned_off() {
    let on = Config::load(None, Vec::new(), &kv(&[("kafka.brokers", "b:9092")])).unwrap();
    assert!(on.clock_check);
    let off = Config::load(
        None,
        Vec::new(),
        &kv(&[("kafka.brokers", "b:9092"), ("clock_check", "false")]),
    )
    .unwrap();
    assert!(!off.clock_check);
    let bad = Config::load(None, Vec::new(), &kv(&[("clock_check", "sometimes")])).unwrap_err();
    assert_eq!(bad.kind(), "config-invalid", "{bad}");
}

#[test]
fn a_key_the_command_does_not_use_is_an_error_naming_the_commands_that_do() {
    // The forwarder has no consumer (it used to ignore these silently), from every layer.
    let e = Config::load(None, Vec::new(), &kv(&[("kafka.max.poll.records", "5")])).unwrap_err();
    assert_eq!(e.kind(), "config-invalid");
    assert!(
        e.to_string().contains(
            "config key 'kafka.max.poll.records': not used by forward, only by consume (from flags)"
        ),
        "{e}"
    );
    let e = Config::load(
        None,
        kv(&[("AVRO_EDGE_KAFKA_FETCH_MAX_BYTES", "1MiB")]),
        &[],
    )
    .unwrap_err();
    assert!(
        e.to_string().contains(
            "'AVRO_EDGE_KAFKA_FETCH_MAX_BYTES': not used by forward, only by consume (from environment)"
        ),
        "{e}"
    );
    let dir = TempDir::new("cfg-not-used");
    let f = dir.join("f.toml");
    std::fs::write(&f, "[kafka]\nmax_partition_fetch_bytes = \"1MiB\"\n").unwrap();
    let e = Config::load(Some(&f), Vec::new(), &[]).unwrap_err();
    assert_eq!(e.kind(), "config-invalid");
    assert!(
        e.to_string()
            .contains("not used by forward, only by consume"),
        "{e}"
    );
    // consume has no producer; produce has no consumer nor the forwarder's send window.
    let x = |p: &str| vec![parse_property(p).unwrap()];
    for (command, property, users) in [
        (Command::Consume, "linger.ms=5", "forward and produce"),
        (Command::Consume, "acks=1", "forward and produce"),
        (Command::Produce, "fetch.max.bytes=1MiB", "consume"),
        (Command::Produce, "batch_records=5", "forward"),
    ] {
        let e = kafka_settings(&x(property), command).unwrap_err();
        assert_eq!(e.kind(), "config-invalid", "{command} {property}");
        let name = property.split('=').next().unwrap();
        assert!(
            e.to_string().contains(&format!(
                "'kafka.{name}': not used by {command}, only by {users}"
            )),
            "{command} {property}: {e}"
        );
    }
}
