//! The library producer with pre-encoded records, as kcat runs: `key:value` lines from stdin (the
//! input of `kcat -P -K:`), each value sent as it is, appended with `Producer::enqueue_many` a
//! chunk of lines at a time; acks=all, idempotent, linger 5 ms. The library's row of the produce
//! yardstick beside kcat (README, "Produce against kcat").
//!
//! Run: `cargo run --release --example produce_raw -- BROKERS TOPIC < lines`; prints
//! `sent N acked A failed F`, exits 1 unless every record was acknowledged.
//!
//! Must not encode or look into the values: it is the producer alone.

use std::io::{BufRead, BufReader};
use std::process::ExitCode;
use std::time::Duration;

use avro_edge::{Acks, Producer, ProducerConfig};

/// Lines appended per `enqueue_many` call.
const CHUNK_LINES: usize = 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [brokers, topic] = &args[..] else {
        eprintln!("usage: produce_raw BROKERS TOPIC < key:value lines");
        return ExitCode::from(2);
    };
    let mut cfg = ProducerConfig::new(brokers.split(','));
    cfg.acks = Acks::All;
    cfg.linger = Duration::from_millis(5);
    let p = match Producer::connect(cfg) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("connect: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sent = match send_lines(&p, topic) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("stdin: {e}");
            return ExitCode::FAILURE;
        }
    };
    let flushed = p.flush(Duration::from_secs(120));
    let st = p.stats();
    let _ = p.close();
    println!("sent {sent} acked {} failed {}", st.acked, sent - st.acked);
    if flushed.is_err() || st.acked != sent {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Read `key:value` lines and append them a chunk at a time; the number of records.
fn send_lines(p: &Producer, topic: &str) -> std::io::Result<u64> {
    let mut input = BufReader::with_capacity(1 << 16, std::io::stdin().lock());
    let mut buf = Vec::new();
    let mut lines: Vec<(usize, usize)> = Vec::with_capacity(CHUNK_LINES);
    let mut handles = Vec::with_capacity(CHUNK_LINES);
    let mut sent = 0u64;
    loop {
        buf.clear();
        lines.clear();
        while lines.len() < CHUNK_LINES {
            let start = buf.len();
            if input.read_until(b'\n', &mut buf)? == 0 {
                break;
            }
            let end = buf.len() - usize::from(buf.last() == Some(&b'\n'));
            lines.push((start, end));
        }
        if lines.is_empty() {
            return Ok(sent);
        }
        let records: Vec<(Option<&[u8]>, &[u8])> = (lines.iter())
            .map(|&(s, e)| {
                let line = &buf[s..e];
                match line.iter().position(|&b| b == b':') {
                    Some(i) => (Some(&line[..i]), &line[i + 1..]),
                    None => (None, line),
                }
            })
            .collect();
        p.enqueue_many(topic, &records, &mut handles);
        sent += records.len() as u64;
        // The outcome is counted by the producer (`stats`); the handles are not kept.
        handles.clear();
    }
}
