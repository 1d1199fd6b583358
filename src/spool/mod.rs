//! Crash-safe disk spool: encoded records wait here until the broker acknowledged them.
//!
//! Must not know Kafka or Avro: it stores framed bytes with a topic and a key, in order, and hands them out
//! in the same order. Must never lose a record silently: a record is dropped only by `when_full =
//! drop_oldest` or by corruption found on disk, and both are counted and logged.
//!
//! # Layout of a spool directory
//! - `lock`: held with an exclusive `flock` (`File::try_lock`) while a spool is open; holds the owner's pid.
//! - `<first-seq, 20 digits>.seg`: segment files, see [`frame`] for the framing (length + CRC32C per record).
//!   The last segment is the active one; a segment rolls at `segment_bytes`. A segment that is fully
//!   acknowledged and no longer active is deleted.
//! - `cursor`: the acknowledged cursor (every sequence number below `acked` is acknowledged) and the sent
//!   mark, written atomically (temporary file + rename) after every acknowledgement.
//!
//! # Recovery on open
//! Every segment is read and checked. A torn or corrupt tail (power loss mid-write: cut bytes, flipped
//! bytes) is truncated back to the last valid record. A corrupt record in the middle of a segment is
//! skipped by scanning forward for the next offset where a valid frame with a larger sequence number
//! starts; the segment is then rewritten without the bad bytes (temporary file + rename), so readers never
//! see them again. Both are counted in [`RecoveryReport`] and logged; neither is fatal and neither touches
//! the records before it. A segment whose header is not a spool header is renamed `*.corrupt` and reported.
//! Records after the acknowledged cursor that had already been handed to the sender (below the sent mark)
//! are resent and counted as possible duplicates.
//!
//! # fsync policy
//! The default is `interval` 100 ms: a process crash loses nothing (every record is written to the kernel
//! before `append` returns), a power loss loses at most the last ~100 ms of accepted records, and flash sees
//! at most ~10 syncs per second instead of one per record (one per record costs an order of magnitude in
//! throughput and wears SD cards). `always` syncs every append (and every cursor write); `never` leaves it
//! to the kernel (syncs only on roll and close).

pub mod cursor;
pub mod frame;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::error::ErrorKind;
use cursor::Cursor;

/// When appended data is forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync after every append and every cursor write.
    Always,
    /// fsync at most once per interval (and on roll and close). The default, with 100 ms.
    Interval(Duration),
    /// Never fsync while running (only on roll and close); the kernel decides.
    Never,
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::Interval(Duration::from_millis(100))
    }
}

impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Interval(d) => write!(f, "interval {} ms", d.as_millis()),
            FsyncPolicy::Never => f.write_str("never"),
        }
    }
}

/// What `append` does when the spool holds `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait until the sender frees space (back-pressure: the input stops being read). The default.
    #[default]
    Block,
    /// Delete the oldest segment (its unacknowledged records are counted as dropped and logged).
    DropOldest,
}

/// Spool settings.
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    pub fsync: FsyncPolicy,
    /// Upper bound of the segment files' total size.
    pub max_bytes: u64,
    pub when_full: WhenFull,
    /// Size at which a segment rolls; default `max_bytes / 8` clamped to 64 KiB ..= 4 MiB.
    pub segment_bytes: Option<u64>,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        SpoolOptions {
            fsync: FsyncPolicy::default(),
            max_bytes: 256 * 1024 * 1024,
            when_full: WhenFull::Block,
            segment_bytes: None,
        }
    }
}

/// Everything the spool can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("spool directory {} is in use by another process ({holder})", dir.display())]
    Locked { dir: PathBuf, holder: String },
    #[error("record of {size} bytes does not fit the spool (at most {max} bytes per record)")]
    RecordTooLarge { size: usize, max: usize },
    #[error("spool input was stopped")]
    Interrupted,
    #[error("bad spool options: {0}")]
    BadOptions(String),
}

impl ErrorKind for SpoolError {
    fn kind(&self) -> &'static str {
        match self {
            SpoolError::Io { .. } => "spool-io",
            SpoolError::Locked { .. } => "spool-locked",
            SpoolError::RecordTooLarge { .. } => "record-too-large",
            SpoolError::Interrupted => "spool-interrupted",
            SpoolError::BadOptions(_) => "spool-options",
        }
    }
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError {
    let path = path.to_path_buf();
    move |source| SpoolError::Io { op, path, source }
}

/// What opening a spool found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    pub segments: u64,
    /// Valid records found (acknowledged or not).
    pub records: u64,
    /// Records found corrupt (torn tails count as one each) and removed.
    pub corrupt_records: u64,
    /// Bytes cut off segment tails.
    pub truncated_bytes: u64,
    /// Bytes skipped in the middle of segments.
    pub skipped_bytes: u64,
    pub rewritten_segments: u64,
    /// Files that were not spool segments, renamed `*.corrupt`.
    pub quarantined_files: u64,
    /// Unacknowledged records that had been handed to the sender before: resent, possibly duplicates.
    pub possible_duplicates: u64,
    /// The cursor file was missing or corrupt while records were present: everything is resent.
    pub cursor_lost: bool,
}

/// The spool's state, for metrics and `avro-edge spool status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpoolStatus {
    /// Unacknowledged records.
    pub records: u64,
    /// Bytes of segment files on disk.
    pub bytes: u64,
    pub segments: u64,
    /// Spool time (ms since the epoch) of the oldest unacknowledged record.
    pub oldest_unacked_ms: Option<u64>,
    pub oldest_unacked_age_ms: Option<u64>,
    /// Next sequence number to be assigned.
    pub next_seq: u64,
    /// Every sequence number below this is acknowledged.
    pub acked_seq: u64,
    /// Records dropped by `drop_oldest` since open.
    pub dropped: u64,
    /// Corrupt records found since open (recovery included).
    pub corrupt_records: u64,
    /// Records resent after a restart that may already have been delivered.
    pub possible_duplicates: u64,
    pub max_bytes: u64,
    pub when_full: WhenFull,
    pub fsync: String,
}

/// Where a record sits in the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    /// Segment id (its file name: the next sequence number when it was created).
    seg: u64,
    offset: u64,
    /// Index of the record in its segment.
    ordinal: u64,
}

/// A record handed out by [`Spool::read_batch`]; acknowledge it with [`Spool::ack_through`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolRecord {
    pub seq: u64,
    /// When it was spooled (ms since the epoch).
    pub timestamp_ms: u64,
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pos: Pos,
    next_offset: u64,
}

#[derive(Debug)]
struct Segment {
    id: u64,
    records: u64,
    acked_records: u64,
    bytes: u64,
}

struct Reader {
    pos: Pos,
    file: BufReader<File>,
}

struct Inner {
    segments: VecDeque<Segment>,
    writer: Option<File>,
    next_seq: u64,
    acked: u64,
    acked_pos: Pos,
    sent: u64,
    read_pos: Pos,
    reader: Option<Reader>,
    total_bytes: u64,
    data_dirty: bool,
    cursor_dirty: bool,
    last_sync: Instant,
    interrupted: bool,
    /// After [`Spool::close`]: nothing touches the directory any more.
    closed: bool,
    dropped: u64,
    corrupt: u64,
    possible_duplicates: u64,
}

/// An open spool directory. Share it between the input side and the sender with an `Arc`.
pub struct Spool {
    dir: PathBuf,
    opts: SpoolOptions,
    segment_bytes: u64,
    read_only: bool,
    inner: Mutex<Inner>,
    changed: Condvar,
    lock_file: File,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

fn parse_seg_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())?
}

impl Spool {
    /// Open (creating it if needed) and lock a spool directory, check every segment and repair torn or
    /// corrupt data. The report says what was found; it is also logged.
    pub fn open(dir: &Path, opts: SpoolOptions) -> Result<(Spool, RecoveryReport), SpoolError> {
        Self::open_inner(dir, opts, false)
    }

    /// The status of a spool directory that no forwarder holds, without changing anything in it.
    pub fn inspect(dir: &Path) -> Result<(SpoolStatus, RecoveryReport), SpoolError> {
        if !dir.is_dir() {
            return Err(SpoolError::Io {
                op: "open",
                path: dir.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
            });
        }
        let (spool, report) = Self::open_inner(dir, SpoolOptions::default(), true)?;
        Ok((spool.status(), report))
    }

    fn open_inner(
        dir: &Path,
        opts: SpoolOptions,
        read_only: bool,
    ) -> Result<(Spool, RecoveryReport), SpoolError> {
        if opts.max_bytes < 64 * 1024 {
            return Err(SpoolError::BadOptions(format!(
                "max_bytes {} is below 64 KiB",
                opts.max_bytes
            )));
        }
        let segment_bytes = opts
            .segment_bytes
            .unwrap_or((opts.max_bytes / 8).clamp(64 * 1024, 4 * 1024 * 1024));
        if segment_bytes > opts.max_bytes / 4 || segment_bytes < 4096 {
            return Err(SpoolError::BadOptions(format!(
                "segment_bytes {segment_bytes} must be between 4 KiB and max_bytes / 4"
            )));
        }
        if !read_only {
            fs::create_dir_all(dir).map_err(io("create", dir))?;
        }
        let lock_path = dir.join("lock");
        let opened = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .create(!read_only)
            .truncate(false)
            .open(&lock_path);
        let mut lock = match opened {
            // Inspecting a directory no forwarder ever opened: nothing holds it, and nothing is created.
            Err(e) if read_only && e.kind() == std::io::ErrorKind::NotFound => {
                File::open(dir).map_err(io("open", dir))?
            }
            other => other.map_err(io("open", &lock_path))?,
        };
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "unknown pid".to_string(),
                    pid => format!("pid {}", pid.chars().take(20).collect::<String>()),
                };
                return Err(SpoolError::Locked {
                    dir: dir.to_path_buf(),
                    holder,
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io("lock", &lock_path)(e)),
        }
        if !read_only {
            let _ = lock.set_len(0);
            let _ = lock.write_all(format!("{}\n", std::process::id()).as_bytes());
        }
        let (inner, report) = recover(dir, segment_bytes, read_only)?;
        let spool = Spool {
            dir: dir.to_path_buf(),
            opts,
            segment_bytes,
            read_only,
            inner: Mutex::new(inner),
            changed: Condvar::new(),
            lock_file: lock,
        };
        if !read_only {
            let mut g = spool.lock();
            spool.write_cursor(&mut g, true)?;
            drop(g);
            if report.corrupt_records > 0 || report.quarantined_files > 0 || report.cursor_lost {
                tracing::warn!(
                    dir = %dir.display(),
                    corrupt_records = report.corrupt_records,
                    truncated_bytes = report.truncated_bytes,
                    skipped_bytes = report.skipped_bytes,
                    rewritten_segments = report.rewritten_segments,
                    quarantined_files = report.quarantined_files,
                    cursor_lost = report.cursor_lost,
                    "spool recovered from damaged data"
                );
            }
            tracing::info!(
                dir = %dir.display(),
                segments = report.segments,
                records = report.records,
                possible_duplicates = report.possible_duplicates,
                "spool opened"
            );
        }
        Ok((spool, report))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The largest frame `append` accepts with these options.
    fn max_frame(&self) -> usize {
        usize::try_from(self.opts.max_bytes / 4)
            .unwrap_or(usize::MAX)
            .min(frame::FRAME_HEADER + frame::MAX_PAYLOAD)
    }

    /// Append one record; when this returns `Ok(seq)` the record is accepted (written to the kernel, and
    /// to disk per the fsync policy). With `when_full = block` this waits for the sender to free space.
    pub fn append(&self, topic: &str, key: Option<&[u8]>, value: &[u8]) -> Result<u64, SpoolError> {
        if self.read_only {
            return Err(SpoolError::BadOptions("spool opened read-only".into()));
        }
        let size = frame::FRAME_HEADER
            + frame::MIN_PAYLOAD
            + topic.len()
            + key.map_or(0, <[u8]>::len)
            + value.len();
        let max = self.max_frame();
        if size > max || topic.len() > u16::MAX as usize {
            return Err(SpoolError::RecordTooLarge { size, max });
        }
        let mut g = self.lock();
        loop {
            if g.interrupted {
                return Err(SpoolError::Interrupted);
            }
            let need = size as u64 + frame::SEGMENT_MAGIC.len() as u64;
            if g.total_bytes + need <= self.opts.max_bytes {
                break;
            }
            match self.opts.when_full {
                WhenFull::Block => {
                    g = self
                        .changed
                        .wait_timeout(g, Duration::from_millis(200))
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                }
                WhenFull::DropOldest => {
                    if !self.drop_oldest(&mut g)? {
                        break;
                    }
                }
            }
        }
        let seq = g.next_seq;
        let bytes = frame::encode(seq, now_ms(), topic, key, value)
            .ok_or(SpoolError::RecordTooLarge { size, max })?;
        self.write_frame(&mut g, &bytes)?;
        g.next_seq += 1;
        self.changed.notify_all();
        Ok(seq)
    }

    fn write_frame(&self, g: &mut Inner, bytes: &[u8]) -> Result<(), SpoolError> {
        let roll = match g.segments.back() {
            None => true,
            Some(s) => {
                g.writer.is_none()
                    || (s.records > 0 && s.bytes + bytes.len() as u64 > self.segment_bytes)
            }
        };
        if roll {
            self.roll(g)?;
        }
        let Some(seg) = g.segments.back_mut() else {
            return Err(SpoolError::BadOptions("no active segment".into()));
        };
        let path = seg_path(&self.dir, seg.id);
        let Some(w) = g.writer.as_mut() else {
            return Err(SpoolError::BadOptions("no active segment writer".into()));
        };
        if let Err(e) = w.write_all(bytes) {
            // Take a partial frame back out, so the next append starts on a frame boundary.
            let _ = w.set_len(seg.bytes);
            return Err(io("write", &path)(e));
        }
        seg.bytes += bytes.len() as u64;
        seg.records += 1;
        g.total_bytes += bytes.len() as u64;
        g.data_dirty = true;
        match self.opts.fsync {
            FsyncPolicy::Always => self.sync_data(g)?,
            FsyncPolicy::Interval(d) if g.last_sync.elapsed() >= d => self.sync_data(g)?,
            _ => {}
        }
        Ok(())
    }

    /// Close the active segment and start a new one named after the next sequence number.
    fn roll(&self, g: &mut Inner) -> Result<(), SpoolError> {
        if g.writer.is_some() && !matches!(self.opts.fsync, FsyncPolicy::Never) {
            self.sync_data(g)?;
        }
        g.writer = None;
        // The old active segment may be fully acknowledged already: it can go now.
        if let Some(s) = g.segments.back()
            && s.acked_records == s.records
        {
            let id = s.id;
            self.remove_segment(g, id)?;
        }
        let id = g.next_seq;
        let path = seg_path(&self.dir, id);
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(io("create", &path))?;
        f.write_all(frame::SEGMENT_MAGIC)
            .map_err(io("write", &path))?;
        if !matches!(self.opts.fsync, FsyncPolicy::Never) {
            f.sync_data().map_err(io("fsync", &path))?;
            cursor::sync_dir(&self.dir).map_err(io("fsync", &self.dir))?;
        }
        let magic = frame::SEGMENT_MAGIC.len() as u64;
        g.segments.push_back(Segment {
            id,
            records: 0,
            acked_records: 0,
            bytes: magic,
        });
        g.total_bytes += magic;
        g.writer = Some(f);
        Ok(())
    }

    fn remove_segment(&self, g: &mut Inner, id: u64) -> Result<(), SpoolError> {
        let Some(i) = g.segments.iter().position(|s| s.id == id) else {
            return Ok(());
        };
        let path = seg_path(&self.dir, id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("delete", &path)(e)),
        }
        if let Some(s) = g.segments.remove(i) {
            g.total_bytes = g.total_bytes.saturating_sub(s.bytes);
        }
        if i == g.segments.len() {
            g.writer = None;
        }
        if g.reader.as_ref().is_some_and(|r| r.pos.seg == id) {
            g.reader = None;
        }
        Ok(())
    }

    /// Drop the oldest segment to make room; false when there is nothing left to drop.
    fn drop_oldest(&self, g: &mut Inner) -> Result<bool, SpoolError> {
        if g.segments.len() < 2 {
            return Ok(false);
        }
        let Some(first) = g.segments.front() else {
            return Ok(false);
        };
        let (id, lost) = (first.id, first.records - first.acked_records);
        let next_id = g.segments.get(1).map_or(g.next_seq, |s| s.id);
        self.remove_segment(g, id)?;
        g.dropped += lost;
        if g.acked < next_id {
            g.acked = next_id;
            g.acked_pos = Pos {
                seg: next_id,
                offset: frame::SEGMENT_MAGIC.len() as u64,
                ordinal: 0,
            };
        }
        g.sent = g.sent.max(g.acked);
        if g.read_pos.seg == id {
            g.read_pos = g.acked_pos;
        }
        g.cursor_dirty = true;
        tracing::warn!(dir = %self.dir.display(), dropped = lost, total_dropped = g.dropped, "spool full: dropped the oldest segment");
        Ok(true)
    }

    /// Move a position past the end of its segment (or out of a deleted one) to where the next record is.
    fn normalize(g: &Inner, pos: Pos) -> Pos {
        let magic = frame::SEGMENT_MAGIC.len() as u64;
        let mut it = g.segments.iter().skip_while(|s| s.id < pos.seg);
        match it.next() {
            Some(s) if s.id == pos.seg => {
                if pos.offset < s.bytes {
                    pos
                } else {
                    it.next().map_or(pos, |n| Pos {
                        seg: n.id,
                        offset: magic,
                        ordinal: 0,
                    })
                }
            }
            Some(s) => Pos {
                seg: s.id,
                offset: magic,
                ordinal: 0,
            },
            None => pos,
        }
    }

    fn readable(g: &Inner) -> bool {
        let p = Self::normalize(g, g.read_pos);
        g.segments
            .iter()
            .any(|s| s.id == p.seg && p.offset < s.bytes)
    }

    /// Hand out up to `max_records` records (and about `max_bytes`) from the read position, in order,
    /// waiting up to `wait` when there is nothing new. Records stay in the spool until acknowledged.
    pub fn read_batch(
        &self,
        max_records: usize,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<Vec<SpoolRecord>, SpoolError> {
        let mut g = self.lock();
        if g.closed {
            return Ok(Vec::new());
        }
        if !Self::readable(&g) && !wait.is_zero() {
            g = self
                .changed
                .wait_timeout(g, wait)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while out.len() < max_records && bytes < max_bytes {
            let pos = Self::normalize(&g, g.read_pos);
            g.read_pos = pos;
            let Some(seg_bytes) = g.segments.iter().find(|s| s.id == pos.seg).map(|s| s.bytes)
            else {
                break;
            };
            if pos.offset >= seg_bytes {
                break;
            }
            match self.read_at(&mut g, pos, seg_bytes) {
                Ok(rec) => {
                    bytes += rec.value.len() + rec.key.as_ref().map_or(0, Vec::len);
                    g.read_pos = Pos {
                        seg: pos.seg,
                        offset: rec.next_offset,
                        ordinal: pos.ordinal + 1,
                    };
                    out.push(rec);
                }
                Err(None) => {
                    // Data that passed its check at open fails it now (media error): skip the rest of the segment.
                    g.corrupt += 1;
                    g.reader = None;
                    tracing::error!(dir = %self.dir.display(), segment = pos.seg, offset = pos.offset,
                        "spool record failed its check while reading; skipping the rest of the segment");
                    g.read_pos = Pos {
                        seg: pos.seg,
                        offset: seg_bytes,
                        ordinal: pos.ordinal,
                    };
                }
                Err(Some(e)) => return Err(e),
            }
        }
        if let Some(last) = out.last()
            && last.seq >= g.sent
        {
            g.sent = last.seq + 1;
            self.write_cursor(&mut g, false)?;
        }
        Ok(out)
    }

    fn read_at(
        &self,
        g: &mut Inner,
        pos: Pos,
        seg_bytes: u64,
    ) -> Result<SpoolRecord, Option<SpoolError>> {
        let path = seg_path(&self.dir, pos.seg);
        let reuse = g
            .reader
            .as_ref()
            .is_some_and(|r| r.pos.seg == pos.seg && r.pos.offset == pos.offset);
        if !reuse {
            let mut f = match g.reader.take() {
                Some(r) if r.pos.seg == pos.seg => r.file,
                _ => BufReader::with_capacity(
                    64 * 1024,
                    File::open(&path).map_err(|e| Some(io("open", &path)(e)))?,
                ),
            };
            f.seek(SeekFrom::Start(pos.offset))
                .map_err(|e| Some(io("seek", &path)(e)))?;
            g.reader = Some(Reader { pos, file: f });
        }
        let Some(r) = g.reader.as_mut() else {
            return Err(None);
        };
        let mut header = [0u8; frame::FRAME_HEADER];
        if pos.offset + header.len() as u64 > seg_bytes {
            return Err(None);
        }
        r.file
            .read_exact(&mut header)
            .map_err(|e| Some(io("read", &path)(e)))?;
        let Some(len) = frame::payload_len(&header) else {
            return Err(None);
        };
        let next_offset = pos.offset + (frame::FRAME_HEADER + len) as u64;
        if next_offset > seg_bytes {
            return Err(None);
        }
        let mut payload = vec![0u8; len];
        r.file
            .read_exact(&mut payload)
            .map_err(|e| Some(io("read", &path)(e)))?;
        r.pos = Pos {
            seg: pos.seg,
            offset: next_offset,
            ordinal: pos.ordinal + 1,
        };
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let f = frame::decode_payload(crc, &payload).ok_or(None)?;
        Ok(SpoolRecord {
            seq: f.seq,
            timestamp_ms: f.timestamp_ms,
            topic: f.topic.to_string(),
            key: f.key.map(<[u8]>::to_vec),
            value: f.value.to_vec(),
            pos,
            next_offset,
        })
    }

    /// Acknowledge `rec` and every record before it. Fully acknowledged segments (other than the active
    /// one) are deleted; the cursor is persisted. Acknowledging an already acknowledged record does nothing.
    pub fn ack_through(&self, rec: &SpoolRecord) -> Result<(), SpoolError> {
        let mut g = self.lock();
        if rec.seq < g.acked || g.closed {
            return Ok(());
        }
        g.acked = rec.seq + 1;
        g.sent = g.sent.max(g.acked);
        g.acked_pos = Pos {
            seg: rec.pos.seg,
            offset: rec.next_offset,
            ordinal: rec.pos.ordinal + 1,
        };
        let older: Vec<u64> = g
            .segments
            .iter()
            .take_while(|s| s.id < rec.pos.seg)
            .map(|s| s.id)
            .collect();
        for id in older {
            self.remove_segment(&mut g, id)?;
        }
        let last_id = g.segments.back().map(|s| s.id);
        if let Some(s) = g.segments.iter_mut().find(|s| s.id == rec.pos.seg) {
            s.acked_records = (rec.pos.ordinal + 1).min(s.records);
            if s.acked_records == s.records && Some(s.id) != last_id {
                let id = s.id;
                self.remove_segment(&mut g, id)?;
            }
        }
        g.acked_pos = Self::normalize(&g, g.acked_pos);
        g.cursor_dirty = true;
        let sync = match self.opts.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval(d) => g.last_sync.elapsed() >= d,
            FsyncPolicy::Never => false,
        };
        self.write_cursor(&mut g, sync)?;
        self.changed.notify_all();
        Ok(())
    }

    /// Go back to the first unacknowledged record: the next `read_batch` resends from there.
    pub fn rewind(&self) {
        let mut g = self.lock();
        g.read_pos = g.acked_pos;
        g.reader = None;
    }

    /// Make appends fail with [`SpoolError::Interrupted`] (and wake any that wait for space).
    pub fn interrupt(&self) {
        self.lock().interrupted = true;
        self.changed.notify_all();
    }

    /// fsync what the interval policy left pending, when the interval is due. Call it now and then.
    pub fn tick(&self) -> Result<(), SpoolError> {
        let mut g = self.lock();
        if g.closed {
            return Ok(());
        }
        if let FsyncPolicy::Interval(d) = self.opts.fsync
            && (g.data_dirty || g.cursor_dirty)
            && g.last_sync.elapsed() >= d
        {
            self.sync_data(&mut g)?;
            if g.cursor_dirty {
                self.write_cursor(&mut g, true)?;
            }
        }
        Ok(())
    }

    /// fsync the active segment and write the cursor durably.
    pub fn flush(&self) -> Result<(), SpoolError> {
        if self.read_only {
            return Ok(());
        }
        let mut g = self.lock();
        if g.closed {
            return Ok(());
        }
        self.sync_data(&mut g)?;
        self.write_cursor(&mut g, true)
    }

    /// Flush, then let go of the directory even while other threads still hold this spool: appends fail
    /// with [`SpoolError::Interrupted`], reads return nothing, late acknowledgements are ignored (those
    /// records are resent by the next owner), and the directory lock is released for the next opener.
    pub fn close(&self) -> Result<(), SpoolError> {
        let flushed = self.flush();
        let mut g = self.lock();
        g.interrupted = true;
        g.closed = true;
        g.writer = None;
        g.reader = None;
        if !self.read_only {
            let _ = self.lock_file.set_len(0);
        }
        let _ = self.lock_file.unlock();
        drop(g);
        self.changed.notify_all();
        flushed
    }

    fn sync_data(&self, g: &mut Inner) -> Result<(), SpoolError> {
        if let (Some(w), Some(s)) = (g.writer.as_ref(), g.segments.back()) {
            w.sync_data()
                .map_err(io("fsync", &seg_path(&self.dir, s.id)))?;
        }
        g.data_dirty = false;
        g.last_sync = Instant::now();
        Ok(())
    }

    fn write_cursor(&self, g: &mut Inner, sync: bool) -> Result<(), SpoolError> {
        if self.read_only {
            return Ok(());
        }
        cursor::write(
            &self.dir,
            Cursor {
                acked: g.acked,
                sent: g.sent,
            },
            sync,
        )
        .map_err(io("write cursor", &self.dir))?;
        if sync {
            g.cursor_dirty = false;
        }
        Ok(())
    }

    /// Counters and gauges of the spool now.
    pub fn status(&self) -> SpoolStatus {
        let g = self.lock();
        let records = g.segments.iter().map(|s| s.records - s.acked_records).sum();
        let oldest = if records == 0 {
            None
        } else {
            self.timestamp_at(&g, Self::normalize(&g, g.acked_pos))
        };
        SpoolStatus {
            records,
            bytes: g.total_bytes,
            segments: g.segments.len() as u64,
            oldest_unacked_ms: oldest,
            oldest_unacked_age_ms: oldest.map(|t| now_ms().saturating_sub(t)),
            next_seq: g.next_seq,
            acked_seq: g.acked,
            dropped: g.dropped,
            corrupt_records: g.corrupt,
            possible_duplicates: g.possible_duplicates,
            max_bytes: self.opts.max_bytes,
            when_full: self.opts.when_full,
            fsync: self.opts.fsync.to_string(),
        }
    }

    fn timestamp_at(&self, g: &Inner, pos: Pos) -> Option<u64> {
        let seg = g.segments.iter().find(|s| s.id == pos.seg)?;
        if pos.offset + (frame::FRAME_HEADER + 16) as u64 > seg.bytes {
            return None;
        }
        let f = File::open(seg_path(&self.dir, pos.seg)).ok()?;
        let mut b = [0u8; 8];
        f.read_exact_at(&mut b, pos.offset + frame::FRAME_HEADER as u64 + 8)
            .ok()?;
        Some(u64::from_le_bytes(b))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, "spool flush on close failed");
        }
    }
}

/// Read and check every segment; repair unless `read_only`.
fn recover(
    dir: &Path,
    segment_bytes: u64,
    read_only: bool,
) -> Result<(Inner, RecoveryReport), SpoolError> {
    let mut report = RecoveryReport::default();
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(io("list", dir))? {
        let entry = entry.map_err(io("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(id) = parse_seg_name(name) {
            ids.push(id);
        } else if !read_only && name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
    ids.sort_unstable();
    let saved = cursor::read(dir);
    let magic = frame::SEGMENT_MAGIC.len();
    // Largest segment we read: a segment rolls at segment_bytes, but one record may exceed it.
    let cap = segment_bytes + (frame::FRAME_HEADER + frame::MAX_PAYLOAD + magic) as u64;
    let mut segments = VecDeque::new();
    let mut last_seq: Option<u64> = None;
    let mut all: Vec<(u64, u64, Vec<u64>, Vec<u64>)> = Vec::new(); // id, bytes, seqs, offsets
    for id in ids {
        let path = seg_path(dir, id);
        let size = fs::metadata(&path).map_err(io("stat", &path))?.len();
        let quarantine = |report: &mut RecoveryReport, why: &str| -> Result<(), SpoolError> {
            tracing::warn!(file = %path.display(), why, "spool file is not a usable segment");
            report.quarantined_files += 1;
            if !read_only {
                let to = path.with_extension("seg.corrupt");
                fs::rename(&path, &to).map_err(io("rename", &path))?;
            }
            Ok(())
        };
        if size > cap {
            quarantine(&mut report, "larger than any segment the spool writes")?;
            continue;
        }
        let buf = fs::read(&path).map_err(io("read", &path))?;
        if buf.len() < magic {
            // Created, then power went before its header was written: holds nothing.
            if !read_only {
                fs::remove_file(&path).map_err(io("delete", &path))?;
            }
            continue;
        }
        if buf.get(..magic) != Some(&frame::SEGMENT_MAGIC[..]) {
            quarantine(&mut report, "bad segment header")?;
            continue;
        }
        let scan = frame::scan(&buf, last_seq);
        report.corrupt_records += scan.corrupt_mid + u64::from(scan.torn_tail_at.is_some());
        report.skipped_bytes += scan.skipped_bytes;
        let mut bytes = buf.len() as u64;
        if let Some(at) = scan.torn_tail_at {
            report.truncated_bytes += (buf.len() - at) as u64;
            tracing::warn!(file = %path.display(), offset = at, bytes = buf.len() - at, "spool segment has a torn or corrupt tail: truncated");
        }
        if scan.corrupt_mid > 0 {
            tracing::warn!(file = %path.display(), records = scan.corrupt_mid, bytes = scan.skipped_bytes,
                "spool segment has corrupt records in the middle: skipped them and rewrote the segment");
            let mut clean = frame::SEGMENT_MAGIC.to_vec();
            for &(s, e, _, _) in &scan.frames {
                if let Some(b) = buf.get(s..e) {
                    clean.extend_from_slice(b);
                }
            }
            bytes = clean.len() as u64;
            if !read_only {
                let tmp = path.with_extension("seg.tmp");
                let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
                f.write_all(&clean).map_err(io("write", &tmp))?;
                f.sync_data().map_err(io("fsync", &tmp))?;
                fs::rename(&tmp, &path).map_err(io("rename", &tmp))?;
                cursor::sync_dir(dir).map_err(io("fsync", dir))?;
            }
            report.rewritten_segments += 1;
            // Offsets of the frames in the rewritten segment.
            let mut off = magic as u64;
            let offsets = scan.frames.iter().map(|&(s, e, _, _)| {
                let o = off;
                off += (e - s) as u64;
                o
            });
            let offsets: Vec<u64> = offsets.collect();
            all.push((
                id,
                bytes,
                scan.frames.iter().map(|f| f.2).collect(),
                offsets,
            ));
        } else {
            if let Some(at) = scan.torn_tail_at {
                bytes = at as u64;
                if !read_only {
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(io("open", &path))?;
                    f.set_len(bytes).map_err(io("truncate", &path))?;
                    f.sync_all().map_err(io("fsync", &path))?;
                }
            }
            all.push((
                id,
                bytes,
                scan.frames.iter().map(|f| f.2).collect(),
                scan.frames.iter().map(|f| f.0 as u64).collect(),
            ));
        }
        if let Some(&(_, _, s, _)) = scan.frames.last() {
            last_seq = Some(s);
        }
    }
    let first_seq = all.iter().find_map(|(_, _, seqs, _)| seqs.first().copied());
    let any_records = first_seq.is_some();
    let cur = match saved {
        Some(c) => c,
        None => {
            report.cursor_lost = any_records;
            let lowest = first_seq.unwrap_or(0);
            // Nothing is known to be acknowledged or unsent: resend everything, counting it all.
            Cursor {
                acked: lowest,
                sent: last_seq.map_or(lowest, |s| s + 1),
            }
        }
    };
    let next_seq = [
        last_seq.map_or(0, |s| s + 1),
        cur.acked,
        cur.sent,
        all.last().map_or(0, |a| a.0 + 1),
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    let mut acked_pos: Option<Pos> = None;
    let n = all.len();
    for (i, (id, bytes, seqs, offsets)) in all.into_iter().enumerate() {
        let records = seqs.len() as u64;
        let acked_records = seqs.iter().filter(|&&s| s < cur.acked).count() as u64;
        report.records += records;
        report.possible_duplicates += seqs
            .iter()
            .filter(|&&s| s >= cur.acked && s < cur.sent)
            .count() as u64;
        if acked_pos.is_none()
            && let Some(k) = seqs.iter().position(|&s| s >= cur.acked)
        {
            acked_pos = Some(Pos {
                seg: id,
                offset: offsets.get(k).copied().unwrap_or(bytes),
                ordinal: k as u64,
            });
        }
        let is_last = i + 1 == n;
        if (records == 0 || acked_records == records) && !is_last {
            if !read_only {
                let path = seg_path(dir, id);
                fs::remove_file(&path).map_err(io("delete", &path))?;
            }
            continue;
        }
        segments.push_back(Segment {
            id,
            records,
            acked_records,
            bytes,
        });
    }
    report.segments = segments.len() as u64;
    let acked_pos = acked_pos.unwrap_or_else(|| match segments.back() {
        Some(s) => Pos {
            seg: s.id,
            offset: s.bytes,
            ordinal: s.records,
        },
        None => Pos {
            seg: next_seq,
            offset: magic as u64,
            ordinal: 0,
        },
    });
    let writer = match segments.back() {
        Some(s) if !read_only => {
            let path = seg_path(dir, s.id);
            Some(
                OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(io("open", &path))?,
            )
        }
        _ => None,
    };
    let total_bytes = segments.iter().map(|s| s.bytes).sum();
    let inner = Inner {
        segments,
        writer,
        next_seq,
        acked: cur.acked,
        acked_pos,
        sent: cur.sent.max(cur.acked),
        read_pos: acked_pos,
        reader: None,
        total_bytes,
        data_dirty: false,
        cursor_dirty: false,
        last_sync: Instant::now(),
        interrupted: false,
        closed: false,
        dropped: 0,
        corrupt: report.corrupt_records,
        possible_duplicates: report.possible_duplicates,
    };
    Ok((inner, report))
}
