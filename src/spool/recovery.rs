//! Recovery on open: every segment is read and checked, damage is repaired, and the ledger is rebuilt
//! from what survived and the saved cursor.
//!
//! Must not drop a valid record, and must not touch the directory when inspecting (`read_only`).
//!
//! A torn or corrupt tail (power loss mid-write: cut bytes, flipped bytes) is truncated back to the last
//! valid record. A corrupt record in the middle of a segment is skipped by scanning forward for the next
//! offset where a valid frame with a larger sequence number starts; the segment is then rewritten without
//! the bad bytes (temporary file + rename), so readers never see them again. Both are counted in
//! [`RecoveryReport`] and logged; neither is fatal and neither touches the records before it. A segment
//! whose header is not a spool header is renamed `*.corrupt` and reported. Records after the acknowledged
//! cursor that had already been handed to the sender (below the sent mark) are resent and counted as
//! possible duplicates.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use super::cursor::{self, Cursor};
use super::state::{Inner, Pos, Segment, parse_seg_name, seg_path};
use super::{RecoveryReport, SpoolError, frame, io};

/// What survived the check of one segment file.
struct Checked {
    id: u64,
    /// Its size after repair.
    bytes: u64,
    /// Sequence numbers of its valid records, in order.
    seqs: Vec<u64>,
    /// Offsets of those records (after repair).
    offsets: Vec<u64>,
}

/// Read and check every segment; repair unless `read_only`.
pub(super) fn recover(
    dir: &Path,
    segment_bytes: u64,
    read_only: bool,
) -> Result<(Inner, RecoveryReport), SpoolError> {
    let mut report = RecoveryReport::default();
    let ids = list_segments(dir, read_only)?;
    let saved = cursor::read(dir);
    let (all, last_seq) = check_segments(dir, ids, segment_bytes, read_only, &mut report)?;
    let cur = settle_cursor(saved, &all, last_seq, &mut report);
    let next_seq = [
        last_seq.map_or(0, |s| s + 1),
        cur.acked,
        cur.sent,
        all.last().map_or(0, |a| a.id + 1),
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    let (segments, acked_pos) = rebuild_ledger(dir, all, cur, next_seq, read_only, &mut report)?;
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
        cursor_file: None,
        space: super::space::Space::new(None),
        frame: Vec::new(),
        waiters: 0,
    };
    Ok((inner, report))
}

/// Segment ids in the directory, in order; leftover temporary files go (unless `read_only`).
fn list_segments(dir: &Path, read_only: bool) -> Result<Vec<u64>, SpoolError> {
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
    Ok(ids)
}

/// Check (and repair) every segment in order; also returns the last valid sequence number.
fn check_segments(
    dir: &Path,
    ids: Vec<u64>,
    segment_bytes: u64,
    read_only: bool,
    report: &mut RecoveryReport,
) -> Result<(Vec<Checked>, Option<u64>), SpoolError> {
    let magic = frame::SEGMENT_MAGIC.len();
    // Largest segment we read: a segment rolls at segment_bytes, but one record may exceed it.
    let cap = segment_bytes + (frame::FRAME_HEADER + frame::MAX_PAYLOAD + magic) as u64;
    let mut last_seq: Option<u64> = None;
    let mut all = Vec::new();
    for id in ids {
        let Some(checked) = check_segment(dir, id, cap, last_seq, read_only, report)? else {
            continue;
        };
        if let Some(&s) = checked.seqs.last() {
            last_seq = Some(s);
        }
        all.push(checked);
    }
    Ok((all, last_seq))
}

/// Check one segment: quarantine it, delete it (empty), or keep its valid records, cutting a torn tail
/// and rewriting it without corrupt records in the middle. `None` when nothing of it is kept.
fn check_segment(
    dir: &Path,
    id: u64,
    cap: u64,
    last_seq: Option<u64>,
    read_only: bool,
    report: &mut RecoveryReport,
) -> Result<Option<Checked>, SpoolError> {
    let magic = frame::SEGMENT_MAGIC.len();
    let path = seg_path(dir, id);
    let size = fs::metadata(&path).map_err(io("stat", &path))?.len();
    if size > cap {
        quarantine(
            &path,
            read_only,
            report,
            "larger than any segment the spool writes",
        )?;
        return Ok(None);
    }
    let buf = fs::read(&path).map_err(io("read", &path))?;
    if buf.len() < magic {
        // Created, then power went before its header was written: holds nothing.
        if !read_only {
            fs::remove_file(&path).map_err(io("delete", &path))?;
        }
        return Ok(None);
    }
    if buf.get(..magic) != Some(&frame::SEGMENT_MAGIC[..]) {
        quarantine(&path, read_only, report, "bad segment header")?;
        return Ok(None);
    }
    let scan = frame::scan(&buf, last_seq);
    report.corrupt_records += scan.corrupt_mid + u64::from(scan.torn_tail_at.is_some());
    report.skipped_bytes += scan.skipped_bytes;
    let mut bytes = buf.len() as u64;
    if let Some(at) = scan.torn_tail_at {
        report.truncated_bytes += (buf.len() - at) as u64;
        tracing::warn!(file = %path.display(), offset = at, bytes = buf.len() - at, "spool segment has a torn or corrupt tail: truncated");
    }
    let seqs = scan.frames.iter().map(|f| f.2).collect();
    if scan.corrupt_mid > 0 {
        tracing::warn!(file = %path.display(), records = scan.corrupt_mid, bytes = scan.skipped_bytes,
            "spool segment has corrupt records in the middle: skipped them and rewrote the segment");
        let (bytes, offsets) = rewrite_segment(dir, &path, &buf, &scan, read_only)?;
        report.rewritten_segments += 1;
        return Ok(Some(Checked {
            id,
            bytes,
            seqs,
            offsets,
        }));
    }
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
    Ok(Some(Checked {
        id,
        bytes,
        seqs,
        offsets: scan.frames.iter().map(|f| f.0 as u64).collect(),
    }))
}

/// Set aside a file that is not a usable segment (renamed `*.corrupt` unless `read_only`).
fn quarantine(
    path: &Path,
    read_only: bool,
    report: &mut RecoveryReport,
    why: &str,
) -> Result<(), SpoolError> {
    tracing::warn!(file = %path.display(), why, "spool file is not a usable segment");
    report.quarantined_files += 1;
    if !read_only {
        let to = path.with_extension("seg.corrupt");
        fs::rename(path, &to).map_err(io("rename", path))?;
    }
    Ok(())
}

/// Write a segment again with only its valid frames (temporary file + rename, unless `read_only`).
/// Returns its new size and the offsets of the frames in it.
fn rewrite_segment(
    dir: &Path,
    path: &Path,
    buf: &[u8],
    scan: &frame::SegmentScan,
    read_only: bool,
) -> Result<(u64, Vec<u64>), SpoolError> {
    let magic = frame::SEGMENT_MAGIC.len();
    let mut clean = frame::SEGMENT_MAGIC.to_vec();
    for &(s, e, _, _) in &scan.frames {
        if let Some(b) = buf.get(s..e) {
            clean.extend_from_slice(b);
        }
    }
    let bytes = clean.len() as u64;
    if !read_only {
        let tmp = path.with_extension("seg.tmp");
        let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(&clean).map_err(io("write", &tmp))?;
        f.sync_data().map_err(io("fsync", &tmp))?;
        fs::rename(&tmp, path).map_err(io("rename", &tmp))?;
        cursor::sync_dir(dir).map_err(io("fsync", dir))?;
    }
    // Offsets of the frames in the rewritten segment.
    let mut off = magic as u64;
    let offsets = scan.frames.iter().map(|&(s, e, _, _)| {
        let o = off;
        off += (e - s) as u64;
        o
    });
    Ok((bytes, offsets.collect()))
}

/// The saved cursor, or (missing or corrupt) one that resends everything found, counting it all.
fn settle_cursor(
    saved: Option<Cursor>,
    all: &[Checked],
    last_seq: Option<u64>,
    report: &mut RecoveryReport,
) -> Cursor {
    let first_seq = all.iter().find_map(|c| c.seqs.first().copied());
    let any_records = first_seq.is_some();
    match saved {
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
    }
}

/// The ledger's segments and the acknowledged position, from the checked segments and the cursor.
/// Fully acknowledged segments other than the last are deleted (unless `read_only`).
fn rebuild_ledger(
    dir: &Path,
    all: Vec<Checked>,
    cur: Cursor,
    next_seq: u64,
    read_only: bool,
    report: &mut RecoveryReport,
) -> Result<(VecDeque<Segment>, Pos), SpoolError> {
    let magic = frame::SEGMENT_MAGIC.len();
    let mut segments = VecDeque::new();
    let mut acked_pos: Option<Pos> = None;
    let n = all.len();
    for (
        i,
        Checked {
            id,
            bytes,
            seqs,
            offsets,
        },
    ) in all.into_iter().enumerate()
    {
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
    Ok((segments, acked_pos))
}
