//! The field's yardsticks beside ours, in one table: Kafka's own `ProducerPerformance` /
//! `ConsumerPerformance` (the `kafka-producer-perf-test` / `kafka-consumer-perf-test` classes in the
//! cached kafka-tools jar), librdkafka (confluent-kafka: `peers/python/bench_produce.py`,
//! `bench_consume.py`) and our library producer and consumer, on the same broker and record size.
//!
//! Run: `cargo bench --bench yardsticks`. The broker is the testkit's shared one
//! ([`TestBroker::shared_full_jit`]: `$AVRO_EDGE_KAFKA_BROKERS`, else an Apache Kafka node started for
//! the run with the JVM's full JIT, as issue 17 measured kcat; tansu with
//! `AVRO_EDGE_TEST_BROKER=tansu`). Produce: N records (default 200,000, `AVRO_EDGE_BENCH_N`) with 40-byte
//! values (SensorData-sized) into a fresh 3-partition topic each run, acks=all, linger.ms=5, as fast as
//! each goes (`--throughput -1`). ProducerPerformance sends random payloads with no key (its own tool's
//! way); ours and librdkafka send keys `sensor-<i % 100>` cycling 1,000 prebuilt values (as in the
//! producer bench). Consume: each consumer reads the N records ProducerPerformance wrote, in a fresh
//! group from the earliest offset, raw bytes (nothing decoded); every rate is over the total from before
//! connect (group join included; ConsumerPerformance's `nMsg.sec`). Peak RSS of every side is the
//! kernel's `ru_maxrss` from `/usr/bin/time` (for the JVM, its process RSS; for librdkafka, the Python
//! process around it). MiB/s counts value bytes (N × 40 B). Each figure is the median of
//! `AVRO_EDGE_BENCH_RUNS` runs (default 3). A row is printed with a rate only when every run got all N
//! records; otherwise the bench exits non-zero after the table. Must not assert on speed.
//! The librdkafka rows run it from Python (confluent-kafka), which bounds their rate (labelled so).
//!
//! Then a second table of whole processes, the commands as a user runs them (`common/whole_process.rs`):
//! `kcat -P` / `kcat -C` (librdkafka in C, Debian's `kcat`, installed by `scripts/setup`) beside
//! `avro-edge produce` / `avro-edge consume` of the glibc and static musl release builds
//! (`scripts/bench-builds`), SensorData records, in the same rounds. `AVRO_EDGE_BENCH_WHOLE_ONLY=1` runs
//! only that table (`AVRO_EDGE_BENCH_N=1000000` for the 1M figures).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use avro_edge::__test::{self as kafka, Client, ClientConfig};
use avro_edge::TopicSpec;
use avro_edge::{Consumer, ConsumerConfig, OffsetReset};
use avro_edge_testkit::{BrokerKind, TestBroker, python, unique_topic};

#[path = "common/builds.rs"]
mod builds;
#[path = "common/produce_child.rs"]
mod produce_child;
#[path = "common/whole_process.rs"]
mod whole_process;

const PARTITIONS: i32 = 3;
const RECORD_SIZE: usize = 40;

/// Child: our group consumer reads `n` raw records; prints msgs, secs (before connect → last record).
fn consume_child(bootstrap: &str, topic: &str, n: usize) {
    let mut cfg = ConsumerConfig::group(bootstrap, &unique_topic("bench-yard-ours"), &[topic]);
    cfg.auto_offset_reset = OffsetReset::Earliest;
    let start = Instant::now();
    let mut c = Consumer::connect(cfg).expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut count = 0;
    let mut last = start;
    while count < n && Instant::now() < deadline {
        let got = c.poll(Duration::from_millis(500)).expect("poll").len();
        if got > 0 {
            count += got;
            last = Instant::now();
        }
    }
    let _ = c.close();
    println!(
        "{}",
        serde_json::json!({"msgs": count, "secs": (last - start).as_secs_f64()})
    );
}

/// One side's run: records it got through, seconds, peak RSS.
struct Run {
    msgs: f64,
    secs: f64,
    rss_kb: u64,
}

struct Row {
    side: &'static str,
    name: &'static str,
    runs: Vec<Option<Run>>,
}

fn java() -> PathBuf {
    std::env::var_os("JAVA_HOME")
        .map(|h| PathBuf::from(h).join("bin/java"))
        .filter(|j| j.is_file())
        .unwrap_or_else(|| PathBuf::from("java"))
}

/// Run a Kafka tools class (heap as the kafka-*-perf-test scripts set it).
fn kafka_tool(class: &str, args: &[&str]) -> Option<builds::Timed> {
    let libs = match avro_edge_testkit::kafka::kafka_libs() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("yardsticks: {class} not run: {e}");
            return None;
        }
    };
    let cp = format!("{}/*", libs.display());
    let mut all = vec!["-Xmx512M", "-cp", &cp, class];
    all.extend_from_slice(args);
    match builds::timed(&java(), &all, &[], None) {
        Ok(t) if t.ok => Some(t),
        Ok(t) => {
            eprintln!("yardsticks: {class} failed: {}{}", t.stdout, t.stderr);
            None
        }
        Err(e) => {
            eprintln!("yardsticks: {class} not run: {e}");
            None
        }
    }
}

/// ProducerPerformance's summary line: `N records sent, R records/sec (…)`.
fn producer_perf(bootstrap: &str, topic: &str, n: usize) -> Option<Run> {
    let props = format!("bootstrap.servers={bootstrap}");
    let t = kafka_tool(
        "org.apache.kafka.tools.ProducerPerformance",
        &[
            "--topic",
            topic,
            "--num-records",
            &n.to_string(),
            "--record-size",
            &RECORD_SIZE.to_string(),
            "--throughput",
            "-1",
            "--producer-props",
            &props,
            "acks=all",
            "linger.ms=5",
        ],
    )?;
    let line = t
        .stdout
        .lines()
        .rev()
        .find(|l| l.contains("records sent"))?;
    let mut words = line.split_whitespace();
    let sent: f64 = words.next()?.parse().ok()?;
    let rate: f64 = line
        .split(", ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(Run {
        msgs: sent,
        secs: sent / rate,
        rss_kb: t.max_rss_kb,
    })
}

/// ConsumerPerformance's CSV line, by its header's column names.
fn consumer_perf(bootstrap: &str, topic: &str, n: usize) -> Option<Run> {
    let group = unique_topic("bench-yard-java");
    let t = kafka_tool(
        "org.apache.kafka.tools.ConsumerPerformance",
        &[
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--messages",
            &n.to_string(),
            "--group",
            &group,
            "--timeout",
            "60000",
        ],
    )?;
    let mut lines = t.stdout.lines();
    let header: Vec<&str> = lines
        .by_ref()
        .find(|l| l.contains("nMsg.sec"))?
        .split(',')
        .map(str::trim)
        .collect();
    let values: Vec<&str> = lines.next()?.split(',').map(str::trim).collect();
    let col = |name: &str| -> Option<f64> {
        let i = header.iter().position(|h| *h == name)?;
        values.get(i)?.parse().ok()
    };
    let msgs = col("data.consumed.in.nMsg")?;
    let rate = col("nMsg.sec")?;
    Some(Run {
        msgs,
        secs: msgs / rate,
        rss_kb: t.max_rss_kb,
    })
}

/// A child that prints one JSON line with `msgs` and `secs`.
fn json_child(
    bin: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
    what: &str,
) -> Option<Run> {
    let t = match builds::timed(bin, args, env, None) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("yardsticks: {what} not run: {e}");
            return None;
        }
    };
    let v: serde_json::Value = t
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default();
    // The producer child reports acknowledged records as `acked` and failures as `failed`.
    let msgs = v["acked"].as_f64().or_else(|| v["msgs"].as_f64());
    match (t.ok, msgs, v["secs"].as_f64()) {
        (true, Some(msgs), Some(secs)) if v["failed"].as_f64().unwrap_or(0.0) == 0.0 => Some(Run {
            msgs,
            secs,
            rss_kb: t.max_rss_kb,
        }),
        _ => {
            eprintln!("yardsticks: {what} failed: {}{}", t.stdout, t.stderr);
            None
        }
    }
}

fn fresh_topic(client: &Client, tag: &str) -> String {
    let t = unique_topic(tag);
    let spec = TopicSpec {
        partitions: PARTITIONS,
        replication: 1,
    };
    kafka::block_on(client.create_topic(&t, spec)).expect("create topic");
    t
}

/// The whole-process rows: kcat's and our two builds', produce then consume.
struct Whole {
    n: usize,
    inputs: whole_process::Inputs,
    builds: Vec<builds::Build>,
    rows: Vec<whole_process::Row>,
}

impl Whole {
    fn new(n: usize) -> Whole {
        let (found, missing) = builds::builds();
        for m in &missing {
            eprintln!("yardsticks: {m}");
        }
        let row = |side, name: String| whole_process::Row {
            side,
            name,
            runs: Vec::new(),
            failed: 0,
        };
        let mut rows = vec![row("produce", "kcat -P (librdkafka, C)".into())];
        for b in &found {
            rows.push(row("produce", format!("avro-edge produce ({})", b.name)));
        }
        rows.push(row("consume", "kcat -C (librdkafka, C)".into()));
        for b in &found {
            rows.push(row("consume", format!("avro-edge consume ({})", b.name)));
        }
        Whole {
            n,
            inputs: whole_process::inputs(n),
            builds: found,
            rows,
        }
    }

    /// One round: each producer into a fresh topic, then each consumer of the topic the first of
    /// our builds wrote.
    fn round(&mut self, client: &Client, bootstrap: &str) {
        let (n, k) = (self.n, self.builds.len());
        let t = fresh_topic(client, "bench-whole-kcat");
        whole_process::kcat_produce(&mut self.rows[0], bootstrap, &t, &self.inputs);
        let mut ours = Vec::new();
        for (i, b) in self.builds.iter().enumerate() {
            let t = fresh_topic(client, "bench-whole-ours");
            let row = &mut self.rows[1 + i];
            whole_process::ours_produce(row, &b.path, bootstrap, &t, &self.inputs, n);
            ours.push(t);
        }
        let Some(topic) = ours.first() else {
            return;
        };
        whole_process::kcat_consume(&mut self.rows[1 + k], bootstrap, topic, n);
        for (i, b) in self.builds.iter().enumerate() {
            let group = unique_topic("bench-whole-group");
            let row = &mut self.rows[2 + k + i];
            whole_process::ours_consume(row, &b.path, bootstrap, topic, &group, n);
        }
    }
}

fn print_table(rows: &[Row], n: usize, broker: &str) -> bool {
    println!();
    println!(
        "yardsticks: {n} records x {RECORD_SIZE} B values, {PARTITIONS} partitions, {broker}; produce acks=all linger.ms=5 unthrottled; consume raw from earliest in a fresh group (rate over connect+join+read); median of runs"
    );
    println!("| side | client | runs complete | msgs/s | MiB/s | peak RSS (MiB) |");
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    let mut all = true;
    for r in rows {
        let done: Vec<&Run> = r
            .runs
            .iter()
            .flatten()
            .filter(|x| x.msgs >= n as f64 && x.secs > 0.0)
            .collect();
        let complete = !r.runs.is_empty() && done.len() == r.runs.len();
        all &= complete;
        let count = format!("{}/{}", done.len(), r.runs.len());
        if !complete {
            println!("| {} | {} | {count} | incomplete | - | - |", r.side, r.name);
            continue;
        }
        let rate = builds::median(done.iter().map(|x| x.msgs / x.secs).collect());
        let rss = builds::median(done.iter().map(|x| x.rss_kb as f64).collect());
        println!(
            "| {} | {} | {count} | {rate:.0} | {:.2} | {:.1} |",
            r.side,
            r.name,
            rate * RECORD_SIZE as f64 / 1_048_576.0,
            rss / 1024.0
        );
    }
    all
}

fn main() {
    let n: usize = builds::env_count("AVRO_EDGE_BENCH_N", 200_000);
    let args: Vec<String> = std::env::args().collect();
    if let Ok(mode) = std::env::var("AVRO_EDGE_BENCH_CHILD") {
        let (Some(b), Some(t)) = (args.get(1), args.get(2)) else {
            eprintln!("child mode needs BOOTSTRAP TOPIC");
            std::process::exit(2);
        };
        match mode.as_str() {
            "consume" => consume_child(b, t, n),
            _ => produce_child::child(b, t, n),
        }
        return;
    }
    let runs: usize = builds::env_count("AVRO_EDGE_BENCH_RUNS", 3);
    let broker = match TestBroker::shared_full_jit() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("yardsticks: no broker ({e})");
            std::process::exit(1);
        }
    };
    let bootstrap = broker.bootstrap();
    let client = Client::new(ClientConfig {
        bootstrap: vec![bootstrap.clone()],
        ..ClientConfig::default()
    })
    .expect("client");
    let exe = std::env::current_exe().expect("current exe");
    let py = python();
    let peers = avro_edge_testkit::root().join("peers/python");
    let (produce_py, consume_py) = (
        peers
            .join("bench_produce.py")
            .to_string_lossy()
            .into_owned(),
        peers
            .join("bench_consume.py")
            .to_string_lossy()
            .into_owned(),
    );
    let ns = n.to_string();
    let distinct = produce_child::DISTINCT.to_string();
    let mut rows = vec![
        Row {
            side: "produce",
            name: "Kafka ProducerPerformance 4.1.1 (Java client)",
            runs: Vec::new(),
        },
        Row {
            side: "produce",
            name: "librdkafka via confluent-kafka (bound by Python)",
            runs: Vec::new(),
        },
        Row {
            side: "produce",
            name: "avro-edge Producer (library)",
            runs: Vec::new(),
        },
        Row {
            side: "consume",
            name: "Kafka ConsumerPerformance 4.1.1 (Java client)",
            runs: Vec::new(),
        },
        Row {
            side: "consume",
            name: "librdkafka via confluent-kafka (bound by Python)",
            runs: Vec::new(),
        },
        Row {
            side: "consume",
            name: "avro-edge Consumer (library)",
            runs: Vec::new(),
        },
    ];
    let whole_only = std::env::var_os("AVRO_EDGE_BENCH_WHOLE_ONLY").is_some();
    let mut whole = Whole::new(n);
    for _ in 0..runs {
        whole.round(&client, &bootstrap);
        if whole_only {
            continue;
        }
        let java_topic = fresh_topic(&client, "bench-yard-java");
        rows[0].runs.push(producer_perf(&bootstrap, &java_topic, n));
        let t = fresh_topic(&client, "bench-yard-rdk");
        rows[1].runs.push(json_child(
            &py,
            &[&produce_py, &bootstrap, &t, &ns, &distinct],
            &[],
            "librdkafka produce",
        ));
        let t = fresh_topic(&client, "bench-yard-ours");
        rows[2].runs.push(json_child(
            &exe,
            &[&bootstrap, &t],
            &[
                ("AVRO_EDGE_BENCH_CHILD", "produce"),
                ("AVRO_EDGE_BENCH_N", &ns),
            ],
            "avro-edge produce",
        ));
        rows[3].runs.push(consumer_perf(&bootstrap, &java_topic, n));
        rows[4].runs.push(json_child(
            &py,
            &[&consume_py, &bootstrap, &java_topic, &ns],
            &[],
            "librdkafka consume",
        ));
        rows[5].runs.push(json_child(
            &exe,
            &[&bootstrap, &java_topic],
            &[
                ("AVRO_EDGE_BENCH_CHILD", "consume"),
                ("AVRO_EDGE_BENCH_N", &ns),
            ],
            "avro-edge consume",
        ));
    }
    let broker_name = match broker.kind() {
        BrokerKind::Kafka => "Apache Kafka 4.1.1, one node",
        BrokerKind::Tansu => "tansu memory storage",
    };
    let whole_ok = whole_process::print(&whole.rows, n, broker_name);
    if (!whole_only && !print_table(&rows, n, broker_name)) || !whole_ok {
        eprintln!("yardsticks: incomplete run(s), no rate reported for them (want {n} records)");
        std::process::exit(1);
    }
}
