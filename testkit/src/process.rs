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
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
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
