//! The test registry's HTTP handling (keep-alive, chunked bodies, limits on hostile input,
//! stopping) and the registry semantics the recordings do not cover (ids by parsed form,
//! compatibility levels).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use avro_edge::TestRegistry;
use serde_json::{Value, json};

use crate::registry_common::read_response;

const SENSOR: &str = r#"{"type":"record","name":"SensorData","fields":[{"name":"sensorId","type":"string"},{"name":"timestamp","type":"long"}]}"#;

fn connect(reg: &TestRegistry) -> TcpStream {
    let s = TcpStream::connect(reg.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn post(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/vnd.schemaregistry.v1+json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn schema_body(s: &str) -> String {
    json!({"schema": s}).to_string()
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let reg = TestRegistry::start();
    let mut s = connect(&reg);
    let mut r = BufReader::new(s.try_clone().unwrap());
    s.write_all(post("/subjects/a-value/versions", &schema_body(SENSOR)).as_bytes())
        .unwrap();
    s.write_all(b"GET /subjects HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut r).body, r#"{"id":1}"#);
    let crate::registry_common::Response {
        status,
        headers,
        body,
        ..
    } = read_response(&mut r);
    assert_eq!((status, body.as_str()), (200, r#"["a-value"]"#));
    assert!(headers.contains("content-type: application/vnd.schemaregistry.v1+json"));
    assert_eq!(reg.request_count(), 2);
}

#[test]
fn chunked_bodies_and_expect_continue() {
    let reg = TestRegistry::start();
    let mut s = connect(&reg);
    let mut r = BufReader::new(s.try_clone().unwrap());
    let body = schema_body(SENSOR);
    let (a, b) = body.split_at(10);
    let req = format!(
        "POST /subjects/a-value/versions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nexpect: 100-continue\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut cont = String::new();
    r.read_line(&mut cont).unwrap();
    assert!(cont.starts_with("HTTP/1.1 100"), "{cont}");
    r.read_line(&mut cont).unwrap();
    assert_eq!(read_response(&mut r).body, r#"{"id":1}"#);
}

#[test]
fn hostile_requests_are_refused_without_big_allocations() {
    let reg = TestRegistry::start();
    // A body length far beyond the limit: refused before reading or allocating it.
    let mut s = connect(&reg);
    s.write_all(b"POST /subjects/a/versions HTTP/1.1\r\ncontent-length: 99999999999\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut BufReader::new(s)).status, 413);
    // Endless header lines.
    let mut s = connect(&reg);
    let mut r = BufReader::new(s.try_clone().unwrap());
    let line = format!("x-junk: {}\r\n", "a".repeat(1000));
    let mut req = String::from("GET /subjects HTTP/1.1\r\n");
    for _ in 0..80 {
        req.push_str(&line);
    }
    let _ = s.write_all(req.as_bytes());
    assert_eq!(read_response(&mut r).status, 431);
    // Garbage.
    let mut s = connect(&reg);
    s.write_all(b"\x00\x01garbage\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut BufReader::new(s)).status, 400);
    // A bad chunk size.
    let mut s = connect(&reg);
    s.write_all(b"POST /subjects/a/versions HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n")
        .unwrap();
    assert_eq!(read_response(&mut BufReader::new(s)).status, 400);
    // Still serving.
    let mut s = connect(&reg);
    s.write_all(b"GET /schemas/types HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(
        read_response(&mut BufReader::new(s)).body,
        r#"["JSON","AVRO","PROTOBUF"]"#
    );
}

#[test]
fn stop_closes_open_connections() {
    let reg = TestRegistry::start();
    let addr = reg.addr();
    let mut s = connect(&reg);
    s.write_all(b"GET /subjects HTTP/1.1\r\n\r\n").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert_eq!(read_response(&mut r).status, 200);
    reg.stop();
    let mut buf = [0u8; 1];
    assert!(
        matches!(r.read(&mut buf), Ok(0) | Err(_)),
        "connection still open after stop"
    );
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err(),
        "still accepting after stop"
    );
}

fn call(reg: &TestRegistry, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut s = connect(reg);
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let crate::registry_common::Response {
        status, body: text, ..
    } = read_response(&mut BufReader::new(s));
    (status, serde_json::from_str(&text).unwrap())
}

#[test]
fn ids_are_global_by_parsed_form_and_levels_are_enforced() {
    let reg = TestRegistry::start();
    let pretty =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(SENSOR).unwrap()).unwrap();
    assert_eq!(
        call(
            &reg,
            "POST",
            "/subjects/a-value/versions",
            Some(json!({"schema": SENSOR}))
        )
        .1,
        json!({"id": 1})
    );
    assert_eq!(
        call(
            &reg,
            "POST",
            "/subjects/b-value/versions",
            Some(json!({"schema": pretty}))
        )
        .1,
        json!({"id": 1})
    );
    // The stored text is the re-serialised one, whatever was sent.
    let (_, v) = call(&reg, "GET", "/subjects/b-value/versions/latest", None);
    assert_eq!(
        v["schema"],
        json!(
            r#"{"fields":[{"name":"sensorId","type":"string"},{"name":"timestamp","type":"long"}],"name":"SensorData","type":"record"}"#
        )
    );
    // BACKWARD refuses a new field without default; NONE lets it through.
    let added = SENSOR.replace("}]}", r#"},{"name":"extra","type":"int"}]}"#);
    let (status, v) = call(
        &reg,
        "POST",
        "/subjects/a-value/versions",
        Some(json!({"schema": added})),
    );
    assert_eq!((status, v["error_code"].clone()), (409, json!(409)));
    assert_eq!(
        v["message"],
        json!("Incompatible schema, compatibility_mode=BACKWARD. Incompatibilities: extra")
    );
    assert_eq!(
        call(
            &reg,
            "PUT",
            "/config/a-value",
            Some(json!({"compatibility": "NONE"}))
        )
        .1,
        json!({"compatibility": "NONE"})
    );
    assert_eq!(
        call(
            &reg,
            "POST",
            "/subjects/a-value/versions",
            Some(json!({"schema": added}))
        )
        .1,
        json!({"id": 2})
    );
    // FORWARD: the old schema must read the new; dropping a field without default in the old fails.
    assert_eq!(
        call(
            &reg,
            "PUT",
            "/config/b-value",
            Some(json!({"compatibility": "forward"}))
        )
        .1,
        json!({"compatibility": "FORWARD"})
    );
    let dropped =
        r#"{"type":"record","name":"SensorData","fields":[{"name":"sensorId","type":"string"}]}"#;
    let (_, v) = call(
        &reg,
        "POST",
        "/compatibility/subjects/b-value/versions/latest",
        Some(json!({"schema": dropped})),
    );
    assert_eq!(
        v,
        json!({"is_compatible": false, "messages": ["timestamp"]})
    );
    let (status, v) = call(
        &reg,
        "PUT",
        "/config",
        Some(json!({"compatibility": "SIDEWAYS"})),
    );
    assert_eq!((status, v["error_code"].clone()), (422, json!(42203)));
    // Unknown routes and methods.
    assert_eq!(call(&reg, "GET", "/nope", None), (404, json!("Not Found")));
    assert_eq!(call(&reg, "PATCH", "/subjects", None).0, 405);
}
