//! A hostile or broken broker (the test kit's scripted fake broker) never aborts the client: a few
//! bytes claiming billions of brokers, topics or partitions, answers to requests never sent, frames
//! over the size cap or cut short, bad consumer-group bytes. The real `produce` and `consume`
//! binaries and the library API each end with a typed error kind and exit code, never a signal,
//! and never retry a broken broker forever.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use avro_edge::{Consumer, ConsumerConfig, ErrorKind, Producer, ProducerConfig};
use avro_edge_testkit::{Call, FakeBroker, Reply};
use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{
    JoinGroupRequest, JoinGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Hang guard only (not a speed check): a command still running after this is killed and the
/// test fails, because a broken broker must end the command, not hold it forever.
const HANG: Duration = Duration::from_secs(120);

struct Outcome {
    status: ExitStatus,
    stderr: String,
}

fn run_cli(args: &[&str]) -> Outcome {
    run_cli_with_input(args, b"")
}

fn run_cli_with_input(args: &[&str], input: &[u8]) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_avro-edge"))
        .args(args)
        .env_remove("AVRO_EDGE_BROKERS")
        .env_remove("AVRO_EDGE_REGISTRY")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    let mut err_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} still running after {HANG:?}: it retries a broken broker forever");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Outcome {
        status,
        stderr: reader.join().unwrap(),
    }
}

fn schema_cache() -> String {
    format!("{}/fixtures/schema-cache", env!("CARGO_MANIFEST_DIR"))
}

fn produce(addr: &str) -> Outcome {
    let cache = schema_cache();
    run_cli(&[
        "produce",
        "--brokers",
        addr,
        "--topic",
        "t",
        "--subject",
        "sensor-data-value",
        "--schema-cache",
        &cache,
    ])
}

fn consume(addr: &str) -> Outcome {
    let cache = schema_cache();
    run_cli(&[
        "consume",
        "--brokers",
        addr,
        "--topic",
        "t",
        "--group",
        "g",
        "--from-beginning",
        "--schema-cache",
        &cache,
        "--timeout",
        "2",
    ])
}

/// Exit code 1, no signal (SIGABRT was the bug), and stderr ending in exactly one
/// `error[<kind>]: …` line whose kind is returned.
fn failed_with(o: &Outcome, what: &str) -> String {
    assert_eq!(
        o.status.signal(),
        None,
        "{what} died of a signal: {}",
        o.stderr
    );
    assert_eq!(o.status.code(), Some(1), "{what}: {}", o.stderr);
    let errors: Vec<&str> = o
        .stderr
        .lines()
        .filter(|l| l.starts_with("error["))
        .collect();
    assert_eq!(errors.len(), 1, "{what}: one error line: {}", o.stderr);
    assert_eq!(
        o.stderr.lines().last(),
        Some(errors[0]),
        "{what}: the error line comes last"
    );
    errors[0]["error[".len()..]
        .split_once("]: ")
        .map(|(k, _)| k.to_string())
        .unwrap_or_default()
}

/// Metadata v8 (the last non-flexible version): throttle 0, then 2^31-1 brokers. 8 bytes.
fn metadata_v8_huge_brokers() -> Vec<u8> {
    let mut b = 0i32.to_be_bytes().to_vec();
    b.extend(i32::MAX.to_be_bytes());
    b
}

/// Metadata v12: throttle, no brokers, null cluster id, controller 0, then 2^31-1 topics.
fn metadata_v12_huge_topics() -> Vec<u8> {
    let mut b = 0i32.to_be_bytes().to_vec();
    b.push(1); // brokers: compact array of 0
    b.push(0); // cluster_id: null
    b.extend(0i32.to_be_bytes());
    b.extend([0x80, 0x80, 0x80, 0x80, 0x08]); // topics: varint 2^31, i.e. 2^31-1 entries
    b
}

/// Fetch v12: throttle, error, session, then 2^32-2 topics in a 15-byte body.
fn fetch_v12_huge_topics() -> Vec<u8> {
    let mut b = 0i32.to_be_bytes().to_vec();
    b.extend(0i16.to_be_bytes());
    b.extend(0i32.to_be_bytes());
    b.extend([0xff, 0xff, 0xff, 0xff, 0x0f]);
    b
}

fn metadata_only(reply: impl Fn(&Call) -> Reply + Send + Sync + 'static) -> FakeBroker {
    FakeBroker::start(move |c| if c.key == 3 { reply(c) } else { Reply::Honest }).unwrap()
}

#[test]
fn metadata_claiming_billions_of_brokers_or_topics_is_a_protocol_error() {
    let v8 = FakeBroker::with_max_versions(&[(3, 8)], |c| {
        if c.key == 3 {
            Reply::Body(metadata_v8_huge_brokers())
        } else {
            Reply::Honest
        }
    })
    .unwrap();
    let v12 = metadata_only(|_| Reply::Body(metadata_v12_huge_topics()));
    for broker in [&v8, &v12] {
        for (what, o) in [
            ("produce", produce(broker.addr())),
            ("consume", consume(broker.addr())),
        ] {
            assert_eq!(
                failed_with(&o, what),
                "protocol-error",
                "{what}: {}",
                o.stderr
            );
            assert!(o.stderr.contains("exceeds"), "{what}: {}", o.stderr);
        }
        // The library API: the same typed error, from both entry points.
        let err = Producer::connect(ProducerConfig::new([broker.addr()])).unwrap_err();
        assert_eq!(err.kind(), "protocol-error", "{err}");
        let err = Consumer::connect(ConsumerConfig::group(broker.addr(), "g", &["t"])).unwrap_err();
        assert_eq!(err.kind(), "protocol-error", "{err}");
    }
}

#[test]
fn broken_frames_are_typed_errors_and_not_retried_forever() {
    let never_sent = metadata_only(|c| Reply::Raw(c.frame_with_corr(c.corr + 1000, &[])));
    let over_cap = metadata_only(|_| Reply::Raw(i32::MAX.to_be_bytes().to_vec()));
    let negative = metadata_only(|_| Reply::Raw((-5i32).to_be_bytes().to_vec()));
    let body_cut = metadata_only(|c| {
        let mut body = Vec::new();
        kafka_protocol::messages::MetadataResponse::default()
            .encode(&mut body, c.version)
            .unwrap();
        body.truncate(body.len() - 3);
        Reply::Body(body)
    });
    for (what, broker, needle) in [
        ("correlation id never sent", &never_sent, "never sent"),
        ("frame over the cap", &over_cap, "cap"),
        ("negative frame length", &negative, "frame length -5"),
        ("body cut short", &body_cut, "decoding response"),
    ] {
        for o in [produce(broker.addr()), consume(broker.addr())] {
            assert_eq!(
                failed_with(&o, what),
                "protocol-error",
                "{what}: {}",
                o.stderr
            );
            assert!(o.stderr.contains(needle), "{what}: {}", o.stderr);
        }
    }
    // A frame cut short by a closed connection is what a crashing broker does: retried within
    // the connect deadline, then a typed failure, not a hang.
    let frame_cut = metadata_only(|c| {
        let mut f = c.frame(&metadata_v8_huge_brokers());
        f.truncate(f.len() - 2);
        Reply::RawThenClose(f)
    });
    for (what, o) in [
        ("produce", produce(frame_cut.addr())),
        ("consume", consume(frame_cut.addr())),
    ] {
        let kind = failed_with(&o, what);
        assert!(
            ["disconnected", "broker-unreachable"].contains(&kind.as_str()),
            "{what}: {kind}: {}",
            o.stderr
        );
    }
}

#[test]
fn a_broker_that_never_answers_ends_in_a_timeout() {
    let silent = metadata_only(|_| Reply::Silence);
    let cache = schema_cache();
    let o = run_cli(&[
        "produce",
        "--brokers",
        silent.addr(),
        "--topic",
        "t",
        "--subject",
        "sensor-data-value",
        "--schema-cache",
        &cache,
        "-X",
        "request.timeout.ms=1000",
    ]);
    assert_eq!(failed_with(&o, "produce"), "timeout", "{}", o.stderr);
}

#[test]
fn a_produce_answer_claiming_billions_of_topics_fails_the_records_not_the_process() {
    // Produce v9: 2^31-1 topic responses in a 5-byte compact-array count.
    let broker = FakeBroker::start(|c| match c.key {
        0 => Reply::Body(vec![0xff, 0xff, 0xff, 0xff, 0x07]),
        _ => Reply::Honest,
    })
    .unwrap();
    let cache = schema_cache();
    let record = br#"{"sensorId": "s-001", "timestamp": 1700000000000, "temperature": null, "humidity": null, "status": "NORMAL"}"#;
    let o = run_cli_with_input(
        &[
            "produce",
            "--brokers",
            broker.addr(),
            "--topic",
            "t",
            "--subject",
            "sensor-data-value",
            "--schema-cache",
            &cache,
        ],
        &[&record[..], b"\n"].concat(),
    );
    assert_eq!(failed_with(&o, "produce"), "records-failed", "{}", o.stderr);
    assert!(o.stderr.contains("protocol-error"), "{}", o.stderr);
    assert_eq!(
        broker.calls(0),
        1,
        "a protocol error is not retried: {}",
        o.stderr
    );
}

#[test]
fn fetch_claiming_billions_of_topics_is_a_protocol_error() {
    let broker = FakeBroker::start(|c| {
        if c.key == 1 {
            Reply::Body(fetch_v12_huge_topics())
        } else {
            Reply::Honest
        }
    })
    .unwrap();
    // The CLI goes through the whole group protocol (honest) to reach the Fetch.
    let o = consume(broker.addr());
    assert_eq!(failed_with(&o, "consume"), "protocol-error", "{}", o.stderr);
    assert!(broker.calls(1) >= 1, "the consumer reached Fetch");
    // The library API, with assigned partitions.
    let mut c = Consumer::connect(ConsumerConfig::assign(broker.addr(), &[("t", 0)])).unwrap();
    let err = c.poll(Duration::from_secs(5)).unwrap_err();
    assert_eq!(err.kind(), "protocol-error", "{err}");
}

#[test]
fn what_the_fuzzer_found_in_the_unpatched_decoders_is_an_error() {
    use avro_edge::__test::decode_response;
    use kafka_protocol::messages::{MetadataRequest, OffsetFetchRequest};
    // The `responses` fuzz target's first finding against kafka-protocol as published (after
    // 3,880 executions): a 10-byte OffsetFetch v2 frame (correlation id, then a topic count of
    // 656,881,408) made the decoder ask for 52 GB and abort.
    let frame = Bytes::from_static(&[0xb7, 0x27, 0xb7, 0x60, 0x27, 0x27, 0x37, 0, 0, 0]);
    let err = decode_response::<OffsetFetchRequest>(frame, 2).unwrap_err();
    assert_eq!(err.kind(), "protocol-error", "{err}");
    // The issue's reproduction, as a frame body: Metadata v8 claiming 2^31-1 brokers.
    let mut frame = 7i32.to_be_bytes().to_vec();
    frame.extend(metadata_v8_huge_brokers());
    let err = decode_response::<MetadataRequest>(Bytes::from(frame), 8).unwrap_err();
    assert_eq!(err.kind(), "protocol-error", "{err}");
    assert!(err.to_string().contains("exceeds"), "{err}");
}

/// A JoinGroup answer making us the leader of a group of two: us (our own metadata back) and
/// `m-2`, whose metadata is `bad`.
fn join_with_bad_member(c: &Call, bad: &'static [u8]) -> Reply {
    let req = JoinGroupRequest::decode(&mut c.body.clone(), c.version).unwrap();
    let us = StrBytes::from_static_str("m-1");
    let proto = req.protocols.into_iter().next().unwrap_or_default();
    let resp = JoinGroupResponse::default()
        .with_generation_id(1)
        .with_protocol_type((c.version >= 7).then(|| StrBytes::from_static_str("consumer")))
        .with_protocol_name(Some(proto.name))
        .with_leader(us.clone())
        .with_member_id(us.clone())
        .with_members(vec![
            JoinGroupResponseMember::default()
                .with_member_id(us)
                .with_metadata(proto.metadata),
            JoinGroupResponseMember::default()
                .with_member_id(StrBytes::from_static_str("m-2"))
                .with_metadata(Bytes::from_static(bad)),
        ]);
    let mut body = Vec::new();
    resp.encode(&mut body, c.version).unwrap();
    Reply::Body(body)
}

fn sync_with_assignment(c: &Call, assignment: &'static [u8]) -> Reply {
    let req = SyncGroupRequest::decode(&mut c.body.clone(), c.version).unwrap();
    let resp = SyncGroupResponse::default()
        .with_protocol_type((c.version >= 5).then(|| StrBytes::from_static_str("consumer")))
        .with_protocol_name(req.protocol_name)
        .with_assignment(Bytes::from_static(assignment));
    let mut body = Vec::new();
    resp.encode(&mut body, c.version).unwrap();
    Reply::Body(body)
}

#[test]
fn a_bad_member_gets_nothing_and_a_bad_assignment_is_bad_group_metadata() {
    // Subscription v0: one topic "t", then user data claiming 2 GB.
    const SUBSCRIPTION: &[u8] = &[0, 0, 0, 0, 0, 1, 0, 1, b't', 0x7f, 0xff, 0xff, 0xff];
    // Assignment v0: topic "t" with 2^31-1 partitions.
    const ASSIGNMENT: &[u8] = &[0, 0, 0, 0, 0, 1, 0, 1, b't', 0x7f, 0xff, 0xff, 0xff];
    // The leader reads every member's subscription: a member whose bytes do not decode is
    // given nothing, and the group (the leader included) goes on.
    let bad_member = FakeBroker::start(|c| match c.key {
        11 => join_with_bad_member(c, SUBSCRIPTION),
        _ => Reply::Honest,
    })
    .unwrap();
    let o = consume(bad_member.addr());
    assert_eq!(o.status.code(), Some(0), "{}", o.stderr);
    assert!(
        o.stderr.contains("member subscription unreadable") && o.stderr.contains("m-2"),
        "{}",
        o.stderr
    );
    assert!(
        bad_member.calls(1) >= 1,
        "the leader went on to fetch: {}",
        o.stderr
    );
    // Our own assignment is what we consume: if it does not decode, the consumer stops.
    let bad_assignment = FakeBroker::start(|c| match c.key {
        14 => sync_with_assignment(c, ASSIGNMENT),
        _ => Reply::Honest,
    })
    .unwrap();
    let o = consume(bad_assignment.addr());
    assert_eq!(
        failed_with(&o, "consume"),
        "bad-group-metadata",
        "{}",
        o.stderr
    );
    let mut c =
        Consumer::connect(ConsumerConfig::group(bad_assignment.addr(), "g", &["t"])).unwrap();
    let err = c.poll(Duration::from_secs(5)).unwrap_err();
    assert_eq!(err.kind(), "bad-group-metadata", "{err}");
}

#[test]
fn the_honest_fake_broker_is_good_enough_to_consume_from() {
    // Control for the tests above: with honest answers the same command ends well (idle timeout).
    let broker = FakeBroker::start(|_| Reply::Honest).unwrap();
    let o = consume(broker.addr());
    assert_eq!(o.status.code(), Some(0), "{}", o.stderr);
    assert!(broker.calls(1) >= 1, "fetched: {}", o.stderr);
}
