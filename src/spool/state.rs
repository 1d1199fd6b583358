//! The spool's shared state: [`Inner`] (behind the spool's mutex: segments, positions, the open
//! writer and [`Reader`], counters, the cursor file, free space), [`Pos`], [`Segment`], and the
//! segment file names. The parts that change it (`ledger`, `reader`, `writer`, `recovery`) import
//! this file; it imports none of them, so they need not import each other.
//!
//! Must not do I/O or hold the parts' logic: it is data and naming only.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::cursor::CursorFile;
use super::space::Space;

/// Where a record sits in the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pos {
    /// Segment id (its file name: the next sequence number when it was created).
    pub(super) seg: u64,
    pub(super) offset: u64,
    /// Index of the record in its segment.
    pub(super) ordinal: u64,
}

#[derive(Debug)]
pub(super) struct Segment {
    pub(super) id: u64,
    pub(super) records: u64,
    pub(super) acked_records: u64,
    pub(super) bytes: u64,
}

/// The spool's state, behind its mutex.
pub(super) struct Inner {
    pub(super) segments: VecDeque<Segment>,
    pub(super) writer: Option<File>,
    pub(super) next_seq: u64,
    pub(super) acked: u64,
    pub(super) acked_pos: Pos,
    pub(super) sent: u64,
    pub(super) read_pos: Pos,
    pub(super) reader: Option<Reader>,
    pub(super) total_bytes: u64,
    pub(super) data_dirty: bool,
    pub(super) cursor_dirty: bool,
    pub(super) last_sync: Instant,
    pub(super) interrupted: bool,
    /// After [`Spool::close`](super::Spool::close): nothing touches the directory any more.
    pub(super) closed: bool,
    pub(super) dropped: u64,
    pub(super) corrupt: u64,
    pub(super) possible_duplicates: u64,
    /// The cursor file, open for in-place writes (`None` until it could be created).
    pub(super) cursor_file: Option<CursorFile>,
    pub(super) space: Space,
    /// The frame being appended, reused from append to append (kept at most [`FRAME_KEEP`] bytes).
    pub(super) frame: Vec<u8>,
    /// Threads waiting on the spool's condition variable (a reader for records, an append for
    /// room): a change wakes them only when there are any, so an append costs no futex call.
    pub(super) waiters: u32,
}

/// The largest frame buffer kept between appends; a bigger record's buffer is freed after it.
pub(super) const FRAME_KEEP: usize = 64 * 1024;

/// The open segment the reader reads from, at `pos`.
pub(super) struct Reader {
    pub(super) pos: Pos,
    pub(super) file: BufReader<File>,
    /// The payload of the record being read (reused from record to record).
    pub(super) payload: Vec<u8>,
}

pub(super) fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

pub(super) fn parse_seg_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())?
}
