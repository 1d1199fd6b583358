//! Exactly-once forwarding (`forward.exactly_once`) on a 3-broker Apache Kafka cluster (replication
//! 3, `min.insync.replicas=2`), every reading counted by id by three readers: our consumer, Java's
//! with `isolation.level=read_committed`, and `avro-edge consume`. Each prints its row:
//! - the forwarder SIGKILLed at random moments of a steady stream and restarted on its spool:
//!   0 duplicates, 0 lost; beside it the same kills without exactly-once (its resends per kill);
//!   `AVRO_EDGE_EOS_KILLS` and `AVRO_EDGE_EOS_READINGS` (default 3 kills over 10,000 readings)
//!   and `AVRO_EDGE_EOS_SEED` make the full run (`scripts/eos-kills`: 10 over 50,000);
//! - the leader of the busiest partition SIGKILLed, then the transaction coordinator: 0 / 0;
//! - a second forwarder on a copy of the spool (same gateway id) fences the first, which stops
//!   with `error[producer-fenced]`: nothing doubled;
//! - a power cut (SIGKILL, then the spool cut back to its last fsync): nothing that survived in
//!   the spool, or came after, is skipped; what the cut lost is counted.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::eos_support::{
    LONG, SENSORS, Scenario, cli_consume, cluster, count, cut_to_last_sync, java_read_committed,
    spool_ids, transaction_coordinator,
};
use crate::forward_bin_support::{Fwd, PARTITIONS, command, print_row, read_back, tail};
use avro_edge::partition_for_key;

/// The producer settings of these scenarios: room for a broker failover (as tests/cluster/faults.rs).
const STREAM: [&str; 2] = [
    "kafka.delivery_timeout_ms=60000",
    "kafka.request_timeout_ms=10000",
];
const EOS: &str = "forward.exactly_once=true";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every reader's view of the topic against the accepted readings: (reader, duplicates, lost).
fn read_three_ways(s: &Scenario) -> Vec<(&'static str, usize, usize)> {
    let accepted = s.accepted_ids();
    let n = accepted.len();
    let ours: Vec<_> = read_back(&s.bootstrap, &s.topic, n, LONG)
        .into_iter()
        .map(|g| g.id)
        .collect();
    let java = java_read_committed(&s.bootstrap, &s.topic, n, Duration::from_secs(120));
    let cli = cli_consume(&s.bootstrap, &s.topic, n, false);
    let mut rows = Vec::new();
    for (reader, got) in [
        ("avro-edge consumer library", ours),
        ("Java consumer, read_committed", java),
        ("avro-edge consume", cli),
    ] {
        let (dups, lost, unknown) = count(&got, &accepted);
        assert_eq!(unknown, 0, "{reader}: readings never accepted");
        rows.push((reader, dups, lost));
    }
    rows
}

/// SIGKILL the forwarder `kills` times at random moments (seeded) of the stream (each run first
/// delivers something, then streams for 0.2 to 2 s), then let a last run take the rest: the
/// pauses before each kill. The feed is paced to last about 5 s per run.
fn kill_runs(s: &mut Scenario, kills: u64, seed: u64) -> Vec<Duration> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut pauses = Vec::new();
    let chunks = (s.lines.len() / 50).max(1) as u64;
    s.feed_pause = Duration::from_millis(5000 * (kills + 1) / chunks).max(Duration::from_millis(1));
    for _ in 0..kills {
        if s.accepted == s.lines.len() {
            break;
        }
        s.run();
        s.wait_metric("acked_total", 1);
        let pause = Duration::from_millis(rng.u64(200..2000));
        std::thread::sleep(pause);
        pauses.push(pause);
        s.kill();
    }
    s.finish();
    pauses
}

#[test]
#[ignore = "needs Apache Kafka (3-node cluster) and the Java client"]
fn exactly_once_survives_forwarder_kills() {
    let kills = env_or("AVRO_EDGE_EOS_KILLS", 3);
    let n = env_or("AVRO_EDGE_EOS_READINGS", 10_000) as usize;
    let seed = env_or("AVRO_EDGE_EOS_SEED", fastrand::u64(..));
    eprintln!("seed {seed} (AVRO_EDGE_EOS_SEED={seed} replays the kill moments)");
    let c = cluster();
    // Transactions of a second: a kill finds many records in the open one (aborted, sent again).
    let mut sets = STREAM.to_vec();
    sets.extend([EOS, "forward.commit_interval_ms=1000"]);
    let mut s = Scenario::new(&c, "kills", n, &sets, "info");
    let pauses = kill_runs(&mut s, kills, seed);
    // Without exactly-once, the same kills: what a restart resends.
    let mut plain = Scenario::new(&c, "kills-plain", n, &STREAM, "info");
    kill_runs(&mut plain, kills, seed);

    let skipped: Vec<u64> = s
        .starts
        .iter()
        .skip(1)
        .map(|r| r.skipped.unwrap_or(0))
        .collect();
    let eos_resent: Vec<u64> = (s.starts.iter().skip(1))
        .map(|r| r.possible_duplicates)
        .collect();
    let resent: Vec<u64> = (plain.starts.iter().skip(1))
        .map(|r| r.possible_duplicates)
        .collect();
    let got: Vec<_> = read_back(&plain.bootstrap, &plain.topic, n, LONG)
        .into_iter()
        .map(|g| g.id)
        .collect();
    let (plain_dups, plain_lost, _) = count(&got, &plain.accepted_ids());
    let rows = read_three_ways(&s);
    let kill_ms: Vec<u128> = pauses.iter().map(Duration::as_millis).collect();
    eprintln!(
        "\n| mode | readings | kills | reader | duplicates | lost | per kill |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    for (reader, dups, lost) in &rows {
        eprintln!(
            "| exactly-once | {} | {kills} | {reader} | {dups} | {lost} | sent in the transaction the kill left open, aborted and sent again: {eos_resent:?}; committed but not yet released from the spool, skipped: {skipped:?} |",
            s.accepted
        );
    }
    eprintln!(
        "| at-least-once (forward.exactly_once=false) | {} | {kills} | avro-edge consumer library | {plain_dups} | {plain_lost} | resent on restart (possible duplicates): {resent:?} |\n",
        plain.accepted
    );
    eprintln!("kills {kill_ms:?} ms after each run's first delivery; seed {seed}");
    for (reader, dups, lost) in rows {
        assert_eq!(
            (dups, lost),
            (0, 0),
            "{reader}: duplicates, lost (seed {seed})"
        );
    }
    assert_eq!(plain_lost, 0, "at-least-once lost readings");
    assert!(
        plain_dups as u64 <= resent.iter().sum::<u64>(),
        "at-least-once: {plain_dups} duplicates, {resent:?} resent"
    );
    let _ = std::fs::remove_dir_all(&s.dir);
    let _ = std::fs::remove_dir_all(&plain.dir);
}

/// The partition the most readings go to (keys `s-0` … `s-6`).
fn busiest_partition() -> i32 {
    let mut per = [0usize; PARTITIONS as usize];
    for s in 0..SENSORS {
        per[partition_for_key(format!("s-{s}").as_bytes(), PARTITIONS) as usize] += 1;
    }
    (0..PARTITIONS)
        .max_by_key(|p| per[*p as usize])
        .unwrap_or(0)
}

#[test]
#[ignore = "needs Apache Kafka (3-node cluster) and the Java client"]
fn exactly_once_survives_a_leader_and_a_coordinator_kill() {
    let mut c = cluster();
    let mut sets = STREAM.to_vec();
    sets.push(EOS);
    let mut s = Scenario::new(&c, "brokers", 150_000, &sets, "info");
    s.run();
    s.wait_metric("acked_total", 3000);
    // The leader of the busiest partition; then every record spooled by then, and 2,000 more,
    // must be committed (through the new leader).
    let busiest = busiest_partition();
    let leader = c.leader(&s.topic, busiest).unwrap().expect("leader");
    let spooled = s.metric("spooled_total");
    let t = Instant::now();
    c.kill(c.index_of(leader).unwrap()).unwrap();
    s.wait_metric("acked_total", spooled + 2000);
    let after_leader = t.elapsed();
    c.start_node(c.index_of(leader).unwrap()).unwrap();
    c.wait_in_sync(&s.topic, PARTITIONS, 3, LONG).unwrap();
    // The transaction coordinator of the forwarder's transactional id: the same, through the
    // coordinator that takes over.
    let id = format!("avro-edge-{}", s.gateway());
    let coordinator = transaction_coordinator(&s.bootstrap, &id);
    let spooled = s.metric("spooled_total");
    let t = Instant::now();
    c.kill(c.index_of(coordinator).unwrap()).unwrap();
    s.wait_metric("acked_total", spooled + 2000);
    let after_coordinator = t.elapsed();
    let moved = transaction_coordinator(&s.bootstrap, &id);
    assert_ne!(moved, coordinator, "the coordinator moved");
    let log = s.end_run();
    // Told by the sender when it stops (each failed step is a DEBUG line; its cause is told once).
    let aborted: u64 = log
        .lines()
        .filter(|l| l.contains("exactly-once sender stopped"))
        .filter_map(|l| {
            l.split(" aborted=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    let rows = read_three_ways(&s);
    for (reader, dups, lost) in &rows {
        print_row(
            &format!(
                "exactly-once, leader of partition {busiest} (node {leader}) then the transaction coordinator (node {coordinator}) SIGKILLed; {reader}"
            ),
            s.accepted,
            &tally_of(s.accepted - lost, *dups, *lost),
            &format!(
                "everything spooled at the kill and 2,000 more committed {:.1} s after the leader kill, {:.1} s after the coordinator kill (node {moved} took over); {aborted} transactions aborted and sent again",
                after_leader.as_secs_f64(),
                after_coordinator.as_secs_f64()
            ),
        );
    }
    for (reader, dups, lost) in rows {
        assert_eq!((dups, lost), (0, 0), "{reader}: duplicates, lost");
    }
    let _ = std::fs::remove_dir_all(&s.dir);
}

/// A row's counts.
fn tally_of(delivered: usize, duplicates: usize, lost: usize) -> crate::forward_bin_support::Tally {
    crate::forward_bin_support::Tally {
        delivered,
        duplicates,
        lost,
    }
}

#[test]
#[ignore = "needs Apache Kafka (3-node cluster)"]
fn a_second_forwarder_on_a_copy_of_the_spool_fences_the_first() {
    let c = cluster();
    // Long transactions: the first forwarder has one open when the second one starts.
    let mut sets = STREAM.to_vec();
    sets.extend([EOS, "forward.commit_interval_ms=3000"]);
    let mut s = Scenario::new(&c, "fence", 60_000, &sets, "info");
    s.run();
    s.wait_metric("acked_total", 1);
    // A copy of the spool, taken while the first forwarder runs: same id, same gateway.
    let copy = s.dir.join("copy");
    std::fs::create_dir_all(copy.join("spool")).unwrap();
    for e in std::fs::read_dir(s.spool_dir()).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "lock" {
            std::fs::copy(e.path(), copy.join("spool").join(e.file_name())).unwrap();
        }
    }
    let in_copy = spool_ids(&copy.join("spool"));
    let mut args: Vec<String> = Vec::new();
    for set in STREAM.iter().chain([&EOS]) {
        args.extend(["--set".to_string(), set.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let second = Fwd::start(
        command(&copy, &s.bootstrap, &s.topic, &args),
        copy.join("forward.log"),
        true,
    );
    let second_log = second.wait_ok(LONG);
    // The first one's next send or commit is refused: it stops, saying why.
    let (status, first_log) = s.wait_exit(LONG);
    assert!(!status.success(), "the fenced forwarder exited {status}");
    assert!(
        first_log.contains("error[producer-fenced]"),
        "the fenced forwarder's log:\n{}",
        tail(&first_log, 20)
    );
    let accepted_by_first = s.accepted;
    let got = cli_consume(&s.bootstrap, &s.topic, accepted_by_first, false);
    let (dups, _, unknown) = count(&got, &s.accepted_ids());
    let delivered: HashSet<&(String, i64)> = got.iter().collect();
    let missing = in_copy.iter().filter(|id| !delivered.contains(id)).count();
    print_row(
        "exactly-once, a second forwarder started on a copy of the spool (same gateway id), avro-edge consume",
        accepted_by_first,
        &tally_of(delivered.len(), dups, missing),
        &format!(
            "the first stopped with error[producer-fenced]; {} readings in the copy, {missing} of them not delivered; \
             the first's readings after the copy stay in its spool",
            in_copy.len()
        ),
    );
    eprintln!("second forwarder's log:\n{}", tail(&second_log, 8));
    assert_eq!(unknown, 0, "readings the first forwarder never accepted");
    assert_eq!(dups, 0, "doubled readings");
    assert_eq!(missing, 0, "readings of the copy not delivered");
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[test]
#[ignore = "needs Apache Kafka (3-node cluster) and the Java client"]
fn a_power_cut_skips_no_reading_that_survived_or_came_after() {
    let c = cluster();
    let mut sets = STREAM.to_vec();
    // A long fsync interval: a cut loses up to 5 s of records, many of them committed already.
    sets.extend([EOS, "spool.fsync=interval", "spool.fsync_interval_ms=5000"]);
    let log = "info,avro_edge::spool=debug";
    let mut s = Scenario::new(&c, "power", 40_000, &sets, log);
    let seed = env_or("AVRO_EDGE_EOS_SEED", fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut cut_away: Vec<(String, i64)> = Vec::new();
    let mut cuts = Vec::new();
    for _ in 0..3 {
        s.run();
        s.wait_metric("acked_total", 1);
        std::thread::sleep(Duration::from_millis(rng.u64(1000..4000)));
        let run_log = s.kill();
        let cut = cut_to_last_sync(&s.spool_dir(), &run_log);
        cuts.push(format!(
            "{} B cut ({} readings), cursor back to {:?}",
            cut.bytes,
            cut.readings.len(),
            cut.cursor
        ));
        cut_away.extend(cut.readings);
    }
    s.finish();
    let accepted = s.accepted_ids();
    let gone: HashSet<&(String, i64)> = cut_away.iter().collect();
    // Readings that survived in the spool, or were accepted after a cut: every one must arrive.
    // (The topic holds more: readings committed before the cut took them from the spool.)
    let must: Vec<(String, i64)> = accepted
        .iter()
        .filter(|id| !gone.contains(id))
        .cloned()
        .collect();
    let mut rows = Vec::new();
    let all = Duration::from_secs(30);
    for (reader, got) in [
        (
            "Java consumer, read_committed",
            java_read_committed(&s.bootstrap, &s.topic, 0, all),
        ),
        (
            "avro-edge consume",
            cli_consume(&s.bootstrap, &s.topic, accepted.len(), false),
        ),
    ] {
        let (dups, skipped, _) = count(&got, &must);
        let (_, _, unknown) = count(&got, &accepted);
        let seen: HashSet<&(String, i64)> = got.iter().collect();
        let lost_to_cut = cut_away.iter().filter(|id| !seen.contains(id)).count();
        rows.push((reader, dups, skipped, unknown, lost_to_cut));
    }
    eprintln!(
        "\n| scenario | reader | accepted | duplicates | survived or later, not delivered | cut from the spool and never committed (lost to the cuts) |\n| --- | --- | --- | --- | --- | --- |"
    );
    for (reader, dups, skipped, _, lost) in &rows {
        eprintln!(
            "| power cut x3 (fsync interval 5 s), exactly-once | {reader} | {} | {dups} | {skipped} | {lost} |",
            accepted.len()
        );
    }
    eprintln!("cuts: {cuts:?}; seed {seed}\n");
    for (reader, dups, skipped, unknown, _) in rows {
        assert_eq!(unknown, 0, "{reader}: readings never accepted");
        assert_eq!(
            (dups, skipped),
            (0, 0),
            "{reader}: duplicates, skipped (seed {seed})"
        );
    }
    let _ = std::fs::remove_dir_all(&s.dir);
}
