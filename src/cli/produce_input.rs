//! `avro-edge produce`'s input side: a thread that reads NDJSON lines from stdin and encodes them
//! to Avro in chunks of up to [`CHUNK_LINES`] lines (fewer when the input has no more lines yet), so that reading, parsing and encoding run on one
//! core while the command's thread appends the records and the producer's sender sends them.
//! Each line's fate is in its chunk, in input order: encoded (value and key bytes), or its error.
//!
//! Must not talk to Kafka or report anything: the command's thread appends, counts and reports
//! in line order, exactly as when it read the lines itself.

use std::io::{BufRead, BufReader, Read};
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
        let mut input = BufReader::with_capacity(1 << 16, std::io::stdin().lock());
        let mut line = Vec::with_capacity(256);
        loop {
            let mut chunk = reuse.try_recv().unwrap_or_default();
            chunk.bytes.clear();
            chunk.lines.clear();
            let end = self.fill(&mut input, &mut line, &mut chunk);
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
        input: &mut BufReader<R>,
        line: &mut Vec<u8>,
        chunk: &mut Chunk,
    ) -> Option<std::io::Result<()>> {
        while chunk.lines.len() < CHUNK_LINES {
            if input.buffer().is_empty() && !chunk.lines.is_empty() {
                return None;
            }
            line.clear();
            match input.read_until(b'\n', line) {
                Ok(0) => return Some(Ok(())),
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
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
                    bytes.extend_from_slice(&k);
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
