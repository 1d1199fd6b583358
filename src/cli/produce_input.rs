//! `avro-edge produce`'s input side: a thread that reads NDJSON lines from stdin and encodes them
//! to Avro in chunks of up to [`CHUNK_LINES`] lines (fewer when the input has no more lines yet), so that reading, parsing and encoding run on one
//! core while the command's thread appends the records and the producer's sender sends them.
//! Each line's fate is in its chunk, in input order: encoded (value and key bytes), or its error.
//!
//! Must not talk to Kafka or report anything: the command's thread appends, counts and reports
//! in line order, exactly as when it read the lines itself.

use std::io::{BufRead, Read};
use std::ops::Range;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::{Scope, ScopedJoinHandle};

use avro_edge::{Codec, LineError, SubjectWriter};

/// Input lines per chunk: one channel hand-over, one producer lock and one clock read for them.
pub const CHUNK_LINES: usize = 512;
/// Chunks encoded ahead of the appends (bounds the memory the input side holds).
const CHUNKS_AHEAD: usize = 4;
/// How many input lines are encoded with one writer before asking the codec for it again (so
/// the subject's TTL still applies).
const WRITER_REFRESH: u64 = 1024;

/// One input line that is not blank: its number (1-based, blank lines counted) and its fate.
pub enum Line {
    /// Encoded: where its value (Confluent frame) and key are in [`Chunk::bytes`].
    Encoded {
        line: u64,
        key: Option<Range<usize>>,
        value: Range<usize>,
    },
    /// Not encoded, and why.
    Failed { line: u64, error: LineError },
}

/// Consecutive input lines, encoded.
#[derive(Default)]
pub struct Chunk {
    /// The values and keys of the chunk's encoded lines, back to back.
    pub bytes: Vec<u8>,
    pub lines: Vec<Line>,
}

impl Chunk {
    /// The bytes at `r` (a range this chunk handed out).
    pub fn at(&self, r: &Range<usize>) -> &[u8] {
        self.bytes.get(r.clone()).unwrap_or_default()
    }
}

/// What the encoder thread hands over: a chunk, or the error that ended the input (after the
/// chunk of the lines before it).
pub type Next = Result<Chunk, std::io::Error>;

/// The encoder thread's ends: chunks in input order, and a way back for chunks done with (their
/// buffers are reused).
pub struct Input {
    pub chunks: Receiver<Next>,
    pub done: SyncSender<Chunk>,
}

/// Start the encoder thread on stdin: `subject`'s writer, the key from `key_field`.
pub fn start<'s>(
    scope: &'s Scope<'s, '_>,
    codec: Codec,
    subject: String,
    key_field: Option<String>,
) -> std::io::Result<(Input, ScopedJoinHandle<'s, ()>)> {
    let (tx, chunks) = sync_channel(CHUNKS_AHEAD);
    let (done, reuse) = sync_channel(CHUNKS_AHEAD);
    let handle = std::thread::Builder::new()
        .name("avro-edge-encode".into())
        .spawn_scoped(scope, move || {
            let mut enc = Encoder {
                codec,
                subject,
                key_field,
                writer: None,
                read: 0,
            };
            enc.run(&tx, &reuse);
        })?;
    Ok((Input { chunks, done }, handle))
}

struct Encoder {
    codec: Codec,
    subject: String,
    key_field: Option<String>,
    writer: Option<SubjectWriter>,
    /// Lines read so far.
    read: u64,
}

impl Encoder {
    /// Read and encode until the input ends, fails, or the command stops taking chunks.
    fn run(&mut self, tx: &SyncSender<Next>, reuse: &Receiver<Chunk>) {
        let mut input = Lines::new(std::io::stdin().lock());
        loop {
            let mut chunk = reuse.try_recv().unwrap_or_default();
            chunk.bytes.clear();
            chunk.lines.clear();
            let end = self.fill(&mut input, &mut chunk);
            if !chunk.lines.is_empty() && tx.send(Ok(chunk)).is_err() {
                return;
            }
            match end {
                Some(Ok(())) => return,
                Some(Err(e)) => {
                    let _ = tx.send(Err(e));
                    return;
                }
                None => {}
            }
        }
    }

    /// Encode lines into `chunk` until it is full or the next line is not there yet (`None`: a
    /// slow input's lines go out as they come, not once a chunk is full), or the input ends
    /// (`Some(Ok)`) or fails (`Some(Err)`, as `read_line` fails: a read error, or a line that is
    /// not UTF-8).
    fn fill<R: Read>(
        &mut self,
        input: &mut Lines<R>,
        chunk: &mut Chunk,
    ) -> Option<std::io::Result<()>> {
        while chunk.lines.len() < CHUNK_LINES {
            let line = match input.next(chunk.lines.is_empty()) {
                Ok(Got::Line(line)) => line,
                Ok(Got::Pending) => return None,
                Ok(Got::End) => return Some(Ok(())),
                Err(e) => return Some(Err(e)),
            };
            let Ok(text) = std::str::from_utf8(line) else {
                return Some(Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "stream did not contain valid UTF-8",
                )));
            };
            self.read += 1;
            if text.trim().is_empty() {
                continue;
            }
            chunk.lines.push(self.encode(line, &mut chunk.bytes));
        }
        None
    }

    /// One line that is not blank, its value (then its key) appended to `bytes`.
    fn encode(&mut self, line: &[u8], bytes: &mut Vec<u8>) -> Line {
        let n = self.read;
        let refresh = n.is_multiple_of(WRITER_REFRESH);
        // A writer the codec cannot give fails this line; the one before stays in use.
        let w = match self.writer.take() {
            Some(w) if !refresh => self.writer.insert(w),
            old => match self.codec.writer(&self.subject) {
                Ok(w) => self.writer.insert(w),
                Err(e) => {
                    self.writer = old;
                    let error = LineError::without_writer(line, e);
                    return Line::Failed { line: n, error };
                }
            },
        };
        let start = bytes.len();
        match w.encode_json_line_into(line, self.key_field.as_deref(), bytes) {
            Ok(key) => {
                let value = start..bytes.len();
                let key = key.map(|k| {
                    let at = bytes.len();
                    push_key(bytes, &k);
                    at..bytes.len()
                });
                Line::Encoded {
                    line: n,
                    key,
                    value,
                }
            }
            Err(error) => {
                bytes.truncate(start);
                Line::Failed { line: n, error }
            }
        }
    }
}

/// Append a record key (a few bytes, a sensor id) to `bytes`. Not `extend_from_slice`: a copy of
/// a length the compiler cannot see is a `memcpy` call, and musl's x86_64 `memcpy` (`rep movsq`)
/// costs more than a few bytes are worth: once per record it was 9 % of `produce`'s samples on the
/// static build (1M lines). Byte pushes after one reservation make no call (as the library's
/// `short_copy`, which is private to it).
fn push_key(bytes: &mut Vec<u8>, k: &[u8]) {
    if k.len() > 16 {
        bytes.extend_from_slice(k);
        return;
    }
    bytes.reserve(k.len());
    for &b in k {
        bytes.push(b);
    }
}

/// Bytes read at once, and the buffer's first size (it doubles while one line does not fit).
const READ_BUFFER: usize = 1 << 16;

/// Input lines handed out where they lie in one read buffer. `BufRead::read_until` copies every
/// line into a second buffer: a `memcpy` of ~100 bytes per SensorData line, which on x86_64 musl
/// (`rep movsq`, then byte moves) was 14 % of `produce`'s samples (1M lines, static build).
struct Lines<R> {
    src: R,
    buf: Vec<u8>,
    /// The bytes read and not handed out yet: `buf[start..end]`.
    start: usize,
    end: usize,
    /// The input has ended.
    eof: bool,
}

/// What [`Lines::next`] found.
enum Got<'a> {
    /// A line with its `\n` (the input's last line may have none).
    Line(&'a [u8]),
    /// No whole line is buffered, and the caller does not want to wait for one.
    Pending,
    /// The input ended and every line was handed out.
    End,
}

impl<R: Read> Lines<R> {
    fn new(src: R) -> Lines<R> {
        Lines {
            src,
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            eof: false,
        }
    }

    /// The next line; when none is buffered, read more if `wait`, else [`Got::Pending`]. Fails as
    /// `read_until` does (a read error; an interrupted read is retried).
    fn next(&mut self, wait: bool) -> std::io::Result<Got<'_>> {
        loop {
            let rest = self.buf.get(self.start..self.end).unwrap_or_default();
            let mut probe = rest;
            // `skip_until` on a slice finds the `\n` with std's word-at-a-time memchr, no copy.
            let n = probe.skip_until(b'\n')?;
            let whole = rest.get(..n).is_some_and(|l| l.last() == Some(&b'\n'));
            if whole || (self.eof && n > 0) {
                let line = self.start..self.start + n;
                self.start = line.end;
                return Ok(Got::Line(self.buf.get(line).unwrap_or_default()));
            }
            if self.eof {
                return Ok(Got::End);
            }
            if !wait {
                return Ok(Got::Pending);
            }
            self.read_more()?;
        }
    }

    /// Move the unfinished line to the front (growing the buffer when it fills it), then read.
    fn read_more(&mut self) -> std::io::Result<()> {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self
                .src
                .read(self.buf.get_mut(self.end..).unwrap_or_default())
            {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out its bytes a few at a time, with an interrupted read between pieces.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
        interrupt: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            let n = self.step.min(out.len()).min(self.data.len() - self.at);
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn all_lines(data: &[u8], step: usize) -> Vec<Vec<u8>> {
        let mut lines = Lines::new(Trickle {
            data: data.to_vec(),
            at: 0,
            step,
            interrupt: false,
        });
        let mut out = Vec::new();
        loop {
            match lines.next(true).expect("read") {
                Got::Line(l) => out.push(l.to_vec()),
                Got::Pending => panic!("pending while waiting"),
                Got::End => return out,
            }
        }
    }

    #[test]
    fn lines_are_read_until_does_across_reads_long_lines_and_a_last_line_without_newline() {
        let long = "x".repeat(3 * READ_BUFFER + 7);
        let data = format!("a\n\nbc\n{long}\n\u{e9}t\u{e9}\nlast");
        let mut want = Vec::new();
        let mut rd = data.as_bytes();
        loop {
            let mut l = Vec::new();
            if rd.read_until(b'\n', &mut l).expect("slice") == 0 {
                break;
            }
            want.push(l);
        }
        for step in [1, 3, 100, READ_BUFFER, usize::MAX] {
            assert_eq!(
                all_lines(data.as_bytes(), step),
                want,
                "read {step} bytes at a time"
            );
        }
        assert!(all_lines(b"", 5).is_empty());
        assert_eq!(all_lines(b"\n", 5), vec![b"\n".to_vec()]);
    }

    #[test]
    fn a_caller_that_does_not_wait_gets_buffered_lines_then_pending() {
        let mut lines = Lines::new(Trickle {
            data: b"one\ntwo\nthr".to_vec(),
            at: 0,
            step: 9,
            interrupt: false,
        });
        assert!(
            matches!(lines.next(false), Ok(Got::Pending)),
            "nothing read yet"
        );
        assert!(matches!(lines.next(true), Ok(Got::Line(b"one\n"))));
        assert!(matches!(lines.next(false), Ok(Got::Line(b"two\n"))));
        // "t" of the third line is buffered, not a whole line.
        assert!(matches!(lines.next(false), Ok(Got::Pending)));
        assert!(matches!(lines.next(true), Ok(Got::Line(b"thr"))));
        assert!(matches!(lines.next(true), Ok(Got::End)));
    }

    #[test]
    fn a_read_error_is_returned() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk on fire"))
            }
        }
        let mut lines = Lines::new(Broken);
        let e = lines.next(true).err().expect("an error");
        assert_eq!(e.to_string(), "disk on fire");
    }
}
