//! TLS end to end (feature `tls`): a test CA and server certificate made by the `openssl` CLI,
//! `socat` terminating TLS in front of a real broker (the test kit's: Apache Kafka with an extra
//! listener advertising the TLS port, or tansu advertising it) and in front of
//! our test registry. We produce and consume SensorData records over TLS with the schemas fetched
//! over HTTPS; a client trusting another CA fails with `tls-untrusted-broker` (Kafka) or `tls-error`
//! (the registry client). The Kafka security matrix against Kafka's own TLS listeners, without a
//! terminator, is `tests/security/sasl_ssl.rs`; this test keeps the terminator case (a TLS proxy in
//! front of a plain listener) and HTTPS to the registry.
//!
//! Run with `cargo test --features tls --test kafka_tls -- --include-ignored` (it is `#[ignore]`d:
//! it needs openssl, socat and a Kafka broker, and fails saying which one is missing).
#![cfg(feature = "tls")]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::wire_support::{assert_json_eq, cases, root};
use avro_edge::Codec;
use avro_edge::ErrorKind;
use avro_edge::TestRegistry;
use avro_edge::TlsConfig;
use avro_edge::TopicSpec;
use avro_edge::{ClientOptions, RegistryClient, SchemaSource};
use avro_edge::{Consumer, ConsumerConfig, Item, OffsetReset, PollAvro};
use avro_edge::{Producer, ProducerConfig, SendAvro};
use avro_edge_testkit::{
    BrokerSetup, require_broker_with, require_test_certs, require_tools, unique_topic,
};

/// `socat` terminating TLS on `port` and forwarding to `127.0.0.1:target`; killed on drop.
struct Terminator(Child);

impl Terminator {
    fn start(dir: &Path, port: u16, target: u16) -> Terminator {
        let listen = format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,cert={},key={},verify=0,fork,reuseaddr",
            dir.join("srv.pem").display(),
            dir.join("srv.key").display()
        );
        let child = Command::new("socat")
            .arg(listen)
            .arg(format!("TCP:127.0.0.1:{target}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "socat did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Terminator(child)
    }
}

impl Drop for Terminator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tls(ca: PathBuf) -> Option<TlsConfig> {
    Some(TlsConfig {
        ca_file: Some(ca),
        ..TlsConfig::default()
    })
}

fn producer_cfg(bootstrap: &str, ca: PathBuf) -> ProducerConfig {
    let mut cfg = ProducerConfig::new([bootstrap]);
    cfg.tls = tls(ca);
    cfg.auto_create = Some(TopicSpec {
        partitions: 2,
        replication: 1,
    });
    cfg.request_timeout = Duration::from_secs(5);
    cfg.delivery_timeout = Duration::from_secs(15);
    cfg
}

fn registry_client(url: &str, ca: PathBuf) -> RegistryClient {
    let mut o = ClientOptions::new([url]);
    o.ca_file = Some(ca);
    o.retries = 0;
    RegistryClient::new(o).unwrap()
}

#[test]
#[ignore = "needs a Kafka broker, openssl and socat"]
fn produce_and_consume_over_tls_with_registry_over_https() {
    require_tools(&["openssl", "socat"]);
    let dir = avro_edge_testkit::tmpdir("kafka-tls");
    require_test_certs(&dir);
    let ca = dir.join("ca.pem");
    let other_ca = dir.join("other-ca.pem");

    let tls_port = avro_edge_testkit::free_port().unwrap();
    let broker = require_broker_with(&BrokerSetup {
        advertised_port: Some(tls_port),
        ..BrokerSetup::default()
    });
    let _kafka_tls = Terminator::start(&dir, tls_port, broker.port());
    let bootstrap = format!("127.0.0.1:{tls_port}");

    let reg = TestRegistry::start();
    let text = std::fs::read_to_string(root().join("schemas/sensor-data.avsc")).unwrap();
    let id = reg.register("sensor-data-value", &text).unwrap();
    let reg_port = avro_edge_testkit::free_port().unwrap();
    let _reg_tls = Terminator::start(&dir, reg_port, reg.addr().port());
    let reg_url = format!("https://127.0.0.1:{reg_port}");

    // Everything over TLS: schemas over HTTPS, records to and from the broker.
    let codec = Arc::new(Codec::new(Arc::new(registry_client(&reg_url, ca.clone()))));
    let topic = unique_topic("tls");
    let producer = Producer::connect(producer_cfg(&bootstrap, ca.clone())).unwrap();
    let records = cases("sensor-data");
    let mut want = BTreeMap::new();
    for c in &records {
        let d = producer
            .send_json(
                "sensor-data-value",
                &topic,
                Some(c.name.as_bytes()),
                &c.meta["record"],
                &codec,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert!(d.offset.is_some());
        want.insert(c.name.clone(), c);
    }
    producer.close().unwrap();

    let mut cfg = ConsumerConfig::group(&bootstrap, &unique_topic("g-tls"), &[&topic]);
    cfg.tls = tls(ca.clone());
    cfg.auto_offset_reset = OffsetReset::Earliest;
    cfg.session_timeout = Duration::from_secs(6);
    cfg.heartbeat_interval = Duration::from_secs(1);
    cfg.rebalance_timeout = Duration::from_secs(10);
    let mut consumer = Consumer::connect(cfg).unwrap();
    let mut got = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < want.len() && Instant::now() < deadline {
        for item in consumer
            .poll_items(Duration::from_millis(500), &codec)
            .unwrap()
        {
            match item {
                Item::Record { key, value, .. } => {
                    let key = String::from_utf8(key.unwrap().to_vec()).unwrap();
                    got.insert(key, value);
                }
                other => panic!("undecodable over TLS: {other:?}"),
            }
        }
    }
    consumer.close().unwrap();
    assert_eq!(got.len(), want.len(), "records read over TLS");
    for (name, case) in &want {
        assert_json_eq(&got[name], case.expected(), name);
    }
    eprintln!(
        "TLS: {} SensorData records produced and consumed through socat/rustls, schema id {id} over HTTPS",
        got.len()
    );

    // A client that trusts another CA is refused, with a typed error.
    let bad = Producer::connect(producer_cfg(&bootstrap, other_ca.clone()))
        .and_then(|p| p.send(&topic, None, b"never"));
    let e = bad.expect_err("a producer trusting the wrong CA must fail");
    assert_eq!(e.kind(), "tls-untrusted-broker", "{e}");
    let mut cfg = ConsumerConfig::group(&bootstrap, &unique_topic("g-bad"), &[&topic]);
    cfg.tls = tls(other_ca.clone());
    cfg.connect_deadline = Duration::from_secs(5);
    let e = Consumer::connect(cfg)
        .and_then(|mut c| c.poll(Duration::from_secs(2)).map(|_| ()))
        .expect_err("a consumer trusting the wrong CA must fail");
    assert_eq!(e.kind(), "tls-untrusted-broker", "{e}");
    let e = registry_client(&reg_url, other_ca)
        .schema_by_id(id)
        .expect_err("the registry client trusting the wrong CA must fail");
    assert_eq!(e.kind(), "tls-error", "{e}");
    // The same registry, trusted, answers.
    assert!(registry_client(&reg_url, ca).schema_by_id(id).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}
