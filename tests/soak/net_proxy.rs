//! The test kit's TCP proxy (`avro_edge_testkit::net`), against an echo server on loopback: each mode
//! does what the fault tests rely on. Bytes pass intact and are counted each way; a slow link never
//! delivers more than its cap allows (checked on the bytes delivered at every sample, so a slow
//! machine cannot fail it) and adds its delay each way; a refusing cut refuses connects and resets
//! live connections; a black hole freezes live connections and holds new ones, then delivers what
//! waited once healed; a reset resets live connections and passes new ones.
//!
//! No broker needed: these run in every `cargo test`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use avro_edge_testkit::net::{Cut, Link, Mode, Proxy};

/// An echo server on a free loopback port (every connection echoed until its EOF).
fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut c = c;
                let mut buf = [0u8; 8192];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 || c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn connect(p: &Proxy) -> TcpStream {
    let c = TcpStream::connect(p.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// Write `data` and read as many bytes back.
fn echo(c: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    c.write_all(data).unwrap();
    let mut back = vec![0u8; data.len()];
    c.read_exact(&mut back).unwrap();
    back
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Wait until `f` holds (the counters are updated just after the bytes are written).
fn eventually(what: &str, f: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < end, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A read that must bring nothing within `wait`.
fn assert_silent(c: &mut TcpStream, wait: Duration) {
    c.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 16];
    match c.read(&mut b) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("expected silence, got {other:?}"),
    }
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
}

/// A read on a connection the proxy reset.
fn assert_reset(c: &mut TcpStream) {
    let mut b = [0u8; 16];
    match c.read(&mut b) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!("read {n} bytes from a reset connection"),
    }
}

#[test]
fn pass_carries_bytes_both_ways_and_counts_them() {
    let p = Proxy::start(echo_server()).unwrap();
    let mut c = connect(&p);
    let data = pattern(200_000);
    assert_eq!(echo(&mut c, &data), data);
    eventually("200,000 bytes counted each way", || {
        let t = p.traffic();
        t.up == 200_000 && t.down == 200_000
    });
    assert_eq!(p.traffic().connections, 1);
}

/// 64 kbit/s each way: at every sample, the bytes delivered up are at most what the link could
/// carry since the first byte was written, plus one piece; all of it arrives, intact.
#[test]
fn a_slow_link_never_delivers_more_than_its_cap() {
    const CAP_BPS: u64 = 64_000;
    const N: usize = 16_000; // 2 s of the link
    let p = Proxy::start(echo_server()).unwrap();
    p.set(Mode::Slow(Arc::new(Link::new(CAP_BPS, Duration::ZERO))))
        .unwrap();
    let mut c = connect(&p);
    let mut w = c.try_clone().unwrap();
    let data = pattern(N);
    let sent = data.clone();
    let started = Instant::now();
    let writer = std::thread::spawn(move || w.write_all(&sent).unwrap());
    let mut back = vec![0u8; N];
    let reader = std::thread::spawn(move || {
        c.read_exact(&mut back).unwrap();
        back
    });
    let mut samples = 0;
    while !reader.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
        // Read the counter first: the elapsed time taken after it only grows the allowance.
        let t = p.traffic();
        let allowed = (CAP_BPS as f64 / 8.0 * started.elapsed().as_secs_f64()) as u64 + 512;
        assert!(t.up <= allowed, "up {} bytes > {allowed} allowed", t.up);
        assert!(
            t.down <= allowed,
            "down {} bytes > {allowed} allowed",
            t.down
        );
        samples += 1;
    }
    writer.join().unwrap();
    assert_eq!(reader.join().unwrap(), data);
    let t = p.traffic();
    assert_eq!((t.up, t.down), (N as u64, N as u64));
    eprintln!(
        "{N} bytes each way through {CAP_BPS} bit/s in {:?} ({samples} samples)",
        started.elapsed()
    );
}

/// A 300 ms delay each way: a one-byte echo takes at least 600 ms (a slow machine only adds).
#[test]
fn a_slow_link_adds_its_delay_each_way() {
    let p = Proxy::start(echo_server()).unwrap();
    let link = Arc::new(Link::new(1_000_000_000, Duration::from_millis(300)));
    p.set(Mode::Slow(link)).unwrap();
    let mut c = connect(&p);
    let t = Instant::now();
    assert_eq!(echo(&mut c, b"x"), b"x");
    let rtt = t.elapsed();
    assert!(rtt >= Duration::from_millis(600), "round trip {rtt:?}");
}

#[test]
fn a_refusing_cut_refuses_connects_and_resets_live_connections() {
    let p = Proxy::start(echo_server()).unwrap();
    let mut live = connect(&p);
    assert_eq!(echo(&mut live, b"before"), b"before");
    p.set(Mode::Cut(Cut::REFUSE)).unwrap();
    assert_reset(&mut live);
    let refused = TcpStream::connect(p.addr()).map(|_| ()).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "{refused}");
    assert_eq!(p.traffic().resets, 1);
    p.pass().unwrap();
    let mut again = connect(&p);
    assert_eq!(echo(&mut again, b"after"), b"after");
}

#[test]
fn a_black_hole_freezes_live_connections_and_holds_new_ones_until_healed() {
    let p = Proxy::start(echo_server()).unwrap();
    let mut live = connect(&p);
    assert_eq!(echo(&mut live, b"before"), b"before");
    let before = p.traffic();
    p.set(Mode::Cut(Cut::BLACKHOLE)).unwrap();
    live.write_all(b"frozen").unwrap();
    assert_silent(&mut live, Duration::from_millis(700));
    // The connect completes (the kernel's backlog) but nothing is served.
    let mut held = connect(&p);
    held.write_all(b"held").unwrap();
    assert_silent(&mut held, Duration::from_millis(300));
    assert_eq!(p.traffic().up, before.up, "bytes went up through a cut");
    assert_eq!(p.traffic().connections, before.connections);
    p.pass().unwrap();
    let mut back = [0u8; 6];
    live.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"frozen");
    let mut back = [0u8; 4];
    held.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"held");
}

#[test]
fn a_reset_resets_live_connections_then_passes() {
    let p = Proxy::start(echo_server()).unwrap();
    let mut live = connect(&p);
    assert_eq!(echo(&mut live, b"before"), b"before");
    p.reset().unwrap();
    assert_reset(&mut live);
    assert_eq!(p.traffic().resets, 1);
    let mut next = connect(&p);
    assert_eq!(echo(&mut next, b"after"), b"after");
    assert!(matches!(p.mode(), Mode::Pass));
}

#[test]
fn a_dead_upstream_resets_the_client() {
    let nothing = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let p = Proxy::start(nothing).unwrap();
    let mut c = connect(&p);
    assert_reset(&mut c);
}
