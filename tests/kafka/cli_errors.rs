//! Every command failure ends stderr with exactly one `error[<kind>]: <message>` line and a
//! non-zero exit code, for failures that need no broker to provoke: here, a broker nobody listens on.

use std::process::{Command, Output, Stdio};

fn schema_cache() -> String {
    format!("{}/fixtures/schema-cache", env!("CARGO_MANIFEST_DIR"))
}

/// 127.0.0.1:1: connection refused at once, and retried until the client's connect deadline.
const NO_BROKER: &str = "127.0.0.1:1";

fn run(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_avro-edge"));
    cmd.args(args)
        .env_remove("AVRO_EDGE_BROKERS")
        .env_remove("AVRO_EDGE_REGISTRY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.output().unwrap()
}

/// The kind of stderr's last line, which must be `error[<kind>]: <message>` with a kebab-case
/// kind; no other line may start with `error[` (one failure, one line).
fn failure_kind(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    let last = err.lines().last().unwrap_or_default();
    let kind = last
        .strip_prefix("error[")
        .and_then(|rest| rest.split_once("]: "))
        .map(|(kind, _)| kind)
        .unwrap_or_else(|| panic!("last stderr line is not `error[<kind>]: ...`: {err:?}"));
    assert!(
        !kind.is_empty()
            && kind
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "kind {kind:?} is not kebab-case: {err:?}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error[")).count(),
        1,
        "exactly one error line: {err:?}"
    );
    kind.to_string()
}

#[test]
fn consume_and_produce_with_no_broker_fail_with_one_error_line() {
    let cache = schema_cache();
    let consume = std::thread::spawn({
        let cache = cache.clone();
        move || {
            run(&[
                "consume",
                "--brokers",
                NO_BROKER,
                "--topic",
                "t",
                "--group",
                "g",
                "--schema-cache",
                &cache,
                "--timeout",
                "1",
            ])
        }
    });
    let produce = run(&[
        "produce",
        "--brokers",
        NO_BROKER,
        "--topic",
        "t",
        "--subject",
        "sensor-data-value",
        "--schema-cache",
        &cache,
    ]);
    let consume = consume.join().unwrap();
    for (what, o) in [("consume", &consume), ("produce", &produce)] {
        assert_eq!(o.status.code(), Some(1), "{what}: {o:?}");
        assert_eq!(failure_kind(o), "broker-unreachable", "{what}");
    }
}

#[test]
fn command_lines_clap_cannot_take_fail_with_one_usage_line() {
    for args in [
        &["consume", "--topc", "t"][..],
        &["produce", "--topic"],
        &["produce"],
        &["no-such-command"],
        &[
            "consume",
            "--topic",
            "t",
            "--group",
            "g",
            "--assignor",
            "sticky",
        ],
        &[],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        assert_eq!(failure_kind(&o), "usage", "{args:?}");
    }
    // Asking for help or the version is not a failure.
    for args in [&["--help"][..], &["--version"], &["consume", "--help"]] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {o:?}");
        assert!(!String::from_utf8_lossy(&o.stderr).contains("error["));
    }
}

#[test]
fn bad_setting_values_fail_with_one_typed_line() {
    let cache = schema_cache();
    let o = run(&[
        "produce",
        "--brokers",
        NO_BROKER,
        "--topic",
        "t",
        "--subject",
        "sensor-data-value",
        "--schema-cache",
        &cache,
        "--compression",
        "brotli",
    ]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert_eq!(failure_kind(&o), "config-invalid");
}

/// `consume` against no broker, with these arguments added.
fn consume(extra: &[&str]) -> Output {
    let cache = schema_cache();
    let mut args = vec![
        "consume",
        "--brokers",
        NO_BROKER,
        "--topic",
        "t",
        "--group",
        "g",
        "--schema-cache",
        &cache,
        "--timeout",
        "1",
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// `produce` against no broker, with these arguments added.
fn produce(extra: &[&str]) -> Output {
    let cache = schema_cache();
    let mut args = vec![
        "produce",
        "--brokers",
        NO_BROKER,
        "--topic",
        "t",
        "--subject",
        "sensor-data-value",
        "--schema-cache",
        &cache,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// `forward` against no broker, with these arguments added.
fn forward(extra: &[&str]) -> Output {
    let mut args = vec!["forward", "--brokers", NO_BROKER];
    args.extend_from_slice(extra);
    run(&args)
}

/// `consume`, `produce` and `forward` take only the settings they use: another command's is one
/// `config-invalid` line naming the commands that use it. `--from-beginning` and
/// `-X auto.offset.reset` must agree (as any named flag and the property for its key), and the
/// consumer properties' values are checked.
#[test]
fn settings_are_checked_against_the_command_that_is_given_them() {
    let refused = [
        (
            consume(&["-X", "linger.ms=5"]),
            "config key 'kafka.linger.ms': not used by consume, only by forward and produce",
        ),
        (
            consume(&["-X", "acks=1"]),
            "config key 'kafka.acks': not used by consume, only by forward and produce",
        ),
        (
            produce(&["-X", "auto.offset.reset=earliest"]),
            "config key 'kafka.auto.offset.reset': not used by produce, only by consume",
        ),
        (
            produce(&["-X", "batch_records=10"]),
            "config key 'kafka.batch_records': not used by produce, only by forward",
        ),
        (
            forward(&["-X", "max.poll.records=5"]),
            "config key 'kafka.max.poll.records': not used by forward, only by consume",
        ),
        (
            forward(&["--set", "kafka.session_timeout_ms=30000"]),
            "config key 'kafka.session_timeout_ms': not used by forward, only by consume",
        ),
        (
            consume(&["--from-beginning", "-X", "auto.offset.reset=latest"]),
            "set twice with different values, as '--from-beginning' and as 'kafka.auto.offset.reset'",
        ),
        (
            consume(&[
                "-X",
                "session.timeout.ms=2000",
                "-X",
                "heartbeat.interval.ms=3000",
            ]),
            "config key 'kafka.heartbeat_interval_ms': must be below kafka.session_timeout_ms",
        ),
        (
            consume(&["-X", "isolation.level=dirty"]),
            "'dirty': expected read_committed or read_uncommitted",
        ),
        (
            consume(&["-X", "group.instance.id=a b"]),
            "config key 'kafka.group_instance_id': 'a b'",
        ),
        (
            consume(&["-X", "auto.offset.reset=none"]),
            "is not supported: use earliest or latest",
        ),
    ];
    for (o, message) in &refused {
        assert_eq!(o.status.code(), Some(2), "{message}: {o:?}");
        assert_eq!(failure_kind(o), "config-invalid", "{message}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(message), "want {message:?} in {err:?}");
    }
}

/// `consume` takes librdkafka's consumer properties (it then fails only on the missing broker), and
/// a misspelt one suggests the consumer's name, not the producer's `message.timeout.ms`, which
/// `consume` does not use.
#[test]
fn consume_takes_librdkafkas_consumer_properties_and_suggests_its_own_names() {
    let mut args = vec!["--from-beginning"];
    for p in [
        "auto.offset.reset=earliest",
        "enable.auto.commit=false",
        "auto.commit.interval.ms=1000",
        "session.timeout.ms=45000",
        "heartbeat.interval.ms=3000",
        "max.poll.interval.ms=300000",
        "group.instance.id=gateway-17",
        "isolation.level=read_uncommitted",
        "client.rack=rack-a",
    ] {
        args.extend(["-X", p]);
    }
    let accepted = std::thread::spawn(move || consume(&args));
    let o = consume(&["-X", "session.timeout.m=45000"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert_eq!(failure_kind(&o), "config-unknown-key");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("did you mean 'kafka.session.timeout.ms'?"),
        "{err}"
    );
    let o = produce(&["-X", "session.timeout.m=45000"]);
    assert_eq!(failure_kind(&o), "config-unknown-key");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("did you mean 'kafka.session"), "{err}");
    let o = accepted.join().unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert_eq!(failure_kind(&o), "broker-unreachable");
}
