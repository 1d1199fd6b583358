//! The registry client against the in-process test registry and tiny scripted servers:
//! typed errors for every recorded error code, retries, failover, auth headers, the offline cache
//! (read-through, write-through format, conflicts) and a cold start with the registry down.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use avro_edge::ErrorKind;
use avro_edge::TestRegistry;
use avro_edge::{
    Auth, ClientOptions, RegistryClient, RegistryError, SchemaSource, WriterMode, open_source,
};
use serde_json::Value;

use crate::registry_common::{fixture, schema, tmpdir};

/// A registry holding the seed schemas with the recorded ids: 1 user-registration, 2 orders, 3 sensor-data.
fn seeded() -> TestRegistry {
    let reg = TestRegistry::start();
    assert_eq!(
        reg.register("user-registration-value", &schema("user-registration.avsc"))
            .unwrap(),
        1
    );
    assert_eq!(
        reg.register("orders-value", &schema("orders.avsc"))
            .unwrap(),
        2
    );
    assert_eq!(
        reg.register("sensor-data-value", &schema("sensor-data.avsc"))
            .unwrap(),
        3
    );
    reg
}

fn fast(urls: Vec<String>) -> ClientOptions {
    let mut o = ClientOptions::new(urls);
    o.retries = 2;
    o.backoff_initial = Duration::from_millis(5);
    o.backoff_max = Duration::from_millis(20);
    o.connect_timeout = Duration::from_millis(500);
    o.read_timeout = Duration::from_secs(2);
    o
}

fn client(reg: &TestRegistry) -> RegistryClient {
    RegistryClient::new(fast(vec![reg.url()])).unwrap()
}

fn api(e: &RegistryError) -> (Option<i64>, &'static str, Option<&str>) {
    (e.code(), e.kind().as_str(), e.registry_message())
}

#[test]
fn typed_errors_for_every_recorded_code() {
    let reg = seeded();
    let c = client(&reg);
    let sensor = schema("sensor-data.avsc");
    // 40401: unknown subject (exchanges 26, 41, 42).
    let e = c.lookup("no-such-subject-value", &sensor).unwrap_err();
    assert_eq!(
        api(&e),
        (
            Some(40401),
            "unknown-subject",
            Some("Subject 'no-such-subject-value' not found.")
        )
    );
    let e = c.versions("no-such-subject-value").unwrap_err();
    assert_eq!(api(&e).0, Some(40401));
    let e = c.writer_schema("no-such-subject-value").unwrap_err();
    assert!(matches!(e, RegistryError::SubjectNotFound { .. }), "{e:?}");
    assert_eq!(e.kind(), "unknown-subject");
    // 40402: unknown version (43).
    let e = c.version("sensor-data-value", 99).unwrap_err();
    assert_eq!(
        api(&e),
        (
            Some(40402),
            "unknown-version",
            Some("Version 99 not found.")
        )
    );
    // 40403: unregistered schema on lookup (25), unknown id (45, 72).
    let other =
        r#"{"type":"record","name":"SensorData","fields":[{"name":"pressure","type":"double"}]}"#;
    let e = c.lookup("sensor-data-value", other).unwrap_err();
    assert_eq!(
        api(&e),
        (Some(40403), "unknown-schema-id", Some("Schema not found"))
    );
    let e = c.schema_by_id(9999).unwrap_err();
    assert!(
        matches!(e, RegistryError::SchemaNotFound { id: 9999 }),
        "{e:?}"
    );
    assert_eq!(e.kind(), "unknown-schema-id");
    // 40408: no subject-level config (29); with defaultToGlobal the global level (30).
    let e = c.get_config(Some("sensor-data-value"), false).unwrap_err();
    assert_eq!(api(&e).0, Some(40408));
    assert_eq!(e.kind(), "no-subject-config");
    assert_eq!(
        c.get_config(Some("sensor-data-value"), true).unwrap(),
        "BACKWARD"
    );
    // 409: incompatible (37), with Karapace's message.
    let f37 = fixture("37-");
    let e = c
        .register(
            "sensor-data-value",
            f37["request"]["body"]["schema"].as_str().unwrap(),
        )
        .unwrap_err();
    let want = f37["response"]["body"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        api(&e),
        (Some(409), "incompatible-schema", Some(want.as_str()))
    );
    // 42201: invalid schema (38, 39), messages as recorded.
    for ex in ["38-", "39-"] {
        let f = fixture(ex);
        let e = c
            .register(
                "sensor-data-value",
                f["request"]["body"]["schema"].as_str().unwrap(),
            )
            .unwrap_err();
        assert_eq!(
            api(&e),
            (
                Some(42201),
                "invalid-schema",
                f["response"]["body"]["message"].as_str()
            )
        );
    }
    // 42202: invalid version (44).
    let e = c
        .check_compatibility("sensor-data-value", "abc", &sensor)
        .unwrap_err();
    assert_eq!(
        (e.code(), e.kind().as_str()),
        (Some(42202), "invalid-version")
    );
    // 422: a request body without a schema; the message (a list) is kept as JSON text.
    let e = c
        .request(
            "POST",
            "/subjects/sensor-data-value/versions",
            Some(&Value::from("this is not json")),
        )
        .unwrap_err();
    assert_eq!(
        (e.code(), e.kind().as_str()),
        (Some(422), "unprocessable-request")
    );
    assert!(e.registry_message().unwrap().starts_with('['), "{e}");
    // 404 with the bare "Not Found" string (70, 71).
    let e = c
        .request(
            "GET",
            "/associations/resources/-/sensor-data?resourceType=topic",
            None,
        )
        .unwrap_err();
    assert_eq!(api(&e), (Some(404), "not-found", Some("Not Found")));
    // 40406 (58) and the other delete errors.
    c.register("scratch-value", &sensor).unwrap();
    let e = c.delete_version("scratch-value", 1, true).unwrap_err();
    assert_eq!(
        (e.code(), e.kind().as_str()),
        (Some(40407), "version-not-soft-deleted")
    );
    assert_eq!(c.delete_version("scratch-value", 1, false).unwrap(), 1);
    let e = c.delete_version("scratch-value", 1, false).unwrap_err();
    assert_eq!(
        (e.code(), e.kind().as_str()),
        (Some(40406), "version-soft-deleted")
    );
    let e = c.delete_subject("scratch-value", false).unwrap_err();
    assert_eq!(
        (e.code(), e.kind().as_str()),
        (Some(40404), "subject-soft-deleted")
    );
    assert_eq!(c.delete_subject("scratch-value", true).unwrap(), vec![1]);
    c.register("scratch2-value", &sensor).unwrap();
    let e = c.delete_subject("scratch2-value", true).unwrap_err();
    assert_eq!(
        (e.code(), e.kind().as_str()),
        (Some(40405), "subject-not-soft-deleted")
    );
}

#[test]
fn client_calls_answer_as_recorded() {
    let reg = seeded();
    let c = client(&reg);
    assert_eq!(
        c.subjects().unwrap(),
        vec![
            "user-registration-value",
            "orders-value",
            "sensor-data-value"
        ]
    );
    let latest = c.latest("sensor-data-value").unwrap();
    let want = &fixture("15-")["response"]["body"];
    assert_eq!(
        (latest.version, latest.id, &*latest.schema),
        (1, 3, want["schema"].as_str().unwrap())
    );
    assert_eq!(
        c.lookup("sensor-data-value", &schema("sensor-data.avsc"))
            .unwrap(),
        latest
    );
    assert_eq!(
        &*c.schema(1).unwrap(),
        fixture("18-")["response"]["body"]["schema"]
            .as_str()
            .unwrap()
    );
    let v2 = schema("sensor-data-v2.avsc");
    let r = c
        .check_compatibility("sensor-data-value", "latest", &v2)
        .unwrap();
    assert!(r.is_compatible && r.messages.is_empty());
    let bad = schema("sensor-data.avsc").replace(r#""type": "long""#, r#""type": "string""#);
    let r = c
        .check_compatibility("sensor-data-value", "latest", &bad)
        .unwrap();
    assert_eq!(
        r.messages,
        vec!["reader type: string not compatible with writer type: long"]
    );
    assert_eq!(c.register("sensor-data-value", &v2).unwrap(), 4);
    assert_eq!(c.versions("sensor-data-value").unwrap(), vec![1, 2]);
    assert_eq!(c.version("sensor-data-value", 2).unwrap().id, 4);
    assert_eq!(
        c.put_config(Some("sensor-data-value"), "FULL").unwrap(),
        "FULL"
    );
    assert_eq!(
        c.get_config(Some("sensor-data-value"), false).unwrap(),
        "FULL"
    );
    assert_eq!(c.get_config(None, false).unwrap(), "BACKWARD");
    // The same schema under another subject reuses the global id.
    assert_eq!(c.register("copy-value", &schema("orders.avsc")).unwrap(), 2);
}

#[test]
fn latest_is_cached_for_the_ttl() {
    let reg = seeded();
    let c = client(&reg);
    assert_eq!(c.latest("sensor-data-value").unwrap().id, 3);
    reg.register("sensor-data-value", &schema("sensor-data-v2.avsc"))
        .unwrap();
    let before = reg.request_count();
    assert_eq!(
        c.writer_schema("sensor-data-value").unwrap().id,
        3,
        "within the TTL: the cached latest"
    );
    assert_eq!(reg.request_count(), before, "no request within the TTL");
    let mut o = fast(vec![reg.url()]);
    o.latest_ttl = Duration::ZERO;
    let c0 = RegistryClient::new(o).unwrap();
    assert_eq!(c0.writer_schema("sensor-data-value").unwrap().id, 4);
    assert_eq!(c0.writer_schema("sensor-data-value").unwrap().version, 2);
}

#[test]
fn auto_register_mode_registers_the_given_schema() {
    let reg = seeded();
    let mut o = fast(vec![reg.url()]);
    o.mode = WriterMode::AutoRegister;
    let c = RegistryClient::new(o).unwrap();
    c.set_writer_schema("sensor-data-value", &schema("sensor-data-v2.avsc"))
        .unwrap();
    let w = c.writer_schema("sensor-data-value").unwrap();
    assert_eq!((w.id, w.version), (4, 2));
    // A subject without a given schema uses its latest.
    assert_eq!(c.writer_schema("orders-value").unwrap().id, 2);
}

/// A scripted HTTP server: answers the given `(status, body)`s in order (the last one repeats),
/// one request per connection, and records every request head.
struct Scripted {
    url: String,
    heads: Arc<Mutex<Vec<String>>>,
}

fn scripted(answers: Vec<(u16, &'static str)>) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let h = heads.clone();
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line.trim().is_empty() {
                    break;
                }
                head.push_str(&line);
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            h.lock().unwrap().push(head);
            let (status, text) = answers[i.min(answers.len() - 1)];
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/vnd.schemaregistry.v1+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    Scripted { url, heads }
}

const ID3: &str = r#"{"schema":"{\"type\":\"enum\",\"name\":\"S\",\"symbols\":[\"A\"]}"}"#;

#[test]
fn retries_a_503_then_succeeds() {
    let s = scripted(vec![
        (503, r#"{"error_code":50301,"message":"busy"}"#),
        (200, ID3),
    ]);
    let c = RegistryClient::new(fast(vec![s.url.clone()])).unwrap();
    assert!(c.schema_by_id(3).unwrap().contains("\"S\""));
    assert_eq!(s.heads.lock().unwrap().len(), 2);
}

#[test]
fn gives_up_after_the_retries_on_5xx() {
    let s = scripted(vec![(500, r#"{"error_code":50001,"message":"boom"}"#)]);
    let c = RegistryClient::new(fast(vec![s.url.clone()])).unwrap();
    let e = c.schema_by_id(3).unwrap_err();
    assert_eq!(
        (e.code(), e.kind().as_str(), e.is_unavailable()),
        (Some(50001), "registry-server-error", true)
    );
    assert_eq!(s.heads.lock().unwrap().len(), 3, "first try + 2 retries");
}

#[test]
fn does_not_retry_a_404() {
    let s = scripted(vec![
        (404, r#"{"error_code":40403,"message":"Schema not found"}"#),
        (200, ID3),
    ]);
    let c = RegistryClient::new(fast(vec![s.url.clone()])).unwrap();
    assert!(matches!(
        c.schema_by_id(3).unwrap_err(),
        RegistryError::SchemaNotFound { id: 3 }
    ));
    assert_eq!(s.heads.lock().unwrap().len(), 1);
}

fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

#[test]
fn a_dead_first_url_falls_through_to_the_second() {
    let reg = seeded();
    let c = RegistryClient::new(fast(vec![dead_url(), reg.url()])).unwrap();
    assert_eq!(c.writer_schema("sensor-data-value").unwrap().id, 3);
    let e = RegistryClient::new(fast(vec![dead_url()]))
        .unwrap()
        .schema_by_id(3)
        .unwrap_err();
    assert_eq!(e.kind(), "registry-unreachable");
}

#[test]
fn sends_basic_and_bearer_auth_and_the_registry_media_types() {
    let s = scripted(vec![(200, ID3)]);
    let mut o = fast(vec![s.url.clone()]);
    o.auth = Some(Auth::Basic {
        username: "user".into(),
        password: "pass".into(),
    });
    let c = RegistryClient::new(o).unwrap();
    c.schema_by_id(1).unwrap();
    c.register("x-value", r#"{"type":"enum","name":"S","symbols":["A"]}"#)
        .unwrap_err(); // ID3 has no "id"
    let mut o = fast(vec![s.url.clone()]);
    o.auth = Some(Auth::Bearer("tok-123".into()));
    RegistryClient::new(o).unwrap().schema_by_id(2).unwrap();
    // Credentials in the URL become basic auth and are not sent in the request line.
    let userinfo = s.url.replace("http://", "http://alice:wonder@");
    RegistryClient::new(fast(vec![userinfo]))
        .unwrap()
        .schema_by_id(4)
        .unwrap();
    let heads = s.heads.lock().unwrap().clone();
    let lower: Vec<String> = heads.iter().map(|h| h.to_ascii_lowercase()).collect();
    assert!(heads[0].contains("Basic dXNlcjpwYXNz"), "{}", heads[0]);
    assert!(lower[0].contains("accept: application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, application/json"));
    assert!(
        lower[1].contains("content-type: application/vnd.schemaregistry.v1+json"),
        "{}",
        heads[1]
    );
    assert!(heads[2].contains("Bearer tok-123"), "{}", heads[2]);
    assert!(
        heads[3].contains("Basic YWxpY2U6d29uZGVy") && !heads[3].contains("alice"),
        "{}",
        heads[3]
    );
}

fn cached_client(urls: Vec<String>, dir: &Path) -> RegistryClient {
    let mut o = fast(urls);
    o.cache_dir = Some(dir.to_path_buf());
    RegistryClient::new(o).unwrap()
}

#[test]
fn cache_hit_makes_no_request() {
    let reg = seeded();
    let dir = tmpdir("hit");
    std::fs::create_dir_all(dir.join("ids")).unwrap();
    std::fs::write(dir.join("ids/3.avsc"), schema("sensor-data.avsc")).unwrap();
    let c = cached_client(vec![reg.url()], &dir);
    assert_eq!(&*c.schema_by_id(3).unwrap(), schema("sensor-data.avsc"));
    assert_eq!(reg.request_count(), 0);
    // A miss goes to the registry and is written through.
    assert_eq!(
        &*c.schema_by_id(2).unwrap(),
        fixture("19-")["response"]["body"]["schema"]
            .as_str()
            .unwrap()
    );
    assert_eq!(reg.request_count(), 1);
    assert_eq!(
        std::fs::read_to_string(dir.join("ids/2.avsc")).unwrap(),
        fixture("19-")["response"]["body"]["schema"]
            .as_str()
            .unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn write_through_files_have_the_exact_format() {
    let reg = seeded();
    let dir = tmpdir("format");
    let c = cached_client(vec![reg.url()], &dir);
    c.writer_schema("sensor-data-value").unwrap();
    // subjects/<s>.json is byte for byte the body of GET .../versions/latest (exchange 15).
    let f15 = fixture("15-");
    assert_eq!(
        std::fs::read_to_string(dir.join("subjects/sensor-data-value.json")).unwrap(),
        f15["response"]["body_raw"].as_str().unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("ids/3.avsc")).unwrap(),
        f15["response"]["body"]["schema"].as_str().unwrap()
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("ids"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_disagreeing_cache_entry_is_reported_not_overwritten() {
    let reg = seeded();
    // Same id, another schema.
    let dir = tmpdir("conflict-id");
    std::fs::create_dir_all(dir.join("ids")).unwrap();
    std::fs::write(dir.join("ids/3.avsc"), schema("orders.avsc")).unwrap();
    let mut o = fast(vec![reg.url()]);
    o.cache_dir = Some(dir.clone());
    let c = RegistryClient::new(o).unwrap();
    let e = c.writer_schema("sensor-data-value").unwrap_err();
    assert!(matches!(e, RegistryError::CacheConflict { .. }), "{e:?}");
    assert_eq!(e.kind(), "schema-cache-conflict");
    assert!(
        e.to_string().contains("schema id 3")
            && e.to_string().contains("Order")
            && e.to_string().contains("SensorData"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("ids/3.avsc")).unwrap(),
        schema("orders.avsc")
    );
    // Same subject and version, another id.
    let dir2 = tmpdir("conflict-subject");
    std::fs::create_dir_all(dir2.join("subjects")).unwrap();
    let stale = r#"{"subject":"sensor-data-value","version":1,"id":9,"schema":"\"string\""}"#;
    std::fs::write(dir2.join("subjects/sensor-data-value.json"), stale).unwrap();
    let mut o = fast(vec![reg.url()]);
    o.cache_dir = Some(dir2.clone());
    o.latest_ttl = Duration::ZERO;
    let e = RegistryClient::new(o)
        .unwrap()
        .writer_schema("sensor-data-value")
        .unwrap_err();
    assert_eq!(e.kind(), "schema-cache-conflict", "{e}");
    assert!(
        e.to_string().contains("version 1")
            && e.to_string().contains("id 9")
            && e.to_string().contains("id 3"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(dir2.join("subjects/sensor-data-value.json")).unwrap(),
        stale
    );
    // Same schema in other text (not sorted): no conflict, the file is kept.
    let dir3 = tmpdir("same");
    std::fs::create_dir_all(dir3.join("ids")).unwrap();
    std::fs::write(dir3.join("ids/3.avsc"), schema("sensor-data.avsc")).unwrap();
    cached_client(vec![reg.url()], &dir3)
        .writer_schema("sensor-data-value")
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir3.join("ids/3.avsc")).unwrap(),
        schema("sensor-data.avsc")
    );
    for d in [dir, dir2, dir3] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn cold_start_from_the_cache_with_the_registry_down() {
    let reg = seeded();
    let url = reg.url();
    let dir = tmpdir("cold");
    {
        let c = cached_client(vec![url.clone()], &dir);
        c.writer_schema("sensor-data-value").unwrap();
    }
    reg.stop();
    // A new client, same URL (now dead), TTL zero so it must try the registry, then fall back.
    let mut o = fast(vec![url.clone()]);
    o.cache_dir = Some(dir.clone());
    o.latest_ttl = Duration::ZERO;
    let c = RegistryClient::new(o).unwrap();
    let w = c.writer_schema("sensor-data-value").unwrap();
    assert_eq!(
        (w.subject.as_str(), w.version, w.id),
        ("sensor-data-value", 1, 3)
    );
    assert_eq!(
        &*c.schema_by_id(3).unwrap(),
        fixture("20-")["response"]["body"]["schema"]
            .as_str()
            .unwrap()
    );
    // What the CLI and the forwarder build.
    let src = open_source(&[url], Some(&dir)).unwrap();
    assert_eq!(src.writer_schema("sensor-data-value").unwrap().id, 3);
    assert_eq!(src.schema_by_id(3).unwrap(), c.schema_by_id(3).unwrap());
    assert_eq!(
        src.schema_by_id(2).unwrap_err().kind(),
        "registry-unreachable"
    );
    // Cache only: no URL at all.
    let offline = open_source(&[], Some(&dir)).unwrap();
    assert_eq!(offline.writer_schema("sensor-data-value").unwrap().id, 3);
    assert_eq!(
        offline.schema_by_id(2).unwrap_err().kind(),
        "unknown-schema-id"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn falls_back_to_the_cache_when_the_registry_keeps_answering_503() {
    let s = scripted(vec![(503, r#"{"error_code":50301,"message":"busy"}"#)]);
    let dir = tmpdir("503");
    std::fs::create_dir_all(dir.join("subjects")).unwrap();
    let body = fixture("15-")["response"]["body_raw"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(dir.join("subjects/sensor-data-value.json"), &body).unwrap();
    let mut o = fast(vec![s.url.clone()]);
    o.cache_dir = Some(dir.clone());
    o.latest_ttl = Duration::ZERO;
    let w = RegistryClient::new(o)
        .unwrap()
        .writer_schema("sensor-data-value")
        .unwrap();
    assert_eq!((w.version, w.id), (1, 3));
    assert_eq!(
        s.heads.lock().unwrap().len(),
        3,
        "asked (with retries) before falling back"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_registry_that_never_answers_times_out_and_the_next_url_is_tried() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    std::thread::spawn(move || {
        for s in silent.incoming().flatten() {
            h.lock().unwrap().push(s); // accept, read nothing, answer nothing
        }
    });
    let reg = seeded();
    let mut o = fast(vec![silent_url, reg.url()]);
    o.read_timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let c = RegistryClient::new(o).unwrap();
    assert_eq!(c.schema_by_id(3).unwrap(), c.schema_by_id(3).unwrap());
    assert!(
        !held.lock().unwrap().is_empty(),
        "the silent registry was asked first"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn retries_429_and_408_but_not_409() {
    for (status, body, want_requests) in [
        (429, r#"{"error_code":429,"message":"slow down"}"#, 2),
        (408, r#"{"error_code":408,"message":"timeout"}"#, 2),
        (
            409,
            r#"{"error_code":409,"message":"Incompatible schema"}"#,
            1,
        ),
    ] {
        let s = scripted(vec![(status, body), (200, ID3)]);
        let c = RegistryClient::new(fast(vec![s.url.clone()])).unwrap();
        let _ = c.schema_by_id(3);
        assert_eq!(
            s.heads.lock().unwrap().len(),
            want_requests,
            "status {status}"
        );
    }
}
