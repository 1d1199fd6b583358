//! Every row of the settings table changes the setting it names, for every command that uses it:
//! a value that is not the default goes in, and the field it names in the forwarder's [`Config`],
//! the [`ProducerConfig`] or the [`ConsumerConfig`] comes out holding it. Every default the table
//! shows is the one applied, and the consumer's and the producer's defaults are the client's own.

use std::fmt::Debug;
use std::time::Duration;

use avro_edge::forwarder::{
    Command, Config, ConfigError, DefaultValue, KafkaSettings, SETTINGS, env_name, kafka_settings,
};
use avro_edge::{
    Acks, Compression, ConsumerConfig, ErrorKind, FsyncPolicy, IsolationLevel, OffsetReset,
    ProducerConfig, SaslMechanism, TopicSpec, WhenFull,
};

use super::{kv, password_file};

/// What one command made of some settings.
struct Outcome {
    /// The forwarder's configuration (`forward` only).
    config: Option<Config>,
    kafka: KafkaSettings,
    /// `forward` and `produce`.
    producer: Option<ProducerConfig>,
    /// `consume`.
    consumer: Option<ConsumerConfig>,
}

impl Outcome {
    fn config(&self) -> &Config {
        self.config.as_ref().expect("a forward setting")
    }
    fn producer(&self) -> &ProducerConfig {
        self.producer.as_ref().expect("a producer setting")
    }
    fn consumer(&self) -> &ConsumerConfig {
        self.consumer.as_ref().expect("a consumer setting")
    }
    /// A connection setting, from whichever client the command has.
    fn client<T>(&self, p: impl Fn(&ProducerConfig) -> T, c: impl Fn(&ConsumerConfig) -> T) -> T {
        match (&self.producer, &self.consumer) {
            (Some(pc), _) => p(pc),
            (None, Some(cc)) => c(cc),
            (None, None) => unreachable!("every command has a client"),
        }
    }
    /// The SASL settings the client got: (mechanism, user, password).
    fn sasl(&self) -> Option<(SaslMechanism, String, String)> {
        let s = self.client(|p| p.sasl.clone(), |c| c.sasl.clone())?;
        Some((s.mechanism, s.username, s.password))
    }
}

/// What `command` makes of flag pairs (the forwarder reads env too: `env` puts them there instead).
fn outcome(
    command: Command,
    pairs: &[(String, String)],
    env: bool,
) -> Result<Outcome, ConfigError> {
    match command {
        Command::Forward => {
            let config = if env {
                let vars = pairs.iter().map(|(k, v)| (env_name(k), v.clone()));
                Config::load(None, vars.collect::<Vec<_>>(), &[])?
            } else {
                Config::load(None, Vec::new(), pairs)?
            };
            Ok(Outcome {
                kafka: config.kafka.clone(),
                producer: Some(config.kafka.producer_config()),
                consumer: None,
                config: Some(config),
            })
        }
        Command::Produce => {
            let kafka = kafka_settings(pairs, command)?;
            Ok(Outcome {
                config: None,
                producer: Some(kafka.producer_config()),
                consumer: None,
                kafka,
            })
        }
        Command::Consume => {
            let kafka = kafka_settings(pairs, command)?;
            Ok(Outcome {
                config: None,
                producer: None,
                consumer: Some(kafka.consumer_config("g", &["t"])),
                kafka,
            })
        }
    }
}

/// One key's check: the value to set (with the settings it needs beside it) and what must change.
struct Case {
    value: &'static str,
    base: Vec<(String, String)>,
    /// The field the key names, as text.
    field: Box<dyn Fn(&Outcome) -> String>,
    /// What it must hold with `value` set.
    want: String,
    /// The value is refused with a message containing this, instead (a TLS key in a build without
    /// TLS, or a key whose only value is its default).
    refused: Option<&'static str>,
}

fn case<T: Debug + 'static>(value: &'static str, field: fn(&Outcome) -> T, want: T) -> Case {
    Case {
        value,
        base: Vec::new(),
        field: Box::new(move |o| format!("{:?}", field(o))),
        want: format!("{want:?}"),
        refused: None,
    }
}

impl Case {
    fn with(mut self, pairs: &[(&str, &str)]) -> Case {
        self.base.extend(kv(pairs));
        self
    }
    fn refused(value: &'static str, message: &'static str) -> Case {
        Case {
            refused: Some(message),
            ..case(value, |_| (), ())
        }
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const SASL: &[(&str, &str)] = &[("kafka.sasl_username", "u"), ("kafka.sasl_password", "p")];
const UDP: &[(&str, &str)] = &[("input.type", "udp"), ("input.bind", "127.0.0.1:5000")];
const FILE: &[(&str, &str)] = &[("input.type", "file"), ("input.path", "/var/log/a")];
#[cfg(feature = "tls")]
const SSL: &[(&str, &str)] = &[("kafka.security_protocol", "SSL")];

/// The check for each key; a key without one fails the test (a new row needs its check).
fn case_for(key: &str) -> Case {
    [
        input_case,
        connection_case,
        tls_case,
        producer_case,
        consumer_case,
        forwarder_case,
    ]
    .iter()
    .find_map(|f| f(key))
    .unwrap_or_else(|| panic!("no check for the settings table's key {key}: add one"))
}

/// The `input.*` keys (forward).
fn input_case(key: &str) -> Option<Case> {
    Some(match key {
        "input.type" => case("udp", |o| o.config().inputs[0].kind.clone(), udp()).with(&UDP[1..]),
        "input.name" => case(
            "sensors",
            |o| o.config().inputs[0].name.clone(),
            "sensors".into(),
        )
        .with(UDP),
        "input.path" => case(
            "/var/log/b",
            |o| o.config().inputs[0].kind.clone(),
            file("/var/log/b", false),
        )
        .with(&FILE[..1]),
        "input.start_at" => case(
            "beginning",
            |o| o.config().inputs[0].kind.clone(),
            file("/var/log/a", true),
        )
        .with(FILE),
        "input.bind" => case(
            "127.0.0.1:5001",
            |o| o.config().inputs[0].kind.clone(),
            udp_at(5001),
        )
        .with(&UDP[..1]),
        "input.subject" => case(
            "s-value",
            |o| o.config().inputs[0].subject.clone(),
            "s-value".into(),
        ),
        "input.topic" => case("t2", |o| o.config().inputs[0].topic.clone(), "t2".into()),
        "input.key_field" => case(
            "id",
            |o| o.config().inputs[0].key_field.clone(),
            Some("id".into()),
        ),
        _ => return None,
    })
}

/// The connection's keys (every command), TLS's but for the protocol and the `ssl_*` files.
fn connection_case(key: &str) -> Option<Case> {
    Some(match key {
        "kafka.brokers" => case(
            "a:1,b:2",
            |o| o.client(|p| p.brokers.clone(), |c| c.brokers.clone()),
            vec!["a:1".to_string(), "b:2".to_string()],
        ),
        "kafka.client_id" => case(
            "gw-17",
            |o| o.client(|p| p.client_id.clone(), |c| c.client_id.clone()),
            "gw-17".into(),
        ),
        "kafka.request_timeout_ms" => case(
            "42",
            |o| o.client(|p| p.request_timeout, |c| c.request_timeout),
            ms(42),
        ),
        "kafka.sasl_mechanism" => case(
            "SCRAM-SHA-512",
            |o| o.sasl().map(|s| s.0),
            Some(SaslMechanism::ScramSha512),
        )
        .with(SASL),
        "kafka.sasl_username" => {
            case("gw", |o| o.sasl().map(|s| s.1), Some("gw".into())).with(&SASL[1..])
        }
        "kafka.sasl_password" => {
            case("pw", |o| o.sasl().map(|s| s.2), Some("pw".into())).with(&SASL[..1])
        }
        "kafka.sasl_password_file" => {
            case("", |o| o.sasl().map(|s| s.2), Some("pw-from-file".into())).with(&SASL[..1])
        }
        _ => return None,
    })
}

/// The TLS keys: refused, naming the feature, in a build without it.
fn tls_case(key: &str) -> Option<Case> {
    Some(match key {
        #[cfg(feature = "tls")]
        "kafka.security_protocol" => case(
            "SSL",
            |o| o.client(|p| p.tls.is_some(), |c| c.tls.is_some()),
            true,
        ),
        #[cfg(feature = "tls")]
        "kafka.ssl_ca_location" => case(
            "/etc/ssl/ca.pem",
            |o| tls(o).ca_file,
            Some("/etc/ssl/ca.pem".into()),
        )
        .with(SSL),
        #[cfg(feature = "tls")]
        "kafka.ssl_certificate_location" => case(
            "/etc/me.pem",
            |o| tls(o).cert_file,
            Some("/etc/me.pem".into()),
        )
        .with(SSL)
        .with(&[("kafka.ssl_key_location", "/etc/me.key")]),
        #[cfg(feature = "tls")]
        "kafka.ssl_key_location" => case(
            "/etc/me.key",
            |o| tls(o).key_file,
            Some("/etc/me.key".into()),
        )
        .with(SSL)
        .with(&[("kafka.ssl_certificate_location", "/etc/me.pem")]),
        #[cfg(feature = "tls")]
        "kafka.ssl_server_name" => case(
            "kafka.internal",
            |o| tls(o).server_name,
            Some("kafka.internal".into()),
        )
        .with(SSL),
        #[cfg(feature = "tls")]
        "kafka.ssl_endpoint_identification_algorithm" => {
            Case::refused("none", "only https").with(SSL)
        }
        #[cfg(not(feature = "tls"))]
        "kafka.security_protocol" => Case::refused("SSL", "`tls` feature"),
        #[cfg(not(feature = "tls"))]
        k if k.starts_with("kafka.ssl") => Case::refused("/etc/ssl/x.pem", "`tls` feature"),
        _ => return None,
    })
}

/// The producer's keys (forward, produce) and the forwarder's send window.
fn producer_case(key: &str) -> Option<Case> {
    Some(match key {
        "kafka.acks" => case("1", |o| o.producer().acks, Acks::Leader),
        "kafka.compression" => case("zstd", |o| o.producer().compression, Compression::Zstd),
        "kafka.linger_ms" => case("42", |o| o.producer().linger, ms(42)),
        "kafka.batch_size" => case("2MiB", |o| o.producer().batch_size, 2 << 20),
        "kafka.delivery_timeout_ms" => case("42000", |o| o.producer().delivery_timeout, ms(42_000)),
        "kafka.enable_idempotence" => case("false", |o| o.producer().enable_idempotence, false),
        "kafka.max_in_flight" => case("3", |o| o.producer().max_in_flight, Some(3)),
        "kafka.create_partitions" => case(
            "3",
            |o| o.producer().auto_create,
            Some(TopicSpec {
                partitions: 3,
                replication: -1,
            }),
        ),
        "kafka.batch_records" => case("42", |o| o.config().batch_records, 42),
        "kafka.transactional_id" => case(
            "gw-tx",
            |o| o.producer().transactional_id.clone(),
            Some("gw-tx".to_string()),
        )
        .with(&[("forward.exactly_once", "true")]),
        "kafka.transaction_timeout_ms" => {
            case("42000", |o| o.producer().transaction_timeout, ms(42_000))
        }
        _ => return None,
    })
}

/// The consumer's keys (consume).
fn consumer_case(key: &str) -> Option<Case> {
    Some(match key {
        "kafka.fetch_max_bytes" => case("1MiB", |o| o.consumer().fetch_max_bytes, 1 << 20),
        "kafka.max_partition_fetch_bytes" => {
            case("1MiB", |o| o.consumer().fetch_partition_max_bytes, 1 << 20)
        }
        "kafka.max_poll_records" => case("42", |o| o.consumer().max_poll_records, 42),
        "kafka.auto_offset_reset" => case(
            "earliest",
            |o| o.consumer().auto_offset_reset,
            OffsetReset::Earliest,
        ),
        "kafka.enable_auto_commit" => case("false", |o| o.consumer().enable_auto_commit, false),
        "kafka.auto_commit_interval_ms" => {
            case("42", |o| o.consumer().auto_commit_interval, ms(42))
        }
        "kafka.session_timeout_ms" => case("42000", |o| o.consumer().session_timeout, ms(42_000)),
        "kafka.heartbeat_interval_ms" => case("42", |o| o.consumer().heartbeat_interval, ms(42)),
        "kafka.max_poll_interval_ms" => case("42", |o| o.consumer().rebalance_timeout, ms(42)),
        "kafka.group_instance_id" => case(
            "gw-17",
            |o| o.consumer().group_instance_id.clone(),
            Some("gw-17".into()),
        ),
        "kafka.isolation_level" => case(
            "read_uncommitted",
            |o| o.consumer().isolation_level,
            IsolationLevel::ReadUncommitted,
        ),
        "kafka.client_rack" => case(
            "rack-a",
            |o| o.consumer().client_rack.clone(),
            Some("rack-a".into()),
        ),
        _ => return None,
    })
}

/// The forwarder's own sections: registry, spool, dead-letter file, the rest, metrics.
fn forwarder_case(key: &str) -> Option<Case> {
    Some(match key {
        "registry.urls" => case(
            "http://a,http://b",
            |o| o.config().registry.urls.clone(),
            vec!["http://a".to_string(), "http://b".to_string()],
        ),
        "registry.schema_cache" => case(
            "/c",
            |o| o.config().registry.schema_cache.clone(),
            Some("/c".into()),
        ),
        "spool.dir" => case("/s", |o| o.config().spool_dir.clone(), "/s".into()),
        "spool.fsync" => case("always", |o| o.config().spool.fsync, FsyncPolicy::Always),
        "spool.fsync_interval_ms" => case(
            "42",
            |o| o.config().spool.fsync,
            FsyncPolicy::Interval(ms(42)),
        ),
        "spool.max_bytes" => case("2MiB", |o| o.config().spool.max_bytes, 2 << 20),
        "spool.when_full" => case(
            "drop_oldest",
            |o| o.config().spool.when_full,
            WhenFull::DropOldest,
        ),
        "spool.segment_bytes" => case("64KiB", |o| o.config().spool.segment_bytes, Some(64 << 10)),
        "spool.reserve_bytes" => case("2MiB", |o| o.config().spool.reserve_bytes, Some(2 << 20)),
        "dead_letter" => case("/d", |o| o.config().dead_letter.clone(), "/d".into()),
        "dead_letter_max_bytes" => case("2MiB", |o| o.config().dead_letter_max_bytes, 2 << 20),
        "drain_timeout_ms" => case("42", |o| o.config().drain_timeout, ms(42)),
        "clock_check" => case("false", |o| o.config().clock_check, false),
        "forward.exactly_once" => case("true", |o| o.config().forward.exactly_once, true),
        "forward.commit_interval_ms" => case("42", |o| o.config().forward.commit_interval, ms(42)),
        "forward.positions_topic" => case(
            "positions-2",
            |o| o.config().forward.positions_topic.clone(),
            "positions-2".to_string(),
        ),
        "forward.gateway_id" => case(
            "gw-17",
            |o| o.config().forward.gateway_id.clone(),
            Some("gw-17".to_string()),
        ),
        "forward.headers" => case("false", |o| o.config().forward.headers, false),
        "max_line_bytes" => case("2MiB", |o| o.config().max_line_bytes, 2 << 20),
        "metrics.listen" => case(
            "127.0.0.1:9464",
            |o| o.config().metrics.listen,
            Some("127.0.0.1:9464".parse().unwrap()),
        ),
        "metrics.summary_interval_s" => case(
            "42",
            |o| o.config().metrics.summary_interval,
            Duration::from_secs(42),
        ),
        _ => return None,
    })
}

fn udp() -> avro_edge::forwarder::InputKind {
    udp_at(5000)
}
fn udp_at(port: u16) -> avro_edge::forwarder::InputKind {
    avro_edge::forwarder::InputKind::Udp {
        bind: ([127, 0, 0, 1], port).into(),
    }
}
fn file(path: &str, beginning: bool) -> avro_edge::forwarder::InputKind {
    use avro_edge::forwarder::StartAt;
    avro_edge::forwarder::InputKind::File {
        path: path.into(),
        start_at: if beginning {
            StartAt::Beginning
        } else {
            StartAt::End
        },
    }
}
#[cfg(feature = "tls")]
fn tls(o: &Outcome) -> avro_edge::TlsConfig {
    o.client(|p| p.tls.clone(), |c| c.tls.clone())
        .expect("TLS is on")
}

/// The value to set: the password file's path for `kafka.sasl_password_file`, else the case's.
fn value_of(key: &str, case: &Case) -> String {
    match key {
        "kafka.sasl_password_file" => password_file().to_string(),
        _ => case.value.to_string(),
    }
}

#[test]
fn every_key_changes_the_setting_it_names_for_every_command_that_uses_it() {
    for s in SETTINGS {
        let case = case_for(s.key);
        let set = [
            case.base.clone(),
            vec![(s.key.to_string(), value_of(s.key, &case))],
        ]
        .concat();
        for &command in s.used_by {
            // The forwarder also from the environment.
            let routes: &[bool] = if command == Command::Forward {
                &[false, true]
            } else {
                &[false]
            };
            for &env in routes {
                let how = format!("{} by {command}{}", s.key, if env { " (env)" } else { "" });
                let got = outcome(command, &set, env);
                if let Some(message) = case.refused {
                    let e = got.err().unwrap_or_else(|| panic!("{how}: accepted"));
                    assert_eq!(e.kind(), "config-invalid", "{how}");
                    assert!(e.to_string().contains(message), "{how}: {e}");
                    continue;
                }
                let got = got.unwrap_or_else(|e| panic!("{how}: {e}"));
                assert_eq!((case.field)(&got), case.want, "{how}");
                // Without the key, the field holds something else: the value set is not the default.
                let unset = outcome(command, &case.base, env)
                    .map(|o| (case.field)(&o))
                    .unwrap_or_else(|e| format!("refused: {e}"));
                assert_ne!(unset, case.want, "{how}: the test value is the default");
            }
        }
    }
    let c = Config::load(None, kv(&[("AVRO_EDGE_BROKERS", "a:1,b:2")]), &[]).unwrap();
    assert_eq!(c.kafka.brokers, vec!["a:1", "b:2"]);
}

/// Each default the table shows as a value is the one applied: setting it changes nothing.
#[test]
fn every_default_in_the_table_is_the_one_applied() {
    for s in SETTINGS {
        let DefaultValue::Value(default) = s.default else {
            continue;
        };
        let case = case_for(s.key);
        if case.refused.is_some() && !cfg!(feature = "tls") && s.key.contains("ssl") {
            continue; // a TLS key: no build without TLS takes it
        }
        let set = [case.base.clone(), kv(&[(s.key, default)])].concat();
        for &command in s.used_by {
            let how = format!("{} = {default} by {command}", s.key);
            let with = outcome(command, &set, false).unwrap_or_else(|e| panic!("{how}: {e}"));
            let without =
                outcome(command, &case.base, false).unwrap_or_else(|e| panic!("{how}: {e}"));
            assert_eq!(debug(&with), debug(&without), "{how}");
        }
    }
}

/// Everything an outcome holds, as text (the password shows only as its length).
fn debug(o: &Outcome) -> String {
    format!(
        "{:?} {:?} {:?} {:?} {:?}",
        o.config,
        o.kafka,
        o.producer,
        o.consumer,
        o.sasl().map(|s| s.2.len())
    )
}

/// With nothing set, `produce` and `consume` get the client's own defaults: the table's defaults
/// are the producer's and the consumer's.
#[test]
fn the_tables_defaults_are_the_clients() {
    let produce = kafka_settings(&[], Command::Produce)
        .unwrap()
        .producer_config();
    assert_eq!(
        format!("{produce:?}"),
        format!("{:?}", ProducerConfig::new(Vec::<String>::new()))
    );
    let consume = kafka_settings(&[], Command::Consume)
        .unwrap()
        .consumer_config("g", &["t"]);
    assert_eq!(
        format!("{consume:?}"),
        format!("{:?}", ConsumerConfig::group("", "g", &["t"]))
    );
}
