//! Every case in fixtures/wire/**: valid ones encode to exactly their bytes and decode to their
//! record; invalid ones fail with their `expect` kind; `valid-*` ones decode to their record.

use crate::wire_support::*;
use avro_edge::ErrorKind;
use avro_edge::Plan;
use serde_json::Value;

#[test]
fn valid_cases_encode_to_exact_bytes_through_the_subject() {
    let codec = codec();
    let mut n = 0;
    for dir in VALID_DIRS {
        for c in cases(dir) {
            // Fixture subjects: v2 cases share sensor-data-value but carry id 4.
            let subject = if c.id() == 4 {
                "sensor-data-v2-value"
            } else {
                c.subject()
            };
            let bytes = codec
                .encode_json(subject, &c.meta["record"])
                .unwrap_or_else(|e| panic!("{dir}/{}: {e}", c.name));
            assert_eq!(bytes, c.bin, "{dir}/{}: encoded bytes differ", c.name);
            n += 1;
        }
    }
    assert!(n >= 25, "only {n} valid cases");
}

#[test]
fn valid_cases_decode_to_their_record() {
    let codec = codec();
    for dir in VALID_DIRS {
        for c in cases(dir) {
            let v = codec
                .decode_json(&c.bin)
                .unwrap_or_else(|e| panic!("{dir}/{}: {e}", c.name));
            assert_json_eq(&v, c.expected(), &format!("{dir}/{}", c.name));
        }
    }
}

#[test]
fn invalid_cases_fail_with_their_kind() {
    let codec = codec();
    let mut bad = 0;
    for c in cases("invalid") {
        let expect = c.meta["expect"].as_str().unwrap();
        if expect == "valid" {
            continue;
        }
        match codec.decode_json(&c.bin) {
            Ok(v) => panic!("invalid/{}: decoded to {v}, expected {expect}", c.name),
            Err(e) => assert_eq!(e.kind(), expect, "invalid/{}: {e}", c.name),
        }
        bad += 1;
    }
    assert!(bad >= 16, "only {bad} invalid cases");
}

#[test]
fn unusual_but_legal_encodings_decode() {
    let codec = codec();
    let mut n = 0;
    for c in cases("invalid") {
        if c.meta["expect"] != "valid" {
            continue;
        }
        let v = codec
            .decode_json(&c.bin)
            .unwrap_or_else(|e| panic!("invalid/{}: {e}", c.name));
        assert_json_eq(&v, &c.meta["record"], &format!("invalid/{}", c.name));
        // Re-encoding gives the canonical form, which differs from the unusual bytes.
        let again = codec.encode_json(c.subject(), &c.meta["record"]).unwrap();
        assert_ne!(again, c.bin, "invalid/{}: canonical re-encoding", c.name);
        assert_json_eq(
            &codec.decode_json(&again).unwrap(),
            &c.meta["record"],
            &c.name,
        );
        n += 1;
    }
    assert_eq!(n, 3);
}

#[test]
fn v1_reader_reads_v2_data_dropping_location() {
    let codec = codec();
    let v1 = schema_text(3).unwrap();
    for c in cases("sensor-data-v2") {
        let got = codec
            .decode_json_with_reader(&c.bin, &v1)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let mut want = c.expected().clone();
        want.as_object_mut().unwrap().remove("location");
        assert_json_eq(&got, &want, &c.name);
    }
}

#[test]
fn v2_reader_reads_v1_data_with_location_null() {
    let codec = codec();
    let v2 = schema_text(4).unwrap();
    for c in cases("sensor-data") {
        let got = codec
            .decode_json_with_reader(&c.bin, &v2)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let mut want = c.expected().clone();
        want.as_object_mut()
            .unwrap()
            .insert("location".into(), Value::Null);
        assert_json_eq(&got, &want, &c.name);
    }
}

#[test]
fn reader_schema_resolution_keeps_strictness() {
    // Invalid bodies stay invalid when read through a reader schema.
    let codec = codec();
    let v2 = schema_text(4).unwrap();
    for c in cases("invalid") {
        let expect = c.meta["expect"].as_str().unwrap();
        if expect == "valid" || c.meta["schema_id"] != 3 {
            continue;
        }
        let e = codec.decode_json_with_reader(&c.bin, &v2).unwrap_err();
        assert_eq!(e.kind(), expect, "invalid/{}: {e}", c.name);
    }
}

#[test]
fn plans_compile_from_every_schema_file() {
    for (id, _) in IDS {
        let p = Plan::compile_str(&schema_text(id).unwrap());
        assert!(p.is_ok(), "id {id}: {:?}", p.err());
    }
}

#[test]
fn omitted_fields_with_defaults_encode_their_default() {
    // The v2 fixture with `location: null`, written without `location`, without `temperature`
    // (when null), gives the same bytes: union defaults are branch 0 (null).
    let codec = codec();
    let c = cases("sensor-data-v2")
        .into_iter()
        .find(|c| c.name == "location-null")
        .unwrap();
    let mut rec = c.meta["record"].clone();
    rec.as_object_mut().unwrap().remove("location");
    assert_eq!(
        codec.encode_json("sensor-data-v2-value", &rec).unwrap(),
        c.bin
    );
    let c = cases("sensor-data")
        .into_iter()
        .find(|c| c.name == "all-null")
        .unwrap();
    let mut rec = c.meta["record"].clone();
    rec.as_object_mut().unwrap().remove("temperature");
    rec.as_object_mut().unwrap().remove("humidity");
    assert_eq!(codec.encode_json("sensor-data-value", &rec).unwrap(), c.bin);
    // A field without a default may not be omitted.
    rec.as_object_mut().unwrap().remove("status");
    assert_eq!(
        codec
            .encode_json("sensor-data-value", &rec)
            .unwrap_err()
            .kind(),
        "missing-field"
    );
}
