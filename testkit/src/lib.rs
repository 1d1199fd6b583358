//! Test and benchmark support for avro-edge. A dev-dependency only (`publish = false`): nothing here
//! ships in the library or the gateway binary.
//!
//! | module | job |
//! | --- | --- |
//! | [`acls`] | grant and revoke a topic ACL on a broker with an authorizer (raw CreateAcls / DeleteAcls) |
//! | [`test_broker`] | the broker every broker test uses: Apache Kafka (one shared node, or an own one to kill and restart), or tansu with `AVRO_EDGE_TEST_BROKER=tansu` |
//! | [`broker`] | start, stop and restart a local tansu broker; unique topic names |
//! | [`kafka`] | Apache Kafka (KRaft) clusters of 1..n nodes from the cached jars, with per-node kill/stop/start/pause/resume, extra listeners, SASL users |
//! | [`require`] | what a test needs (broker, peers, tools): present, or the test fails saying `needs …` |
//! | [`peers`] | where the Python, Node.js and Java interop peers and the scripts' cache live |
//! | [`metrics`] | read a running forwarder's Prometheus endpoint |
//! | [`process`] | child processes (stdin in, output out), free ports, peak RSS |
//! | [`pki`] | a throwaway test CA and server certificate made with the `openssl` CLI |
//! | [`fake_broker`] | a scripted fake broker (or a few naming each other): honest ApiVersions, then crafted, truncated, held or missing answers |
//! | [`fake_log`] | a fake partition log with Kafka's producer-state rules (duplicate window, sequence gaps, epoch fencing) for the fake broker |
//! | [`kafka_read`] | read back what a broker stored, with raw Fetch requests and an independent decoder |
//! | [`topics`] | create a topic with topic-level configs (raw CreateTopics) |
//! | [`producer`] | the producer settings the cluster fault tests share |
//! | [`logs`] | the client's `tracing` output in a test, with `RUST_LOG` |
//! | [`paths`] | the project checkout and fresh scratch directories |
//! | [`soak`] | the seeded fault soak (issue 15): cluster, forwarder, group members, nemesis, checker, report |
//! | [`net`] | a TCP proxy between clients and a broker: pass, cut (refuse / blackhole), slow (bit/s cap, delay), reset; bytes counted each way |
//!
//! Tests that need something external are `#[ignore = "needs …"]` and call a [`require`] function
//! first: `cargo test` lists them as ignored; `cargo test -- --include-ignored` (scripts/test) runs
//! them, and a missing broker or peer is then a failure with the reason, never a silent pass.

pub mod acls;
pub mod broker;
pub mod fake_broker;
pub mod fake_log;
pub mod kafka;
pub mod kafka_read;
pub mod logs;
pub mod metrics;
pub mod net;
pub mod paths;
pub mod peers;
pub mod pki;
pub mod process;
pub mod producer;
pub mod require;
pub mod soak;
pub mod test_broker;
pub mod topics;

pub use acls::{AclOperation, allow_topic, authorizer_props, revoke_topic};
pub use broker::{Broker, Storage, TestkitError, tansu_bin, unique_topic};
pub use fake_broker::{Call, FakeBroker, Imitate, Reply, api_versions_answer};
pub use fake_log::{Appended, FakeLog};
pub use kafka::{KafkaCluster, KafkaListener, KafkaOpts, KafkaTestError, ListenerTls, SaslUser};
pub use kafka_read::{
    RawBatch, decode_batches, decode_raw_batches, fetch_batches, fetch_batches_each,
    fetch_partition, fetch_partition_each, read_client,
};
pub use logs::{init_logs, log_time_us};
pub use metrics::{metric, wait_metric};
pub use net::{Cut, Link, Mode, Proxy, Traffic};
pub use paths::{root, tmpdir};
pub use peers::{JavaPeer, cache_dir, java_peer, node_peers_dir, python, python_has};
pub use pki::make_test_certs;
pub use process::{free_addr, free_port, peak_rss_kb, run_with_input};
pub use producer::cluster_producer_config;
pub use require::{
    in_ci, needs, require_broker, require_broker_with, require_java_peer, require_node_peers,
    require_own_broker, require_python, require_test_certs, require_tools,
};
pub use test_broker::{
    BrokerKind, BrokerSetup, TEST_BROKER_ENV, TestBroker, TestBrokerError, process_cluster,
};
pub use topics::create_topic_with_configs;
