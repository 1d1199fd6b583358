//! Round trips and hostile input for the generic path, on schemas beyond the seed ones
//! (every Avro type, recursion, maps, fixed, bytes), plus encode-side error kinds and paths.

use crate::wire_support::*;
use avro_edge::ErrorKind;
use avro_edge::{Plan, Resolver};
use serde_json::{Value, json};
use std::sync::Arc;

const ALL_TYPES: &str = r#"{
  "type": "record", "name": "All", "namespace": "t",
  "fields": [
    {"name": "n", "type": "null"},
    {"name": "b", "type": "boolean"},
    {"name": "i", "type": "int"},
    {"name": "l", "type": "long"},
    {"name": "f", "type": "float"},
    {"name": "d", "type": "double"},
    {"name": "by", "type": "bytes"},
    {"name": "s", "type": "string"},
    {"name": "fx", "type": {"type": "fixed", "name": "F4", "size": 4}},
    {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
    {"name": "a", "type": {"type": "array", "items": "long"}},
    {"name": "m", "type": {"type": "map", "values": ["null", "double"]}},
    {"name": "u", "type": ["null", "int", "string", "E", "F4"]},
    {"name": "fx2", "type": "F4"},
    {"name": "dflt", "type": "string", "default": "zz"}
  ]
}"#;

const LIST: &str = r#"{"type": "record", "name": "Node", "fields": [
  {"name": "v", "type": "int"}, {"name": "next", "type": ["null", "Node"], "default": null}]}"#;

fn plan(s: &str) -> Plan {
    Plan::compile_str(s).unwrap()
}

fn all_types_record() -> Value {
    json!({
        "n": null, "b": true, "i": -2147483648i64, "l": 9223372036854775807i64,
        "f": "-Infinity", "d": -0.0, "by": "\u{0000}\u{00ff}a", "s": "h\u{e9}llo \u{1F600}",
        "fx": "\u{0001}\u{0002}\u{00fe}\u{00ff}", "e": "B", "a": [1, -1, 0],
        "m": {"x": 1.5, "y": null, "z": "NaN"}, "u": "A", "fx2": "abcd", "dflt": "given"
    })
}

#[test]
fn every_type_roundtrips() {
    let p = plan(ALL_TYPES);
    let rec = all_types_record();
    let mut out = Vec::new();
    p.encode_json_into(&rec, &mut out).unwrap();
    let back = p.decode_json(&out).unwrap();
    assert_json_eq(&back, &rec, "all types");
    // -0.0 keeps its sign on the wire.
    assert!(back["d"].as_f64().unwrap().is_sign_negative());
}

#[test]
fn union_picks_first_fitting_branch() {
    let p = plan(ALL_TYPES);
    let mut rec = all_types_record();
    for u in [json!(null), json!(5), json!("hello"), json!("A")] {
        rec["u"] = u.clone();
        let mut out = Vec::new();
        p.encode_json_into(&rec, &mut out).unwrap();
        assert_json_eq(&p.decode_json(&out).unwrap()["u"], &u, "u");
    }
    // An int beyond i32 fits no branch of [null, int, string, E, F4].
    rec["u"] = json!(1i64 << 40);
    let mut out = Vec::new();
    assert_eq!(
        p.encode_json_into(&rec, &mut out).unwrap_err().kind(),
        "wrong-type"
    );
}

#[test]
fn union_branch_indices_are_first_fit() {
    let p = plan(r#"["null", "int", "long", "double", {"type":"map","values":"int"}]"#);
    for (v, want) in [
        (json!(null), vec![0u8]),
        (json!(1), vec![2, 2]),
        (
            json!(1i64 << 40),
            vec![4, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40],
        ),
        (json!(0.5), vec![6, 0, 0, 0, 0, 0, 0, 0xe0, 0x3f]),
        (json!({}), vec![8, 0]),
    ] {
        let mut out = Vec::new();
        p.encode_json_into(&v, &mut out).unwrap();
        assert_eq!(out, want, "{v}");
    }
}

#[test]
fn string_union_prefers_string_over_enum() {
    let p = plan(r#"["null", "string", {"type":"enum","name":"E","symbols":["A"]}]"#);
    let mut out = Vec::new();
    p.encode_json_into(&json!("A"), &mut out).unwrap();
    assert_eq!(out, [2, 2, b'A']);
    let p = plan(r#"["null", {"type":"enum","name":"E","symbols":["A"]}, "string"]"#);
    let mut out = Vec::new();
    p.encode_json_into(&json!("A"), &mut out).unwrap();
    assert_eq!(out, [2, 0]);
    let mut out = Vec::new();
    p.encode_json_into(&json!("B"), &mut out).unwrap();
    assert_eq!(out, [4, 2, b'B']);
}

#[test]
fn defaults_fill_omitted_fields() {
    let p = plan(ALL_TYPES);
    let mut rec = all_types_record();
    rec.as_object_mut().unwrap().remove("dflt");
    let mut out = Vec::new();
    p.encode_json_into(&rec, &mut out).unwrap();
    assert_eq!(p.decode_json(&out).unwrap()["dflt"], json!("zz"));
}

#[test]
fn key_order_does_not_change_the_encoding() {
    let p = plan(ALL_TYPES);
    let rec = all_types_record();
    let mut want = Vec::new();
    p.encode_json_into(&rec, &mut want).unwrap();
    let fields: Vec<(String, Value)> = rec.as_object().unwrap().clone().into_iter().collect();
    // Reversed, and rotated by one: every field found whatever the order.
    let reversed: serde_json::Map<String, Value> = fields.iter().rev().cloned().collect();
    let mut rotated = fields.clone();
    rotated.rotate_left(1);
    let rotated: serde_json::Map<String, Value> = rotated.into_iter().collect();
    for v in [reversed, rotated] {
        let mut out = Vec::new();
        p.encode_json_into(&Value::Object(v), &mut out).unwrap();
        assert_eq!(out, want);
    }
    // An unknown key between known ones is still refused.
    let mut extra: serde_json::Map<String, Value> = fields.iter().take(1).cloned().collect();
    extra.insert("bogus".into(), json!(1));
    extra.extend(fields.iter().skip(1).cloned());
    let e = p
        .encode_json_into(&Value::Object(extra), &mut Vec::new())
        .unwrap_err();
    assert_eq!(e.kind(), "unknown-field", "{e}");
}

#[test]
fn encode_errors_name_kind_and_path() {
    let orders = plan(&schema_text(2).unwrap());
    let base = json!({"orderId": "o", "userId": "u", "orderDate": 1, "totalAmount": 1.0,
        "products": [{"productId": "a", "productName": "b", "quantity": 1, "price": 1.0},
                     {"productId": "a", "productName": "b", "quantity": 1, "price": 1.0}]});
    let check = |rec: Value, kind: &str, path: &str| {
        let mut out = Vec::new();
        let e = orders.encode_json_into(&rec, &mut out).unwrap_err();
        assert_eq!(e.kind(), kind, "{e}");
        assert!(e.to_string().contains(path), "{e} should name {path}");
    };
    let mut r = base.clone();
    r["products"][1]["quantity"] = json!(2147483648i64);
    check(r, "int-out-of-range", "products[1].quantity");
    let mut r = base.clone();
    r["products"][1]["quantity"] = json!("3");
    check(r, "wrong-type", "products[1].quantity");
    let mut r = base.clone();
    r["products"][0].as_object_mut().unwrap().remove("price");
    check(r, "missing-field", "products[0].price");
    let mut r = base.clone();
    r["products"][0]["colour"] = json!("red");
    check(r, "unknown-field", "products[0].colour");
    let mut r = base.clone();
    r["orderDate"] = json!(1.5);
    check(r, "wrong-type", "orderDate");
    let sensor = plan(&schema_text(3).unwrap());
    let mut out = Vec::new();
    let e = sensor
        .encode_json_into(
            &json!({"sensorId": "s", "timestamp": 1, "status": "BROKEN"}),
            &mut out,
        )
        .unwrap_err();
    assert_eq!(e.kind(), "unknown-enum-symbol");
    assert!(e.to_string().contains("status"), "{e}");
}

#[test]
fn recursive_schema_roundtrips_and_deep_nesting_is_refused() {
    let p = plan(LIST);
    let rec = json!({"v": 1, "next": {"v": 2, "next": {"v": 3, "next": null}}});
    let mut out = Vec::new();
    p.encode_json_into(&rec, &mut out).unwrap();
    assert_json_eq(&p.decode_json(&out).unwrap(), &rec, "list");
    // A hostile body: a linked list 100 000 levels deep (2 bytes per level) must not overflow the stack.
    let mut body = Vec::new();
    for _ in 0..100_000 {
        body.extend_from_slice(&[2, 2]); // v = 1, next = branch 1
    }
    body.extend_from_slice(&[2, 0]);
    assert_eq!(p.decode_json(&body).unwrap_err().kind(), "nesting-too-deep");
}

#[test]
fn hostile_lengths_and_counts() {
    let p = plan(
        r#"{"type":"record","name":"R","fields":[{"name":"s","type":"string"},
        {"name":"a","type":{"type":"array","items":"null"}},{"name":"m","type":{"type":"map","values":"int"}}]}"#,
    );
    // String length 2^62 with 1 byte following.
    let body = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, b'x'];
    assert_eq!(p.decode_json(&body).unwrap_err().kind(), "truncated-body");
    // Negative string length.
    assert_eq!(
        p.decode_json(&[0x03]).unwrap_err().kind(),
        "negative-length"
    );
    // An array of nulls claiming 2^61 items: nulls take no bytes, so the count is capped.
    let body = [0x00, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f];
    assert_eq!(p.decode_json(&body).unwrap_err().kind(), "too-many-items");
    // A map claiming 2^40 entries with 3 bytes left.
    let body = [0x00, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 0, 0, 0];
    assert_eq!(p.decode_json(&body).unwrap_err().kind(), "truncated-body");
    // Negative block count with a negative byte size.
    let body = [0x00, 0x00, 0x03, 0x03];
    assert_eq!(p.decode_json(&body).unwrap_err().kind(), "negative-length");
    // A well-formed body with a trailing byte.
    let body = [0x00, 0x00, 0x00, 0x00];
    assert_eq!(p.decode_json(&body).unwrap_err().kind(), "trailing-bytes");
    assert!(p.decode_json(&body[..3]).is_ok());
}

#[test]
fn boolean_bytes_are_strict() {
    let p = plan(r#""boolean""#);
    assert_eq!(p.decode_json(&[1]).unwrap(), json!(true));
    assert_eq!(p.decode_json(&[2]).unwrap_err().kind(), "invalid-boolean");
}

#[test]
fn resolution_promotions_aliases_and_enum_default() {
    let w = Arc::new(plan(
        r#"{"type":"record","name":"W","fields":[
        {"name":"i","type":"int"},{"name":"l","type":"long"},{"name":"f","type":"float"},
        {"name":"s","type":"string"},{"name":"b","type":"bytes"},{"name":"old","type":"int"},
        {"name":"gone","type":{"type":"array","items":"string"}},
        {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}},
        {"name":"u","type":["null","int"]}]}"#,
    ));
    let r = Arc::new(plan(
        r#"{"type":"record","name":"R","aliases":["W"],"fields":[
        {"name":"i","type":"double"},{"name":"l","type":"float"},{"name":"f","type":"double"},
        {"name":"s","type":"bytes"},{"name":"b","type":"string"},{"name":"new","aliases":["old"],"type":"long"},
        {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}},
        {"name":"u","type":["null","long","string"]},
        {"name":"extra","type":{"type":"map","values":"int"},"default":{"k":7}}]}"#,
    ));
    let rec = json!({"i": 3, "l": 16777217, "f": 0.1, "s": "\u{e9}", "b": "ok", "old": -4,
        "gone": ["x", "y"], "e": "C", "u": 9});
    let mut body = Vec::new();
    w.encode_json_into(&rec, &mut body).unwrap();
    let res = Resolver::new(w.clone(), r).unwrap();
    let got = res.decode_json(&body).unwrap();
    let want = json!({"i": 3.0, "l": 16777216.0, "f": 0.10000000149011612, "s": "\u{c3}\u{a9}", "b": "ok",
        "new": -4, "e": "A", "u": 9, "extra": {"k": 7}});
    assert_json_eq(&got, &want, "resolved");
}

#[test]
fn resolution_refuses_incompatible_schemas() {
    let w = Arc::new(plan(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#,
    ));
    let r = Arc::new(plan(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
    ));
    assert_eq!(
        Resolver::new(w.clone(), r).unwrap_err().kind(),
        "incompatible-schema"
    );
    let r = Arc::new(plan(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int"}]}"#,
    ));
    assert_eq!(
        Resolver::new(w, r).unwrap_err().kind(),
        "incompatible-schema"
    );
}

#[test]
fn unknown_schema_id_and_framing_errors() {
    let codec = codec();
    assert_eq!(
        codec.decode_json(&[0, 0, 0, 0, 9, 0]).unwrap_err().kind(),
        "unknown-schema-id"
    );
    assert_eq!(
        codec.decode_json(&[7, 0, 0, 0, 3]).unwrap_err().kind(),
        "invalid-magic-byte"
    );
    assert_eq!(
        codec.decode_json(&[0, 0]).unwrap_err().kind(),
        "truncated-header"
    );
    assert_eq!(
        codec
            .encode_json("no-such-subject", &json!({}))
            .unwrap_err()
            .kind(),
        "unknown-subject"
    );
}

#[test]
fn every_prefix_of_every_fixture_fails_cleanly() {
    // Cutting a valid message anywhere gives a typed error, never a panic or a wrong success.
    let codec = codec();
    for dir in VALID_DIRS {
        for c in cases(dir) {
            for cut in 0..c.bin.len() {
                let e = codec.decode_json(&c.bin[..cut]).unwrap_err();
                assert!(
                    ["truncated-header", "truncated-body"].contains(&e.kind().as_str()),
                    "{dir}/{} cut at {cut}: {e}",
                    c.name
                );
            }
        }
    }
}

#[test]
fn parse_record_is_serde_json_from_slice() {
    let cases: &[&[u8]] = &[
        br#"{"a":1,"b":"x","c":[1,{"d":null}],"e":{"f":1.5}}"#,
        br#"{"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10}"#,
        br#"{"dup":1,"other":2,"dup":3}"#,
        br#"{}"#,
        br#"  {"a":1}  "#,
        b"5",
        br#""text""#,
        b"[1,2]",
        b"null",
        br#"{"a":1} trailing"#,
        br#"{"a":1"#,
        br#"{"a":}"#,
        b"",
        b"{\"a\":\"\xff\"}",
    ];
    for c in cases {
        let ours = avro_edge::parse_record(c);
        let theirs = serde_json::from_slice::<Value>(c);
        match (ours, theirs) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a, b, "{}", String::from_utf8_lossy(c));
                // Same key order too (the map keeps insertion order).
                assert_eq!(a.to_string(), b.to_string());
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("{}: {a:?} vs {b:?}", String::from_utf8_lossy(c)),
        }
    }
}
