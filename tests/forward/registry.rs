//! The forwarder's schema source with the registry down and back: it starts from the offline cache, and
//! once the registry answers again (after the latest-version TTL) it takes the registry's latest and
//! writes it through to the cache directory.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use avro_edge::OfflineCache;
use avro_edge::TestRegistry;
use avro_edge::{RegistryClient, SchemaSource, client_options};

fn fixtures() -> PathBuf {
    avro_edge_testkit::root().join("fixtures")
}

/// A copy of the fixture cache whose files look a day old (past any TTL), so the client must try the
/// registry before it may use them.
pub fn stale_cache_copy(tag: &str) -> PathBuf {
    let dir = avro_edge_testkit::tmpdir(&format!("fwdreg-{tag}"));
    let old = SystemTime::now() - Duration::from_secs(86_400);
    for sub in ["ids", "subjects"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for e in std::fs::read_dir(fixtures().join("schema-cache").join(sub)).unwrap() {
            let e = e.unwrap();
            let to = dir.join(sub).join(e.file_name());
            std::fs::copy(e.path(), &to).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&to)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
    }
    dir
}

fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a.to_string()
}

#[test]
fn offline_cache_at_start_then_refreshed_when_the_registry_comes_back() {
    let dir = stale_cache_copy("refresh");
    let addr = closed_port();
    let mut opts = client_options(&[format!("http://{addr}")], Some(&dir));
    opts.latest_ttl = Duration::from_millis(300);
    opts.retries = 0;
    opts.connect_timeout = Duration::from_millis(500);
    let client = RegistryClient::new(opts).unwrap();

    // Registry down: the cached latest (SensorData v1, id 3) serves.
    let s = client.writer_schema("sensor-data-value").unwrap();
    assert_eq!(s.id, 3, "offline cache gives the recorded id");

    // The registry comes back on the same address with a newer version of the subject.
    let reg = TestRegistry::bind(&addr).unwrap();
    // Registered in the recorded order, so the ids agree with the cache's (1..=4).
    let ids = fixtures().join("schema-cache").join("ids");
    let text = |id: u32| std::fs::read_to_string(ids.join(format!("{id}.avsc"))).unwrap();
    reg.register("user-registration-value", &text(1)).unwrap();
    reg.register("orders-value", &text(2)).unwrap();
    let (v1, v2) = (text(3), text(4));
    let id1 = reg.register("sensor-data-value", &v1).unwrap();
    let id2 = reg.register("sensor-data-value", &v2).unwrap();
    assert_ne!(id1, id2);
    let before = reg.request_count();

    std::thread::sleep(Duration::from_millis(400));
    let s = client.writer_schema("sensor-data-value").unwrap();
    assert_eq!(s.id, id2, "past the TTL the registry's latest wins");
    assert_eq!(s.version, 2);
    assert!(reg.request_count() > before, "the registry was asked");

    // Written through: a cache-only reader (the next offline start) now sees the new latest.
    let cached = OfflineCache::new(&dir)
        .read_subject("sensor-data-value")
        .unwrap()
        .expect("subject in the cache");
    assert_eq!(cached.id, id2);
    assert_eq!(cached.version, 2);
    reg.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
