//! The bound typed path (`Plan::bind`, `Codec::typed_writer`/`typed_reader`, records declared with
//! `avro_record!`): exact fixture bytes, the same values as the serde path, the same error kinds as
//! the plan decoder, and `schema-mismatch` for schemas that are not the struct's.

use std::fmt::Debug;

use crate::wire_support::*;
use avro_edge::ErrorKind;
use avro_edge::records::{Order, SensorData, SensorStatus, UserRegistration};
use avro_edge::{AvroRecord, Codec, Plan};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Equal values; floats that are NaN compare through their Debug text.
fn same<T: PartialEq + Debug>(a: &T, b: &T) -> bool {
    a == b || format!("{a:?}") == format!("{b:?}")
}

fn bound_fixtures<T: AvroRecord + Serialize + DeserializeOwned + PartialEq + Debug>(
    codec: &Codec,
    dir: &str,
) -> usize {
    let mut n = 0;
    for c in cases(dir) {
        let writer = codec
            .typed_writer::<T>(c.subject())
            .unwrap_or_else(|e| panic!("{dir}/{}: {e}", c.name));
        let reader = codec
            .typed_reader::<T>(c.id())
            .unwrap_or_else(|e| panic!("{dir}/{}: {e}", c.name));
        // The serde path's value (checked against the fixture records in codec_records.rs).
        let v: T = codec
            .decode(&c.bin)
            .unwrap_or_else(|e| panic!("{dir}/{}: {e}", c.name));
        assert_eq!(
            writer.encode(&v),
            c.bin,
            "{dir}/{}: bound encoding differs",
            c.name
        );
        let back = reader
            .decode(&c.bin)
            .unwrap_or_else(|e| panic!("{dir}/{}: {e}", c.name));
        assert!(
            same(&back, &v),
            "{dir}/{}: bound decode {back:?} != serde decode {v:?}",
            c.name
        );
        // And what the bound path decodes reads back generically as the fixture's record.
        assert_json_eq(
            &codec.decode_json(&writer.encode(&back)).unwrap(),
            c.expected(),
            &c.name,
        );
        n += 1;
    }
    n
}

#[test]
fn bound_path_matches_every_fixture() {
    let codec = codec();
    assert!(bound_fixtures::<UserRegistration>(&codec, "user-registration") >= 8);
    assert!(bound_fixtures::<Order>(&codec, "orders") >= 6);
    assert!(bound_fixtures::<SensorData>(&codec, "sensor-data") >= 9);
}

#[test]
fn bound_reader_fails_with_the_fixture_kinds() {
    let codec = codec();
    let sensor = codec.typed_reader::<SensorData>(3).unwrap();
    let orders = codec.typed_reader::<Order>(2).unwrap();
    let (mut bad, mut legal) = (0, 0);
    for c in cases("invalid") {
        let expect = c.meta["expect"].as_str().unwrap();
        let got = match (c.id(), c.meta["schema_id"].is_null()) {
            // No schema id (a broken header): the header checks come first.
            (_, true) | (3, _) => sensor.decode(&c.bin).map(|v| format!("{v:?}")),
            (2, _) => orders.decode(&c.bin).map(|v| format!("{v:?}")),
            _ => continue,
        };
        if expect == "valid" {
            // Unusual but legal encodings: the same value as the serde path.
            let want = if c.id() == 3 {
                format!("{:?}", codec.decode::<SensorData>(&c.bin).unwrap())
            } else {
                format!("{:?}", codec.decode::<Order>(&c.bin).unwrap())
            };
            assert_eq!(
                got.unwrap_or_else(|e| panic!("invalid/{}: {e}", c.name)),
                want,
                "invalid/{}",
                c.name
            );
            legal += 1;
        } else {
            let e = got.expect_err(&c.name);
            assert_eq!(e.kind(), expect, "invalid/{}: {e}", c.name);
            bad += 1;
        }
    }
    assert!(bad >= 14, "only {bad} invalid cases");
    assert_eq!(legal, 3);
}

#[test]
fn bound_reader_rejects_trailing_bytes_and_other_ids() {
    let codec = codec();
    let reader = codec.typed_reader::<SensorData>(3).unwrap();
    let c = cases("sensor-data")
        .into_iter()
        .find(|c| c.name == "all-present")
        .unwrap();
    let mut long = c.bin.clone();
    long.push(0);
    assert_eq!(reader.decode(&long).unwrap_err().kind(), "trailing-bytes");
    let v2 = cases("sensor-data-v2").into_iter().next().unwrap();
    let e = reader.decode(&v2.bin).unwrap_err();
    assert_eq!(e.kind(), "schema-mismatch", "{e}");
}

#[test]
fn v2_schema_does_not_bind_to_the_v1_struct() {
    let codec = codec();
    let e = codec
        .typed_writer::<SensorData>("sensor-data-v2-value")
        .unwrap_err();
    assert_eq!(e.kind(), "schema-mismatch", "{e}");
    assert!(e.to_string().contains("location"), "{e}");
    assert_eq!(
        codec.typed_reader::<SensorData>(4).unwrap_err().kind(),
        "schema-mismatch"
    );
    // The documented fallback: the serde path reads v2 data into the v1 struct.
    let v2 = cases("sensor-data-v2").into_iter().next().unwrap();
    assert!(codec.decode::<SensorData>(&v2.bin).is_ok());
    // A struct bound to another record's schema does not bind either.
    assert_eq!(
        codec
            .typed_writer::<Order>("sensor-data-value")
            .unwrap_err()
            .kind(),
        "schema-mismatch"
    );
}

fn sensor_schema(edit: impl FnOnce(&mut serde_json::Value)) -> Plan {
    let mut s: serde_json::Value = serde_json::from_str(&schema_text(3).unwrap()).unwrap();
    edit(&mut s);
    Plan::compile_str(&s.to_string()).unwrap()
}

fn sample() -> SensorData {
    SensorData {
        sensor_id: "s-9".into(),
        timestamp: -5,
        temperature: Some(1.5),
        humidity: None,
        status: SensorStatus::Warning,
    }
}

#[test]
fn reordered_or_retyped_fields_do_not_bind() {
    let swapped = sensor_schema(|s| s["fields"].as_array_mut().unwrap().swap(2, 3));
    let e = swapped.bind::<SensorData>().unwrap_err();
    assert_eq!(e.kind(), "schema-mismatch");
    assert!(e.to_string().contains("humidity"), "{e}");
    // The serde path matches fields by name, so it still encodes for that schema.
    let mut out = Vec::new();
    swapped.encode_into(&sample(), &mut out).unwrap();
    assert_eq!(swapped.decode::<SensorData>(&out).unwrap(), sample());

    let retyped = sensor_schema(|s| s["fields"][1]["type"] = "int".into());
    let e = retyped.bind::<SensorData>().unwrap_err();
    assert_eq!(e.kind(), "schema-mismatch");
    assert!(e.to_string().contains("timestamp"), "{e}");

    let missing_symbol = sensor_schema(|s| {
        s["fields"][4]["type"]["symbols"] = serde_json::json!(["NORMAL", "WARNING"])
    });
    assert_eq!(
        missing_symbol.bind::<SensorData>().unwrap_err().kind(),
        "schema-mismatch"
    );
    let three_branches =
        sensor_schema(|s| s["fields"][2]["type"] = serde_json::json!(["null", "float", "string"]));
    assert_eq!(
        three_branches.bind::<SensorData>().unwrap_err().kind(),
        "schema-mismatch"
    );
}

#[test]
fn enum_order_and_null_branch_position_come_from_the_schema() {
    // Symbols in another order, and `null` as the second union branch: the bound path takes the
    // indices from the schema, so its bytes equal the serde path's for the same schema.
    let plan = sensor_schema(|s| {
        s["fields"][4]["type"]["symbols"] = serde_json::json!(["CRITICAL", "NORMAL", "WARNING"]);
        s["fields"][2]["type"] = serde_json::json!(["float", "null"]);
        s["fields"][2]["default"] = serde_json::json!(1.0);
        s["fields"][3]["type"] = serde_json::json!(["float", "null"]);
        s["fields"][3]["default"] = serde_json::json!(2.0);
    });
    let bound = plan.bind::<SensorData>().unwrap();
    for v in [
        sample(),
        SensorData {
            temperature: None,
            humidity: Some(-0.5),
            status: SensorStatus::Critical,
            ..sample()
        },
    ] {
        let mut serde_bytes = Vec::new();
        plan.encode_into(&v, &mut serde_bytes).unwrap();
        let mut bound_bytes = Vec::new();
        bound.encode_into(&v, &mut bound_bytes);
        assert_eq!(bound_bytes, serde_bytes);
        assert_eq!(bound.decode(&bound_bytes).unwrap(), v);
        assert_eq!(plan.decode::<SensorData>(&bound_bytes).unwrap(), v);
    }
    // WARNING is symbol 2 here: the last byte is its zig-zag index.
    let mut out = Vec::new();
    bound.encode_into(&sample(), &mut out);
    assert_eq!(out.last(), Some(&4));
}
