//! SensorData encode/decode throughput, printed as a table (no criterion, no timed asserts):
//! apache-avro's generic `Value` path, its serde path (`GenericDatumWriter::write_ser` /
//! `GenericDatumReader::read_deser`), our typed (serde) path, our generic natural-JSON path, and a
//! hand-written encoder/decoder for this one schema as the ceiling.
//!
//! Run: `cargo bench --bench codec` (opt-level 3 via the bench profile).

use std::hint::black_box;
use std::time::Instant;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value as AvroValue;
use apache_avro::writer::datum::GenericDatumWriter;
use avro_edge::codec::Plan;
use avro_edge::records::{SensorData, SensorStatus};

const SCHEMA: &str = include_str!("../schemas/sensor-data.avsc");

fn records(n: usize) -> Vec<SensorData> {
    (0..n)
        .map(|i| SensorData {
            sensor_id: format!("sensor-{:04}", i % 997),
            timestamp: 1_700_000_000_000 + i as i64,
            temperature: if i % 7 == 0 { None } else { Some(15.0 + (i % 100) as f32 * 0.25) },
            humidity: if i % 11 == 0 { None } else { Some(40.0 + (i % 50) as f32 * 0.5) },
            status: [SensorStatus::Normal, SensorStatus::Warning, SensorStatus::Critical][i % 3],
        })
        .collect()
}

/// The ceiling: SensorData v1 written by hand.
fn hand_encode(s: &SensorData, out: &mut Vec<u8>) {
    fn long(out: &mut Vec<u8>, v: i64) {
        let mut n = ((v << 1) ^ (v >> 63)) as u64;
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    long(out, s.sensor_id.len() as i64);
    out.extend_from_slice(s.sensor_id.as_bytes());
    long(out, s.timestamp);
    for f in [s.temperature, s.humidity] {
        match f {
            None => out.push(0),
            Some(v) => {
                out.push(2);
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    out.push(match s.status {
        SensorStatus::Normal => 0,
        SensorStatus::Warning => 2,
        SensorStatus::Critical => 4,
    });
}

fn hand_decode(b: &[u8]) -> Option<SensorData> {
    fn long(b: &[u8], p: &mut usize) -> Option<i64> {
        let mut n = 0u64;
        let mut s = 0;
        loop {
            let x = *b.get(*p)?;
            *p += 1;
            n |= ((x & 0x7f) as u64) << s;
            if x < 0x80 {
                return Some(((n >> 1) as i64) ^ -((n & 1) as i64));
            }
            s += 7;
            if s > 63 {
                return None;
            }
        }
    }
    let mut p = 0;
    let len = long(b, &mut p)? as usize;
    let sensor_id = std::str::from_utf8(b.get(p..p.checked_add(len)?)?).ok()?.to_owned();
    p += len;
    let timestamp = long(b, &mut p)?;
    let mut opt = || -> Option<Option<f32>> {
        match long(b, &mut p)? {
            0 => Some(None),
            1 => {
                let v = f32::from_le_bytes(b.get(p..p + 4)?.try_into().ok()?);
                p += 4;
                Some(Some(v))
            }
            _ => None,
        }
    };
    let temperature = opt()?;
    let humidity = opt()?;
    let status = match long(b, &mut p)? {
        0 => SensorStatus::Normal,
        1 => SensorStatus::Warning,
        2 => SensorStatus::Critical,
        _ => return None,
    };
    (p == b.len()).then_some(SensorData { sensor_id, timestamp, temperature, humidity, status })
}

fn avro_value(s: &SensorData) -> AvroValue {
    let opt = |f: Option<f32>| match f {
        None => AvroValue::Union(0, Box::new(AvroValue::Null)),
        Some(v) => AvroValue::Union(1, Box::new(AvroValue::Float(v))),
    };
    let (i, sym) = match s.status {
        SensorStatus::Normal => (0, "NORMAL"),
        SensorStatus::Warning => (1, "WARNING"),
        SensorStatus::Critical => (2, "CRITICAL"),
    };
    AvroValue::Record(vec![
        ("sensorId".into(), AvroValue::String(s.sensor_id.clone())),
        ("timestamp".into(), AvroValue::Long(s.timestamp)),
        ("temperature".into(), opt(s.temperature)),
        ("humidity".into(), opt(s.humidity)),
        ("status".into(), AvroValue::Enum(i, sym.into())),
    ])
}

struct Row {
    name: &'static str,
    encode: Option<f64>,
    decode: Option<f64>,
}

/// Runs `f` over `n` records (cycling the sample), returns records per second.
/// `BENCH_ONLY=typed` (say) skips the paths whose row name does not contain it (for profiling).
fn measure(n: usize, mut f: impl FnMut(usize)) -> f64 {
    if std::env::var("BENCH_SKIP").is_ok() {
        return f64::NAN;
    }
    for i in 0..(n / 10).max(1) {
        f(i); // warm-up
    }
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// Honour `BENCH_ONLY`: mark the next path skipped unless its name contains the filter.
fn select(name: &str) {
    match std::env::var("BENCH_ONLY") {
        // SAFETY: the bench is single-threaded; nothing reads the environment concurrently.
        Ok(f) if !name.contains(f.as_str()) => unsafe { std::env::set_var("BENCH_SKIP", "1") },
        _ => unsafe { std::env::remove_var("BENCH_SKIP") },
    }
}

#[allow(deprecated)]
fn main() {
    const SAMPLE: usize = 1024;
    let fast: usize = std::env::var("BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(4_000_000);
    let slow = fast / 10;
    let recs = records(SAMPLE);
    let schema = Schema::parse_str(SCHEMA).expect("schema");
    let plan = Plan::compile_str(SCHEMA).expect("plan");
    let bodies: Vec<Vec<u8>> = recs
        .iter()
        .map(|r| {
            let mut b = Vec::new();
            hand_encode(r, &mut b);
            b
        })
        .collect();
    // Every path must agree with the hand-written bytes before it is timed.
    for (r, b) in recs.iter().zip(&bodies) {
        let mut ours = Vec::new();
        plan.encode_into(r, &mut ours).expect("typed encode");
        assert_eq!(&ours, b);
        assert_eq!(&apache_avro::to_avro_datum(&schema, avro_value(r)).expect("avro"), b);
        assert_eq!(&plan.decode::<SensorData>(b).expect("typed decode"), r);
    }
    let jsons: Vec<serde_json::Value> = bodies.iter().map(|b| plan.decode_json(b).expect("json")).collect();

    let mut rows = Vec::new();
    let mut buf = Vec::with_capacity(128);

    select("apache-avro to_avro_datum");
    let enc = measure(slow, |i| {
        black_box(apache_avro::to_avro_datum(&schema, avro_value(&recs[i % SAMPLE])).ok());
    });
    let dec = measure(slow, |i| {
        black_box(apache_avro::from_avro_datum(&schema, &mut &bodies[i % SAMPLE][..], None).ok());
    });
    rows.push(Row { name: "apache-avro to_avro_datum/from_avro_datum (Value)", encode: Some(enc), decode: Some(dec) });

    let writer = GenericDatumWriter::builder(&schema).build().expect("writer");
    let reader = GenericDatumReader::builder(&schema).build().expect("reader");
    let ser_ok = writer.write_ser(&mut Vec::new(), &recs[1]).is_ok();
    let de_ok = reader.read_deser::<SensorData>(&mut &bodies[1][..]).is_ok();
    select("apache-avro write_ser");
    let enc = ser_ok.then(|| {
        measure(fast / 4, |i| {
            buf.clear();
            black_box(writer.write_ser(&mut buf, &recs[i % SAMPLE]).ok());
        })
    });
    let dec = de_ok.then(|| {
        measure(fast / 4, |i| {
            black_box(reader.read_deser::<SensorData>(&mut &bodies[i % SAMPLE][..]).ok());
        })
    });
    rows.push(Row { name: "apache-avro write_ser/read_deser (serde)", encode: enc, decode: dec });

    select("avro-edge typed");
    let enc = measure(fast, |i| {
        buf.clear();
        black_box(plan.encode_into(black_box(&recs[i % SAMPLE]), &mut buf).ok());
    });
    let dec = measure(fast, |i| {
        black_box(plan.decode::<SensorData>(black_box(&bodies[i % SAMPLE])).ok());
    });
    rows.push(Row { name: "avro-edge typed (serde, compiled plan)", encode: Some(enc), decode: Some(dec) });

    select("avro-edge generic");
    let enc = measure(slow, |i| {
        buf.clear();
        black_box(plan.encode_json_into(black_box(&jsons[i % SAMPLE]), &mut buf).ok());
    });
    let dec = measure(slow, |i| {
        black_box(plan.decode_json(black_box(&bodies[i % SAMPLE])).ok());
    });
    rows.push(Row { name: "avro-edge generic (natural JSON Value)", encode: Some(enc), decode: Some(dec) });

    select("hand-written");
    let enc = measure(fast, |i| {
        buf.clear();
        hand_encode(black_box(&recs[i % SAMPLE]), &mut buf);
        black_box(&buf);
    });
    let dec = measure(fast, |i| {
        black_box(hand_decode(black_box(&bodies[i % SAMPLE])));
    });
    rows.push(Row { name: "hand-written (ceiling)", encode: Some(enc), decode: Some(dec) });

    let fmt = |v: Option<f64>| match v {
        Some(v) => format!("{:>8.2}M/s {:>7.1} ns", v / 1e6, 1e9 / v),
        None => format!("{:>21}", "unsupported"),
    };
    println!("SensorData v1, {SAMPLE} distinct records cycled; {fast} records per fast path, {slow} per slow path");
    println!("| {:<52} | {:>21} | {:>21} |", "path", "encode", "decode");
    println!("|{:-<54}|{:-<23}|{:-<23}|", "", "", "");
    for r in &rows {
        println!("| {:<52} | {} | {} |", r.name, fmt(r.encode), fmt(r.decode));
    }
}
