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
