//! Inputs: NDJSON lines from stdin (or any reader), a followed file (`tail -F`: survives rotation and
//! truncation), and UDP datagrams (one record each). Each hands lines to a callback.
//!
//! Must not parse or encode records (that is the ingest step), and must never hold more than
//! `max_line_bytes` of one line in memory: a longer line is reported as [`Line::TooLong`] with its start.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::net::UdpSocket;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::StartAt;

/// How much of an over-long line is kept for the dead-letter file.
pub const TOO_LONG_PREFIX: usize = 1024;
/// How often a followed file is checked for growth, rotation and truncation.
pub const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// One input line (without its line ending), borrowed from the input's buffer until the callback returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    Ok(&'a [u8]),
    /// Longer than the limit: only the first bytes were kept.
    TooLong {
        prefix: &'a [u8],
        len: usize,
    },
}

/// Splits a byte stream into bounded lines; keeps a partial last line until more bytes come.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
    overflow: Option<usize>,
    /// Stream offset of the bytes consumed so far.
    offset: u64,
    /// Stream offset just past the last line the callback accepted (`Flow::Continue`).
    committed: u64,
}

/// What the callback says after each line: go on, or stop reading this input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// A complete line within the limit: without a trailing `\r`; blank lines are skipped.
fn emit_complete(line: &[u8], on_line: &mut dyn FnMut(Line) -> Flow) -> Flow {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        Flow::Continue
    } else {
        on_line(Line::Ok(line))
    }
}

impl LineSplitter {
    /// A splitter for a stream that starts at byte `offset` of its file.
    pub fn starting_at(offset: u64) -> Self {
        LineSplitter {
            offset,
            committed: offset,
            ..LineSplitter::default()
        }
    }

    /// Offset just past the last accepted line: where a restart resumes.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Hand the buffered line to `on_line`; the buffer is kept (cleared) for the next line.
    fn emit(&mut self, on_line: &mut dyn FnMut(Line) -> Flow) -> Flow {
        let flow = match self.overflow.take() {
            Some(len) => on_line(Line::TooLong {
                prefix: &self.buf,
                len,
            }),
            None => emit_complete(&self.buf, on_line),
        };
        self.buf.clear();
        flow
    }

    /// Read what `r` has now, calling `on_line` for every complete line. Returns at end of data (true)
    /// or when the callback says stop (false).
    pub fn read_available(
        &mut self,
        r: &mut dyn BufRead,
        max: usize,
        on_line: &mut dyn FnMut(Line) -> Flow,
    ) -> std::io::Result<bool> {
        loop {
            let avail = match r.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                return Ok(true);
            }
            let (chunk, complete) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (avail.get(..i).unwrap_or_default(), true),
                None => (avail, false),
            };
            let used = chunk.len() + usize::from(complete);
            if complete && self.buf.is_empty() && self.overflow.is_none() && chunk.len() <= max {
                // The whole line is in the reader's buffer: hand it over from there, no copy.
                let flow = emit_complete(chunk, on_line);
                r.consume(used);
                self.offset += used as u64;
                if flow == Flow::Stop {
                    return Ok(false);
                }
                self.committed = self.offset;
                continue;
            }
            match self.overflow.as_mut() {
                Some(len) => *len += chunk.len(),
                None if self.buf.len() + chunk.len() > max => {
                    let total = self.buf.len() + chunk.len();
                    self.buf.truncate(TOO_LONG_PREFIX);
                    let room = TOO_LONG_PREFIX.saturating_sub(self.buf.len());
                    self.buf
                        .extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
                    self.overflow = Some(total);
                }
                None => self.buf.extend_from_slice(chunk),
            }
            r.consume(used);
            self.offset += used as u64;
            if complete {
                if self.emit(on_line) == Flow::Stop {
                    return Ok(false);
                }
                self.committed = self.offset;
            }
        }
    }

    /// The stream ended: a last line without a line ending is still a line.
    pub fn finish(&mut self, on_line: &mut dyn FnMut(Line) -> Flow) -> Flow {
        if self.buf.is_empty() && self.overflow.is_none() {
            return Flow::Continue;
        }
        let flow = self.emit(on_line);
        if flow == Flow::Continue {
            self.committed = self.offset;
        }
        flow
    }

    /// Forget a partial line (the file it came from was truncated).
    pub fn reset(&mut self) {
        *self = LineSplitter::default();
    }
}

/// Read NDJSON from a reader to its end (stdin). Returns early when the callback says stop.
pub fn read_stream(
    r: &mut dyn BufRead,
    max: usize,
    on_line: &mut dyn FnMut(Line) -> Flow,
) -> std::io::Result<()> {
    let mut s = LineSplitter::default();
    if s.read_available(r, max, on_line)? {
        s.finish(on_line);
    }
    Ok(())
}

/// Where a followed file was left: its inode and the offset past the last accepted line.
fn load_position(state: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(state).ok()?;
    let mut it = text.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn save_position(state: &Path, ino: u64, offset: u64) {
    let tmp = state.with_extension("pos.tmp");
    let res = std::fs::write(&tmp, format!("{ino} {offset}\n"))
        .and_then(|()| std::fs::rename(&tmp, state));
    if let Err(e) = res {
        tracing::warn!(file = %state.display(), error = %e, "cannot save the input file position");
    }
}

/// Follow a file like `tail -F` until `stop` is set: waits for it to exist, reads appended lines,
/// reopens it from the start when it is replaced (rotation: a new inode at the path; the old file is read
/// to its end first), and starts over when it shrinks (truncation).
///
/// With `state`, the position after the last accepted line is saved there (inode + offset, whenever the
/// reader caught up, without fsync) and a restart resumes from it: same inode → from the saved offset;
/// another inode (rotated while stopped) → the new file from its start. Without a saved position,
/// `start_at` decides. Lines between a stale saved position and the real one are read again (at-least-once).
pub fn follow_file(
    path: &Path,
    start_at: StartAt,
    max: usize,
    stop: &AtomicBool,
    state: Option<&Path>,
    on_line: &mut dyn FnMut(Line) -> Flow,
) -> std::io::Result<()> {
    let mut saved = state.and_then(load_position);
    let mut first = true;
    'open: while !stop.load(Ordering::Relaxed) {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A file that appears after the start is new: read it from its beginning.
                first = false;
                saved = None;
                std::thread::sleep(FOLLOW_POLL);
                continue;
            }
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        let ino = meta.ino();
        let mut r = BufReader::with_capacity(64 * 1024, file);
        let start = match (first, saved.take()) {
            (true, Some((i, off))) if i == ino && off <= meta.len() => off,
            (true, Some(_)) => 0,
            (true, None) if start_at == StartAt::End => meta.len(),
            _ => 0,
        };
        r.seek(SeekFrom::Start(start))?;
        first = false;
        let mut s = LineSplitter::starting_at(start);
        let mut last_saved = None;
        let mut save = |s: &LineSplitter| {
            if let Some(st) = state
                && last_saved != Some(s.committed())
            {
                save_position(st, ino, s.committed());
                last_saved = Some(s.committed());
            }
        };
        loop {
            let more = s.read_available(&mut r, max, on_line)?;
            save(&s);
            if !more || stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            std::thread::sleep(FOLLOW_POLL);
            let pos = r.stream_position()?;
            match std::fs::metadata(path) {
                Ok(m) if m.ino() != ino => {
                    // Rotated: take what the old file still has, then the new one from its start.
                    let more = s.read_available(&mut r, max, on_line)?;
                    if !more || s.finish(on_line) == Flow::Stop {
                        save(&s);
                        return Ok(());
                    }
                    if let Some(st) = state {
                        save_position(st, m.ino(), 0);
                    }
                    tracing::info!(path = %path.display(), "input file rotated: reopening");
                    continue 'open;
                }
                Ok(m) if m.len() < pos => {
                    tracing::info!(path = %path.display(), "input file truncated: reading from its start");
                    r.seek(SeekFrom::Start(0))?;
                    s.reset();
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Receive one record per datagram on `socket` until `stop` is set.
pub fn receive_udp(
    socket: &UdpSocket,
    max: usize,
    stop: &AtomicBool,
    on_line: &mut dyn FnMut(Line) -> Flow,
) -> std::io::Result<()> {
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut d = buf.get(..n).unwrap_or_default();
        while let Some((last, rest)) = d.split_last()
            && last.is_ascii_whitespace()
        {
            d = rest;
        }
        if d.is_empty() {
            continue;
        }
        let line = if d.len() > max {
            Line::TooLong {
                prefix: d.get(..TOO_LONG_PREFIX).unwrap_or(d),
                len: d.len(),
            }
        } else {
            Line::Ok(d)
        };
        if on_line(line) == Flow::Stop {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An owned copy of a [`Line`].
    #[derive(Debug, PartialEq)]
    enum Got {
        Ok(Vec<u8>),
        TooLong(usize, usize),
    }

    fn lines(input: &[u8], max: usize) -> Vec<Got> {
        let mut out = Vec::new();
        read_stream(&mut &input[..], max, &mut |l| {
            out.push(match l {
                Line::Ok(b) => Got::Ok(b.to_vec()),
                Line::TooLong { prefix, len } => Got::TooLong(prefix.len(), len),
            });
            Flow::Continue
        })
        .unwrap();
        out
    }

    #[test]
    fn splits_bounds_and_keeps_last_line() {
        let long = vec![b'a'; 5000];
        let mut input = b"one\r\n\n  \ntwo\n".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\nthree");
        let got = lines(&input, 2048);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], Got::Ok(b"one".to_vec()));
        assert_eq!(got[1], Got::Ok(b"two".to_vec()));
        assert_eq!(got[2], Got::TooLong(TOO_LONG_PREFIX, 5000));
        assert_eq!(got[3], Got::Ok(b"three".to_vec()));
    }

    #[test]
    fn lines_split_across_reader_buffers_are_joined() {
        let text = b"{\"a\":1}\n{\"b\":22}\r\n{\"c\":333}\n";
        let mut r = std::io::BufReader::with_capacity(5, &text[..]);
        let mut got = Vec::new();
        read_stream(&mut r, 64, &mut |l| {
            if let Line::Ok(b) = l {
                got.push(String::from_utf8_lossy(b).into_owned());
            }
            Flow::Continue
        })
        .unwrap();
        assert_eq!(got, [r#"{"a":1}"#, r#"{"b":22}"#, r#"{"c":333}"#]);
    }
}
