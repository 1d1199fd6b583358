//! The acknowledged cursor file: which sequence numbers the broker has acknowledged, and how far the sender
//! has read (so a restart can count the records it resends as possible duplicates).
//!
//! Must not hold anything else, and must never need a new disk block once it exists: it is written while
//! the disk is full (an acknowledgement is what frees space), so it is updated in place.
//!
//! # Format (`AECURS02`)
//! A fixed 1,024-byte file of two 512-byte slots, at offsets 0 and 512 (different sectors, so a torn
//! write damages one slot at most). A slot is `"AECURS02"`, generation (u64 LE), acked (u64 LE), sent
//! (u64 LE), CRC32C of those 32 bytes (u32 LE), then zeros. Each write is one `pwrite` of a slot, the
//! generation one above the last, into slot `generation % 2`: the other slot always holds the previous
//! cursor. Reading takes the valid slot with the highest generation.
//!
//! The file is created (temporary file + rename) or migrated when the spool opens; after that it is only
//! overwritten in place, which on block file systems (ext4, f2fs, tmpfs, ...) needs no new block. (A
//! copy-on-write file system such as btrfs or ZFS may still need space to overwrite.)
//!
//! # Old format (`AECURS01`), read for one-way migration
//! A 28-byte file: `"AECURS01"`, acked, sent (u64 LE), CRC32C of those 24 bytes. Opening such a spool
//! writes slot 1 first (offset 512, leaving the old record at offset 0 readable until slot 1 is durable),
//! then slot 0. A file whose slots are both invalid but that starts with a valid old record is read as the
//! old format, so an interrupted migration loses nothing.
//!
//! A missing or corrupt cursor file is never fatal: the spool then resends everything it still holds
//! (at-least-once).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

const MAGIC_V1: &[u8; 8] = b"AECURS01";
const MAGIC: &[u8; 8] = b"AECURS02";
/// The cursor file's name in a spool directory.
pub const FILE: &str = "cursor";
const TMP: &str = "cursor.tmp";
/// Size of one slot; the file holds two.
pub const SLOT: u64 = 512;
/// Bytes of a slot that carry data (the rest are zeros).
const RECORD: usize = 36;

/// The persisted cursor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Every sequence number below this one was acknowledged (or dropped).
    pub acked: u64,
    /// Every sequence number below this one was handed to the sender at least once.
    pub sent: u64,
}

/// What a cursor file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// The current format: the newest valid slot and its generation.
    Slots {
        /// The cursor in the newest valid slot.
        cursor: Cursor,
        /// That slot's generation.
        generation: u64,
    },
    /// The old 28-byte format.
    Legacy(Cursor),
}

impl Found {
    /// The cursor found.
    pub fn cursor(self) -> Cursor {
        match self {
            Found::Slots { cursor, .. } | Found::Legacy(cursor) => cursor,
        }
    }
}

/// Read the cursor; `None` when the file is missing or does not pass its check.
pub fn read(dir: &Path) -> Option<Cursor> {
    read_found(dir).map(Found::cursor)
}

/// Read the cursor file and say which format it was in.
pub fn read_found(dir: &Path) -> Option<Found> {
    parse(&fs::read(dir.join(FILE)).ok()?)
}

/// Decode a cursor file's bytes (either format).
pub fn parse(b: &[u8]) -> Option<Found> {
    let slot = |i: u64| -> Option<(u64, Cursor)> {
        let start = usize::try_from(i * SLOT).ok()?;
        decode_slot(b.get(start..start + RECORD)?)
    };
    let best = [slot(0), slot(1)]
        .into_iter()
        .flatten()
        .max_by_key(|&(generation, _)| generation);
    if let Some((generation, cursor)) = best {
        return Some(Found::Slots { cursor, generation });
    }
    parse_v1(b.get(..28)?).map(Found::Legacy)
}

fn parse_v1(b: &[u8]) -> Option<Cursor> {
    if b.get(..8)? != MAGIC_V1 {
        return None;
    }
    let crc = u32::from_le_bytes(b.get(24..28)?.try_into().ok()?);
    if crc32c::crc32c(b.get(..24)?) != crc {
        return None;
    }
    Some(Cursor {
        acked: u64::from_le_bytes(b.get(8..16)?.try_into().ok()?),
        sent: u64::from_le_bytes(b.get(16..24)?.try_into().ok()?),
    })
}

fn decode_slot(b: &[u8]) -> Option<(u64, Cursor)> {
    if b.get(..8)? != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(b.get(32..36)?.try_into().ok()?);
    if crc32c::crc32c(b.get(..32)?) != crc {
        return None;
    }
    let u = |r: std::ops::Range<usize>| -> Option<u64> {
        Some(u64::from_le_bytes(b.get(r)?.try_into().ok()?))
    };
    Some((
        u(8..16)?,
        Cursor {
            acked: u(16..24)?,
            sent: u(24..32)?,
        },
    ))
}

/// One slot's data bytes for `generation`.
pub fn encode_slot(generation: u64, c: Cursor) -> [u8; RECORD] {
    let mut b = [0u8; RECORD];
    b[..8].copy_from_slice(MAGIC);
    b[8..16].copy_from_slice(&generation.to_le_bytes());
    b[16..24].copy_from_slice(&c.acked.to_le_bytes());
    b[24..32].copy_from_slice(&c.sent.to_le_bytes());
    let crc = crc32c::crc32c(&b[..32]);
    b[32..36].copy_from_slice(&crc.to_le_bytes());
    b
}

/// The open cursor file, written in place.
#[derive(Debug)]
pub struct CursorFile {
    file: File,
    generation: u64,
}

impl CursorFile {
    /// Open the cursor file for in-place writes, first bringing it into the current format with `c` in both
    /// slots: a missing or unreadable file is created anew (temporary file + rename, so this needs space), an
    /// old-format file is migrated in place, a current one is kept and its generation continued. Synced.
    pub fn open(dir: &Path, c: Cursor) -> std::io::Result<CursorFile> {
        let path = dir.join(FILE);
        let found = fs::read(&path)
            .ok()
            .and_then(|b| parse(&b).map(|f| (f, b.len())));
        let file = match found {
            Some((_, len)) if len as u64 == 2 * SLOT => {
                OpenOptions::new().read(true).write(true).open(&path)?
            }
            // Migrated in place: the 28-byte file's block is already allocated.
            Some((Found::Legacy(_), _)) => OpenOptions::new().read(true).write(true).open(&path)?,
            _ => {
                let tmp = dir.join(TMP);
                let mut f = File::create(&tmp)?;
                let mut b = vec![0u8; 2 * SLOT as usize];
                b[..RECORD].copy_from_slice(&encode_slot(0, c));
                f.write_all(&b)?;
                f.sync_data()?;
                fs::rename(&tmp, &path)?;
                sync_dir(dir)?;
                return Ok(CursorFile {
                    file: OpenOptions::new().read(true).write(true).open(&path)?,
                    generation: 0,
                });
            }
        };
        let generation = match found {
            Some((Found::Slots { generation, .. }, _)) => generation,
            _ => 0,
        };
        let mut cf = CursorFile { file, generation };
        // The first write goes into the slot that does not hold the newest valid cursor (slot 1 after an
        // old-format file, whose record at offset 0 stays readable until then). Writing both slots also
        // pads the file to its full size.
        cf.write_padded(c)?;
        cf.write_padded(c)?;
        Ok(cf)
    }

    /// Write a whole slot (data and zero padding), synced.
    fn write_padded(&mut self, c: Cursor) -> std::io::Result<()> {
        self.generation += 1;
        let mut b = [0u8; SLOT as usize];
        b[..RECORD].copy_from_slice(&encode_slot(self.generation, c));
        self.file.write_all_at(&b, (self.generation % 2) * SLOT)?;
        self.file.sync_data()
    }

    /// Write the cursor in place into the older slot; with `sync`, fsync the file (no directory sync is
    /// needed: no entry changes).
    pub fn write(&mut self, c: Cursor, sync: bool) -> std::io::Result<()> {
        let generation = self.generation + 1;
        self.file
            .write_all_at(&encode_slot(generation, c), (generation % 2) * SLOT)?;
        self.generation = generation;
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// The generation of the last slot written.
    #[cfg(test)]
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// fsync a directory so that a created, renamed or deleted entry survives power loss.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let d = std::env::temp_dir().join(format!(
            "avro-edge-cursor-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn v1_bytes(c: Cursor) -> Vec<u8> {
        let mut b = MAGIC_V1.to_vec();
        b.extend_from_slice(&c.acked.to_le_bytes());
        b.extend_from_slice(&c.sent.to_le_bytes());
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    const A: Cursor = Cursor {
        acked: 10,
        sent: 12,
    };
    const B: Cursor = Cursor {
        acked: 20,
        sent: 25,
    };
    const C: Cursor = Cursor {
        acked: 30,
        sent: 31,
    };

    #[test]
    fn new_file_round_trips_and_alternates_slots() {
        let d = tmpdir("new");
        assert_eq!(read(&d), None);
        let mut f = CursorFile::open(&d, A).unwrap();
        assert_eq!(fs::metadata(d.join(FILE)).unwrap().len(), 2 * SLOT);
        assert_eq!(read(&d), Some(A));
        let g = f.generation();
        f.write(B, false).unwrap();
        assert_eq!(read(&d), Some(B));
        f.write(C, true).unwrap();
        assert_eq!(read(&d), Some(C));
        // The two slots hold the last two cursors.
        let b = fs::read(d.join(FILE)).unwrap();
        let slots: Vec<_> = [0, 1]
            .iter()
            .map(|&i| decode_slot(&b[i * SLOT as usize..][..RECORD]).unwrap())
            .collect();
        assert!(slots.contains(&(g + 1, B)) && slots.contains(&(g + 2, C)));
        // The file never grows.
        assert_eq!(b.len() as u64, 2 * SLOT);
        // Reopening continues the generation.
        drop(f);
        let mut f = CursorFile::open(&d, C).unwrap();
        assert!(f.generation() > g + 2);
        f.write(A, false).unwrap();
        assert_eq!(read(&d), Some(A));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_torn_write_leaves_the_previous_cursor() {
        let d = tmpdir("torn");
        let mut f = CursorFile::open(&d, A).unwrap();
        f.write(B, true).unwrap();
        let before = fs::read(d.join(FILE)).unwrap();
        f.write(C, true).unwrap();
        let after = fs::read(d.join(FILE)).unwrap();
        let slot = ((f.generation() % 2) * SLOT) as usize;
        // Every prefix of the last slot write (a torn write), and every single flipped bit in it.
        for cut in 0..RECORD {
            let mut b = before.clone();
            b[slot..slot + cut].copy_from_slice(&after[slot..slot + cut]);
            let got = parse(&b).unwrap().cursor();
            assert!(
                got == B || (cut == RECORD && got == C),
                "cut {cut}: {got:?}"
            );
        }
        for bit in 0..RECORD * 8 {
            let mut b = after.clone();
            b[slot + bit / 8] ^= 1 << (bit % 8);
            assert_eq!(parse(&b).unwrap().cursor(), B, "bit {bit}");
        }
        // Both slots bad: no cursor (everything is resent).
        let mut b = after.clone();
        b[3] ^= 1;
        b[SLOT as usize + 3] ^= 1;
        assert_eq!(parse(&b), None);
        // The next write after a torn one goes into the torn slot, keeping the good one.
        let mut torn = after.clone();
        torn[slot + 20] ^= 0xff;
        fs::write(d.join(FILE), &torn).unwrap();
        drop(f);
        let mut f = CursorFile::open(&d, B).unwrap();
        f.write(C, false).unwrap();
        assert_eq!(read(&d), Some(C));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn old_format_is_read_and_migrated_in_place() {
        let d = tmpdir("v1");
        fs::write(d.join(FILE), v1_bytes(A)).unwrap();
        assert_eq!(read_found(&d), Some(Found::Legacy(A)));
        let ino = {
            use std::os::unix::fs::MetadataExt;
            fs::metadata(d.join(FILE)).unwrap().ino()
        };
        let mut f = CursorFile::open(&d, A).unwrap();
        // Same file (no rename: migration needs no new directory entry), now in the new format.
        {
            use std::os::unix::fs::MetadataExt;
            let m = fs::metadata(d.join(FILE)).unwrap();
            assert_eq!((m.ino(), m.len()), (ino, 2 * SLOT));
        }
        assert!(matches!(
            read_found(&d),
            Some(Found::Slots { cursor: A, .. })
        ));
        f.write(B, false).unwrap();
        assert_eq!(read(&d), Some(B));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_interrupted_migration_still_reads_the_old_cursor() {
        let v1 = v1_bytes(A);
        let mut slot1 = [0u8; SLOT as usize];
        slot1[..RECORD].copy_from_slice(&encode_slot(1, B));
        // Power lost while slot 1 (offset 512) was being written: any prefix of it on disk.
        for cut in [0, 1, 100, 512 + 8, 512 + 35] {
            let mut b = v1.clone();
            b.resize(SLOT as usize, 0);
            b.extend_from_slice(&slot1);
            b.truncate(cut.max(28));
            assert_eq!(parse(&b).map(Found::cursor), Some(A), "cut {cut}");
        }
        // Slot 1 complete: the new format wins even though slot 0 still holds the old record.
        let mut b = v1.clone();
        b.resize(SLOT as usize, 0);
        b.extend_from_slice(&slot1);
        assert_eq!(parse(&b).map(Found::cursor), Some(B));
        // A corrupt old record with no valid slot: nothing.
        let mut bad = v1.clone();
        bad[10] ^= 1;
        assert_eq!(parse(&bad), None);
    }
}
