//! The transactional producer against one Apache Kafka node, read back by our own consumer with
//! both isolation levels: a committed transaction is seen, an aborted one never (though its
//! records are in the log, which read_uncommitted proves); a second producer with the same
//! transactional id fences the first (`producer-fenced`) and aborts its open transaction; a
//! record refused inside a transaction makes it abortable, and after the abort (which bumps the
//! epoch) the next transaction commits. The Java and librdkafka consumers' view of the same is in
//! tests/interop/transactions.rs.

use std::time::{Duration, Instant};

use avro_edge::{
    Consumer, ConsumerConfig, DeliveryHandle, ErrorKind, IsolationLevel, Kind, OffsetReset,
    Producer, ProducerConfig, TopicSpec,
};
use avro_edge_testkit::{create_topic_with_configs, require_broker, unique_topic};

const PARTITIONS: i32 = 3;
const T: Duration = Duration::from_secs(30);

fn txn_producer(bootstrap: &str, id: &str) -> Producer {
    let mut cfg = ProducerConfig::new([bootstrap]);
    cfg.transactional_id = Some(id.to_string());
    cfg.auto_create = Some(TopicSpec {
        partitions: PARTITIONS,
        replication: 1,
    });
    cfg.delivery_timeout = Duration::from_secs(20);
    cfg.request_timeout = Duration::from_secs(10);
    let p = Producer::connect(cfg).unwrap();
    p.init_transactions(T).unwrap();
    p
}

/// Send `prefix-0 ..` (keys spread over the partitions) in the open transaction.
fn send(p: &Producer, topic: &str, prefix: &str, n: usize) -> Vec<DeliveryHandle> {
    (0..n)
        .map(|i| {
            let key = format!("k{i}");
            p.enqueue(
                topic,
                Some(key.as_bytes()),
                format!("{prefix}-{i}").as_bytes(),
            )
        })
        .collect()
}

/// Every value of `topic` read with `isolation`, polling until `want` arrived and 2 s more.
pub fn read_values(
    bootstrap: &str,
    topic: &str,
    isolation: IsolationLevel,
    want: usize,
) -> Vec<String> {
    let parts: Vec<(&str, i32)> = (0..PARTITIONS).map(|p| (topic, p)).collect();
    let mut cfg = ConsumerConfig::assign(bootstrap, &parts);
    cfg.auto_offset_reset = OffsetReset::Earliest;
    cfg.isolation_level = isolation;
    let mut c = Consumer::connect(cfg).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + T;
    let mut quiet_until = None;
    while quiet_until.is_none_or(|q| Instant::now() < q) && Instant::now() < deadline {
        for r in c.poll(Duration::from_millis(200)).unwrap() {
            got.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
        if got.len() >= want && quiet_until.is_none() {
            quiet_until = Some(Instant::now() + Duration::from_secs(2));
        }
    }
    c.close().unwrap();
    got.sort();
    got
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    v.sort();
    v
}

#[test]
#[ignore = "needs a Kafka broker"]
fn committed_transactions_are_seen_and_aborted_ones_never() {
    let broker = require_broker();
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("txn-commit");
    let p = txn_producer(&bootstrap, &unique_topic("txn-id"));
    p.begin_transaction().unwrap();
    for h in send(&p, &topic, "aborted", 20) {
        h.wait().unwrap();
    }
    p.abort_transaction(T).unwrap();
    p.begin_transaction().unwrap();
    let pending = send(&p, &topic, "committed", 20);
    p.commit_transaction(T).unwrap();
    for h in pending {
        h.wait().unwrap();
    }
    // An empty transaction commits without a word to the coordinator.
    p.begin_transaction().unwrap();
    p.commit_transaction(T).unwrap();
    p.close().unwrap();
    let committed = read_values(&bootstrap, &topic, IsolationLevel::ReadCommitted, 20);
    assert_eq!(committed, values("committed", 20));
    // The aborted records were written: only the markers keep them from read_committed.
    let all = read_values(&bootstrap, &topic, IsolationLevel::ReadUncommitted, 40);
    let mut want = values("aborted", 20);
    want.extend(values("committed", 20));
    want.sort();
    assert_eq!(all, want);
}

#[test]
#[ignore = "needs a Kafka broker"]
fn a_second_producer_with_the_id_fences_the_first() {
    let broker = require_broker();
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("txn-fence");
    let id = unique_topic("txn-id");
    let first = txn_producer(&bootstrap, &id);
    first.begin_transaction().unwrap();
    for h in send(&first, &topic, "first", 10) {
        h.wait().unwrap();
    }
    // The second one's InitProducerId aborts the first one's open transaction and fences it.
    let second = txn_producer(&bootstrap, &id);
    let e = first.commit_transaction(T).unwrap_err();
    assert_eq!(e.kind(), Kind::ProducerFenced, "{e}");
    assert!(e.to_string().contains(&id), "{e}");
    // Fenced for good: every later call says so, and no record is taken.
    let again = first.begin_transaction().unwrap_err();
    assert_eq!(again.kind(), Kind::ProducerFenced, "{again}");
    let refused = first.enqueue(&topic, None, b"late").wait().unwrap_err();
    assert_eq!(refused.kind(), Kind::ProducerFenced, "{refused}");
    second.begin_transaction().unwrap();
    for h in send(&second, &topic, "second", 10) {
        h.wait().unwrap();
    }
    second.commit_transaction(T).unwrap();
    second.close().unwrap();
    let _ = first.close();
    let committed = read_values(&bootstrap, &topic, IsolationLevel::ReadCommitted, 10);
    assert_eq!(committed, values("second", 10));
}

#[test]
#[ignore = "needs a Kafka broker"]
fn a_refused_record_makes_the_transaction_abortable_and_the_next_one_commits() {
    let broker = require_broker();
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("txn-refused");
    create_topic_with_configs(
        &bootstrap,
        &topic,
        PARTITIONS,
        &[("max.message.bytes", "2048")],
    )
    .unwrap();
    let p = txn_producer(&bootstrap, &unique_topic("txn-id"));
    // Sends outside a transaction are refused before anything is queued.
    let e = p.enqueue(&topic, None, b"x").wait().unwrap_err();
    assert_eq!(e.kind(), Kind::TransactionState, "{e}");
    p.begin_transaction().unwrap();
    let good = send(&p, &topic, "lost", 10);
    let big = p.enqueue(&topic, Some(b"k0"), &[7u8; 4096]);
    let e = p.commit_transaction(T).unwrap_err();
    assert_eq!(e.kind(), Kind::TransactionAbortable, "{e}");
    let refused = big.wait().unwrap_err();
    assert_eq!(refused.kind(), Kind::MessageTooLarge, "{refused}");
    assert!(
        p.begin_transaction().is_err(),
        "the transaction is still open"
    );
    p.abort_transaction(T).unwrap();
    drop(good);
    // The abort bumped the epoch: the sequences of the refused partition start again.
    p.begin_transaction().unwrap();
    let pending = send(&p, &topic, "after", 10);
    p.commit_transaction(T).unwrap();
    for h in pending {
        h.wait().unwrap();
    }
    p.close().unwrap();
    let committed = read_values(&bootstrap, &topic, IsolationLevel::ReadCommitted, 10);
    assert_eq!(committed, values("after", 10));
}
