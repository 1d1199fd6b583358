//! `avro-edge schemas push|pull|serve` through the real binary.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use avro_edge::ErrorKind;
use avro_edge::TestRegistry;
use avro_edge::{ClientOptions, RegistryClient, open_source};
use serde_json::Value;

use crate::registry_common::{fixture_body, root, schema, tmpdir};

const BIN: &str = env!("CARGO_BIN_EXE_avro-edge");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(root())
        .env_remove("AVRO_EDGE_REGISTRY")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `avro-edge schemas serve` as a child process; killed (by its handle) on drop.
struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(preload: &[&str]) -> Served {
    let mut cmd = Command::new(BIN);
    cmd.args(["schemas", "serve", "--listen", "127.0.0.1:0"])
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for p in preload {
        cmd.args(["--preload", p]);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    Served { child, url }
}

fn client(url: &str) -> RegistryClient {
    RegistryClient::new(ClientOptions::new([url])).unwrap()
}

#[test]
fn serve_preloads_in_order_and_pull_fills_a_cache_for_a_cold_start() {
    let served = serve(&[
        "schemas/user-registration.avsc",
        "schemas/orders.avsc",
        "schemas/sensor-data.avsc",
        "schemas/sensor-data-v2.avsc",
    ]);
    // The preload order gives the recorded ids: 3 is SensorData v1, 4 is v2 (same subject).
    let c = client(&served.url);
    assert_eq!(
        &*c.schema(3).unwrap(),
        fixture_body("20-")["schema"].as_str().unwrap()
    );
    assert_eq!(
        &*c.schema(4).unwrap(),
        fixture_body("50-")["schema"].as_str().unwrap()
    );
    let dir = tmpdir("pull");
    let (code, out, err) = run(&[
        "schemas",
        "pull",
        "--registry",
        &served.url,
        "--subject",
        "sensor-data-value",
        "orders-value",
        "--cache",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "sensor-data-value 2 4\norders-value 1 2\n");
    // The subject file is exactly the latest body the registry serves.
    let latest = fixture_body("48-");
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("subjects/sensor-data-value.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(file, latest);
    let url = served.url.clone();
    drop(served); // the registry is gone
    let src = open_source(&[url], Some(&dir)).unwrap();
    let w = src.writer_schema("sensor-data-value").unwrap();
    assert_eq!((w.version, w.id), (2, 4));
    assert_eq!(
        &*src.schema_by_id(3).unwrap(),
        fixture_body("20-")["schema"].as_str().unwrap()
    );
    assert_eq!(
        src.schema_by_id(1).unwrap_err().kind(),
        "registry-unreachable"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn push_registers_every_file_under_its_subject() {
    let reg = TestRegistry::start();
    let (code, out, err) = run(&["schemas", "push", "--registry", &reg.url()]);
    assert_eq!(code, 0, "{err}");
    let c = client(&reg.url());
    let lines: Vec<(String, u32)> = out
        .lines()
        .map(|l| {
            let (s, id) = l.split_once(' ').unwrap();
            (s.to_string(), id.parse().unwrap())
        })
        .collect();
    let subjects: Vec<&str> = lines.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "orders-value",
            "sensor-data-value",
            "sensor-data-value",
            "user-registration-value"
        ]
    );
    // Each printed id is what the registry holds for that file's schema.
    let files = [
        "orders.avsc",
        "sensor-data.avsc",
        "sensor-data-v2.avsc",
        "user-registration.avsc",
    ];
    for ((subject, id), file) in lines.iter().zip(files) {
        assert_eq!(c.lookup(subject, &schema(file)).unwrap().id, *id, "{file}");
    }
    assert_eq!(c.versions("sensor-data-value").unwrap(), vec![1, 2]);
    // Overrides.
    let (code, out, _) = run(&[
        "schemas",
        "push",
        "--registry",
        &reg.url(),
        "--subject-suffix",
        "key",
        "schemas/orders.avsc",
    ]);
    assert_eq!((code, out.as_str()), (0, "orders-key 1\n"));
    let (code, out, _) = run(&[
        "schemas",
        "push",
        "--registry",
        &reg.url(),
        "--subject",
        "custom",
        "schemas/orders.avsc",
    ]);
    assert_eq!((code, out.as_str()), (0, "custom 1\n"));
}

#[test]
fn push_and_pull_report_bad_input_with_kinds() {
    let reg = TestRegistry::start();
    let dir = tmpdir("bad");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("broken.avsc"),
        r#"{"type":"record","name":"X","fields":[{"name":"a","type":"strng"}]}"#,
    )
    .unwrap();
    let (code, _, err) = run(&[
        "schemas",
        "push",
        "--registry",
        &reg.url(),
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("error[invalid-schema]: ") && err.contains("strng"),
        "{err}"
    );
    let (code, _, err) = run(&[
        "schemas",
        "pull",
        "--registry",
        &reg.url(),
        "--subject",
        "nope-value",
        "--cache",
        dir.join("c").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.starts_with("error[unknown-subject]: "), "{err}");
    reg.register("sensor-data-value", &schema("sensor-data.avsc"))
        .unwrap();
    let incompatible =
        schema("sensor-data.avsc").replace(r#""type": "long""#, r#""type": "string""#);
    std::fs::remove_file(dir.join("broken.avsc")).unwrap();
    std::fs::write(dir.join("sensor-data.avsc"), incompatible).unwrap();
    let (code, _, err) = run(&[
        "schemas",
        "push",
        "--registry",
        &reg.url(),
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("error[incompatible-schema]: ")
            && err.contains("reader type: string not compatible with writer type: long"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every file in `dir`, relative path → content.
fn files(dir: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for sub in ["ids", "subjects"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let p = e.unwrap().path();
            out.insert(
                format!("{sub}/{}", p.file_name().unwrap().to_string_lossy()),
                std::fs::read_to_string(&p).unwrap(),
            );
        }
    }
    out
}

#[test]
fn pull_writes_the_same_bytes_as_the_shared_cache_fixture() {
    // fixtures/schema-cache was built from the recorded Karapace answers (other tools write this
    // format too); a pull from our registry, loaded in the recorded order, must give the same files.
    let served = serve(&[
        "schemas/user-registration.avsc",
        "schemas/orders.avsc",
        "schemas/sensor-data.avsc",
    ]);
    let dir = tmpdir("same-bytes");
    let (code, _, err) = run(&[
        "schemas",
        "pull",
        "--registry",
        &served.url,
        "--cache",
        dir.to_str().unwrap(),
        "--subject",
        "user-registration-value",
        "orders-value",
        "sensor-data-value",
    ]);
    assert_eq!(code, 0, "{err}");
    let mut want = files(&root().join("fixtures/schema-cache"));
    want.remove("ids/4.avsc"); // v2 is not registered here
    assert_eq!(files(&dir), want);
    // And the fixture cache serves as an offline source.
    let src = open_source(&[], Some(&root().join("fixtures/schema-cache"))).unwrap();
    assert_eq!(src.writer_schema("orders-value").unwrap().id, 2);
    assert_eq!(
        &*src.schema_by_id(4).unwrap(),
        fixture_body("50-")["schema"].as_str().unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
