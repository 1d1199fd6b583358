//! Equivalence of the streaming encoder with the `Value` path: for every line, when the fast path
//! succeeds its bytes (and key) equal `parse_record` + `encode_node`'s, and it never succeeds where
//! the slow path fails. Corpora: the project's schemas and recorded fixtures, mutated.

use serde_json::{Value, json};

use super::super::json::{encode_node, parse_record, record_key};
use super::super::node::Plan;
use super::{encode_line, key_field_fits, scan};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// What happened to one line.
#[derive(Debug, PartialEq)]
enum Took {
    Fast,
    Declined,
}

/// Run both paths on `line`; panic on any difference. `out` starts with junk that must survive.
fn check(plan: &Plan, line: &[u8], key_field: Option<&str>) -> Took {
    let slow = parse_record(line).ok().and_then(|v| {
        let mut out = Vec::new();
        encode_node(plan, Plan::ROOT, &v, &mut out, 0).ok()?;
        Some((out, key_field.and_then(|f| record_key(&v, f))))
    });
    let junk = b"junk".to_vec();
    let text = String::from_utf8_lossy(line);
    let mut out = junk.clone();
    // The byte scanner alone: the same contract.
    if key_field_fits(plan, key_field)
        && let Ok(key) = scan::encode_line(plan, line, key_field, &mut out)
    {
        let Some((want, want_key)) = &slow else {
            panic!("scanner accepted a line the slow path refuses: {text}");
        };
        assert_eq!(out[4..], want[..], "scanner: bytes differ for {text}");
        let key = key.map(|k| k.into_owned());
        assert_eq!(&key, want_key, "scanner: key differs for {text}");
    }
    let mut out = junk.clone();
    match encode_line(plan, line, key_field, &mut out) {
        Ok(key) => {
            let Some((want, want_key)) = slow else {
                panic!("fast path accepted a line the slow path refuses: {text}");
            };
            assert_eq!(&out[..4], b"junk", "{text}");
            assert_eq!(out[4..], want[..], "bytes differ for {text}");
            assert_eq!(
                key.map(|k| k.into_owned()),
                want_key,
                "key differs for {text}"
            );
            Took::Fast
        }
        Err(_) => {
            assert_eq!(out, junk, "declined but left bytes behind: {text}");
            Took::Declined
        }
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap()
}

fn plan_of(path: &str) -> Plan {
    Plan::compile_str(&read(path)).unwrap()
}

/// The project's schemas with their recorded records (NDJSON samples and wire fixtures).
fn corpus() -> Vec<(Plan, Vec<Value>)> {
    let mut sets = Vec::new();
    for (schema, samples, wire) in [
        (
            "schemas/sensor-data.avsc",
            "fixtures/sensor-readings.ndjson",
            "sensor-data",
        ),
        (
            "schemas/orders.avsc",
            "fixtures/samples/orders.ndjson",
            "orders",
        ),
        (
            "schemas/user-registration.avsc",
            "fixtures/samples/user-registration.ndjson",
            "user-registration",
        ),
        ("schemas/sensor-data-v2.avsc", "", "sensor-data-v2"),
    ] {
        let mut recs: Vec<Value> = Vec::new();
        if !samples.is_empty() {
            // Lines that are not JSON objects are checked as they are in the common-case test.
            for l in read(samples).lines() {
                if let Ok(v @ Value::Object(_)) = serde_json::from_str(l) {
                    recs.push(v);
                }
            }
        }
        let dir = format!("{ROOT}/fixtures/wire/{wire}");
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                if let Some(r) = v.get("record") {
                    recs.push(r.clone());
                }
            }
        }
        assert!(!recs.is_empty(), "no records for {schema}");
        sets.push((plan_of(schema), recs));
    }
    for e in std::fs::read_dir(format!("{ROOT}/fixtures/schema-cache/ids")).unwrap() {
        let p = e.unwrap().path();
        let plan = Plan::compile_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        sets.push((plan, Vec::new()));
    }
    sets
}

/// Values to put in place of any value: every JSON type, the number edges, special strings.
fn alternatives() -> Vec<Value> {
    let mut v: Vec<Value> = vec![
        json!(null),
        json!(true),
        json!(false),
        json!(0),
        json!(-1),
        json!(1),
        json!(2147483647),
        json!(2147483648u64),
        json!(-2147483648i64),
        json!(-2147483649i64),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(9223372036854775808u64),
        json!(u64::MAX),
        json!(1.5),
        json!(3.0),
        json!(-0.0),
        json!(1e300),
        json!(3.4e39),
        json!(""),
        json!("x"),
        json!("NaN"),
        json!("Infinity"),
        json!("-Infinity"),
        json!("NORMAL"),
        json!("CRITICAL"),
        json!("é\u{ff}ab"),
        json!("\u{100}"),
        json!("日本語 \u{1F600}"),
        json!("quote \" back \\ nl \n tab \t nul \u{0}"),
        json!("sixteen-chars-ab"),
        json!([]),
        json!([1, 2, 3]),
        json!([null, "a"]),
        json!([[1], []]),
        json!({}),
        json!({"a": 1, "b": null}),
        json!({"k": [1, {"x": "y"}]}),
    ];
    v.push(json!({"productId": "p", "productName": "n", "quantity": 1, "price": 2.5}));
    v.push(json!({"firstName": "a", "lastName": "b"}));
    v.push(json!({"firstName": "a", "lastName": "b", "age": 3, "address": null}));
    v
}

/// Every place in `v` (object keys, array indices) as a path from the top.
fn paths(v: &Value, at: &mut Vec<Step>, all: &mut Vec<Vec<Step>>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                at.push(Step::Key(k.clone()));
                all.push(at.clone());
                paths(x, at, all);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                at.push(Step::Index(i));
                all.push(at.clone());
                paths(x, at, all);
                at.pop();
            }
        }
        _ => {}
    }
}

type Entries = Vec<(String, Value)>;

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn at_mut<'v>(v: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
    let mut cur = v;
    for s in path {
        cur = match s {
            Step::Key(k) => cur.get_mut(k)?,
            Step::Index(i) => cur.get_mut(*i)?,
        };
    }
    Some(cur)
}

/// The object at `path` with its entries rebuilt by `f` (reorder, drop, add keys).
fn edit_object(
    v: &Value,
    path: &[Step],
    f: impl Fn(Vec<(String, Value)>) -> Vec<(String, Value)>,
) -> Option<Value> {
    let mut v = v.clone();
    let target = if path.is_empty() {
        &mut v
    } else {
        at_mut(&mut v, path)?
    };
    let Value::Object(o) = target else {
        return None;
    };
    let entries: Vec<(String, Value)> = std::mem::take(o).into_iter().collect();
    *o = f(entries).into_iter().collect();
    Some(v)
}

/// Text-level variants of one line: duplicates (which a `Value` cannot hold), escapes, garbage.
fn text_variants(line: &str, first_key: Option<&str>) -> Vec<String> {
    let mut out = vec![
        line.to_string(),
        format!("  {line}  \n"),
        format!("{line}x"),
        format!("{line} {{}}"),
        format!("{line},"),
        line.replacen('{', "{ \"zzz\": 1, ", 1),
        line.replace(':', " : "),
        line.replace("\"a", "\"\\u0061"),
        line.replace('e', "\\u0065"),
        line.replace('-', "\\u002d"),
        String::new(),
        "[]".into(),
        "null".into(),
        "\"str\"".into(),
        "{".into(),
    ];
    for cut in [
        1,
        line.len() / 3,
        line.len() / 2,
        line.len().saturating_sub(1),
    ] {
        if let Some(s) = line.get(..cut) {
            out.push(s.to_string());
        }
    }
    if let Some(k) = first_key {
        // The first key again at the end (same value, then another value).
        if let (Some(body), Ok(Value::Object(o))) =
            (line.strip_suffix('}'), serde_json::from_str::<Value>(line))
            && let Some(x) = o.get(k)
        {
            out.push(format!("{body},\"{k}\":{x}}}"));
            out.push(format!("{body},\"{k}\":null}}"));
        }
        let escaped: String = k.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
        out.push(line.replacen(&format!("\"{k}\""), &format!("\"{escaped}\""), 1));
    }
    out
}

/// All the lines made from one record.
fn variants(rec: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    let first_key = rec.as_object().and_then(|o| o.keys().next().cloned());
    lines.extend(text_variants(&rec.to_string(), first_key.as_deref()));
    let mut all = vec![Vec::new()];
    paths(rec, &mut Vec::new(), &mut all);
    let alts = alternatives();
    for p in &all {
        // Every value replaced by every alternative.
        if !p.is_empty() {
            for a in &alts {
                let mut v = rec.clone();
                if let Some(x) = at_mut(&mut v, p) {
                    *x = a.clone();
                    lines.push(v.to_string());
                }
            }
        }
        // Objects: reversed, rotated, each key dropped, a key added, a key moved to the end.
        let edits: Vec<Box<dyn Fn(Entries) -> Entries>> = vec![
            Box::new(|mut e| {
                e.reverse();
                e
            }),
            Box::new(|mut e| {
                if !e.is_empty() {
                    e.rotate_left(1);
                }
                e
            }),
            Box::new(|mut e| {
                e.push(("unknown".into(), json!(1)));
                e
            }),
            Box::new(|mut e| {
                e.insert(0, ("unknown".into(), json!(null)));
                e
            }),
        ];
        for f in edits {
            if let Some(v) = edit_object(rec, p, f) {
                lines.push(v.to_string());
            }
        }
        let n = at_mut(&mut rec.clone(), p)
            .and_then(|x| x.as_object().map(|o| o.len()))
            .unwrap_or(0);
        for i in 0..n {
            for swap in [false, true] {
                let e = edit_object(rec, p, |mut e| {
                    if swap {
                        let x = e.remove(i);
                        e.push(x);
                    } else {
                        e.remove(i);
                    }
                    e
                });
                lines.extend(e.map(|v| v.to_string()));
            }
        }
    }
    lines
}

#[test]
fn fast_path_equals_value_path_on_the_corpora() {
    let sets = corpus();
    let (mut fast, mut declined) = (0usize, 0usize);
    for (plan, recs) in &sets {
        for rec in recs {
            let keys: Vec<String> = rec
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            for line in variants(rec) {
                match check(plan, line.as_bytes(), None) {
                    Took::Fast => fast += 1,
                    Took::Declined => declined += 1,
                }
                for k in keys.iter().map(String::as_str).chain(["absent"]) {
                    check(plan, line.as_bytes(), Some(k));
                }
            }
        }
        // Every other schema's records against this one (mostly refusals).
        for (_, others) in &sets {
            for rec in others {
                check(plan, rec.to_string().as_bytes(), None);
            }
        }
    }
    assert!(
        fast > 1000 && declined > 1000,
        "fast {fast}, declined {declined}"
    );
}

/// The reference schemas with their sample lines.
const SAMPLES: [(&str, &str); 3] = [
    (
        "schemas/sensor-data.avsc",
        "fixtures/sensor-readings.ndjson",
    ),
    ("schemas/orders.avsc", "fixtures/samples/orders.ndjson"),
    (
        "schemas/user-registration.avsc",
        "fixtures/samples/user-registration.ndjson",
    ),
];

#[test]
fn the_common_case_takes_the_fast_path() {
    for (schema, samples) in SAMPLES {
        let plan = plan_of(schema);
        let mut fast = 0;
        for line in read(samples).lines() {
            let took = check(&plan, line.as_bytes(), None);
            // Every line the Value path encodes (the files also hold broken lines) goes fast.
            let encodes = parse_record(line.as_bytes())
                .is_ok_and(|v| encode_node(&plan, Plan::ROOT, &v, &mut Vec::new(), 0).is_ok());
            if encodes {
                assert_eq!(took, Took::Fast, "{line}");
                fast += 1;
            }
        }
        assert!(fast >= 5, "{samples}: {fast}");
    }
    let sensor = plan_of("schemas/sensor-data.avsc");
    let line = br#"{"sensorId":"s-1","timestamp":1,"temperature":null,"status":"WARNING"}"#;
    assert_eq!(check(&sensor, line, Some("sensorId")), Took::Fast);
    let mut out = Vec::new();
    let key = encode_line(&sensor, line, Some("sensorId"), &mut out).unwrap();
    assert!(matches!(key, Some(std::borrow::Cow::Borrowed(b"s-1"))));
    // Missing trailing defaults, skipped defaults, numeric and null keys.
    for (line, key) in [
        (
            r#"{"sensorId":"a","timestamp":2,"status":"NORMAL"}"#,
            "timestamp",
        ),
        (
            r#"{"sensorId":"a","timestamp":-3,"humidity":1,"status":"NORMAL"}"#,
            "temperature",
        ),
        (
            r#"{"sensorId":"a\n\u00e9","timestamp":2,"temperature":1e2,"humidity":null,"status":"CRITICAL"}"#,
            "sensorId",
        ),
        (
            r#"{"sensorId":"a","timestamp":2,"temperature":"NaN","humidity":-0.0,"status":"NORMAL"}"#,
            "temperature",
        ),
    ] {
        assert_eq!(
            check(&sensor, line.as_bytes(), Some(key)),
            Took::Fast,
            "{line}"
        );
    }
}

/// The byte scanner takes every sample line the `Value` path encodes, but for escapes in strings.
#[test]
fn the_common_case_takes_the_scanner() {
    for (schema, samples) in SAMPLES {
        let plan = plan_of(schema);
        let mut scanned = 0;
        for line in read(samples).lines().filter(|l| !l.contains('\\')) {
            let encodes = parse_record(line.as_bytes())
                .is_ok_and(|v| encode_node(&plan, Plan::ROOT, &v, &mut Vec::new(), 0).is_ok());
            let took = scan::encode_line(&plan, line.as_bytes(), None, &mut Vec::new());
            assert_eq!(took.is_ok(), encodes, "{line}");
            scanned += usize::from(encodes);
        }
        assert!(scanned >= 3, "{samples}: {scanned}");
    }
    let sensor = plan_of("schemas/sensor-data.avsc");
    let line = br#"{"sensorId":"sensor-7","timestamp":1764028800015,"temperature":-0.59,"humidity":77.8,"status":"NORMAL"}"#;
    let key = scan::encode_line(&sensor, line, Some("sensorId"), &mut Vec::new()).unwrap();
    assert!(matches!(key, Some(std::borrow::Cow::Borrowed(b"sensor-7"))));
}

/// Small schemas for the types the reference schemas lack: maps, bytes, fixed, unions of each kind.
const SHAPES: &[&str] = &[
    r#"{"type":"record","name":"R","fields":[
        {"name":"m","type":{"type":"map","values":["null","long","string"]},"default":{}},
        {"name":"b","type":"bytes","default":"\u00ff"},
        {"name":"f","type":{"type":"fixed","name":"F","size":3},"default":"abc"},
        {"name":"u","type":["null","boolean","int","double","string"],"default":null},
        {"name":"e","type":["null",{"type":"enum","name":"E","symbols":["A","B"]},"string"],"default":null},
        {"name":"x","type":["null",{"type":"fixed","name":"G","size":2},"bytes"],"default":null},
        {"name":"s","type":["float","string"],"default":1.5},
        {"name":"a","type":{"type":"array","items":{"type":"array","items":"int"}},"default":[]},
        {"name":"r","type":["null",{"type":"record","name":"In","fields":[
            {"name":"v","type":"long","default":7},{"name":"w","type":["null","In"],"default":null}]}],"default":null},
        {"name":"mm","type":["null",{"type":"map","values":"int"},{"type":"array","items":"int"}],"default":null},
        {"name":"two","type":["null",{"type":"map","values":"int"},"In"],"default":null}
    ]}"#,
    r#"{"type":"map","values":{"type":"array","items":["null","double"]}}"#,
    r#"["null","long","string",{"type":"record","name":"T","fields":[{"name":"t","type":"int"}]}]"#,
    r#""double""#,
    r#"{"type":"array","items":"string"}"#,
];

#[test]
fn fast_path_equals_value_path_on_maps_bytes_fixed_and_unions() {
    let rec = json!({
        "m": {"k1": 1, "k2": "two", "k3": null, "": 4},
        "b": "\u{0}\u{ff}bytes",
        "f": "xyz",
        "u": 5,
        "e": "B",
        "x": "ab",
        "s": "Infinity",
        "a": [[1, 2], [], [3]],
        "r": {"v": 1, "w": {"v": 2, "w": null}},
        "mm": {"a": 1},
        "two": null
    });
    let values = [
        rec.clone(),
        json!({}),
        json!({"m": {"dup": 1}, "b": ""}),
        json!([1, 2]),
        json!({"a": [[1], [2]]}),
        json!({"t": 1}),
        json!(1.25),
        json!(["a", "b\u{1}"]),
        json!({"k": [null, 1.5, 2]}),
    ];
    let mut fast = 0;
    for schema in SHAPES {
        let plan = Plan::compile_str(schema).unwrap();
        for v in &values {
            for line in variants(v) {
                fast += (check(&plan, line.as_bytes(), None) == Took::Fast) as usize;
                check(&plan, line.as_bytes(), Some("u"));
            }
        }
        for line in [
            r#"{"m":{"a":1,"a":2}}"#,
            r#"{"m":{"a":1,"\u0061":2}}"#,
            r#"{"m":{"a":1,"b":2,"a":3}}"#,
            r#"{"two":{"v":1}}"#,
            r#"{"two":{"k":1}}"#,
            r#"{"mm":[1,2]}"#,
            r#"{"r":{"w":{"v":9}}}"#,
            r#"{"u":"NaN","s":"NaN"}"#,
            r#"{"u":9223372036854775807}"#,
            r#"{"u":3000000000,"x":"\u0100x"}"#,
            r#"{"e":"C","x":"abc"}"#,
            "1e400",
            "[1,2,]",
        ] {
            check(&plan, line.as_bytes(), None);
            check(&plan, line.as_bytes(), Some("u"));
        }
    }
    assert!(fast > 100, "fast {fast}");
}

#[test]
fn depth_beyond_serde_json_limit_declines() {
    let plan = Plan::compile_str(
        r#"{"type":"record","name":"N","fields":[{"name":"n","type":["null","N"],"default":null}]}"#,
    )
    .unwrap();
    for depth in [1, 100, 127, 128, 200, 300] {
        let line = format!("{}null{}", r#"{"n":"#.repeat(depth), "}".repeat(depth));
        check(&plan, line.as_bytes(), None);
    }
}

/// The line API over both paths: same bytes and key as the `Value` path, errors as before (not JSON
/// first, even when the schema cannot be had), and the buffer untouched on error.
#[test]
fn line_api_falls_back_and_reports_as_before() {
    use crate::ErrorKind;
    use crate::OfflineCache;
    use crate::codec::{Codec, LineError};
    use std::sync::Arc;

    let codec = Codec::new(Arc::new(OfflineCache::new(format!(
        "{ROOT}/fixtures/schema-cache"
    ))));
    let subject = "sensor-data-value";
    let w = codec.writer(subject).unwrap();
    let lines: [&[u8]; 4] = [
        br#"{"sensorId":"s","timestamp":1,"temperature":2.5,"humidity":null,"status":"NORMAL"}"#,
        // Keys out of order with a default skipped and found later: the Value path's job.
        br#"{"sensorId":"s","timestamp":1,"humidity":3,"temperature":2.5,"status":"NORMAL"}"#,
        br#"{"status":"WARNING","timestamp":7,"sensorId":"\u0073"}"#,
        br#"{"sensorId":"s","timestamp":1,"status":"NORMAL","sensorId":"t"}"#,
    ];
    for line in lines {
        let v = parse_record(line).unwrap();
        let mut want = b"prefix".to_vec();
        w.encode_json_into(&v, &mut want).unwrap();
        for field in [None, Some("sensorId"), Some("timestamp"), Some("humidity")] {
            let mut out = b"prefix".to_vec();
            let key = w.encode_json_line_into(line, field, &mut out).unwrap();
            assert_eq!(out, want);
            assert_eq!(
                key.map(|k| k.into_owned()),
                field.and_then(|f| record_key(&v, f))
            );
        }
    }
    let not_json = br#"{"sensorId": nope}"#;
    let serde_msg = serde_json::from_slice::<Value>(not_json)
        .unwrap_err()
        .to_string();
    for (line, kind) in [
        (&not_json[..], "not-json"),
        (
            br#"{"sensorId":"s","timestamp":1.5,"status":"NORMAL"}"#,
            "wrong-type",
        ),
        (
            br#"{"sensorId":"s","timestamp":1,"status":"OFF"}"#,
            "unknown-enum-symbol",
        ),
        (
            br#"{"sensorId":"s","timestamp":1,"status":"NORMAL"} x"#,
            "not-json",
        ),
        (
            br#"{"sensorId":"s","timestamp":1,"status":"NORMAL","x":1}"#,
            "unknown-field",
        ),
    ] {
        let mut out = b"prefix".to_vec();
        let e = w
            .encode_json_line_into(line, Some("sensorId"), &mut out)
            .unwrap_err();
        assert_eq!(e.kind(), kind);
        assert_eq!(out, b"prefix");
        let e2 = codec
            .encode_json_line_into(subject, line, None, &mut Vec::new())
            .unwrap_err();
        assert_eq!(e2.to_string(), e.to_string());
    }
    let e = w
        .encode_json_line_into(not_json, None, &mut Vec::new())
        .unwrap_err();
    assert!(matches!(&e, LineError::NotJson(_)));
    assert_eq!(e.to_string(), serde_msg);
    // No schema to be had: a line that is not JSON still says so; a JSON line gets the lookup error.
    let empty = Codec::new(Arc::new(OfflineCache::new(format!(
        "{ROOT}/target/no-such-schema-cache"
    ))));
    let e = empty
        .encode_json_line_into(subject, not_json, None, &mut Vec::new())
        .unwrap_err();
    assert_eq!((e.kind().as_str(), e.to_string()), ("not-json", serde_msg));
    let e = empty
        .encode_json_line_into(subject, lines[0], None, &mut Vec::new())
        .unwrap_err();
    assert!(matches!(e, LineError::Codec(_)), "{e}");
}

/// Random byte edits of sample lines (structural characters, digits, escapes, control and
/// non-UTF-8 bytes inserted, replaced, deleted): both fast paths agree with the `Value` path.
#[test]
fn random_edits_agree_with_the_value_path() {
    const BYTES: &[u8] = b"\"\\,:{}[]0123456789-+.eE nulltrfa\x01\x7f\xc3\xa9\xff";
    let mut rng = fastrand::Rng::with_seed(17);
    for (schema, samples) in [
        (
            "schemas/sensor-data.avsc",
            "fixtures/sensor-readings.ndjson",
        ),
        ("schemas/orders.avsc", "fixtures/samples/orders.ndjson"),
    ] {
        let plan = plan_of(schema);
        let lines: Vec<Vec<u8>> = read(samples)
            .lines()
            .map(|l| l.as_bytes().to_vec())
            .collect();
        for _ in 0..20_000 {
            let mut line = lines[rng.usize(..lines.len())].clone();
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(..=line.len());
                let b = BYTES[rng.usize(..BYTES.len())];
                match rng.u8(..3) {
                    0 => line.insert(at, b),
                    1 if at < line.len() => line[at] = b,
                    _ if at < line.len() => drop(line.remove(at)),
                    _ => {}
                }
            }
            check(&plan, &line, None);
            check(&plan, &line, Some("sensorId"));
        }
    }
}

/// The scanner's edges on SensorData: what it takes (whitespace, exponents, the largest integers)
/// and what it leaves to serde_json (escapes, `-0`, leading zeros, 20-digit integers, control
/// characters, trailing commas); `check` holds both paths to the `Value` path's bytes either way.
#[test]
fn the_scanner_takes_plain_lines_and_leaves_the_rest() {
    let plan = plan_of("schemas/sensor-data.avsc");
    let line = |id: &str, ts: &str, t: &str| {
        format!(
            r#"{{"sensorId":{id},"timestamp":{ts},"temperature":{t},"humidity":77.8,"status":"NORMAL"}}"#
        )
    };
    let taken = [
        line(r#""s-1""#, "1764028800015", "-0.59"),
        line(r#""s-1""#, "9223372036854775807", "1e2"),
        line(r#""s-1""#, "-9223372036854775808", "-1.5E-3"),
        line(r#""s-\u00e9""#, "1", "2").replace(r"\u00e9", "é"),
        format!(" \t{}\r\n", line(r#""s""#, "0", "0.0")),
        r#"{ "sensorId" : "s" , "timestamp" : 5 , "temperature" : 1.0 , "humidity" : 2 , "status" : "WARNING" }"#
            .to_string(),
    ];
    for l in &taken {
        assert!(
            scan::encode_line(&plan, l.as_bytes(), Some("sensorId"), &mut Vec::new()).is_ok(),
            "{l}"
        );
        assert_eq!(
            check(&plan, l.as_bytes(), Some("sensorId")),
            Took::Fast,
            "{l}"
        );
    }
    let left = [
        line(r#""s\u0031""#, "1", "2"),
        line(r#""s""#, "-0", "2"),
        line(r#""s""#, "01", "2"),
        line(r#""s""#, "18446744073709551616", "2"),
        line("\"s\u{1}\"", "1", "2"),
        line(r#""s""#, "1", "2").replace("}", ",}"),
        line(r#""s""#, "1", "2.5e400"),
    ];
    for l in &left {
        assert!(
            scan::encode_line(&plan, l.as_bytes(), Some("sensorId"), &mut Vec::new()).is_err(),
            "{l}"
        );
        check(&plan, l.as_bytes(), Some("sensorId"));
    }
}
