//! Consumer integration tests against a real broker (started here through the test kit), the
//! group side: reading everything in order, members splitting partitions and taking over, static
//! membership, heartbeats while the application is busy, a broker restart, a topic created after
//! subscribing. Offsets and what a poll hands out are in consumer_offsets.rs; interop with kafkajs
//! is in tests/interop/consumer_peers.rs.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::consumer_support::*;
use avro_edge::{Assignor, Consumer, ErrorKind};
use avro_edge_testkit::{require_broker, require_own_broker, unique_topic};

#[test]
#[ignore = "needs a Kafka broker"]
fn consumes_everything_from_the_beginning_in_order_per_partition() {
    let broker = require_broker();
    let topic = unique_topic("cons-order");
    let p = producer(&broker.bootstrap(), 3);
    let sent = produce(&p, &topic, 300, "a");
    assert_eq!(
        sent.keys()
            .map(|(part, _)| *part)
            .collect::<BTreeSet<_>>()
            .len(),
        3,
        "records on all 3 partitions"
    );

    let mut c = Consumer::connect(group_cfg(
        &broker.bootstrap(),
        &unique_topic("g-order"),
        &topic,
    ))
    .unwrap();
    let t = Instant::now();
    let got = poll_n(&mut c, 300, Duration::from_secs(60));
    eprintln!(
        "join + read 300 records: {:?} (assignment {:?})",
        t.elapsed(),
        c.assignment()
    );
    assert_eq!(got.len(), 300, "every record back exactly once");
    check_in_order(&got);
    for r in &got {
        assert_eq!(&*r.topic, topic.as_str());
        let (key, value) = &sent[&(r.partition, r.offset)];
        assert_eq!(
            r.key.as_deref(),
            Some(&key[..]),
            "key at {}-{}",
            r.partition,
            r.offset
        );
        assert_eq!(
            r.value.as_deref(),
            Some(&value[..]),
            "value at {}-{}",
            r.partition,
            r.offset
        );
        let seq = String::from_utf8(key[1..].to_vec()).unwrap();
        assert_eq!(
            r.headers,
            vec![(
                "seq".to_string(),
                Some(bytes::Bytes::from(seq.into_bytes()))
            )]
        );
        assert!(
            r.timestamp > 1_600_000_000_000,
            "a real create time: {}",
            r.timestamp
        );
    }
    // Nothing more arrives, and a later record does.
    assert!(c.poll(Duration::from_millis(800)).unwrap().is_empty());
    let more = produce(&p, &topic, 5, "b");
    let got = poll_n(&mut c, 5, Duration::from_secs(20));
    assert_eq!(
        got.iter()
            .map(|r| (r.partition, r.offset))
            .collect::<BTreeSet<_>>(),
        more.keys().copied().collect()
    );
    c.close().unwrap();
}

#[test]
#[ignore = "needs a Kafka broker"]
fn two_members_split_partitions_and_the_survivor_takes_over() {
    let broker = require_broker();
    let topic = unique_topic("cons-split");
    let p = producer(&broker.bootstrap(), 4);
    let mut total = produce(&p, &topic, 40, "a").len();
    let group = unique_topic("g-split");

    for assignor in [Assignor::Range, Assignor::RoundRobin] {
        let group = format!("{group}-{}", assignor.name());
        let mut cfg = group_cfg(&broker.bootstrap(), &group, &topic);
        cfg.assignor = assignor;
        let t = Instant::now();
        let mut c1 = Consumer::connect(cfg.clone()).unwrap();
        let first = poll_n(&mut c1, total, Duration::from_secs(30));
        let solo_join = t.elapsed();
        assert_eq!(first.len(), total, "a fresh group reads the whole topic");
        assert_eq!(
            c1.assignment().len(),
            4,
            "alone, the first member owns all partitions"
        );

        // A second member joins: both poll (each on its own thread) until the group is stable
        // with the partitions split between them.
        let t = Instant::now();
        let mut c2 = Consumer::connect(cfg.clone()).unwrap();
        let (c1, c2) = std::thread::scope(|s| {
            let h1 = s.spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(40);
                while c1.assignment().len() != 2 && Instant::now() < deadline {
                    c1.poll(Duration::from_millis(300)).unwrap();
                }
                c1
            });
            let h2 = s.spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(40);
                while c2.assignment().len() != 2 && Instant::now() < deadline {
                    c2.poll(Duration::from_millis(300)).unwrap();
                }
                c2
            });
            (h1.join().unwrap(), h2.join().unwrap())
        });
        let (mut c1, mut c2) = (c1, c2);
        let rebalance = t.elapsed();
        let a1: BTreeSet<_> = c1.assignment().into_iter().collect();
        let a2: BTreeSet<_> = c2.assignment().into_iter().collect();
        assert_eq!(a1.len(), 2, "{assignor:?}: {a1:?} / {a2:?}");
        assert_eq!(a2.len(), 2, "{assignor:?}: {a1:?} / {a2:?}");
        assert!(a1.is_disjoint(&a2));
        assert_eq!(a1.union(&a2).count(), 4);
        let parts1: Vec<i32> = a1.iter().map(|(_, p)| *p).collect();
        match assignor {
            // Java semantics: members sorted by id; range gives contiguous blocks, roundrobin deals.
            Assignor::Range => assert!(parts1 == [0, 1] || parts1 == [2, 3], "range: {parts1:?}"),
            Assignor::RoundRobin => assert!(
                parts1 == [0, 2] || parts1 == [1, 3],
                "roundrobin: {parts1:?}"
            ),
        }
        // c2 starts where c1's commit (on rebalance) left off: nothing of the first 40 is re-read.
        let dup = c2.poll(Duration::from_millis(500)).unwrap();
        assert!(
            dup.is_empty(),
            "{assignor:?}: re-read {} records after the rebalance",
            dup.len()
        );

        // c2 leaves (LeaveGroup): c1 takes over everything, and reads new records from all partitions.
        let t = Instant::now();
        c2.close().unwrap();
        let deadline = Instant::now() + Duration::from_secs(40);
        let mut after = Vec::new();
        while c1.assignment().len() != 4 && Instant::now() < deadline {
            after.extend(c1.poll(Duration::from_millis(300)).unwrap());
        }
        let takeover = t.elapsed();
        assert_eq!(
            c1.assignment().len(),
            4,
            "{assignor:?}: survivor owns all partitions"
        );
        let more = produce(&p, &topic, 20, "c");
        total += more.len();
        after.extend(poll_n(&mut c1, 20 - after.len(), Duration::from_secs(20)));
        assert_eq!(
            after
                .iter()
                .map(|r| (r.partition, r.offset))
                .collect::<BTreeSet<_>>(),
            more.keys().copied().collect::<BTreeSet<_>>(),
            "{assignor:?}: survivor reads exactly the new records"
        );
        eprintln!(
            "{assignor:?}: first join + read {solo_join:?}, rebalance to 2 members {rebalance:?}, takeover after LeaveGroup {takeover:?}"
        );
        c1.close().unwrap();
    }
}

/// Poll `c` until it owns `n` partitions (or `within` passes); what it read.
fn poll_until_owning(c: &mut Consumer, n: usize, within: Duration) -> Vec<avro_edge::RawRecord> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while c.assignment().len() != n && Instant::now() < deadline {
        got.extend(c.poll(Duration::from_millis(300)).unwrap());
    }
    got
}

/// Static membership (KIP-345, `group_instance_id`) on Apache Kafka: of two static members, one
/// is closed (no LeaveGroup) and started again under the same id within the session timeout. It
/// gets the same partitions back in the same generation, and the other member, polling all the
/// while, sees no rebalance: same member id, same generation, same partitions, and it reads on.
#[test]
#[ignore = "needs a Kafka broker"]
fn a_static_member_restarted_within_the_session_timeout_gets_its_partitions_back() {
    let broker = require_broker();
    let topic = unique_topic("cons-static");
    let p = producer(&broker.bootstrap(), 4);
    produce(&p, &topic, 40, "a");
    let mut cfg = group_cfg(&broker.bootstrap(), &unique_topic("g-static"), &topic);
    cfg.session_timeout = Duration::from_secs(30);
    cfg.heartbeat_interval = Duration::from_secs(1);
    let static_cfg = |id: &str| {
        let mut c = cfg.clone();
        c.group_instance_id = Some(id.to_string());
        c
    };
    let mut a = Consumer::connect(static_cfg("gateway-a")).unwrap();
    poll_until_owning(&mut a, 4, Duration::from_secs(30));
    let mut b = Consumer::connect(static_cfg("gateway-b")).unwrap();
    let (mut a, mut b) = std::thread::scope(|s| {
        let ha = s.spawn(move || {
            poll_until_owning(&mut a, 2, Duration::from_secs(40));
            a
        });
        let hb = s.spawn(move || {
            poll_until_owning(&mut b, 2, Duration::from_secs(40));
            b
        });
        (ha.join().unwrap(), hb.join().unwrap())
    });
    let (a_member, generation) = a.membership().unwrap();
    let (b_parts, a_parts) = (b.assignment(), a.assignment());
    assert_eq!(
        (a_parts.len(), b_parts.len()),
        (2, 2),
        "{a_parts:?} / {b_parts:?}"
    );
    assert_eq!(b.membership().unwrap().1, generation);

    // b goes away without leaving; a polls on (its own thread) while b is started again.
    let t = Instant::now();
    b.close().unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (a, b2, a_seen) = std::thread::scope(|s| {
        let ha = s.spawn(|| {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                a.poll(Duration::from_millis(300)).unwrap();
                seen.push((a.membership(), a.assignment()));
            }
            (a, seen)
        });
        let mut b2 = Consumer::connect(static_cfg("gateway-b")).unwrap();
        poll_until_owning(&mut b2, 2, Duration::from_secs(20));
        let back = t.elapsed();
        // Give a rebalance, had one started, time to reach a (a few heartbeats).
        std::thread::sleep(Duration::from_secs(4));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (a, seen) = ha.join().unwrap();
        eprintln!("static member back with its partitions {back:?} after close");
        (a, b2, seen)
    });
    let (mut a, mut b2) = (a, b2);
    assert!(t.elapsed() < cfg.session_timeout, "took {:?}", t.elapsed());
    assert_eq!(b2.assignment(), b_parts, "the same partitions back");
    assert_eq!(b2.membership().unwrap().1, generation, "no new generation");
    assert!(!a_seen.is_empty());
    for (m, parts) in &a_seen {
        assert_eq!(
            m.as_ref(),
            Some(&(a_member.clone(), generation)),
            "a saw a rebalance"
        );
        assert_eq!(parts, &a_parts, "a's partitions moved");
    }
    // Both read on: new records on all 4 partitions, each member its own, nothing twice.
    let more = produce(&p, &topic, 40, "b");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < more.len() && Instant::now() < deadline {
        for (c, parts) in [(&mut a, &a_parts), (&mut b2, &b_parts)] {
            for r in c.poll(Duration::from_millis(200)).unwrap() {
                assert!(parts.contains(&(topic.clone(), r.partition)), "{r:?}");
                got.push((r.partition, r.offset));
            }
        }
    }
    assert_eq!(got.len(), more.len(), "nothing twice, nothing missing");
    assert_eq!(
        got.into_iter().collect::<BTreeSet<_>>(),
        more.keys().copied().collect::<BTreeSet<_>>()
    );
    a.close().unwrap();
    b2.close().unwrap();
}

#[test]
#[ignore = "needs a Kafka broker"]
fn heartbeats_keep_the_membership_while_the_application_is_busy() {
    let broker = require_broker();
    let topic = unique_topic("cons-busy");
    let p = producer(&broker.bootstrap(), 2);
    produce(&p, &topic, 10, "a");
    let mut c = Consumer::connect(group_cfg(
        &broker.bootstrap(),
        &unique_topic("g-busy"),
        &topic,
    ))
    .unwrap();
    assert_eq!(poll_n(&mut c, 10, Duration::from_secs(30)).len(), 10);
    let before = c.membership().unwrap();
    // Longer than the 6 s session timeout without a poll: only the heartbeat thread talks.
    std::thread::sleep(Duration::from_secs(9));
    let more = produce(&p, &topic, 4, "b");
    let got = poll_n(&mut c, 4, Duration::from_secs(20));
    assert_eq!(
        c.membership().unwrap(),
        before,
        "same member, same generation: never evicted"
    );
    assert_eq!(
        got.iter()
            .map(|r| (r.partition, r.offset))
            .collect::<BTreeSet<_>>(),
        more.keys().copied().collect()
    );
}

#[test]
#[ignore = "needs a Kafka broker"]
fn consumption_resumes_after_a_broker_restart() {
    let mut broker = require_own_broker();
    let topic = unique_topic("cons-restart");
    let p = producer(&broker.bootstrap(), 2);
    let first = produce(&p, &topic, 30, "a");
    let mut cfg = group_cfg(&broker.bootstrap(), &unique_topic("g-restart"), &topic);
    cfg.connect_deadline = Duration::from_secs(3);
    let mut c = Consumer::connect(cfg).unwrap();
    assert_eq!(poll_n(&mut c, 30, Duration::from_secs(30)).len(), 30);
    c.commit().unwrap();

    broker.kill();
    let t = Instant::now();
    let err = c.poll(Duration::from_secs(2)).unwrap_err();
    eprintln!(
        "poll with the broker down: {} after {:?}: {err}",
        err.kind(),
        t.elapsed()
    );
    assert!(
        matches!(
            err.kind().as_str(),
            "broker-unreachable" | "disconnected" | "timeout"
        ),
        "{}",
        err.kind()
    );
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "poll gave up near its deadline: {:?}",
        t.elapsed()
    );

    broker.restart().unwrap();
    let p = producer(&broker.bootstrap(), 2);
    let second = produce(&p, &topic, 20, "b");
    let t = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while got.len() < 20 && Instant::now() < deadline {
        match c.poll(Duration::from_secs(1)) {
            Ok(r) => got.extend(r),
            Err(e) => eprintln!("after restart: {e}"),
        }
    }
    eprintln!("resumed after restart in {:?}", t.elapsed());
    let got: BTreeSet<_> = got.iter().map(|r| (r.partition, r.offset)).collect();
    assert_eq!(
        got,
        second.keys().copied().collect::<BTreeSet<_>>(),
        "exactly the new records, none of {}",
        first.len()
    );

    // Closing with the broker gone is bounded (final commit and LeaveGroup give up).
    broker.kill();
    let t = Instant::now();
    let closed = c.close();
    eprintln!(
        "close with the broker down: {:?} after {:?}",
        closed.as_ref().map_err(|e| e.kind()),
        t.elapsed()
    );
    assert!(
        closed.is_err(),
        "the final commit cannot have reached the broker"
    );
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "close took {:?}",
        t.elapsed()
    );
}

#[test]
#[ignore = "needs a Kafka broker"]
fn a_topic_created_after_subscribing_is_picked_up() {
    let broker = require_broker();
    let topic = unique_topic("cons-later");
    let mut c = Consumer::connect(group_cfg(
        &broker.bootstrap(),
        &unique_topic("g-later"),
        &topic,
    ))
    .unwrap();
    assert!(c.poll(Duration::from_secs(2)).unwrap().is_empty());
    assert!(c.assignment().is_empty(), "nothing to own yet");
    let p = producer(&broker.bootstrap(), 2);
    let sent = produce(&p, &topic, 10, "a");
    let t = Instant::now();
    let got = poll_n(&mut c, 10, Duration::from_secs(30));
    eprintln!("new topic picked up after {:?}", t.elapsed());
    assert_eq!(
        got.iter()
            .map(|r| (r.partition, r.offset))
            .collect::<BTreeSet<_>>(),
        sent.keys().copied().collect()
    );
    assert_eq!(c.assignment().len(), 2);
}
