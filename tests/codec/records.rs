//! The typed records in `avro_edge::records`, through the codec with `schemas/*.avsc`: decoding each
//! fixture into the Rust type and encoding it back gives exactly the fixture bytes, and the typed
//! path agrees with the generic one.

use crate::wire_support::*;
use avro_edge::Codec;
use avro_edge::ErrorKind;
use avro_edge::records::{Order, SensorData, SensorStatus, UserProfile, UserRegistration};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn typed_roundtrip<T: Serialize + DeserializeOwned + std::fmt::Debug>(
    codec: &Codec,
    dir: &str,
) -> usize {
    let mut n = 0;
    for c in cases(dir) {
        let v: T = codec
            .decode(&c.bin)
            .unwrap_or_else(|e| panic!("{dir}/{}: {e}", c.name));
        let bytes = codec
            .encode(c.subject(), &v)
            .unwrap_or_else(|e| panic!("{dir}/{}: {e}", c.name));
        assert_eq!(bytes, c.bin, "{dir}/{}: typed re-encoding differs", c.name);
        // The typed value, read back generically, is the fixture's record.
        assert_json_eq(
            &codec.decode_json(&bytes).unwrap(),
            c.expected(),
            &format!("{dir}/{}", c.name),
        );
        n += 1;
    }
    n
}

#[test]
fn user_registration_fixtures_roundtrip_typed() {
    assert!(typed_roundtrip::<UserRegistration>(&codec(), "user-registration") >= 8);
}

#[test]
fn order_fixtures_roundtrip_typed() {
    assert!(typed_roundtrip::<Order>(&codec(), "orders") >= 6);
}

#[test]
fn sensor_data_fixtures_roundtrip_typed() {
    assert!(typed_roundtrip::<SensorData>(&codec(), "sensor-data") >= 9);
}

#[test]
fn typed_values_built_in_rust_match_fixture_bytes() {
    let codec = codec();
    let all = cases("sensor-data")
        .into_iter()
        .find(|c| c.name == "all-present")
        .unwrap();
    let s = SensorData {
        sensor_id: "s-002".into(),
        timestamp: 1700000000001,
        temperature: Some(21.5),
        humidity: Some(45.25),
        status: SensorStatus::Normal,
    };
    assert_eq!(codec.encode("sensor-data-value", &s).unwrap(), all.bin);
    let u = cases("user-registration")
        .into_iter()
        .find(|c| c.name == "full-profile")
        .unwrap();
    let r = UserRegistration {
        user_id: "u-0002".into(),
        email: "bob@example.com".into(),
        password: "hunter2".into(),
        created_at: 1717171717171,
        profile: Some(UserProfile {
            first_name: "Bob".into(),
            last_name: "Builder".into(),
            age: Some(42),
            address: Some("1 Main Street, Springfield".into()),
        }),
    };
    assert_eq!(codec.encode("user-registration-value", &r).unwrap(), u.bin);
    assert_eq!(codec.decode::<UserRegistration>(&u.bin).unwrap(), r);
}

#[test]
fn typed_decode_rejects_what_the_generic_path_rejects() {
    let codec = codec();
    for c in cases("invalid") {
        let expect = c.meta["expect"].as_str().unwrap();
        if expect == "valid" || c.meta["schema_id"] != 3 {
            continue;
        }
        let e = codec.decode::<SensorData>(&c.bin).unwrap_err();
        assert_eq!(e.kind(), expect, "invalid/{}: {e}", c.name);
    }
}

/// Fields in another order than the schema's still encode to the same bytes.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Shuffled {
    status: SensorStatus,
    humidity: Option<f32>,
    sensor_id: String,
    timestamp: i64,
}

#[test]
fn typed_fields_out_of_order_and_defaults() {
    let codec = codec();
    let v = Shuffled {
        status: SensorStatus::Warning,
        humidity: None,
        sensor_id: "s".into(),
        timestamp: 7,
    };
    let bytes = codec.encode("sensor-data-value", &v).unwrap();
    // temperature is missing from the type and takes its default (null).
    let back: SensorData = codec.decode(&bytes).unwrap();
    assert_eq!(
        back,
        SensorData {
            sensor_id: "s".into(),
            timestamp: 7,
            temperature: None,
            humidity: None,
            status: SensorStatus::Warning
        }
    );
}

#[derive(Serialize)]
struct Unknown {
    #[serde(rename = "sensorId")]
    sensor_id: String,
    bogus: i32,
}

#[test]
fn typed_errors_have_kinds() {
    let codec = codec();
    let e = codec
        .encode(
            "sensor-data-value",
            &Unknown {
                sensor_id: "x".into(),
                bogus: 1,
            },
        )
        .unwrap_err();
    assert_eq!(e.kind(), "unknown-field", "{e}");
    #[derive(Serialize)]
    struct NoStatus {
        #[serde(rename = "sensorId")]
        sensor_id: String,
        timestamp: i64,
    }
    let e = codec
        .encode(
            "sensor-data-value",
            &NoStatus {
                sensor_id: "x".into(),
                timestamp: 1,
            },
        )
        .unwrap_err();
    assert_eq!(e.kind(), "missing-field", "{e}");
    assert!(e.to_string().contains("status"), "{e}");
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct BigQty {
        product_id: String,
        product_name: String,
        quantity: i64,
        price: f64,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct O {
        order_id: String,
        user_id: String,
        order_date: i64,
        products: Vec<BigQty>,
        total_amount: f64,
    }
    let p = |q| BigQty {
        product_id: "p".into(),
        product_name: "n".into(),
        quantity: q,
        price: 1.0,
    };
    let o = O {
        order_id: "o".into(),
        user_id: "u".into(),
        order_date: 1,
        products: vec![p(1), p(1 << 40)],
        total_amount: 2.0,
    };
    let e = codec.encode("orders-value", &o).unwrap_err();
    assert_eq!(e.kind(), "int-out-of-range");
    assert!(e.to_string().contains("products[1].quantity"), "{e}");
}

/// Another Rust view of SensorData: fields and enum variants in a different order than the schema,
/// one schema field left out. Read after `SensorData` and before it again, so the codec's cached
/// name→index map of one type never leaks into the other.
#[derive(Debug, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reordered {
    status: Status,
    humidity: Option<f64>,
    sensor_id: String,
}

#[derive(Debug, PartialEq, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
enum Status {
    Critical,
    Normal,
    Warning,
}

#[test]
fn typed_decode_matches_fields_and_variants_by_name() {
    let codec = codec();
    let all = cases("sensor-data");
    let warning = all.iter().find(|c| c.name == "warning").unwrap();
    for _ in 0..2 {
        let a: SensorData = codec.decode(&warning.bin).unwrap();
        assert_eq!(a.status, SensorStatus::Warning);
        assert_eq!(a.humidity, Some(10.0));
        let b: Reordered = codec.decode(&warning.bin).unwrap();
        assert_eq!(
            b,
            Reordered {
                status: Status::Warning,
                humidity: Some(10.0),
                sensor_id: "s-003".into()
            }
        );
    }
    let critical = all.iter().find(|c| c.name == "float-inf").unwrap();
    let b: Reordered = codec.decode(&critical.bin).unwrap();
    assert_eq!(b.status, Status::Critical);
    assert_eq!(b.humidity, Some(f64::NEG_INFINITY));
}
