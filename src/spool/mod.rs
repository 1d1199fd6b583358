//! Crash-safe disk spool: encoded records wait here until the broker acknowledged them.
//!
//! Must not know Kafka or Avro: it stores framed bytes with a topic and a key, in order, and hands them out
//! in the same order. Must never lose a record silently: a record is dropped only by `when_full =
//! drop_oldest` or by corruption found on disk, and both are counted and logged.
//!
//! # Layout of a spool directory
//! - `lock`: held with an exclusive `flock` (`File::try_lock`) while a spool is open; holds the owner's pid.
//! - `id`: the spool's random id, written when the directory is first opened and never changed (see [`id`]).
//! - `<first-seq, 20 digits>.seg`: segment files, see [`frame`] for the framing (length + CRC32C per record).
//!   The last segment is the active one; a segment rolls at `segment_bytes`. A segment that is fully
//!   acknowledged and no longer active is deleted, after the cursor that acknowledges it is written (so a
//!   crash never leaves a cursor on disk that is behind records already deleted).
//! - `cursor`: the acknowledged cursor (every sequence number below `acked` is acknowledged) and the sent
//!   mark, rewritten in place after every acknowledgement: a fixed-size file of two checksummed slots
//!   written alternately, so updating it needs no new disk block (see [`cursor`] for the format).
//!
//! The spool's parts: `recovery` checks and repairs a directory on open (its module doc says how), `writer`
//! appends, `reader` hands records out, `ledger` keeps the acknowledged cursor and deletes what is done,
//! `space` measures the file system's free space; `state` is the state behind the mutex they share.
//!
//! # When the disk fills up
//! The spool's effective limit is the smaller of `max_bytes` and what its file system allows: the segment
//! bytes it holds plus the free space, minus [`SpoolOptions::reserve_bytes`] (default 1 MiB, at most 1/16 of
//! the file system). At the limit, appends wait (`when_full = block`) or drop the oldest segment
//! (`drop_oldest`) exactly as at `max_bytes`, and a write that fails with "no space" waits too, instead of
//! failing. While the disk is the limit, segments roll at a quarter of what it allows, so acknowledged
//! segments are deleted as the sender goes; a fully acknowledged active segment is deleted too while appends
//! wait. Acknowledgements still persist (the cursor needs no new block), so the space they free comes back
//! and appends resume by themselves, as they do when other software frees space. [`SpoolStatus::full`] says
//! whether appends wait and why; the transitions are logged.
//!
//! # fsync policy
//! The default is `interval` 100 ms: a process crash loses nothing (every record is written to the kernel
//! before `append` returns), a power loss loses at most the last ~100 ms of accepted records, and flash sees
//! at most ~10 syncs per second instead of one per record (one per record costs an order of magnitude in
//! throughput and wears SD cards). `always` syncs every append (and every cursor write); `never` leaves it
//! to the kernel (syncs only on roll and close). [`Spool::sync_cursor`] makes the sent mark durable on
//! demand (the exactly-once forwarder does, before each send: after a power cut the next sequence number
//! is then above every one that was sent). Each sync is logged at debug level (`spool data synced` with
//! the segment and its size, `spool cursor synced` with the cursor), which is what the forwarder's
//! power-cut tests truncate a spool back to.

pub mod cursor;
pub mod frame;
pub mod id;
mod ledger;
mod reader;
mod recovery;
mod space;
mod state;
mod writer;

pub use space::SpoolFull;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::error::{ErrorKind, Kind};
use state::{Inner, Pos};

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
    /// When appends are forced to disk (default every 100 ms).
    pub fsync: FsyncPolicy,
    /// Upper bound of the segment files' total size.
    pub max_bytes: u64,
    /// What an append does when `max_bytes` is reached (default: block).
    pub when_full: WhenFull,
    /// Size at which a segment rolls; default `max_bytes / 8` clamped to 64 KiB ..= 4 MiB.
    pub segment_bytes: Option<u64>,
    /// Free space the spool leaves on its file system: appends wait while writing would leave less.
    /// Default (`None`): 1 MiB, but at most 1/16 of the file system's size.
    pub reserve_bytes: Option<u64>,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        SpoolOptions {
            fsync: FsyncPolicy::default(),
            max_bytes: 256 * 1024 * 1024,
            when_full: WhenFull::Block,
            segment_bytes: None,
            reserve_bytes: None,
        }
    }
}

/// Everything the spool can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// A file operation in the spool directory failed.
    #[error("spool {op} {}: {source}", path.display())]
    Io {
        /// What was being done (e.g. `open`, `fsync`, `rename`).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another process holds the spool directory's lock.
    #[error("spool directory {} is in use by another process ({holder})", dir.display())]
    Locked {
        /// The spool directory.
        dir: PathBuf,
        /// The holder's pid from the lock file (`pid 1234`), or `unknown pid`.
        holder: String,
    },
    /// One record is larger than a segment can hold.
    #[error("record of {size} bytes does not fit the spool (at most {max} bytes per record)")]
    RecordTooLarge {
        /// The record's encoded size in bytes.
        size: usize,
        /// The largest record the spool takes, in bytes.
        max: usize,
    },
    /// An append waiting for space (`when_full = block`) was stopped.
    #[error("spool input was stopped")]
    Interrupted,
    /// The options are out of range (`max_bytes` below 64 KiB, a segment size outside 4 KiB ..=
    /// `max_bytes / 4`); the message says which.
    #[error("bad spool options: {0}")]
    BadOptions(String),
}

impl ErrorKind for SpoolError {
    fn kind(&self) -> Kind {
        match self {
            SpoolError::Io { .. } => Kind::SpoolIo,
            SpoolError::Locked { .. } => Kind::SpoolLocked,
            SpoolError::RecordTooLarge { .. } => Kind::RecordTooLarge,
            SpoolError::Interrupted => Kind::SpoolInterrupted,
            SpoolError::BadOptions(_) => Kind::SpoolOptions,
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
    /// Segment files found.
    pub segments: u64,
    /// Valid records found (acknowledged or not).
    pub records: u64,
    /// Records found corrupt (torn tails count as one each) and removed.
    pub corrupt_records: u64,
    /// Bytes cut off segment tails.
    pub truncated_bytes: u64,
    /// Bytes skipped in the middle of segments.
    pub skipped_bytes: u64,
    /// Segments rewritten to drop corrupt records from their middle.
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
    /// Segment files on disk.
    pub segments: u64,
    /// Spool time (ms since the epoch) of the oldest unacknowledged record.
    pub oldest_unacked_ms: Option<u64>,
    /// How long ago (ms) the oldest unacknowledged record was spooled.
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
    /// The size bound in force (`spool.max_bytes`).
    pub max_bytes: u64,
    /// The full-spool policy in force.
    pub when_full: WhenFull,
    /// The fsync policy in force, as text (e.g. `interval 100 ms`).
    pub fsync: String,
    /// Whether appends wait for space now, and why (`None`: they do not).
    pub full: Option<SpoolFull>,
    /// How long they have waited.
    pub full_for_ms: Option<u64>,
    /// Times appends had to wait since open because the disk was full.
    pub full_disk_events: u64,
    /// Times appends had to wait since open because the spool held `max_bytes`.
    pub full_max_bytes_events: u64,
    /// The effective limit of `bytes`: `max_bytes`, or less when the file system has less room.
    pub limit_bytes: u64,
    /// Free bytes on the spool's file system (`None`: it could not be measured).
    pub disk_free_bytes: Option<u64>,
    /// Free space the spool leaves on its file system.
    pub reserve_bytes: u64,
}

/// A record handed out by [`Spool::read_batch`]; acknowledge it with [`Spool::ack_through`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolRecord {
    /// Sequence number, assigned in append order; acknowledge through it.
    pub seq: u64,
    /// When it was spooled (ms since the epoch).
    pub timestamp_ms: u64,
    /// Kafka topic it goes to.
    pub topic: String,
    /// Kafka message key, if any.
    pub key: Option<Vec<u8>>,
    /// Kafka message value (the Confluent-framed Avro message).
    pub value: Vec<u8>,
    pos: Pos,
    next_offset: u64,
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
    /// The spool's id ([`id`]); `""` for a directory inspected before any open.
    id: String,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
        let segment_bytes = segment_bytes(&opts)?;
        if !read_only {
            fs::create_dir_all(dir).map_err(io("create", dir))?;
        }
        let lock = lock_dir(dir, read_only)?;
        let id = id::load_or_create(dir, read_only)?;
        let (mut inner, report) = recovery::recover(dir, segment_bytes, read_only)?;
        inner.space = space::Space::new(opts.reserve_bytes);
        inner.space.measure(dir, inner.total_bytes);
        let spool = Spool {
            dir: dir.to_path_buf(),
            opts,
            segment_bytes,
            read_only,
            inner: Mutex::new(inner),
            changed: Condvar::new(),
            lock_file: lock,
            id,
        };
        if !read_only {
            let mut g = spool.lock();
            // What recovery kept is on disk from here on (also the sync log's starting point).
            spool.sync_data(&mut g)?;
            match spool.open_cursor(&mut g) {
                Ok(()) => {}
                // A full disk with no cursor file yet: the spool still works (it needs the space its
                // acknowledgements free); the cursor file is created once there is room.
                Err(SpoolError::Io { source, .. }) if space::is_disk_full(&source) => {
                    tracing::warn!(dir = %dir.display(), error = %source, "spool cannot create its cursor file: the disk is full; will retry");
                }
                Err(e) => return Err(e),
            }
            drop(g);
            log_opened(dir, &report);
        }
        Ok((spool, report))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wait for a change (an append, an acknowledgement, an interrupt) or `timeout`, counted in
    /// [`Inner::waiters`] so that [`Spool::wake`] knows someone listens.
    fn wait_changed<'a>(
        &'a self,
        mut g: MutexGuard<'a, Inner>,
        timeout: Duration,
    ) -> MutexGuard<'a, Inner> {
        g.waiters += 1;
        let mut g = self
            .changed
            .wait_timeout(g, timeout)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
        g.waiters -= 1;
        g
    }

    /// Wake the threads in [`Spool::wait_changed`], if any (called with the lock held, so no waiter
    /// can be between its count and its wait).
    fn wake(&self, g: &Inner) {
        if g.waiters > 0 {
            self.changed.notify_all();
        }
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The spool's id: random, written into the directory when it was first opened, never
    /// changed (`""` for a directory inspected before any open).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Write the cursor (the acknowledged cursor and the sent mark) durably now, whatever the
    /// fsync policy: after this, a restart (even after a power cut) numbers new records above
    /// every record handed out so far.
    pub fn sync_cursor(&self) -> Result<(), SpoolError> {
        let mut g = self.lock();
        if g.closed || self.read_only {
            return Ok(());
        }
        self.write_cursor(&mut g, true)
    }

    /// Make appends fail with [`SpoolError::Interrupted`] (and wake any that wait for space).
    pub fn interrupt(&self) {
        self.lock().interrupted = true;
        self.changed.notify_all();
    }

    /// Whether appends have stopped ([`Spool::interrupt`] or [`Spool::close`]): no record joins the
    /// spool any more.
    pub fn interrupted(&self) -> bool {
        self.lock().interrupted
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
}

/// The segment size for these options (checked against `max_bytes`).
fn segment_bytes(opts: &SpoolOptions) -> Result<u64, SpoolError> {
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
    Ok(segment_bytes)
}

/// Take the directory's `lock` file (writing our pid into it unless `read_only`).
fn lock_dir(dir: &Path, read_only: bool) -> Result<File, SpoolError> {
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
    match try_lock_briefly(&lock) {
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
    Ok(lock)
}

/// How long an open waits for a lock that is held only for a moment: a child being spawned by
/// another thread of this process holds a copy of every descriptor, this lock's too, between its
/// fork and its exec (close-on-exec drops it then). A lock held longer is another owner's.
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_millis(250);

/// `try_lock`, tried again for up to [`LOCK_GRACE`] while it would block.
fn try_lock_briefly(lock: &File) -> Result<(), fs::TryLockError> {
    let give_up = std::time::Instant::now() + LOCK_GRACE;
    loop {
        match lock.try_lock() {
            Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < give_up => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

fn log_opened(dir: &Path, report: &RecoveryReport) {
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

impl Drop for Spool {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, "spool flush on close failed");
        }
    }
}
