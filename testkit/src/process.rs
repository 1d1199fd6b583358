//! Child processes and this process: pipe input to a child and collect its output, pick a free
//! loopback port, read this process's peak memory.
//!
//! Must not know what the children are (peers, the CLI, tansu): callers build the `Command`.

use std::net::TcpListener;
use std::process::{Command, Stdio};

/// Run `cmd` with `input` on its stdin (closed afterwards, so the child sees its end) and collect its
/// output. Stdout is captured; stderr stays as the caller set it (inherited by default). The input is
/// written from a thread, so a child that writes a lot before reading all its input cannot deadlock.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> std::io::Result<std::process::Output> {
    use std::io::Write;
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    let writer = child.stdin.take().map(|mut stdin| {
        let input = input.to_vec();
        std::thread::spawn(move || stdin.write_all(&input))
    });
    let out = child.wait_with_output()?;
    if let Some(w) = writer {
        w.join()
            .map_err(|_| std::io::Error::other("stdin writer panicked"))??;
    }
    Ok(out)
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    free_ports(1).map(|p| p[0])
}

/// `count` distinct loopback ports that were free a moment ago (all held open while picking),
/// taken below the kernel's ephemeral range: a port from that range (what binding port 0 gives)
/// can be taken by any outgoing connection before the server that is meant to listen on it
/// starts, which a test with many clients does often (Kafka then exits with "Unable to start
/// acceptor").
pub fn free_ports(count: usize) -> std::io::Result<Vec<u16>> {
    let (low, high) = below_ephemeral_range();
    let span = u32::from(high - low);
    let mut next = (random_u64(0) % u64::from(span)) as u32;
    let mut held = Vec::with_capacity(count);
    for _ in 0..span {
        if held.len() == count {
            break;
        }
        let port = low + (next % span) as u16;
        next = next.wrapping_add(1);
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(l);
        }
    }
    if held.len() < count {
        return Err(std::io::Error::other(format!(
            "only {} of {count} free loopback ports in {low}..{high}",
            held.len()
        )));
    }
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// Ports to pick from: the 12,000 below the start of the ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`, 32768 when unreadable).
fn below_ephemeral_range() -> (u16, u16) {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u16>().ok())
        })
        .unwrap_or(32768)
        .max(13_024);
    (start - 12_000, start)
}

/// A number no other process or call is likely to get: `salt`, the pid and the time, hashed
/// with a random key.
pub(crate) fn random_u64(salt: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(salt);
    h.write_u32(std::process::id());
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish()
}

/// A free loopback address (`127.0.0.1:PORT`), e.g. for `--metrics-listen`.
pub fn free_addr() -> std::io::Result<String> {
    Ok(format!("127.0.0.1:{}", free_port()?))
}

/// Peak resident set size of this process in KiB (`VmHWM` from `/proc/self/status`); -1 if unknown.
pub fn peak_rss_kb() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(-1)
}
