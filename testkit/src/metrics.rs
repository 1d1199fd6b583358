//! Read a running forwarder's Prometheus endpoint (`--metrics-listen`): one value, or wait for one.
//!
//! Must not start or stop anything: the caller owns the forwarder process.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// One value from the forwarder's Prometheus endpoint (`avro_edge_<name>`); None while it does not answer.
pub fn metric(addr: &str, name: &str) -> Option<u64> {
    let mut c = std::net::TcpStream::connect(addr).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    c.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    c.read_to_string(&mut body).ok()?;
    let prefix = format!("avro_edge_{name} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// Poll [`metric`] every 50 ms until `cond` holds and return the value; panic after `limit`, with the
/// forwarder's log when `log` names it.
pub fn wait_metric(
    addr: &str,
    name: &str,
    cond: impl Fn(u64) -> bool,
    limit: Duration,
    log: Option<&Path>,
) -> u64 {
    let end = Instant::now() + limit;
    loop {
        let v = metric(addr, name);
        if let Some(v) = v
            && cond(v)
        {
            return v;
        }
        assert!(
            Instant::now() < end,
            "metric {name} stuck at {v:?}{}",
            log.map(|p| format!("; log:\n{}", std::fs::read_to_string(p).unwrap_or_default()))
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
