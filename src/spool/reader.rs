//! The reader: hands out records in order from the read position, for the sender to deliver.
//!
//! Must not delete or acknowledge anything (that is [`super::ledger`]): records it hands out stay in the
//! spool until [`Spool::ack_through`]; it only advances the sent mark.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::time::Duration;

use super::state::{Inner, Pos, Reader, seg_path};
use super::{Spool, SpoolError, SpoolRecord, frame, io};

/// The reader keeps its payload buffer between records up to this capacity.
const KEEP_PAYLOAD: usize = 64 * 1024;

impl Spool {
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
            g = self.wait_changed(g, wait);
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
            // The sent mark only counts possible duplicates after a restart: failing to write it must not
            // stop the sender (whose acknowledgements are what frees a full disk). Written again later.
            if let Err(e) = self.write_cursor(&mut g, false) {
                g.cursor_dirty = true;
                tracing::debug!(error = %e, "spool could not write the sent mark");
            }
        }
        Ok(out)
    }

    fn read_at(
        &self,
        g: &mut Inner,
        pos: Pos,
        seg_bytes: u64,
    ) -> Result<SpoolRecord, Option<SpoolError>> {
        // The path is only needed to open the file or to name it in an error.
        let path = || seg_path(&self.dir, pos.seg);
        let reuse = g
            .reader
            .as_ref()
            .is_some_and(|r| r.pos.seg == pos.seg && r.pos.offset == pos.offset);
        if !reuse {
            let (mut f, payload) = match g.reader.take() {
                Some(r) if r.pos.seg == pos.seg => (r.file, r.payload),
                other => {
                    let path = path();
                    let file = File::open(&path).map_err(|e| Some(io("open", &path)(e)))?;
                    let payload = other.map(|r| r.payload).unwrap_or_default();
                    (BufReader::with_capacity(64 * 1024, file), payload)
                }
            };
            f.seek(SeekFrom::Start(pos.offset))
                .map_err(|e| Some(io("seek", &path())(e)))?;
            g.reader = Some(Reader {
                pos,
                file: f,
                payload,
            });
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
            .map_err(|e| Some(io("read", &path())(e)))?;
        let Some(len) = frame::payload_len(&header) else {
            return Err(None);
        };
        let next_offset = pos.offset + (frame::FRAME_HEADER + len) as u64;
        if next_offset > seg_bytes {
            return Err(None);
        }
        let payload = &mut r.payload;
        if payload.capacity() > KEEP_PAYLOAD {
            // One big record must not keep its buffer for all the small ones after it.
            *payload = Vec::new();
        }
        payload.clear();
        payload.resize(len, 0);
        r.file
            .read_exact(payload)
            .map_err(|e| Some(io("read", &path())(e)))?;
        r.pos = Pos {
            seg: pos.seg,
            offset: next_offset,
            ordinal: pos.ordinal + 1,
        };
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let f = frame::decode_payload(crc, &r.payload).ok_or(None)?;
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
}
